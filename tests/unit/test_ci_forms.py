"""Forms real CI clients send (issue 14, list 1), and what CI documents that ci_engine now
accepts. Each decision and its evidence is in docs/compatibility.md."""

from __future__ import annotations

import base64

import numpy as np
import pytest

import ci_engine
from ci_engine import ast as A
from ci_engine.errors import CIError, InvalidArgumentError, ParseError, ValueRangeError
from ci_engine.parse import parse
from ci_engine.plan.geometry import thumbnail_size
from ci_engine.render import render
from ci_engine.types import MAINLAND_FONT_NAMES, Font, Gravity
from tests.support.images import encode, gradient


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def mogr(*ops: A.MogrOp) -> A.Pipeline:
    return A.Pipeline(steps=(A.ImageMogr2(ops=ops),))


def thumb(geometry: A.ThumbnailGeometry) -> A.Pipeline:
    return mogr(A.Thumbnail(geometry))


def raised(text: str) -> CIError:
    with pytest.raises(CIError) as info:
        parse(text)
    return info.value


# -- thumbnail/<W>x>, x<H>>, <W>x<, x<H>< ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        pytest.param(
            "imageMogr2/thumbnail/450x%3E",
            thumb(A.ShrinkBox(450, None)),
            "imageMogr2/thumbnail/450x>",
            id="android-sample",
        ),
        pytest.param(
            "imageMogr2/thumbnail/1540x>",
            thumb(A.ShrinkBox(1540, None)),
            "imageMogr2/thumbnail/1540x>",
            id="width-shrink",
        ),
        pytest.param(
            "imageMogr2/thumbnail/x300>",
            thumb(A.ShrinkBox(None, 300)),
            "imageMogr2/thumbnail/x300>",
            id="height-shrink",
        ),
        pytest.param(
            "imageMogr2/thumbnail/450x<",
            thumb(A.EnlargeBox(450, None)),
            "imageMogr2/thumbnail/450x<",
            id="width-enlarge",
        ),
        pytest.param(
            "imageMogr2/thumbnail/x300%3C",
            thumb(A.EnlargeBox(None, 300)),
            "imageMogr2/thumbnail/x300<",
            id="height-enlarge",
        ),
    ],
)
def test_one_sided_shrink_and_enlarge_parse_and_round_trip(text: str, expected: A.Pipeline, canonical: str) -> None:
    assert parse(text) == expected
    assert render(parse(text)) == canonical
    assert parse(canonical) == expected


