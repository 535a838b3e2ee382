"""ci_engine.render: the canonical string of every AST node."""

from __future__ import annotations

import pytest

from ci_engine import ast as A
from ci_engine.errors import InvalidArgumentError
from ci_engine.parse import parse
from ci_engine.render import RENDERERS, render
from ci_engine.types import (
    BlindType,
    BlogoMode,
    CiProcessName,
    Color,
    FlipAxis,
    Font,
    Gravity,
    OffsetMode,
    OutputFormat,
    ScaleType,
    SizeUnit,
)

RED = Color(255, 0, 0)


def mogr(*ops: A.MogrOp) -> A.Pipeline:
    return A.Pipeline(steps=(A.ImageMogr2(ops=ops),))


def one(step: A.Step) -> A.Pipeline:
    return A.Pipeline(steps=(step,))


CANONICAL = [
    # keywords in CI's spelling, whatever was parsed
    pytest.param(parse("IMAGEMOGR2/strip"), "imageMogr2/strip", id="keyword-spelling"),
    pytest.param(parse("qrcode"), "QRcode", id="qrcode-spelling"),
    pytest.param(
        parse("IMAGEINFO|EXIF|IMAGEAVE|IMAGESLIM|IMAGEINSPECT"),
        "imageInfo|exif|imageAve|imageSlim|imageInspect",
        id="bare-keywords",
    ),
    # enums in lower case, aliases folded
    pytest.param(
        parse("imageMogr2/format/JPEG/flip/HORIZONTAL"), "imageMogr2/format/jpg/flip/horizontal", id="enums-lower-case"
    ),
    pytest.param(mogr(A.Format(OutputFormat.HEIF)), "imageMogr2/format/heif", id="heif"),
    pytest.param(
        parse("imageMogr2/crop/1x1/gravity/NorthWest"), "imageMogr2/crop/1x1/gravity/northwest", id="gravity-lower-case"
    ),
    pytest.param(mogr(A.SizeLimit(2, SizeUnit.M, True)), "imageMogr2/size-limit/2m!", id="size-unit-lower-case"),
    # numbers
    pytest.param(mogr(A.RatioCrop(0.5, 1.0)), "imageMogr2/rcrop/0.5x1", id="decimals-without-dot-zero"),
    pytest.param(mogr(A.Blur(3, 1e-7)), "imageMogr2/blur/3x0.0000001", id="decimals-without-exponent"),
    pytest.param(mogr(A.Blur(3, 2)), "imageMogr2/blur/3x2", id="int-sigma"),
    pytest.param(parse("imageMogr2/thumbnail/007x"), "imageMogr2/thumbnail/7x", id="no-leading-zeros"),
    pytest.param(mogr(A.Bright(-20), A.Contrast(0)), "imageMogr2/bright/-20/contrast/0", id="signed"),
    pytest.param(
        mogr(A.Interlace(True), A.Grayscale(False)), "imageMogr2/interlace/1/grayscale/0", id="flags-as-digits"
    ),
    pytest.param(mogr(A.Quality(80, True), A.Quality(70)), "imageMogr2/quality/80!/quality/70", id="quality-bang"),
    # every geometry
    pytest.param(mogr(A.Thumbnail(A.ScalePercent(50))), "imageMogr2/thumbnail/!50p", id="scale-percent"),
    pytest.param(mogr(A.Thumbnail(A.WidthPercent(50))), "imageMogr2/thumbnail/!50px", id="width-percent"),
    pytest.param(mogr(A.Thumbnail(A.HeightPercent(50))), "imageMogr2/thumbnail/!x50p", id="height-percent"),
    pytest.param(mogr(A.Thumbnail(A.FitWidth(4))), "imageMogr2/thumbnail/4x", id="fit-width"),
    pytest.param(mogr(A.Thumbnail(A.FitHeight(3))), "imageMogr2/thumbnail/x3", id="fit-height"),
    pytest.param(mogr(A.Thumbnail(A.FitBox(4, 3))), "imageMogr2/thumbnail/4x3", id="fit-box"),
    pytest.param(mogr(A.Thumbnail(A.ShrinkBox(4, 3))), "imageMogr2/thumbnail/4x3>", id="shrink-box"),
    pytest.param(mogr(A.Thumbnail(A.EnlargeBox(4, 3))), "imageMogr2/thumbnail/4x3<", id="enlarge-box"),
    pytest.param(mogr(A.Thumbnail(A.CoverBox(4, 3))), "imageMogr2/thumbnail/!4x3r", id="cover-box"),
    pytest.param(mogr(A.Thumbnail(A.ExactSize(4, 3))), "imageMogr2/thumbnail/4x3!", id="exact-size"),
    pytest.param(mogr(A.Thumbnail(A.MaxArea(12))), "imageMogr2/thumbnail/12@", id="max-area"),
    pytest.param(mogr(A.Crop(A.CropWidth(4))), "imageMogr2/crop/4x", id="crop-width"),
    pytest.param(mogr(A.Crop(A.CropHeight(3))), "imageMogr2/crop/x3", id="crop-height"),
    pytest.param(mogr(A.Crop(A.CropBox(4, 3))), "imageMogr2/crop/4x3", id="crop-box"),
    pytest.param(
        mogr(A.Crop(A.CropRegion(260, 260, 6, 22, OffsetMode.MOVE, OffsetMode.SHRINK))),
        "imageMogr2/crop/!260x260a6-22",
        id="crop-region",
    ),
    pytest.param(mogr(A.Crop(A.CropRegion(None, 9, 0, 1))), "imageMogr2/crop/!x9a0a1", id="crop-region-height"),
    pytest.param(mogr(A.Crop(A.CropRegion(9, None, 0, 1))), "imageMogr2/crop/!9xa0a1", id="crop-region-width"),
    # Base64 without padding, colours as #RRGGBB
    pytest.param(
        parse("imageMogr2/thumbnail/4x3/pad/1/color/cmVk"),
        "imageMogr2/thumbnail/4x3/pad/1/color/I0ZGMDAwMA",
        id="colour-name-as-hex-unpadded",
    ),
    pytest.param(parse("watermark/2/text/YQ=="), "watermark/2/text/YQ", id="text-unpadded"),
    pytest.param(
        one(A.TextWatermark(text="a", font=Font.STHEITI_LIGHT, fill=Color(0x3D, 0x3D, 0x3D))),
        "watermark/2/text/YQ/font/U1RIZWl0aSBMaWdodC50dGM/fill/IzNEM0QzRA",
        id="font-and-fill",
    ),
    # modifier placement
    pytest.param(
        parse("imageMogr2/gravity/center/crop/300x300"),
        "imageMogr2/crop/300x300/gravity/center",
        id="gravity-after-its-crop",
    ),
    pytest.param(
        parse("imageMogr2/pad/1/color/I0ZGMDAwMA/thumbnail/600x500"),
        "imageMogr2/thumbnail/600x500/pad/1/color/I0ZGMDAwMA",
        id="pad-then-color-after-thumbnail",
    ),
    pytest.param(
        mogr(A.Crop(A.CropBox(3, 3), Gravity.NORTH), A.Crop(A.CropBox(2, 2), Gravity.SOUTH)),
        "imageMogr2/gravity/north/crop/3x3/crop/2x2/gravity/south",
        id="gravity-before-a-crop-followed-by-another",
    ),
    pytest.param(
        mogr(A.Cut(3, 3, 0, 0, Gravity.EAST), A.Crop(A.CropBox(2, 2))),
        "imageMogr2/gravity/east/cut/3x3x0x0/crop/2x2",
        id="gravity-before-a-cut-followed-by-a-crop",
    ),
    pytest.param(
        mogr(A.Cut(3, 3, 0, 0, Gravity.EAST), A.Cut(2, 2, 1, 1)),
        "imageMogr2/gravity/east/cut/3x3x0x0/cut/2x2x1x1",
        id="gravity-written-once-before-a-cut-followed-by-a-cut",
    ),
    pytest.param(
        mogr(A.Crop(A.CropBox(3, 3), Gravity.WEST), A.Thumbnail(A.FitWidth(2))),
        "imageMogr2/crop/3x3/gravity/west/thumbnail/2x",
        id="gravity-after-when-no-crop-follows",
    ),
    pytest.param(
        mogr(A.Thumbnail(A.FitBox(3, 3), True, RED), A.Thumbnail(A.FitWidth(2), False)),
        "imageMogr2/pad/1/color/I0ZGMDAwMA/thumbnail/3x3/thumbnail/2x/pad/0",
        id="pad-before-a-thumbnail-followed-by-another",
    ),
    # key/value families in a fixed order
    pytest.param(
        parse("imageView2/5/ignore-error/1/interlace/0/lq/3/rq/4/q/5!/format/PNG/h/2/w/1"),
        "imageView2/5/w/1/h/2/format/png/q/5!/rq/4/lq/3/interlace/0/ignore-error/1",
        id="view-key-order",
    ),
    pytest.param(
        one(
            A.ImageWatermark(
                image="u",
                spacing=1,
                degree=2,
                batch=False,
                dissolve=3,
                spcent=4,
                scatype=ScaleType.HEIGHT,
                blogo=BlogoMode.SCALE,
                dy=-5,
                dx=6,
                gravity=Gravity.NORTH,
            )
        ),
        "watermark/1/image/dQ/gravity/north/dx/6/dy/-5/blogo/1/scatype/2/spcent/4/dissolve/3/batch/0/degree/2/spacing/1",
        id="image-watermark-key-order",
    ),
    pytest.param(
        one(
            A.TextWatermark(
                text="t",
                spcent=1,
                scatype=ScaleType.WIDTH,
                shadow=2,
                spacing=3,
                degree=4,
                batch=True,
                dy=5,
                dx=6,
                gravity=Gravity.CENTER,
                dissolve=7,
                fill=RED,
                fontsize=8,
                font=Font.ARIAL,
            )
        ),
        "watermark/2/text/dA/font/YXJpYWwudHRm/fontsize/8/fill/I0ZGMDAwMA/dissolve/7/gravity/center/dx/6/dy/5"
        "/batch/1/degree/4/spacing/3/shadow/2/scatype/1/spcent/1",
        id="text-watermark-key-order",
    ),
    pytest.param(
        one(A.BlindWatermark(type=BlindType.TEXT, text="ab", image="u", level=2, version="3.0")),
        "watermark/3/type/3/image/dQ/text/YWI/level/2/version/3.0",
        id="blind-key-order",
    ),
    pytest.param(
        one(A.ExtractBlindWatermark(type=BlindType.SEMI_BLIND, image="u")),
        "watermark/4/type/1/image/dQ",
        id="extract-blind",
    ),
    pytest.param(
        one(A.QRCode(size=500, segment=0, bar_type=2, cover=False)),
        "QRcode/cover/0/bar-type/2/segment/0/size/500",
        id="qrcode-key-order",
    ),
    pytest.param(one(A.StyleRef("card")), "style/card", id="style"),
    pytest.param(
        one(A.CiProcess(CiProcessName.DETECT_LABEL, (("a", "x y&z"), ("flag", None), ("empty", "")))),
        "ci-process=detect-label&a=x%20y%26z&flag&empty=",
        id="ci-process-values-percent-encoded",
    ),
    pytest.param(mogr(), "imageMogr2", id="empty-mogr"),
    pytest.param(one(A.ImageView2()), "imageView2", id="empty-view"),
    pytest.param(
        parse("imageMogr2/thumbnail/400x/|imageInfo/"),
        "imageMogr2/thumbnail/400x|imageInfo",
        id="no-trailing-slashes",
    ),
    pytest.param(
        parse("imageMogr2/thumbnail/400x%7CimageInfo"), "imageMogr2/thumbnail/400x|imageInfo", id="bar-not-encoded"
    ),
]


