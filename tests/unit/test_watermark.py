"""watermark/1 and watermark/2 end to end: placement found from pixels on every backend,
opacity, alpha, animations, tiling, CJK text, fonts, and the resource resolvers' security."""

from __future__ import annotations

import http.server
import io
import json
import math
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.backends import available_backends, get_backend
from ci_engine.errors import (
    AccessDeniedError,
    CIError,
    InvalidArgumentError,
    NoSuchKeyError,
    UnsupportedForInputError,
)
from ci_engine.types import Font, Gravity
from ci_engine.watermark import (
    FONT_DIR_ENV,
    FontLibrary,
    FontNotFoundError,
    LocalDirectoryResolver,
    MappingResolver,
    NetworkResolver,
    default_library,
)
from ci_engine.watermark.text import layout_runs, layout_text
from tests.fixtures.watermarks import (
    RED,
    alpha_logo_png,
    animated_gif,
    b64,
    base_png,
    bbox,
    changed,
    logo_png,
    png,
    read,
    read_frames,
    solid,
)

LOGO_URL = "http://demo-1250000000.cos.ap-guangzhou.myqcloud.com/brand/logo.png"
BACKENDS = available_backends()


def _composites(name: str) -> bool:
    return "composite" in get_backend(name).capabilities.methods


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name = str(request.param)
    if not _composites(name):
        pytest.skip(f"backend {name} does not implement the composite primitive yet")
    return name


def _process(data: bytes, rule: str, backend: str, **kw: object) -> ce.Result:
    return ce.process(data, rule, backend=backend, **kw)  # type: ignore[arg-type]


def _needs_cjk(library: FontLibrary | None = None) -> FontLibrary:
    library = library or default_library()
    if library.fallback() is None:
        message = "no CJK font is installed (Debian: apt-get install fonts-noto-cjk); .ci/run installs one"
        if os.environ.get("CI_ENGINE_REQUIRE_FONTS"):  # set by .ci/run where fonts are installable
            pytest.fail(message)
        pytest.skip(message)
    return library


# -- placement from pixels ---------------------------------------------------------------------------

W, H, LW, LH = 300, 200, 40, 30


def _expected_box(gravity: Gravity, dx: int, dy: int, w: int, h: int) -> tuple[int, int, int, int]:
    """watermark.md 2.1, cell by cell."""
    x = {0: dx, 1: (W - w) // 2, 2: W - w - dx}[gravity.column]
    y = {0: dy, 1: (H - h) // 2, 2: H - h - dy}[gravity.row]
    return x, y, x + w, y + h


@pytest.mark.parametrize("gravity", list(Gravity))
@pytest.mark.parametrize(("dx", "dy"), [(0, 0), (13, 21)])
def test_image_watermark_lands_where_the_spec_says(backend: str, gravity: Gravity, dx: int, dy: int) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/gravity/{gravity.value}/dx/{dx}/dy/{dy}/dissolve/100"
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: logo_png(LW, LH)})
    pixels = read(out.data)
    assert bbox(changed(pixels)) == _expected_box(gravity, dx, dy, LW, LH)
    assert (out.width, out.height, out.format) == (W, H, "png")


@pytest.mark.parametrize(
    "gravity", [Gravity.NORTH_WEST, Gravity.CENTER, Gravity.SOUTH_EAST, Gravity.NORTH, Gravity.EAST]
)
def test_text_watermark_box_lands_where_the_spec_says(backend: str, gravity: Gravity) -> None:
    text, px, dx, dy = "Hello", 40, 9, 17
    rule = (
        f"watermark/2/text/{b64(text)}/font/{b64('arial.ttf')}/fontsize/{px}/fill/{b64('#000000')}"
        f"/gravity/{gravity.value}/dx/{dx}/dy/{dy}/dissolve/100"
    )
    out = _process(base_png(W, H), rule, backend)
    ink = bbox(changed(read(out.data)))
    assert ink is not None
    library = default_library()
    layout = layout_text(text, library.resolve(Font.ARIAL), library.fallback(), px=px, fill=(0, 0, 0))
    bw, bh = layout.box
    x0, y0, x1, y1 = _expected_box(gravity, dx, dy, bw, bh)
    # The ink of "Hello" lies inside its font-metric box (1 px of anti-aliasing slack) ...
    assert x0 - 1 <= ink[0] and ink[2] <= x1 + 1 and y0 - 1 <= ink[1] and ink[3] <= y1 + 1, (ink, (x0, y0, x1, y1))
    # ... and fills most of its width (the box is the advance width, not a loose guess).
    assert ink[2] - ink[0] >= 0.85 * bw
    # The ink is not the box itself: it starts below the ascent line (capital H < ascent).
    assert ink[1] > y0


