"""Pure watermark geometry: placement, sizing and the tile grid (``watermark.md``).

Every function here is a function of integers (sizes, offsets, parameters) and returns
integers; nothing knows about pixels, fonts or backends. Rounding follows the project rule:
sizes round half up and are at least 1 px, centring offsets are floored.

- :func:`position`: ``gravity``/``dx``/``dy`` (section 2.1);
- :func:`scale_size`: ``scatype``/``spcent`` (section 3.2);
- :func:`blogo_scale_size`, :func:`blogo_crop_size`: ``blogo`` 1 and 2 (section 3.2);
- :func:`tile_step`, :func:`tile_positions`: ``batch``/``spacing`` (section 2.3);
- :func:`clip`: the part of a box that falls on the canvas.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ci_engine.plan.geometry import rotated_size, round_half_up
from ci_engine.types import Gravity, ScaleType

__all__ = [
    "position",
    "scale_size",
    "blogo_scale_size",
    "blogo_crop_size",
    "tile_step",
    "tile_count",
    "tile_positions",
    "rotated_box",
    "clip",
]


def position(gravity: Gravity, width: int, height: int, w: int, h: int, dx: int = 0, dy: int = 0) -> tuple[int, int]:
    """Top-left corner of a ``w`` x ``h`` watermark box on a ``width`` x ``height`` base.

    ``dx``/``dy`` are margins from the anchoring edges toward the inside; the middle column
    ignores ``dx`` and the middle row ignores ``dy`` (the table of section 2.1). Any value is
    accepted: what falls outside the canvas is clipped later.

    >>> position(Gravity.NORTH_WEST, 1000, 600, 200, 80, 16, 16)
    (16, 16)
    >>> position(Gravity.SOUTH_EAST, 1000, 600, 200, 80, 10, 20)
    (790, 500)
    >>> position(Gravity.CENTER, 1000, 600, 201, 81, 99, 99)
    (399, 259)
    """
    x = (dx, (width - w) // 2, width - w - dx)[gravity.column]
    y = (dy, (height - h) // 2, height - h - dy)[gravity.row]
    return x, y


def scale_size(scatype: ScaleType, spcent: int, width: int, height: int, w0: int, h0: int) -> tuple[int, int]:
    """The watermark size for ``scatype``/``spcent`` (per-mille of the base).

    1: width := ``W * spcent / 1000``; 2: height := ``H * spcent / 1000``; 3: area :=
    ``W * H * spcent / 1000``. The aspect ratio is kept; both sides round half up, at least 1.

    >>> scale_size(ScaleType.WIDTH, 150, 1000, 600, 200, 80)
    (150, 60)
    >>> scale_size(ScaleType.HEIGHT, 500, 1000, 600, 200, 80)
    (750, 300)
    >>> scale_size(ScaleType.AREA, 250, 1000, 600, 100, 100)
    (387, 387)
    """
    if scatype is ScaleType.WIDTH:
        s = Fraction(width * spcent, 1000 * w0)
        return round_half_up(w0 * s), round_half_up(h0 * s)
    if scatype is ScaleType.HEIGHT:
        s = Fraction(height * spcent, 1000 * h0)
        return round_half_up(w0 * s), round_half_up(h0 * s)
    # Area: s = sqrt(W*H*spcent/1000 / (w0*h0)), irrational in general. Work on s^2 exactly:
    # round(w0*s) = floor(w0*s + 1/2) = the largest n with n - 1/2 <= w0*s, i.e. (2n-1)^2 <= 4*w0^2*s^2.
    s2 = Fraction(width * height * spcent, 1000 * w0 * h0)
    return _round_sqrt(w0 * w0 * s2), _round_sqrt(h0 * h0 * s2)


def _round_sqrt(x: Fraction) -> int:
    """``round_half_up(sqrt(x))`` exactly, at least 1."""
    n = math.isqrt(math.floor(x))  # floor(sqrt(x))
    # sqrt(x) >= n + 1/2  <=>  x >= (n + 1/2)^2
    if x >= Fraction((2 * n + 1) ** 2, 4):
        n += 1
    return max(1, n)


def blogo_scale_size(width: int, height: int, w: int, h: int) -> tuple[int, int]:
    """``blogo/1``: a logo larger than the base on either side shrinks (aspect kept) to fit
    inside it, the limiting side getting exactly the base's size; a logo that fits is kept.

    >>> blogo_scale_size(1000, 600, 2000, 400)
    (1000, 200)
    >>> blogo_scale_size(1000, 600, 300, 1200)
    (150, 600)
    >>> blogo_scale_size(1000, 600, 200, 80)
    (200, 80)
    """
    if w <= width and h <= height:
        return w, h
    if width * h <= height * w:
        return width, round_half_up(Fraction(h * width, w))
    return round_half_up(Fraction(w * height, h)), height


def blogo_crop_size(width: int, height: int, w: int, h: int) -> tuple[int, int]:
    """``blogo/2``: keep the top-left ``min(w, W) x min(h, H)`` of the logo.

    >>> blogo_crop_size(1000, 600, 2000, 400)
    (1000, 400)
    """
    return min(w, width), min(h, height)


def tile_step(w: int, h: int, spacing: int) -> tuple[int, int]:
    """Grid step of tiled watermarks: ``w * (1 + spacing/100)`` by ``h * (1 + spacing/100)``,
    rounded half up (at least the tile's own size, so tiles never overlap).

    >>> tile_step(200, 80, 10)
    (220, 88)
    >>> tile_step(200, 80, 0)
    (200, 80)
    >>> tile_step(15, 5, 10)
    (17, 6)
    """
    return (
        max(w, round_half_up(Fraction(w * (100 + spacing), 100))),
        max(h, round_half_up(Fraction(h * (100 + spacing), 100))),
    )


def tile_count(width: int, height: int, step_x: int, step_y: int) -> tuple[int, int]:
    """Columns and rows of the grid that covers ``width`` x ``height`` from the top-left.

    >>> tile_count(1000, 600, 220, 88)
    (5, 7)
    """
    return -(-width // step_x), -(-height // step_y)


def tile_positions(width: int, height: int, w: int, h: int, spacing: int) -> tuple[tuple[int, int], ...]:
    """Top-left corners of the tiles of ``batch/1`` (section 2.3): a grid starting at the
    canvas' top-left corner, stepping by :func:`tile_step`, covering the whole canvas
    (``gravity``, ``dx`` and ``dy`` play no part). Row by row, top to bottom.

    >>> tile_positions(500, 200, 200, 80, 10)
    ((0, 0), (220, 0), (440, 0), (0, 88), (220, 88), (440, 88), (0, 176), (220, 176), (440, 176))
    """
    sx, sy = tile_step(w, h, spacing)
    return tuple((x, y) for y in range(0, height, sy) for x in range(0, width, sx))


def rotated_box(w: int, h: int, degree: int) -> tuple[int, int]:
    """Bounding box of a ``w`` x ``h`` tile rotated by ``degree`` (the box the tile grid
    steps over when ``degree`` is set).

    >>> rotated_box(200, 80, 90)
    (80, 200)
    >>> rotated_box(200, 80, 360)
    (200, 80)
    """
    if degree % 360 == 0:
        return w, h
    return rotated_size(w, h, degree)


def clip(x: int, y: int, w: int, h: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The part ``(left, top, w, h)`` of the box at ``(x, y)`` that lies on the canvas,
    or ``None`` when nothing does.

    >>> clip(-10, 5, 30, 30, 100, 20)
    (0, 5, 20, 15)
    >>> clip(100, 0, 5, 5, 100, 20) is None
    True
    """
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1 - x0, y1 - y0