@pytest.mark.parametrize(
    ("geometry", "size", "expected"),
    [
        pytest.param(A.ShrinkBox(450, None), (1000, 500), (450, 225), id="shrink-wider"),
        pytest.param(A.ShrinkBox(450, None), (400, 900), (400, 900), id="shrink-narrower-unchanged"),
        pytest.param(A.ShrinkBox(450, None), (450, 100), (450, 100), id="shrink-equal-unchanged"),
        pytest.param(A.ShrinkBox(None, 300), (1000, 600), (500, 300), id="shrink-taller"),
        pytest.param(A.ShrinkBox(None, 300), (1000, 200), (1000, 200), id="shrink-shorter-unchanged"),
        pytest.param(A.EnlargeBox(450, None), (300, 200), (450, 300), id="enlarge-narrower"),
        pytest.param(A.EnlargeBox(450, None), (1000, 500), (1000, 500), id="enlarge-wider-unchanged"),
        pytest.param(A.EnlargeBox(None, 300), (100, 150), (200, 300), id="enlarge-shorter"),
        pytest.param(A.EnlargeBox(None, 300), (100, 301), (100, 301), id="enlarge-taller-unchanged"),
        pytest.param(A.ShrinkBox(1080, None), (1333, 1000), (1080, 810), id="rounding-half-up"),
    ],
)
def test_one_sided_geometry(geometry: A.ThumbnailGeometry, size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert thumbnail_size(geometry, *size, 10000) == expected


def test_one_sided_shrink_on_a_real_image() -> None:
    photo = encode(gradient(640, 360), "JPEG", quality=90)
    result = ci_engine.process(photo, "imageMogr2/thumbnail/450x%3E")
    assert (result.width, result.height, result.format) == (450, 253, "jpeg")
    same = ci_engine.process(photo, "imageMogr2/thumbnail/800x>")
    assert (same.width, same.height) == (640, 360)


def test_one_sided_box_is_not_padded() -> None:
    # pad/1 pads to a box; 450x> has none, so it behaves like 450x.
    op = parse("imageMogr2/thumbnail/450x>/pad/1").steps[0].ops[0]  # type: ignore[attr-defined]
    assert op.pad is True and op.pads is False
    photo = encode(gradient(640, 360), "PNG")
    result = ci_engine.process(photo, "imageMogr2/thumbnail/450x>/pad/1")
    assert (result.width, result.height) == (450, 253)


def test_one_way_box_needs_a_side() -> None:
    with pytest.raises(InvalidArgumentError, match="a width or a height"):
        A.ShrinkBox(None, None)
    error = raised("imageMogr2/thumbnail/0x>")
    assert isinstance(error, ValueRangeError) and error.column == 22


# -- cut/<W>x<H> without offsets -----------------------------------------------------------------------


def test_cut_without_offsets_means_offsets_zero() -> None:
    assert parse("imageMogr2/cut/400x300") == mogr(A.Cut(400, 300, 0, 0))
    assert parse("imageMogr2/cut/400x300/gravity/east") == mogr(A.Cut(400, 300, 0, 0, Gravity.EAST))
    assert render(parse("imageMogr2/cut/400x300")) == "imageMogr2/cut/400x300x0x0"
    error = raised("imageMogr2/cut/0x300")
    assert isinstance(error, ValueRangeError) and error.column == 16


def test_cut_without_offsets_gives_the_same_bytes() -> None:
    photo = encode(gradient(64, 48), "PNG")
    short = ci_engine.process(photo, "imageMogr2/cut/40x30")
    full = ci_engine.process(photo, "imageMogr2/cut/40x30x0x0")
    assert (short.width, short.height) == (40, 30)
    assert short.data == full.data


# -- mainland font spellings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "font"),
    [
        ("simfang仿宋.ttf", Font.SIMFANG),
        ("simhei黑体.ttf", Font.SIMHEI),
        ("simkai楷体.ttf", Font.SIMKAI),
        ("simsun宋体.ttc", Font.SIMSUN),
        ("STHeiti Light华文黑体.ttc", Font.STHEITI_LIGHT),
        ("幼圆.TTF", Font.YOUYUAN),
        ("tahoma.ttf", Font.TAHOMA),
        ("SimHei黑体.TTF", Font.SIMHEI),
    ],
)
def test_mainland_font_names_are_accepted(name: str, font: Font) -> None:
    step = parse(f"watermark/2/text/{b64('水印')}/font/{b64(name)}").steps[0]
    assert step.font is font  # type: ignore[attr-defined]


def test_every_mainland_name_maps_to_a_font() -> None:
    assert {Font.from_name(name) for name in MAINLAND_FONT_NAMES} == set(Font)


def test_unknown_font_is_refused_with_both_lists() -> None:
    error = raised(f"watermark/2/text/{b64('a')}/font/{b64('comic.ttf')}")
    assert isinstance(error, ValueRangeError)
    assert "simhei.ttf" in error.message and "simhei黑体.ttf" in error.message and "tahoma.ttf" in error.message
    assert "got 'comic.ttf'" in error.message
    # A name that only borrows the Chinese part is on neither list.
    with pytest.raises(ValueError):
        Font.from_name("黑体.ttf")


# -- thumbnail/!<S>p up to 1000 ------------------------------------------------------------------------


def test_scale_percent_accepts_1000() -> None:
    assert parse("imageMogr2/thumbnail/!1000p") == thumb(A.ScalePercent(1000))
    error = raised("imageMogr2/thumbnail/!1001p")
    assert isinstance(error, ValueRangeError)
    assert "between 1 and 1000, got 1001" in error.message and error.column == 23