def test_the_spec_example_northwest_16(backend: str) -> None:
    # watermark.md 3.4: a 200x80 logo at northwest 16/16 on 1000x600 -> (16,16)-(216,96)
    rule = f"watermark/1/image/{b64(LOGO_URL)}/gravity/northwest/dx/16/dy/16/dissolve/70"
    out = _process(base_png(1000, 600), rule, backend, resources={"brand/logo.png": logo_png(200, 80)})
    assert bbox(changed(read(out.data))) == (16, 16, 216, 96)


def test_scatype_example_south_dy24(backend: str) -> None:
    # watermark.md 3.4: 15 % of the base width (150 px on 1000), centred, 24 px above the bottom
    rule = f"watermark/1/image/{b64(LOGO_URL)}/scatype/1/spcent/150/gravity/south/dy/24/dx/55/dissolve/100"
    out = _process(base_png(1000, 600), rule, backend, resources={LOGO_URL: logo_png(200, 80)})
    assert bbox(changed(read(out.data), threshold=128)) == (425, 516, 575, 576)


def test_clipped_at_the_edges(backend: str) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/gravity/southeast/dx/-20/dy/-10/dissolve/100"
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: logo_png(LW, LH)})
    assert bbox(changed(read(out.data))) == (W - LW + 20, H - LH + 10, W, H)


def test_blogo_scales_or_crops_an_oversized_logo(backend: str) -> None:
    big = logo_png(600, 100)
    scaled = _process(
        base_png(W, H),
        f"watermark/1/image/{b64(LOGO_URL)}/blogo/1/gravity/northwest/dissolve/100",
        backend,
        resources={LOGO_URL: big},
    )
    assert bbox(changed(read(scaled.data), threshold=128)) == (0, 0, 300, 50)
    cropped = _process(
        base_png(W, H),
        f"watermark/1/image/{b64(LOGO_URL)}/blogo/2/gravity/southeast/dissolve/100",
        backend,
        resources={LOGO_URL: big},
    )
    assert bbox(changed(read(cropped.data))) == (0, 100, 300, 200)


# -- opacity and alpha ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("dissolve", "expected_green"), [(100, 0), (50, 127.5), (90, 25.5), (None, 25.5), (1, 252.45)])
def test_dissolve_scales_opacity(backend: str, dissolve: int | None, expected_green: float) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/gravity/center" + (f"/dissolve/{dissolve}" if dissolve else "")
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: logo_png(LW, LH)})
    pixel = read(out.data)[H // 2, W // 2]
    assert pixel[0] == 255 and abs(int(pixel[1]) - expected_green) <= 1 and abs(int(pixel[2]) - expected_green) <= 1


def test_logo_alpha_is_honoured(backend: str) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/gravity/northwest/dissolve/100"
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: alpha_logo_png(40, 30)})
    pixels = read(out.data).astype(int)
    # the transparent border leaves the base untouched
    assert bbox(changed(pixels)) == (5, 5, 35, 25)
    # alpha 128 blue over white: 255 * (1 - 128/255) = 127 in red and green
    assert abs(pixels[15, 10, 0] - 127) <= 1 and pixels[15, 10, 2] == 255
    assert tuple(pixels[15, 30, :3]) == (0, 0, 255)


