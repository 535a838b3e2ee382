"""Pure watermark geometry (ci_engine.watermark.place) against watermark.md: the gravity
table of section 2.1, the worked examples of sections 3.4 and 4.3, sizing (3.2), tiling (2.3)."""

from __future__ import annotations

import math

import pytest

from ci_engine.types import Gravity, ScaleType
from ci_engine.watermark import place

W, H = 1000, 600
w, h = 200, 80

# watermark.md section 2.1, written out cell by cell (not computed from the code under test).
TABLE = {
    Gravity.NORTH_WEST: ("dx", "dy"),
    Gravity.NORTH: ("centre", "dy"),
    Gravity.NORTH_EAST: ("W-w-dx", "dy"),
    Gravity.WEST: ("dx", "middle"),
    Gravity.CENTER: ("centre", "middle"),
    Gravity.EAST: ("W-w-dx", "middle"),
    Gravity.SOUTH_WEST: ("dx", "H-h-dy"),
    Gravity.SOUTH: ("centre", "H-h-dy"),
    Gravity.SOUTH_EAST: ("W-w-dx", "H-h-dy"),
}


def _expected(rule: str, dx: int, dy: int, ww: int = w, hh: int = h) -> int:
    return {
        "dx": dx,
        "dy": dy,
        "centre": (W - ww) // 2,
        "middle": (H - hh) // 2,
        "W-w-dx": W - ww - dx,
        "H-h-dy": H - hh - dy,
    }[rule]


@pytest.mark.parametrize("gravity", list(Gravity))
@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (16, 16), (7, 23), (-5, 40), (2000, -3)])
def test_every_gravity_follows_the_table(gravity: Gravity, dx: int, dy: int) -> None:
    rx, ry = TABLE[gravity]
    assert place.position(gravity, W, H, w, h, dx, dy) == (_expected(rx, dx, dy), _expected(ry, dx, dy))


@pytest.mark.parametrize("gravity", [Gravity.NORTH, Gravity.CENTER, Gravity.SOUTH])
def test_middle_column_ignores_dx(gravity: Gravity) -> None:
    assert place.position(gravity, W, H, w, h, 0, 9)[0] == place.position(gravity, W, H, w, h, 123, 9)[0]


@pytest.mark.parametrize("gravity", [Gravity.WEST, Gravity.CENTER, Gravity.EAST])
def test_middle_row_ignores_dy(gravity: Gravity) -> None:
    assert place.position(gravity, W, H, w, h, 9, 0)[1] == place.position(gravity, W, H, w, h, 9, 77)[1]


def test_centring_floors() -> None:
    # (1000 - 201) / 2 = 399.5 -> 399; (600 - 81) / 2 = 259.5 -> 259
    assert place.position(Gravity.CENTER, W, H, 201, 81) == (399, 259)


def test_example_northwest_16_16() -> None:
    # watermark.md 3.4: 1000x600 base, 200x80 logo, northwest dx 16 dy 16 -> (16,16)-(216,96)
    x, y = place.position(Gravity.NORTH_WEST, 1000, 600, 200, 80, 16, 16)
    assert (x, y, x + 200, y + 80) == (16, 16, 216, 96)