# -- ignore-error/0 --------------------------------------------------------------------------------------


def test_ignore_error_0_is_accepted_and_masks_nothing() -> None:
    assert parse("imageMogr2/thumbnail/400x/ignore-error/0") == thumb(A.FitWidth(400))
    assert parse("imageView2/2/w/10/ignore-error/0") == A.Pipeline(steps=(A.ImageView2(mode=2, width=10),))
    with pytest.raises(ValueRangeError) as info:
        ci_engine.process(encode(gradient(8, 8), "PNG"), "imageMogr2/blur/80x5/ignore-error/0")
    assert info.value.masked is False


def test_ignore_error_0_does_not_cancel_a_1() -> None:
    pipeline = parse("imageMogr2/ignore-error/1/thumbnail/4x/ignore-error/0")
    assert pipeline == mogr(A.IgnoreError(), A.Thumbnail(A.FitWidth(4)))
    view = parse("imageView2/2/w/10/ignore-error/1/ignore-error/0").steps[0]
    assert view.ignore_error_flag is True  # type: ignore[attr-defined]


def test_ignore_error_other_values_say_what_to_write() -> None:
    error = raised("imageMogr2/ignore-error/2")
    assert type(error) is InvalidArgumentError
    assert "must be 1 (mask) or 0 (do not mask), got '2'" in error.message


# -- empty steps: still refused, with the fix -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "where"),
    [
        ("|imageMogr2/thumbnail/400x", 1, "at the start of the string"),
        ("imageMogr2/thumbnail/400x||imageInfo", 27, "between two '|'"),
        ("imageMogr2/thumbnail/400x|", 26, "at the end of the string"),
        ("imageMogr2%2Fthumbnail%2F400x%7C", 26, "at the end of the string"),
    ],
)
def test_empty_step_names_the_step_and_the_fix(text: str, column: int, where: str) -> None:
    error = raised(text)
    assert type(error) is ParseError
    assert f"empty step {where}; remove the extra '|'" in error.message
    assert error.column == column
    assert error.caret.splitlines()[-1] == " " * (column - 1) + "^"


# -- indexcrop and frame (list 2) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "canonical"),
    [
        ("imageMogr2/indexcrop/width/100/index/2", A.IndexCrop(100, None, 2), "imageMogr2/indexcrop/width/100/index/2"),
        ("imageMogr2/indexcrop/height/50", A.IndexCrop(None, 50), "imageMogr2/indexcrop/height/50/index/0"),
    ],
)
def test_indexcrop_parses(text: str, expected: A.IndexCrop, canonical: str) -> None:
    assert parse(text) == mogr(expected)
    assert render(parse(text)) == canonical


def test_indexcrop_refusals_say_what_to_write() -> None:
    error = raised("imageMogr2/indexcrop/width/0/index/1")
    assert isinstance(error, ValueRangeError) and error.column == 28
    error = raised("imageMogr2/indexcrop/depth/10")
    assert isinstance(error, ParseError) and "width or height" in error.message
    with pytest.raises(InvalidArgumentError, match="a width or a height"):
        A.IndexCrop(10, 10)


@pytest.mark.parametrize(
    ("rule", "size", "left_column"),
    [
        ("imageMogr2/indexcrop/width/25/index/0", (25, 30), 0),
        ("imageMogr2/indexcrop/width/25/index/2", (25, 30), 50),
        ("imageMogr2/indexcrop/width/25/index/3", (15, 30), 75),  # the last slice is narrower
        ("imageMogr2/indexcrop/width/25/index/4", (90, 30), 0),  # past the end: unchanged
        ("imageMogr2/indexcrop/height/10/index/1", (90, 10), 0),
    ],
)
def test_indexcrop_keeps_the_slice(rule: str, size: tuple[int, int], left_column: int) -> None:
    pixels = gradient(90, 30)
    result = ci_engine.process(encode(pixels, "PNG"), rule)
    assert (result.width, result.height) == size
    from tests.support.images import to_array

    out = to_array(result.data)
    top = 10 if "height/10/index/1" in rule else 0
    assert (out == pixels[top : top + size[1], left_column : left_column + size[0]]).all()