def test_transparent_base_keeps_alpha(backend: str) -> None:
    base = png(solid(W, H, (0, 255, 0, 0)))
    rule = f"watermark/1/image/{b64(LOGO_URL)}/gravity/northwest/dissolve/50"
    out = _process(base, rule, backend, resources={LOGO_URL: logo_png(LW, LH)})
    pixels = read(out.data).astype(int)
    assert pixels.shape[2] == 4
    assert abs(pixels[10, 10, 3] - 128) <= 1 and tuple(pixels[10, 10, :3]) == (255, 0, 0)
    assert pixels[100, 100, 3] == 0


def test_grey_base_with_a_coloured_mark_becomes_rgb(backend: str) -> None:
    grey = png(solid(W, H, (200,)))
    out = _process(grey, f"watermark/1/image/{b64(LOGO_URL)}/dissolve/100", backend, resources={LOGO_URL: logo_png()})
    pixels = read(out.data)
    assert pixels.shape[2] == 3 and tuple(pixels[-1, -1]) == RED
    text = _process(grey, f"watermark/2/text/{b64('grey')}/fontsize/30", backend)  # default fill #3D3D3D
    assert read(text.data).shape[2] == 1


def test_backends_agree() -> None:
    names = [n for n in BACKENDS if _composites(n)]
    if len(names) < 2:
        pytest.skip(f"needs two backends with the composite primitive, have {names}")
    base = png(np.dstack([solid(W, H, (30, 160, 90)), np.full((H, W, 1), 200, np.uint8)]))
    rule = (
        f"watermark/1/image/{b64(LOGO_URL)}/gravity/center/dissolve/70"
        f"|watermark/2/text/{b64('水印 mark')}/fontsize/36/fill/{b64('#FF8800')}/shadow/50/gravity/northwest"
    )
    outs = [read(_process(base, rule, n, resources={LOGO_URL: alpha_logo_png(60, 50)}).data) for n in names]
    assert np.abs(outs[0].astype(int) - outs[1].astype(int)).max() <= 1


# -- animations -------------------------------------------------------------------------------------------


def test_animated_base_keeps_frames_and_delays(backend: str) -> None:
    gif = animated_gif(120, 80, [(255, 255, 255), (0, 128, 0), (0, 0, 128)], [100, 200, 300])
    rule = f"watermark/1/image/{b64(LOGO_URL)}/gravity/northeast/dx/5/dy/5/dissolve/100"
    out = _process(gif, rule, backend, resources={LOGO_URL: logo_png(20, 10)})
    frames, delays = read_frames(out.data)
    assert (out.frames, len(frames), delays) == (3, 3, [100, 200, 300])
    for frame in frames:
        red = (frame[..., 0] > 200) & (frame[..., 1] < 60) & (frame[..., 2] < 60)
        assert bbox(red) == (95, 5, 115, 15)


def test_animated_logo_is_refused_and_masked(backend: str) -> None:
    logo = animated_gif(20, 10, [RED, (0, 0, 255)], [100, 100])
    rule = f"watermark/1/image/{b64(LOGO_URL)}"
    with pytest.raises(UnsupportedForInputError) as info:
        _process(base_png(), rule, backend, resources={LOGO_URL: logo})
    assert info.value.code == "InvalidArgument" and "animated" in info.value.message
    masked = _process(base_png(), rule + "|imageMogr2/ignore-error/1", backend, resources={LOGO_URL: logo})
    assert masked.masked is not None and masked.data == base_png()


# -- tiling ----------------------------------------------------------------------------------------------------


def test_tiles_cover_the_image_with_the_spacing(backend: str) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/batch/1/spacing/50/dissolve/100/gravity/center/dx/99"
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: logo_png(20, 10)})
    red = changed(read(out.data))
    # a 20x10 tile every 30 x 15 px from the top-left corner; gravity/dx play no part
    ys, xs = np.mgrid[0:H, 0:W]
    expected = ((xs % 30) < 20) & ((ys % 15) < 10)
    assert np.array_equal(red, expected)