def test_example_scatype_width_south() -> None:
    # watermark.md 3.4: scatype 1 spcent 150 -> 150 px wide on a 1000 px base, south, dy 24
    size = place.scale_size(ScaleType.WIDTH, 150, 1000, 600, 200, 80)
    assert size == (150, 60)
    assert place.position(Gravity.SOUTH, 1000, 600, *size, dx=99, dy=24) == ((1000 - 150) // 2, 600 - 60 - 24)


def test_default_is_south_east() -> None:
    from ci_engine import ast as A

    mark = A.TextWatermark(text="x")
    assert mark.effective_gravity is Gravity.SOUTH_EAST
    assert place.position(mark.effective_gravity, W, H, w, h, 10, 20) == (W - w - 10, H - h - 20)


@pytest.mark.parametrize(
    ("scatype", "spcent", "expected"),
    [
        (ScaleType.WIDTH, 1000, (1000, 400)),
        (ScaleType.WIDTH, 1, (1, 1)),  # 1000 * 1/1000 = 1 px wide, height 0.4 -> at least 1
        (ScaleType.HEIGHT, 500, (750, 300)),
        (ScaleType.HEIGHT, 1000, (1500, 600)),
    ],
)
def test_scale_by_width_and_height(scatype: ScaleType, spcent: int, expected: tuple[int, int]) -> None:
    assert place.scale_size(scatype, spcent, W, H, w, h) == expected


@pytest.mark.parametrize("spcent", [1, 10, 100, 200, 250])
def test_scale_by_area(spcent: int) -> None:
    out_w, out_h = place.scale_size(ScaleType.AREA, spcent, W, H, w, h)
    s = math.sqrt(W * H * spcent / 1000 / (w * h))
    assert (out_w, out_h) == (max(1, math.floor(w * s + 0.5)), max(1, math.floor(h * s + 0.5)))
    # the area is the requested share of the base, up to rounding
    assert abs(out_w * out_h - W * H * spcent / 1000) <= out_w + out_h + 1


def test_area_cap_is_a_quarter() -> None:
    out_w, out_h = place.scale_size(ScaleType.AREA, 250, W, H, 100, 100)
    assert out_w * out_h <= W * H // 4 + out_w + out_h


def test_scaling_rounds_half_up() -> None:
    # 1000 * 3/1000 = 3 px wide; 80 * 3/200 = 1.2 -> 1.  Then a true half: 1000 * 5/1000 = 5,
    # 80 * 5/200 = 2.0; with a 100x10 logo: 10 * 5/100 = 0.5 -> 1 (half up).
    assert place.scale_size(ScaleType.WIDTH, 3, W, H, w, h) == (3, 1)
    assert place.scale_size(ScaleType.WIDTH, 5, W, H, 100, 10) == (5, 1)
    assert place.scale_size(ScaleType.WIDTH, 15, W, H, 100, 10) == (15, 2)  # 1.5 -> 2


def test_blogo_scale_and_crop() -> None:
    assert place.blogo_scale_size(W, H, 2000, 400) == (1000, 200)
    assert place.blogo_scale_size(W, H, 300, 1200) == (150, 600)
    assert place.blogo_scale_size(W, H, 200, 80) == (200, 80)  # fits: untouched
    assert place.blogo_crop_size(W, H, 2000, 400) == (1000, 400)
    assert place.blogo_crop_size(W, H, 200, 80) == (200, 80)


def test_tile_step_and_grid_cover_the_canvas() -> None:
    assert place.tile_step(200, 80, 10) == (220, 88)
    positions = place.tile_positions(W, H, 200, 80, 10)
    xs = sorted({x for x, _ in positions})
    ys = sorted({y for _, y in positions})
    assert xs == [0, 220, 440, 660, 880]
    assert ys == [0, 88, 176, 264, 352, 440, 528]
    assert len(positions) == len(xs) * len(ys)
    # every canvas pixel row/column is reached by a cell
    assert xs[-1] + 220 >= W and ys[-1] + 88 >= H


@pytest.mark.parametrize("spacing", [0, 10, 40, 100])
def test_tile_spacing_is_a_share_of_the_tile(spacing: int) -> None:
    sx, sy = place.tile_step(50, 20, spacing)
    assert sx == math.floor(50 * (100 + spacing) / 100 + 0.5)
    assert sy == math.floor(20 * (100 + spacing) / 100 + 0.5)


def test_rotated_box() -> None:
    assert place.rotated_box(200, 80, 0) == (200, 80)
    assert place.rotated_box(200, 80, 90) == (80, 200)
    bw, bh = place.rotated_box(200, 80, 30)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert (bw, bh) == (math.ceil(200 * c + 80 * s), math.ceil(200 * s + 80 * c))


def test_clip() -> None:
    assert place.clip(-10, 5, 30, 30, 100, 20) == (0, 5, 20, 15)
    assert place.clip(95, 15, 30, 30, 100, 20) == (95, 15, 5, 5)
    assert place.clip(100, 0, 5, 5, 100, 20) is None
    assert place.clip(-5, -5, 5, 5, 100, 20) is None