def _animation(count: int) -> bytes:
    from tests.support.images import animated

    frames = [np.full((8, 10, 3), 20 * i, np.uint8) for i in range(count)]
    return animated(frames, "GIF")


def test_frame_keeps_one_frame() -> None:
    assert parse("imageMogr2/frame/3") == mogr(A.Frame(3))
    error = raised("imageMogr2/frame/0")
    assert isinstance(error, ValueRangeError) and error.column == 18
    from tests.support.images import to_array

    gif = _animation(5)
    for rule, level in (("imageMogr2/frame/3/format/png", 40), ("imageMogr2/frame/99/format/png", 80)):
        result = ci_engine.process(gif, rule)
        assert (result.format, result.frames, result.width, result.height) == ("png", 1, 10, 8)
        assert int(to_array(result.data)[0, 0, 0]) == level
    same_format = ci_engine.process(gif, "imageMogr2/frame/2")
    assert (same_format.format, same_format.frames) == ("gif", 1)
    static = encode(gradient(10, 8), "PNG")
    assert ci_engine.process(static, "imageMogr2/frame/4").width == 10


# -- output sides: the two sets of pages as Limits presets --------------------------------------------


def test_limits_presets() -> None:
    from ci_engine.limits import Limits

    assert Limits.INTERNATIONAL == Limits()
    assert (Limits().max_input_side, Limits().max_output_side) == (30_000, 9_999)
    assert (Limits.MAINLAND.max_input_side, Limits.MAINLAND.max_output_side) == (50_000, 50_000)
    assert Limits.MAINLAND.max_webp_output_side == Limits().max_webp_output_side == 16_383
    strip = encode(gradient(2000, 2), "PNG")
    from ci_engine.errors import ImageResolutionExceedError

    with pytest.raises(ImageResolutionExceedError, match="over the limit of 9999 px"):
        ci_engine.process(strip, "imageMogr2/thumbnail/!600p")
    wide = ci_engine.process(strip, "imageMogr2/thumbnail/!600p", limits=Limits.MAINLAND)
    assert (wide.width, wide.height, wide.format) == (12_000, 12, "png")
    with pytest.raises(ImageResolutionExceedError, match="over the WebP limit of 16383 px") as info:
        ci_engine.process(strip, "imageMogr2/thumbnail/!900p/format/webp", limits=Limits.MAINLAND)
    assert info.value.x_errno == -442
    assert ci_engine.process(strip, "imageMogr2/thumbnail/!800p/format/webp", limits=Limits.MAINLAND).width == 16_000


# -- watermark text with line breaks --------------------------------------------------------------------


def test_watermark_text_keeps_line_breaks() -> None:
    step = parse(f"watermark/2/text/{b64('AB' + chr(10) + 'CD')}/fontsize/20").steps[0]
    assert step.text == "AB\nCD"  # type: ignore[attr-defined]
    assert render(parse(render(A.Pipeline(steps=(step,))))) == render(A.Pipeline(steps=(step,)))
    base = encode(np.full((200, 200, 3), 255, np.uint8), "PNG")
    from tests.support.images import to_array

    one = to_array(ci_engine.process(base, f"watermark/2/text/{b64('ABCD')}/fontsize/20/gravity/northwest").data)
    two = to_array(
        ci_engine.process(base, f"watermark/2/text/{b64('AB' + chr(10) + 'CD')}/fontsize/20/gravity/northwest").data
    )
    rows = lambda a: np.nonzero((a < 200).any(axis=(1, 2)))[0]  # noqa: E731
    cols = lambda a: np.nonzero((a < 200).any(axis=(0, 2)))[0]  # noqa: E731
    assert rows(two).max() - rows(two).min() > 1.8 * (rows(one).max() - rows(one).min())  # two lines
    assert cols(two).max() - cols(two).min() < 0.7 * (cols(one).max() - cols(one).min())  # no wrapping of one line