def test_tiles_rotate_by_degree(backend: str) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/batch/1/degree/90/spacing/0/dissolve/100"
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: logo_png(20, 10)})
    red = changed(read(out.data), threshold=128)
    ys, xs = np.mgrid[0:H, 0:W]
    assert np.array_equal(red, np.ones_like(red))  # spacing 0: the 10x20 tiles pave the canvas
    out = _process(
        base_png(W, H), rule.replace("spacing/0", "spacing/100"), backend, resources={LOGO_URL: logo_png(20, 10)}
    )
    red = changed(read(out.data), threshold=128)
    assert np.array_equal(red, ((xs % 20) < 10) & ((ys % 40) < 20))


def _orientation(mask: np.ndarray) -> float:
    """Angle of the long axis in degrees, y pointing down (clockwise positive)."""
    ys, xs = np.nonzero(mask)
    x, y = xs - xs.mean(), ys - ys.mean()
    return math.degrees(0.5 * math.atan2(2 * (x * y).mean(), (x * x).mean() - (y * y).mean()))


@pytest.mark.parametrize("degree", [30, 135])
def test_tile_angle_from_pixels(backend: str, degree: int) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/batch/1/degree/{degree}/spacing/30/dissolve/100"
    out = _process(base_png(400, 400), rule, backend, resources={LOGO_URL: logo_png(60, 12)})
    red = changed(read(out.data), threshold=128)
    # the first tile sits in the top-left cell of the grid; its long axis is turned clockwise
    c, s = abs(math.cos(math.radians(degree))), abs(math.sin(math.radians(degree)))
    bw, bh = math.ceil(60 * c + 12 * s), math.ceil(60 * s + 12 * c)
    tile = red[: bh + 1, : bw + 1]
    angle = _orientation(tile) % 180
    assert abs(angle - degree % 180) < 3, angle
    # the grid repeats with a step of 1.3 x the rotated box
    sx = math.floor(bw * 1.3 + 0.5)
    assert np.array_equal(red[:, :sx], red[:, sx : 2 * sx])
    coverage = red.mean()
    assert 0.05 < coverage < 0.6


def test_degree_is_ignored_without_batch(backend: str) -> None:
    rule = f"watermark/1/image/{b64(LOGO_URL)}/degree/45/gravity/northwest/dissolve/100"
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: logo_png(LW, LH)})
    assert bbox(changed(read(out.data))) == (0, 0, LW, LH)


def test_text_tiles(backend: str) -> None:
    rule = f"watermark/2/text/{b64('CONFIDENTIAL')}/fill/{b64('#FF0000')}/dissolve/30/batch/1/degree/30/spacing/40"
    out = _process(base_png(600, 400), rule, backend)
    mask = changed(read(out.data), threshold=10)
    # marks in all four quadrants
    for qy in (0, 200):
        for qx in (0, 300):
            assert mask[qy : qy + 200, qx : qx + 300].any()


# -- text: glyphs, fonts, sizes -----------------------------------------------------------------------------


def _glyph(text: str, font: Font = Font.TAHOMA, px: int = 48) -> np.ndarray:
    library = default_library()
    layout = layout_text(text, library.resolve(font), library.fallback(), px=px, fill=(0, 0, 0))
    return layout.render().pixels[..., 3]


NOTDEF = "\U0010fffd"  # a private-use code point no font maps: the missing-glyph box


def test_cjk_strings_render_real_glyphs() -> None:
    _needs_cjk()
    tofu = _glyph(NOTDEF)
    water, mark = _glyph("水"), _glyph("印")
    assert tofu.any() or tofu.sum() == 0
    for glyph in (water, mark):
        assert glyph.shape != tofu.shape or not np.array_equal(glyph, tofu)
    assert not np.array_equal(water, mark)
    # two different strings give visibly different bitmaps
    a, b = _glyph("数据万象"), _glyph("图片处理")
    assert a.shape == b.shape  # CJK glyphs are all one em wide
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10