@pytest.mark.parametrize(("pipeline", "expected"), CANONICAL)
def test_canonical_form(pipeline: A.Pipeline, expected: str) -> None:
    assert render(pipeline) == expected
    assert parse(expected) == pipeline


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param(A.FitBox(4, 3), "4x3", id="geometry"),
        pytest.param(A.CropRegion(1, 2, 3, 4, OffsetMode.SHRINK), "!1x2-3a4", id="crop-geometry"),
        pytest.param(A.Thumbnail(A.FitWidth(4), pad=True), "thumbnail/4x/pad/1", id="thumbnail-with-pad"),
        pytest.param(A.Crop(A.CropBox(2, 2), Gravity.SOUTH), "crop/2x2/gravity/south", id="crop-with-gravity"),
        pytest.param(A.Cut(1, 2, 3, 4, Gravity.EAST), "cut/1x2x3x4/gravity/east", id="cut-with-gravity"),
        pytest.param(A.Cut(1, 2, 3, 4), "cut/1x2x3x4", id="cut"),
        pytest.param(A.Rotate(90), "rotate/90", id="operation"),
        pytest.param(A.AutoOrient(), "auto-orient", id="bare-operation"),
        pytest.param(A.IgnoreError(), "ignore-error/1", id="ignore-error"),
        pytest.param(A.Flip(FlipAxis.VERTICAL), "flip/vertical", id="flip"),
        pytest.param(A.ImageInfo(), "imageInfo", id="step"),
    ],
)
def test_render_a_bare_node(node: A.Node, expected: str) -> None:
    assert render(node) == expected


class Unknown(A.Node):
    """Not a concrete AST class."""


@pytest.mark.parametrize(
    "node",
    [
        pytest.param(A.Node(), id="base-node"),
        pytest.param(Unknown(), id="subclass"),
        pytest.param("imageInfo", id="string"),
        pytest.param(None, id="none"),
    ],
)
def test_unknown_node_type_is_an_invalid_argument(node: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        render(node)  # type: ignore[arg-type]
    assert info.value.message == f"render: unsupported node type {type(node).__name__}"
    assert info.value.maskable is False


def test_every_node_class_has_a_renderer() -> None:
    assert set(A.ALL_NODE_CLASSES) - set(RENDERERS) == set()
    assert set(RENDERERS) - set(A.ALL_NODE_CLASSES) == set()


def test_render_ignores_spans() -> None:
    parsed = parse("imageMogr2/crop/3x3/gravity/center")
    assert render(parsed) == render(A.Pipeline(steps=(A.ImageMogr2(ops=(A.Crop(A.CropBox(3, 3), Gravity.CENTER),)),)))
