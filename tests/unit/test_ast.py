"""ci_engine.ast: constructors validate hand-built nodes exactly as parsed ones."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from ci_engine import ast as A
from ci_engine._check import MAX_VALUE
from ci_engine.errors import CIError, InvalidArgumentError, Span, ValueRangeError
from ci_engine.parse import parse
from ci_engine.render import render
from ci_engine.types import (
    BlindType,
    CiProcessName,
    Color,
    Font,
    Gravity,
    OffsetMode,
    OutputFormat,
    ScaleType,
    SizeUnit,
)
from tests.support.strategies import as_pipeline


def build(factory: Any) -> CIError:
    with pytest.raises(CIError) as info:
        factory()
    return info.value


# -- wrong types: InvalidArgumentError, never masked ------------------------------------------------

WRONG_TYPES = [
    pytest.param(lambda: A.FitWidth("400"), "thumbnail: width must be an integer, got '400'", id="str-size"),
    pytest.param(lambda: A.FitWidth(400.0), "thumbnail: width must be an integer, got 400.0", id="float-size"),
    pytest.param(lambda: A.FitWidth(True), "thumbnail: width must be an integer, got True", id="bool-size"),
    pytest.param(lambda: A.ScalePercent(None), "percent must be an integer, got None", id="none-percent"),
    pytest.param(
        lambda: A.Thumbnail(A.CropBox(1, 1)), "thumbnail: geometry must be a _Geometry", id="crop-geometry-in-thumbnail"
    ),
    pytest.param(lambda: A.Thumbnail(A.FitWidth(1), pad=1), "thumbnail: pad must be a bool, got 1", id="int-pad"),
    pytest.param(lambda: A.Thumbnail(A.FitWidth(1), color="#fff"), "thumbnail: color must be a Color", id="str-color"),
    pytest.param(
        lambda: A.Crop(A.FitWidth(1)), "crop: geometry must be a _CropGeometry", id="thumbnail-geometry-in-crop"
    ),
    pytest.param(lambda: A.Crop(A.CropWidth(1), "center"), "crop: gravity must be a Gravity", id="str-gravity"),
    pytest.param(lambda: A.Cut(1, 1, 0, 0, "center"), "cut: gravity must be a Gravity", id="cut-str-gravity"),
    pytest.param(
        lambda: A.CropRegion(None, None, 0, 0), "crop: size must be a width or a height", id="region-without-size"
    ),
    pytest.param(lambda: A.CropRegion(1, 1, 0, 0, "a"), "crop: dx_mode must be a OffsetMode", id="str-offset-mode"),
    pytest.param(lambda: A.RatioCrop("1", 2), "rcrop: min_ratio must be a number, got '1'", id="str-ratio"),
    pytest.param(lambda: A.Blur(1, None), "blur: sigma must be a number, got None", id="none-sigma"),
    pytest.param(lambda: A.Flip("vertical"), "flip: axis must be a FlipAxis", id="str-axis"),
    pytest.param(lambda: A.Format("png"), "format: format must be a OutputFormat", id="str-format"),
    pytest.param(lambda: A.Interlace(1), "interlace: enabled must be a bool, got 1", id="int-flag"),
    pytest.param(lambda: A.Quality(80, forced=1), "quality: forced must be a bool", id="int-forced"),
    pytest.param(lambda: A.SizeLimit(1, "k"), "size-limit: unit must be a SizeUnit", id="str-unit"),
    pytest.param(lambda: A.ImageMogr2(ops=[A.Strip()]), "imageMogr2: ops must be a tuple", id="list-ops"),
    pytest.param(lambda: A.ImageMogr2(ops=(A.ImageInfo(),)), "imageMogr2: ops must be a MogrOp", id="step-as-op"),
    pytest.param(lambda: A.ImageView2(format="png"), "imageView2: format must be a OutputFormat", id="view-str-format"),
    pytest.param(
        lambda: A.ImageView2(quality_forced=True),
        "imageView2: q must be given when forced with !",
        id="view-forced-without-q",
    ),
    pytest.param(lambda: A.ImageView2(interlace=1), "imageView2: interlace must be a bool", id="view-int-interlace"),
    pytest.param(lambda: A.TextWatermark(text=""), "watermark/2: text must be a non-empty string", id="empty-text"),
    pytest.param(lambda: A.TextWatermark(text=b"a"), "watermark/2: text must be a string", id="bytes-text"),
    pytest.param(
        lambda: A.TextWatermark(text="a\tb"), "text must be text without control characters", id="tab-in-text"
    ),
    pytest.param(
        lambda: A.TextWatermark(text="a\x7f"), "text must be text without control characters", id="del-in-text"
    ),
    pytest.param(lambda: A.TextWatermark(text="\ud800"), "text must be valid Unicode text", id="lone-surrogate"),
    pytest.param(lambda: A.TextWatermark(text="a", font="arial.ttf"), "font must be a Font", id="str-font"),
    pytest.param(
        lambda: A.ImageWatermark(image="a", gravity="north"), "gravity must be a Gravity", id="wm-str-gravity"
    ),
    pytest.param(lambda: A.ImageWatermark(image="a", dx="1"), "dx must be an integer", id="wm-str-dx"),
    pytest.param(lambda: A.BlindWatermark(type=3, text="a"), "type must be a BlindType", id="int-blind-type"),
    pytest.param(lambda: A.StyleRef("a/b"), "style: name must be 1-64 characters", id="style-slash"),
    pytest.param(lambda: A.StyleRef(""), "style: name must be 1-64 characters", id="style-empty"),
    pytest.param(lambda: A.StyleRef(7), "style: name must be a str", id="style-int"),
    pytest.param(lambda: A.QRCode(cover=1), "QRcode: cover must be a bool", id="qr-int-cover"),
    pytest.param(lambda: A.CiProcess("QRcode"), "ci-process: name must be a CiProcessName", id="str-ci-name"),
    pytest.param(
        lambda: A.CiProcess(CiProcessName.QRCODE, [("a", "1")]), "ci-process: params must be a tuple", id="list-params"
    ),
    pytest.param(
        lambda: A.CiProcess(CiProcessName.QRCODE, (("1a", "1"),)), "(key, value) pairs with simple keys", id="bad-key"
    ),
    pytest.param(lambda: A.CiProcess(CiProcessName.QRCODE, (("a", 1),)), "ci-process: a must be a str", id="int-value"),
    pytest.param(
        lambda: A.CiProcess(CiProcessName.QRCODE, (("a", "\udc80"),)),
        "a must be valid Unicode text",
        id="surrogate-value",
    ),
]


@pytest.mark.parametrize("factory, message", WRONG_TYPES)
def test_wrong_type_is_an_invalid_argument_never_masked(factory: Any, message: str) -> None:
    error = build(factory)
    assert type(error) is InvalidArgumentError
    assert error.maskable is False
    assert error.code == "InvalidArgument"
    assert message in error.message


# -- out of range: ValueRangeError, maskable ---------------------------------------------------------

OUT_OF_RANGE = [
    pytest.param(
        lambda: A.ScalePercent(0),
        "thumbnail !<S>p: percent must be an integer between 1 and 1000, got 0",
        id="percent-0",
    ),
    pytest.param(lambda: A.WidthPercent(1001), "got 1001", id="percent-1001"),
    pytest.param(
        lambda: A.FitWidth(0), "thumbnail: width must be an integer between 1 and 2147483647, got 0", id="size-0"
    ),
    pytest.param(lambda: A.FitBox(1, MAX_VALUE + 1), "thumbnail: height must be", id="size-over-max"),
    pytest.param(lambda: A.MaxArea(-1), "thumbnail: area must be", id="negative-area"),
    pytest.param(
        lambda: A.Cut(1, 1, -1, 0), "cut: dx must be an integer between 0 and 2147483647, got -1", id="cut-negative-dx"
    ),
    pytest.param(lambda: A.CropRegion(1, None, 0, -1), "crop: dy must be", id="region-negative-dy"),
    pytest.param(
        lambda: A.RatioCrop(0, 1),
        "rcrop: min_ratio must be a number greater than 0 and at most 10000, got 0",
        id="rcrop-0",
    ),
    pytest.param(lambda: A.RatioCrop(1, float("inf")), "rcrop: max_ratio must be", id="rcrop-inf"),
    pytest.param(lambda: A.RatioCrop(float("nan"), 1), "rcrop: min_ratio must be", id="rcrop-nan"),
    pytest.param(lambda: A.RatioCrop(2, 1), "rcrop: min_ratio must be at most max_ratio (1)", id="rcrop-order"),
    pytest.param(lambda: A.Rotate(361), "rotate: degrees must be an integer between 0 and 360, got 361", id="rotate"),
    pytest.param(lambda: A.CGif(101), "cgif: frames must be", id="cgif"),
    pytest.param(lambda: A.EGif(0), "egif: interval must be", id="egif"),
    pytest.param(lambda: A.Quality(-1), "quality: value must be an integer between 0 and 100, got -1", id="quality"),
    pytest.param(lambda: A.RQuality(101), "rquality: value must be", id="rquality"),
    pytest.param(lambda: A.LQuality(101), "lquality: value must be", id="lquality"),
    pytest.param(lambda: A.Blur(51, 1.0), "blur: radius must be an integer between 1 and 50, got 51", id="blur-radius"),
    pytest.param(
        lambda: A.Blur(1, 50.000001), "blur: sigma must be a number greater than 0 and at most 50", id="blur-sigma"
    ),
    pytest.param(lambda: A.Sharpen(9), "sharpen: amount must be", id="sharpen"),
    pytest.param(lambda: A.Bright(-101), "bright: value must be an integer between -100 and 100", id="bright"),
    pytest.param(lambda: A.Contrast(101), "contrast: value must be", id="contrast"),
    pytest.param(lambda: A.SizeLimit(0, SizeUnit.K), "size-limit: size must be", id="size-limit"),
    pytest.param(
        lambda: A.ImageView2(mode=6), "imageView2: mode must be an integer between 0 and 5, got 6", id="view-mode"
    ),
    pytest.param(lambda: A.ImageView2(width=0), "imageView2: w must be", id="view-w"),
    pytest.param(lambda: A.ImageView2(lquality=101), "imageView2: lq must be", id="view-lq"),
    pytest.param(lambda: A.ImageWatermark(image="a", dissolve=0), "watermark/1: dissolve must be", id="dissolve"),
    pytest.param(
        lambda: A.ImageWatermark(image="a", dx=-MAX_VALUE - 1), "dx must be an integer >= -2147483647", id="dx"
    ),
    pytest.param(
        lambda: A.ImageWatermark(image="a" * 4097), "image must be at most 4096 characters long", id="long-url"
    ),
    pytest.param(
        lambda: A.TextWatermark(text="a" * 1001),
        "text must be at most 1000 characters long, got '1001 characters'",
        id="long-text",
    ),
    pytest.param(lambda: A.TextWatermark(text="a", fontsize=1001), "fontsize must be", id="fontsize"),
    pytest.param(lambda: A.TextWatermark(text="a", shadow=101), "shadow must be", id="shadow"),
    pytest.param(lambda: A.TextWatermark(text="a", degree=361), "degree must be", id="degree"),
    pytest.param(lambda: A.TextWatermark(text="a", spacing=101), "spacing must be", id="spacing"),
    pytest.param(lambda: A.BlindWatermark(type=BlindType.BLIND, image="a", level=4), "level must be", id="level"),
    pytest.param(
        lambda: A.BlindWatermark(type=BlindType.BLIND, image="a", version="3.0"),
        "version must be 1.0 or 2.0 for type 2",
        id="version",
    ),
    pytest.param(
        lambda: A.QRCode(bar_type=3), "QRcode: bar-type must be an integer between 0 and 2, got 3", id="qr-bar-type"
    ),
    pytest.param(lambda: A.QRCode(size=-1), "QRcode: size must be", id="qr-size"),
    pytest.param(
        lambda: Color(256, 0, 0), "color: red must be an integer between 0 and 255, got 256", id="colour-channel"
    ),
]


@pytest.mark.parametrize("factory, message", OUT_OF_RANGE)
def test_out_of_range_is_a_maskable_value_range_error(factory: Any, message: str) -> None:
    error = build(factory)
    assert type(error) is ValueRangeError
    assert error.maskable is True
    assert error.code == "InvalidArgument"
    assert message in error.message


def test_range_errors_carry_op_field_expected_actual() -> None:
    error = build(lambda: A.Rotate(400))
    assert isinstance(error, ValueRangeError)
    assert (error.op, error.field, error.expected, error.actual) == (
        "rotate",
        "degrees",
        "an integer between 0 and 360",
        400,
    )


@pytest.mark.parametrize(
    "factory",
    [
        pytest.param(lambda: A.FitWidth(MAX_VALUE), id="max-size"),
        pytest.param(lambda: A.ScalePercent(1000), id="max-percent"),
        pytest.param(lambda: A.Cut(1, 1, 0, 0), id="zero-offsets"),
        pytest.param(lambda: A.RatioCrop(1, 1), id="equal-ratios"),
        pytest.param(lambda: A.RatioCrop(5e-324, 10000), id="extreme-ratios"),
        pytest.param(lambda: A.Blur(50, 50), id="int-sigma"),
        pytest.param(lambda: A.Rotate(0), id="rotate-0"),
        pytest.param(lambda: A.Quality(0, True), id="quality-0"),
        pytest.param(lambda: A.Bright(-100), id="bright-min"),
        pytest.param(lambda: A.ImageView2(mode=0, quality=0, quality_forced=True), id="view-forced"),
        pytest.param(lambda: A.TextWatermark(text="a\nb", dx=-MAX_VALUE), id="newline-and-min-dx"),
        pytest.param(lambda: A.TextWatermark(text="a" * 1000), id="text-1000"),
        pytest.param(lambda: A.StyleRef("a" * 64), id="style-64"),
        pytest.param(lambda: A.CiProcess(CiProcessName.OCR, (("a", None), ("b", ""))), id="ci-params"),
    ],
)
def test_valid_boundaries_are_accepted_and_round_trip(factory: Any) -> None:
    pipeline = as_pipeline(factory())
    assert parse(render(pipeline)) == pipeline


def test_blur_keeps_an_int_sigma_as_written() -> None:
    assert A.Blur(1, 2).sigma == 2


# -- spans, equality, hashing, repr, immutability -----------------------------------------------------


def test_spans_are_excluded_from_equality_hash_and_repr() -> None:
    a = A.Thumbnail(A.FitWidth(400, span=Span(0, 4)), span=Span(0, 14))
    b = A.Thumbnail(A.FitWidth(400))
    assert a == b
    assert hash(a) == hash(b)
    assert repr(a) == repr(b) == "Thumbnail(geometry=FitWidth(width=400), pad=None, color=None)"
    assert a.span == Span(0, 14)
    assert b.span is None


def test_parsed_and_hand_built_nodes_are_equal() -> None:
    parsed = parse("imageMogr2/thumbnail/400x")
    built = A.Pipeline(steps=(A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(400)),)),))
    assert parsed.span is not None
    assert parsed == built
    assert hash(parsed) == hash(built)


def test_different_values_are_not_equal() -> None:
    assert A.FitWidth(400) != A.FitWidth(401)
    assert A.FitBox(1, 2) != A.ShrinkBox(1, 2)
    assert A.CropWidth(1) != A.FitWidth(1)
    assert A.Quality(80) != A.Quality(80, forced=True)


def test_span_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        A.FitWidth(400, Span(0, 4))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("node", "attribute", "value"),
    [
        pytest.param(A.FitWidth(400), "width", 500, id="geometry"),
        pytest.param(A.Thumbnail(A.FitWidth(400)), "pad", True, id="operation"),
        pytest.param(A.ImageMogr2(ops=()), "ops", (A.Strip(),), id="step"),
        pytest.param(A.Pipeline(steps=(A.ImageInfo(),)), "steps", (), id="pipeline"),
        pytest.param(A.ImageInfo(), "span", Span(0, 1), id="span"),
    ],
)
def test_nodes_are_frozen(node: A.Node, attribute: str, value: object) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(node, attribute, value)


def test_nodes_are_slotted() -> None:
    for cls in A.ALL_NODE_CLASSES:
        assert "__slots__" in cls.__dict__, cls.__name__
        assert "__dict__" not in dir(cls), cls.__name__


def test_all_node_classes_are_distinct_concrete_nodes() -> None:
    assert len(A.ALL_NODE_CLASSES) == len(set(A.ALL_NODE_CLASSES)) == 58
    assert all(issubclass(cls, A.Node) and dataclasses.is_dataclass(cls) for cls in A.ALL_NODE_CLASSES)
    assert all(cls.__dataclass_params__.frozen for cls in A.ALL_NODE_CLASSES)  # type: ignore[attr-defined]


# -- watermarks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scatype", "spcent", "error_class"),
    [
        pytest.param(ScaleType.WIDTH, 1000, None, id="width-1000"),
        pytest.param(ScaleType.HEIGHT, 1000, None, id="height-1000"),
        pytest.param(ScaleType.AREA, 250, None, id="area-250"),
        pytest.param(ScaleType.AREA, 251, ValueRangeError, id="area-251"),
        pytest.param(ScaleType.WIDTH, 1001, ValueRangeError, id="width-1001"),
        pytest.param(ScaleType.WIDTH, 0, ValueRangeError, id="spcent-0"),
        pytest.param(ScaleType.WIDTH, None, InvalidArgumentError, id="scatype-alone"),
        pytest.param(None, 100, InvalidArgumentError, id="spcent-alone"),
        pytest.param(None, None, None, id="neither"),
    ],
)
def test_watermark_scatype_spcent_pairing(
    scatype: ScaleType | None, spcent: int | None, error_class: type[CIError] | None
) -> None:
    # A value out of range is masked; a missing half of the pair is a malformed string.
    for cls, payload in ((A.ImageWatermark, {"image": "u"}), (A.TextWatermark, {"text": "t"})):
        if error_class is None:
            node = cls(scatype=scatype, spcent=spcent, **payload)
            assert (node.scatype, node.spcent) == (scatype, spcent)
        else:
            error = build(lambda cls=cls, payload=payload: cls(scatype=scatype, spcent=spcent, **payload))
            assert type(error) is error_class


def test_watermark_defaults_are_unset_with_documented_effective_values() -> None:
    text = A.TextWatermark(text="a")
    assert (text.gravity, text.dissolve, text.spacing, text.font, text.fontsize, text.fill) == (None,) * 6
    assert text.effective_gravity is Gravity.SOUTH_EAST
    assert text.effective_dissolve == 90
    assert text.effective_spacing == 10
    assert text.effective_font is Font.TAHOMA
    assert text.effective_fontsize == 13
    assert text.effective_fill == Color(0x3D, 0x3D, 0x3D)
    image = A.ImageWatermark(image="u", dissolve=40, spacing=0)
    assert image.effective_dissolve == 40
    assert image.effective_spacing == 0


@pytest.mark.parametrize(
    ("kwargs", "cls", "message"),
    [
        pytest.param(
            {"type": BlindType.TEXT}, InvalidArgumentError, "text must be given for type 3", id="text-type-needs-text"
        ),
        pytest.param(
            {"type": BlindType.BLIND}, InvalidArgumentError, "image must be given for type 2", id="blind-needs-image"
        ),
        pytest.param(
            {"type": BlindType.SEMI_BLIND, "text": "a"},
            InvalidArgumentError,
            "image must be given for type 1",
            id="semi-needs-image",
        ),
        pytest.param(
            {"type": BlindType.TEXT, "text": "a b"},
            InvalidArgumentError,
            "ASCII letters and digits",
            id="text-must-be-alnum",
        ),
        pytest.param(
            {"type": BlindType.TEXT, "text": "é"},
            InvalidArgumentError,
            "ASCII letters and digits",
            id="text-must-be-ascii",
        ),
        pytest.param(
            {"type": BlindType.TEXT, "text": ""},
            InvalidArgumentError,
            "text must be a non-empty string",
            id="empty-text",
        ),
        pytest.param(
            {"type": BlindType.TEXT, "text": "a", "version": "3"},
            ValueRangeError,
            "version must be 1.0 or 2.0 or 3.0 for type 3",
            id="version-3",
        ),
        pytest.param(
            {"type": BlindType.TEXT, "text": "a-b", "version": "1.0"},
            InvalidArgumentError,
            "ASCII letters and digits for version 1.0 (write version/3.0 for any text)",
            id="version-1-text",
        ),
        pytest.param(
            {"type": BlindType.TEXT, "text": "x" * 257, "version": "3.0"},
            InvalidArgumentError,
            "text must be at most 256 characters",
            id="text-257",
        ),
        pytest.param(
            {"type": BlindType.SEMI_BLIND, "image": "u", "version": "1.0"},
            ValueRangeError,
            "version must be absent for type 1 (it has no versions)",
            id="type-1-version",
        ),
        pytest.param(
            {"type": BlindType.TEXT, "text": "a", "level": 1},
            ValueRangeError,
            "level must be absent for type 3 version 1.0 (a level exists for type 3 version 2.0 or 3.0)",
            id="level-on-version-1",
        ),
    ],
)
def test_blind_watermark_rules(kwargs: dict[str, Any], cls: type[CIError], message: str) -> None:
    error = build(lambda: A.BlindWatermark(**kwargs))
    assert type(error) is cls
    assert message in error.message


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"type": BlindType.TEXT, "text": "Order1007"}, id="alnum-text"),
        pytest.param({"type": BlindType.TEXT, "text": "任意 text!", "version": "3.0"}, id="any-text-with-version"),
        pytest.param({"type": BlindType.BLIND, "image": "http://x/m.png", "level": 3}, id="blind-image"),
        pytest.param({"type": BlindType.BLIND, "image": "u", "level": 0, "version": "1.0"}, id="level-0"),
        pytest.param({"type": BlindType.TEXT, "text": "水印 2.0", "version": "2.0", "level": 3}, id="text-2-0"),
        pytest.param({"type": BlindType.SEMI_BLIND, "image": "http://x/m.png", "text": "a b"}, id="extra-text"),
    ],
)
def test_blind_watermark_accepts(kwargs: dict[str, Any]) -> None:
    assert A.BlindWatermark(**kwargs).type is kwargs["type"]


def test_extract_blind_watermark_rules() -> None:
    assert A.ExtractBlindWatermark(type=BlindType.TEXT).text is None
    assert A.ExtractBlindWatermark(type=BlindType.BLIND, image="u").image == "u"
    error = build(lambda: A.ExtractBlindWatermark(type=BlindType.SEMI_BLIND))
    assert type(error) is InvalidArgumentError
    assert error.message == "watermark/4: image must be given for type 1, got None"
    with pytest.raises(TypeError):
        A.ExtractBlindWatermark(type=BlindType.BLIND, image="u", level=1)  # type: ignore[call-arg]


# -- pipelines ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        pytest.param((), "pipeline: steps must be at least one step, got ()", id="empty"),
        pytest.param([A.ImageInfo()], "pipeline: steps must be a tuple", id="list"),
        pytest.param((A.Strip(),), "pipeline: steps must be a Step", id="operation-as-step"),
        pytest.param(
            (A.CiProcess(CiProcessName.QRCODE), A.ImageInfo()),
            "pipeline: steps must be a ci-process request alone (it cannot be chained with |), got 2",
            id="ci-process-chained",
        ),
        pytest.param(
            (A.ImageInfo(), A.CiProcess(CiProcessName.QRCODE)),
            "a ci-process request alone",
            id="ci-process-second",
        ),
    ],
)
def test_pipeline_refuses(steps: Any, message: str) -> None:
    error = build(lambda: A.Pipeline(steps=steps))
    assert type(error) is InvalidArgumentError
    assert error.maskable is False
    assert message in error.message


def test_pipeline_step_count_is_not_limited_by_the_constructor() -> None:
    assert len(A.Pipeline(steps=(A.ImageInfo(),) * 11).steps) == 11


@pytest.mark.parametrize(
    ("pipeline", "expected"),
    [
        pytest.param(A.Pipeline(steps=(A.ImageInfo(),)), False, id="none"),
        pytest.param(A.Pipeline(steps=(A.ImageMogr2(ops=(A.IgnoreError(),)),)), True, id="mogr"),
        pytest.param(
            A.Pipeline(steps=(A.ImageInfo(), A.ImageView2(ignore_error_flag=True))), True, id="view-second-step"
        ),
        pytest.param(
            A.Pipeline(steps=(A.CiProcess(CiProcessName.QRCODE, (("ignore-error", "1"),)),)), True, id="ci-process"
        ),
        pytest.param(
            A.Pipeline(steps=(A.CiProcess(CiProcessName.QRCODE, (("ignore-error", "1"), ("ignore-error", "0"))),)),
            False,
            id="ci-process-last-value-wins",
        ),
    ],
)
def test_pipeline_ignore_error(pipeline: A.Pipeline, expected: bool) -> None:
    assert pipeline.ignore_error is expected


def test_ci_process_param_lookup() -> None:
    step = A.CiProcess(CiProcessName.QRCODE, (("cover", "1"), ("flag", None), ("cover", "0")))
    assert step.param("cover") == "0"
    assert step.param("flag") is None
    assert step.param("absent") is None


@pytest.mark.parametrize(
    ("geometry", "pads"),
    [
        pytest.param(A.FitBox(1, 1), True, id="fit-box"),
        pytest.param(A.ShrinkBox(1, 1), True, id="shrink-box"),
        pytest.param(A.EnlargeBox(1, 1), True, id="enlarge-box"),
        pytest.param(A.ExactSize(1, 1), False, id="exact-size"),
        pytest.param(A.FitWidth(1), False, id="fit-width"),
    ],
)
def test_thumbnail_pads_only_box_forms(geometry: A.ThumbnailGeometry, pads: bool) -> None:
    assert A.Thumbnail(geometry, pad=True).pads is pads
    assert A.Thumbnail(geometry, pad=False).pads is False
    assert A.Thumbnail(geometry).pads is False


def test_crop_region_defaults_to_moving_offsets() -> None:
    region = A.CropRegion(10, 20, 1, 2)
    assert (region.dx_mode, region.dy_mode) == (OffsetMode.MOVE, OffsetMode.MOVE)


def test_size_limit_bytes() -> None:
    assert A.SizeLimit(15, SizeUnit.K).bytes == 15 * 1024
    assert A.SizeLimit(2, SizeUnit.M).bytes == 2 * 1024 * 1024


def test_format_enum_is_required_not_an_alias_string() -> None:
    assert A.Format(OutputFormat.JPG).format is OutputFormat.JPG