def test_latin_font_falls_back_to_cjk_glyphs() -> None:
    library = _needs_cjk()
    arial = library.resolve(Font.ARIAL)
    runs = layout_runs("ab水印", arial, library.fallback())
    assert [text for text, _ in runs] == ["ab", "水印"]
    if arial.covers("水"):
        pytest.skip(f"{arial.path} has CJK glyphs itself")
    tofu = _glyph(NOTDEF, Font.ARIAL)
    assert not np.array_equal(_glyph("水", Font.ARIAL), tofu)


def test_cjk_text_end_to_end_differs(backend: str) -> None:
    _needs_cjk()
    outs = [
        read(_process(base_png(), f"watermark/2/text/{b64(t)}/fontsize/40/dissolve/100/gravity/center", backend).data)
        for t in ("数据万象", "图片处理")
    ]
    assert changed(outs[0]).sum() > 200 and changed(outs[1]).sum() > 200
    assert (changed(outs[0]) != changed(outs[1])).sum() > 200


def test_fontsize_is_pixels_at_72_dpi() -> None:
    _needs_cjk()
    for px in (20, 100):
        ink = bbox(_glyph("国", px=px) > 64)
        assert ink is not None
        assert 0.75 * px <= ink[3] - ink[1] <= 1.0 * px  # a CJK ideograph is nearly one em tall


def test_multiline_text_box() -> None:
    library = default_library()
    face = library.resolve(Font.ARIAL)
    one = layout_text("Ab", face, None, px=50, fill=(0, 0, 0))
    three = layout_text("Ab\nlonger line\nc", face, None, px=50, fill=(0, 0, 0))
    assert three.box[1] == one.box[1] + 2 * 60  # + 1.2 x 50 px per extra line
    assert three.box[0] > one.box[0]


def test_shadow_is_drawn_under_the_text() -> None:
    library = default_library()
    face = library.resolve(Font.ARIAL)
    plain = layout_text("I", face, None, px=60, fill=(255, 255, 255)).render()
    shaded = layout_text("I", face, None, px=60, fill=(255, 255, 255), shadow=100).render()
    ink = bbox(plain.pixels[..., 3] > 128)
    dark = bbox((shaded.pixels[..., 3] > 128) & (shaded.pixels[..., 0] < 64))
    assert ink is not None and dark is not None
    # the black copy is offset round(60 / 20) = 3 px right and down, under the white text
    ox, oy = shaded.origin[0] - plain.origin[0], shaded.origin[1] - plain.origin[1]
    assert (dark[2] - ox, dark[3] - oy) == (ink[2] + 3, ink[3] + 3)
    white = (shaded.pixels[..., 3] > 128) & (shaded.pixels[..., 0] > 192)
    assert bbox(white) == (ink[0] + ox, ink[1] + oy, ink[2] + ox, ink[3] + oy)


@pytest.mark.parametrize("font", list(Font))
def test_each_documented_font_resolves_or_says_why(font: Font) -> None:
    library = default_library()
    try:
        face = library.resolve(font)
    except FontNotFoundError as exc:
        assert exc.code == "NotImplemented" and not exc.maskable
        assert font.value in exc.message and "apt-get install" in exc.message and FONT_DIR_ENV in exc.message
        if os.environ.get("CI_ENGINE_REQUIRE_FONTS") and font in (Font.TAHOMA, Font.SIMHEI, Font.ARIAL):
            pytest.fail(f"CI installs fonts for {font.value}: {exc.message}")
        return
    assert Path(face.path).is_file()
    from PIL import ImageFont

    ImageFont.truetype(face.path, size=12, index=face.index)  # FreeType opens it


@pytest.mark.parametrize("font", list(Font))
def test_missing_fonts_give_the_clear_error(font: Font, tmp_path: Path) -> None:
    empty = FontLibrary(tmp_path, use_system=False)
    with pytest.raises(FontNotFoundError) as info:
        empty.resolve(font)
    assert font.value in info.value.message and str(tmp_path) in info.value.message
    assert "apt-get install fonts-" in info.value.message


def test_missing_font_fails_the_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = f"watermark/2/text/{b64('x')}/font/{b64('simkai.ttf')}"
    with pytest.raises(FontNotFoundError):
        ce.process(base_png(), rule + "|imageMogr2/ignore-error/1", fonts=FontLibrary(tmp_path, use_system=False))


def test_font_directory_takes_ci_file_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = default_library().resolve(Font.ARIAL)
    shutil.copy(source.path, tmp_path / "SimHei.TTF")
    library = FontLibrary(tmp_path)
    assert library.resolve(Font.SIMHEI).path == str(tmp_path / "SimHei.TTF")
    monkeypatch.setenv(FONT_DIR_ENV, str(tmp_path))
    assert default_library().resolve(Font.SIMHEI).path == str(tmp_path / "SimHei.TTF")
    monkeypatch.delenv(FONT_DIR_ENV)
    assert default_library().resolve(Font.SIMHEI).path != str(tmp_path / "SimHei.TTF")


def test_font_directory_is_scanned_without_fontconfig(tmp_path: Path) -> None:
    source = default_library().resolve(Font.ARIAL)
    shutil.copy(source.path, tmp_path / "any-name.ttf")
    library = FontLibrary(tmp_path, use_system=False)
    face = library.resolve(Font.ARIAL)  # found by its family name, read with FreeType
    assert face.path == str(tmp_path / "any-name.ttf") and face.family == source.family


# -- resources: defaults and security ---------------------------------------------------------------


def test_no_resolver_means_nothing_is_fetched() -> None:
    with pytest.raises(AccessDeniedError) as info:
        ce.process(base_png(), f"watermark/1/image/{b64(LOGO_URL)}")
    assert LOGO_URL in info.value.message and "resources=" in info.value.message
    assert info.value.status == 403 and info.value.x_errno == -60987 and not info.value.maskable


def test_missing_object_is_no_such_key() -> None:
    with pytest.raises(NoSuchKeyError) as info:
        ce.process(base_png(), f"watermark/1/image/{b64(LOGO_URL)}", resources={})
    assert info.value.status == 404 and LOGO_URL in info.value.message


def test_callable_and_mapping_resources() -> None:
    seen: list[str] = []

    def fetch(url: str) -> bytes:
        seen.append(url)
        return logo_png()

    ce.process(base_png(), f"watermark/1/image/{b64(LOGO_URL)}", resources=fetch)
    assert seen == [LOGO_URL]
    assert MappingResolver({"brand/logo.png": b"x"}).fetch(LOGO_URL) == b"x"


def test_nested_processing_in_the_logo_url(backend: str) -> None:
    url = LOGO_URL + "?imageMogr2/thumbnail/10x"
    rule = f"watermark/1/image/{b64(url)}/gravity/northwest/dissolve/100"
    out = _process(base_png(), rule, backend, resources={LOGO_URL: logo_png(40, 30)})
    box = bbox(changed(read(out.data), threshold=128))
    assert box is not None and box[2] - box[0] == 10


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "bucket"
    (root / "brand").mkdir(parents=True)
    (root / "brand" / "logo.png").write_bytes(logo_png())
    (tmp_path / "secret.png").write_bytes(b"secret")
    (root / "escape.png").symlink_to(tmp_path / "secret.png")
    (root / "brand" / "inner.png").symlink_to(root / "brand" / "logo.png")
    return root


def test_local_directory_serves_keys_and_cos_urls(tree: Path) -> None:
    resolver = LocalDirectoryResolver(tree)
    assert resolver.fetch(LOGO_URL) == logo_png()
    assert resolver.fetch("brand/logo.png") == logo_png()
    assert resolver.fetch(LOGO_URL + "?q-sign-algorithm=sha1&q-ak=x") == logo_png()
    assert resolver.fetch("brand/inner.png") == logo_png()  # a symlink inside the root is fine
    with pytest.raises(NoSuchKeyError):
        resolver.fetch("brand/missing.png")
    out = ce.process(base_png(), f"watermark/1/image/{b64(LOGO_URL)}/dissolve/100", resources=resolver)
    assert bbox(changed(read(out.data))) == (W - LW, H - LH, W, H)


@pytest.mark.parametrize(
    "url",
    [
        "../secret.png",
        "brand/../../secret.png",
        "http://demo-1250000000.cos.ap-guangzhou.myqcloud.com/../secret.png",
        "http://demo-1250000000.cos.ap-guangzhou.myqcloud.com/%2e%2e/secret.png",
        "http://demo-1250000000.cos.ap-guangzhou.myqcloud.com//etc/passwd",
        "/etc/passwd",
        "escape.png",  # a symlink pointing outside the root
        "file:///etc/passwd",
        "file://" + "/etc/passwd",
        "ftp://demo-1250000000.cos.ap-guangzhou.myqcloud.com/brand/logo.png",
        "http://127.0.0.1/brand/logo.png",
        "http://localhost:8080/brand/logo.png",
        "http://169.254.169.254/latest/meta-data",
        "brand/logo.png\x00.jpg",
        "brand\\..\\..\\secret.png",
        "a/" * 500 + "x.png",
    ],
)
def test_local_directory_refuses_escapes(tree: Path, url: str) -> None:
    with pytest.raises((AccessDeniedError, InvalidArgumentError)) as info:
        LocalDirectoryResolver(tree).fetch(url)
    assert not info.value.maskable
    # and through process(): refused, never the secret's bytes
    with pytest.raises(CIError):
        ce.process(base_png(), f"watermark/1/image/{b64(url)}", resources=LocalDirectoryResolver(tree))


def test_strict_mode_applies_ci_url_rules(tree: Path) -> None:
    strict = LocalDirectoryResolver(tree, strict=True, bucket="demo-1250000000")
    assert strict.fetch(LOGO_URL) == logo_png()
    for url in (
        LOGO_URL.replace("http://", "https://"),
        "brand/logo.png",
        LOGO_URL.replace("demo-1250000000", "other-1250000000"),
        "http://cdn.example.com/brand/logo.png",
    ):
        with pytest.raises(InvalidArgumentError):
            strict.fetch(url)
    lenient = LocalDirectoryResolver(tree)
    assert lenient.fetch(LOGO_URL.replace("http://", "https://")) == logo_png()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/logo.png",
        "http://localhost/logo.png",
        "http://[::1]/logo.png",
        "http://10.0.0.1/logo.png",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "gopher://example.com/x",
    ],
)
def test_network_resolver_refuses_private_addresses_and_other_schemes(url: str) -> None:
    with pytest.raises(AccessDeniedError):
        NetworkResolver().fetch(url)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/logo.png":
            body = logo_png()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1/logo.png")
            self.end_headers()
        else:
            self.send_response(404)
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_network_resolver_on_loopback_when_allowed() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        resolver = NetworkResolver(allow_private=True, timeout=5)
        assert resolver.fetch(f"http://127.0.0.1:{port}/logo.png") == logo_png()
        with pytest.raises(NoSuchKeyError):
            resolver.fetch(f"http://127.0.0.1:{port}/missing.png")
        with pytest.raises(AccessDeniedError):
            resolver.fetch(f"http://127.0.0.1:{port}/moved")
        with pytest.raises(AccessDeniedError):
            NetworkResolver(timeout=5).fetch(f"http://127.0.0.1:{port}/logo.png")
    finally:
        server.shutdown()
        server.server_close()


# -- blind watermarks, architecture, plans -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (f"watermark/3/type/3/text/{b64('abc')}", "png"),  # ci_engine.intel.blindmark (tests/intel)
        (f"watermark/3/type/2/image/{b64(LOGO_URL)}", AccessDeniedError),  # no resources given
        ("watermark/4/type/3", "xml"),
    ],
)
def test_blind_watermarks_run_through_intel(rule: str, expected: object) -> None:
    pipeline = ce.parse(rule)
    data = base_png(400, 300)
    if isinstance(expected, str):
        assert ce.process(data, pipeline).format == expected
    else:
        with pytest.raises(expected):  # type: ignore[call-overload]
            ce.process(data, pipeline)


def test_planning_imports_no_imaging_library() -> None:
    code = (
        "import sys, json\nimport ci_engine.plan\n"
        "from ci_engine.parse import parse\nfrom ci_engine.plan import plan\n"
        f"plan(parse('watermark/2/text/{b64('x')}|watermark/1/image/{b64(LOGO_URL)}'))\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert {"PIL", "numpy", "pyvips"} & set(json.loads(out.stdout.splitlines()[-1])) == set()


def test_explain_shows_the_pending_watermark() -> None:
    text = ce.explain(f"watermark/2/text/{b64('x')}", base_png())
    assert "watermark (overlay prepared before execution) on 300x200" in text


def test_watermark_after_a_resize_uses_the_resized_geometry(backend: str) -> None:
    rule = f"imageMogr2/thumbnail/150x|watermark/1/image/{b64(LOGO_URL)}/gravity/southeast/dissolve/100"
    out = _process(base_png(W, H), rule, backend, resources={LOGO_URL: logo_png(LW, LH)})
    assert (out.width, out.height) == (150, 100)
    assert bbox(changed(read(out.data))) == (150 - LW, 100 - LH, 150, 100)
    assert any(step.method == "composite" for step in out.plan.steps) if out.plan else False


def test_jpeg_output_keeps_the_format(backend: str) -> None:
    photo = Path(__file__).resolve().parents[2] / "docs" / "samples" / "kleiber.jpg"
    out = _process(photo.read_bytes(), f"watermark/2/text/{b64('© 水印')}/fontsize/30", backend)
    assert out.format == "jpeg"
    Image.open(io.BytesIO(out.data)).verify()


def test_watermark_count_limit_still_applies() -> None:
    rule = "|".join([f"watermark/1/image/{b64(LOGO_URL)}"] * 11)
    with pytest.raises(CIError) as info:
        ce.process(base_png(), rule, resources={LOGO_URL: logo_png()})
    assert info.value.code == "InvalidArgument"


def test_nesting_is_limited() -> None:
    # The logo URL's own processing stamps the same logo, whose URL does the same ...
    url = (
        LOGO_URL
        + "?watermark/1/image/"
        + b64(LOGO_URL + "?watermark/1/image/" + b64(LOGO_URL + "?imageMogr2/thumbnail/5x"))
    )
    rule = f"watermark/1/image/{b64(url)}"
    with pytest.raises(InvalidArgumentError) as info:
        ce.process(base_png(), rule, resources={LOGO_URL: logo_png()})
    assert "nests processing deeper than 2" in info.value.message


def test_callable_resolver_maps_failures() -> None:
    from ci_engine.watermark import CallableResolver

    def missing(url: str) -> bytes:
        raise FileNotFoundError(url)

    def refused(url: str) -> bytes:
        raise PermissionError(url)

    def broken(url: str) -> bytes:
        raise RuntimeError("backend down")

    with pytest.raises(NoSuchKeyError):
        CallableResolver(missing).fetch(LOGO_URL)
    with pytest.raises(NoSuchKeyError):
        CallableResolver(lambda url: None).fetch(LOGO_URL)
    with pytest.raises(AccessDeniedError):
        CallableResolver(refused).fetch(LOGO_URL)
    with pytest.raises(NoSuchKeyError) as info:
        CallableResolver(broken).fetch(LOGO_URL)
    assert "backend down" in (info.value.detail or "")


def test_undecodable_logo_is_invalid_image_format() -> None:
    from ci_engine.errors import InvalidImageFormatError

    with pytest.raises(InvalidImageFormatError) as info:
        ce.process(base_png(), f"watermark/1/image/{b64(LOGO_URL)}", resources={LOGO_URL: b"not an image"})
    assert LOGO_URL in info.value.message
