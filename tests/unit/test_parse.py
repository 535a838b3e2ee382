"""ci_engine.parse: processing string -> typed AST, and the errors of bad strings."""

from __future__ import annotations

import pytest

from ci_engine import ast as A
from ci_engine.errors import (
    CIError,
    InvalidArgumentError,
    ParseError,
    Span,
    TooManyStepsError,
    ValueRangeError,
)
from ci_engine.parse import MAX_STEPS, decode_text, parse, parse_url
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
WHITE = Color(255, 255, 255)
LOGO = "aHR0cDovL2V4YW1wbGUuY29tL2xvZ28ucG5n"  # http://example.com/logo.png
LOGO_URL = "http://example.com/logo.png"


def one(*steps: A.Step) -> A.Pipeline:
    return A.Pipeline(steps=steps)


def mogr(*ops: A.MogrOp) -> A.Pipeline:
    return one(A.ImageMogr2(ops=ops))


def thumb(geometry: A.ThumbnailGeometry, pad: bool | None = None, color: Color | None = None) -> A.Pipeline:
    return mogr(A.Thumbnail(geometry, pad, color))


def crop(geometry: A.CropGeometry, gravity: Gravity | None = None) -> A.Pipeline:
    return mogr(A.Crop(geometry, gravity))


def case(text: str, expected: A.Pipeline, id: str) -> object:
    return pytest.param(text, expected, id=id)


# -- imageMogr2: the 28 tokens of imagemogr2.md section 1.1 ---------------------------------------

MOGR_TOKENS = [
    case("imageMogr2/thumbnail/400x", thumb(A.FitWidth(400)), "thumbnail"),
    case("imageMogr2/thumbnail/600x500/pad/1", thumb(A.FitBox(600, 500), pad=True), "pad"),
    case("imageMogr2/thumbnail/600x500/pad/0", thumb(A.FitBox(600, 500), pad=False), "pad-0"),
    case(
        "imageMogr2/thumbnail/600x500/pad/1/color/I0ZGMDAwMA",
        thumb(A.FitBox(600, 500), pad=True, color=RED),
        "color",
    ),
    case("imageMogr2/cut/400x300x10x20", mogr(A.Cut(400, 300, 10, 20)), "cut"),
    case("imageMogr2/crop/300x300", crop(A.CropBox(300, 300)), "crop"),
    case("imageMogr2/crop/300x300/gravity/center", crop(A.CropBox(300, 300), Gravity.CENTER), "gravity"),
    case("imageMogr2/iradius/200", mogr(A.IRadius(200)), "iradius"),
    case("imageMogr2/rradius/50", mogr(A.RRadius(50)), "rradius"),
    case("imageMogr2/scrop/300x200", mogr(A.SmartCrop(300, 200)), "scrop"),
    case("imageMogr2/rcrop/0.5x1.2", mogr(A.RatioCrop(0.5, 1.2)), "rcrop"),
    case("imageMogr2/rcrop/1x2", mogr(A.RatioCrop(1.0, 2.0)), "rcrop-integers"),
    case("imageMogr2/rotate/90", mogr(A.Rotate(90)), "rotate"),
    case("imageMogr2/rotate/0", mogr(A.Rotate(0)), "rotate-0"),
    case("imageMogr2/rotate/360", mogr(A.Rotate(360)), "rotate-360"),
    case("imageMogr2/auto-orient", mogr(A.AutoOrient()), "auto-orient"),
    case("imageMogr2/flip/vertical", mogr(A.Flip(FlipAxis.VERTICAL)), "flip"),
    case("imageMogr2/flip/HORIZONTAL", mogr(A.Flip(FlipAxis.HORIZONTAL)), "flip-upper-case"),
    case("imageMogr2/format/webp", mogr(A.Format(OutputFormat.WEBP)), "format"),
    case("imageMogr2/format/jpeg", mogr(A.Format(OutputFormat.JPG)), "format-jpeg-alias"),
    case("imageMogr2/format/yjpeg", mogr(A.Format(OutputFormat.JPG)), "format-yjpeg-alias"),
    case("imageMogr2/format/HEIC", mogr(A.Format(OutputFormat.HEIF)), "format-heic-alias-upper"),
    case("imageMogr2/format/avif", mogr(A.Format(OutputFormat.AVIF)), "format-avif"),
    case("imageMogr2/cgif/40", mogr(A.CGif(40)), "cgif"),
    case("imageMogr2/egif/2", mogr(A.EGif(2)), "egif"),
    case("imageMogr2/interlace/1", mogr(A.Interlace(True)), "interlace"),
    case("imageMogr2/interlace/0", mogr(A.Interlace(False)), "interlace-0"),
    case("imageMogr2/quality/80", mogr(A.Quality(80)), "quality"),
    case("imageMogr2/quality/80!", mogr(A.Quality(80, forced=True)), "quality-forced"),
    case("imageMogr2/rquality/50", mogr(A.RQuality(50)), "rquality"),
    case("imageMogr2/lquality/70", mogr(A.LQuality(70)), "lquality"),
    case("imageMogr2/blur/12x6", mogr(A.Blur(12, 6.0)), "blur"),
    case("imageMogr2/blur/1x0.25", mogr(A.Blur(1, 0.25)), "blur-decimal-sigma"),
    case("imageMogr2/sharpen/70", mogr(A.Sharpen(70)), "sharpen"),
    case("imageMogr2/strip", mogr(A.Strip()), "strip"),
    case("imageMogr2/bright/-20", mogr(A.Bright(-20)), "bright"),
    case("imageMogr2/contrast/30", mogr(A.Contrast(30)), "contrast"),
    case("imageMogr2/grayscale/1", mogr(A.Grayscale(True)), "grayscale"),
    case("imageMogr2/size-limit/15k!", mogr(A.SizeLimit(15, SizeUnit.K, keep_smaller=True)), "size-limit"),
    case("imageMogr2/size-limit/2M", mogr(A.SizeLimit(2, SizeUnit.M)), "size-limit-upper-unit"),
    case("imageMogr2/ignore-error/1", mogr(A.IgnoreError()), "ignore-error"),
    case("imageMogr2", mogr(), "no-operation"),
]

THUMBNAIL_GEOMETRIES = [
    case("imageMogr2/thumbnail/!50p", thumb(A.ScalePercent(50)), "scale-percent"),
    case("imageMogr2/thumbnail/!25px", thumb(A.WidthPercent(25)), "width-percent"),
    case("imageMogr2/thumbnail/!x25p", thumb(A.HeightPercent(25)), "height-percent"),
    case("imageMogr2/thumbnail/600x", thumb(A.FitWidth(600)), "fit-width"),
    case("imageMogr2/thumbnail/x200", thumb(A.FitHeight(200)), "fit-height"),
    case("imageMogr2/thumbnail/600x700", thumb(A.FitBox(600, 700)), "fit-box"),
    case("imageMogr2/thumbnail/600x1000>", thumb(A.ShrinkBox(600, 1000)), "shrink-box"),
    case("imageMogr2/thumbnail/2400x2400<", thumb(A.EnlargeBox(2400, 2400)), "enlarge-box"),
    case("imageMogr2/thumbnail/!600x600r", thumb(A.CoverBox(600, 600)), "cover-box"),
    case("imageMogr2/thumbnail/500x500!", thumb(A.ExactSize(500, 500)), "exact-size"),
    case("imageMogr2/thumbnail/240000@", thumb(A.MaxArea(240000)), "max-area"),
    case("imageMogr2/thumbnail/12000x", thumb(A.FitWidth(12000)), "sizes-keep-the-written-value"),
    case("imageMogr2/thumbnail/007x", thumb(A.FitWidth(7)), "leading-zeros"),
]

CROPS = [
    case("imageMogr2/crop/600x", crop(A.CropWidth(600)), "crop-width"),
    case("imageMogr2/crop/x500", crop(A.CropHeight(500)), "crop-height"),
    case("imageMogr2/crop/400x400", crop(A.CropBox(400, 400)), "crop-box"),
    case(
        "imageMogr2/crop/!260x260a6a22",
        crop(A.CropRegion(260, 260, 6, 22, OffsetMode.MOVE, OffsetMode.MOVE)),
        "legacy-region-moved",
    ),
    case(
        "imageMogr2/crop/!260x260-6-22",
        crop(A.CropRegion(260, 260, 6, 22, OffsetMode.SHRINK, OffsetMode.SHRINK)),
        "legacy-region-shrunk",
    ),
    case(
        "imageMogr2/crop/!260x260a6-22",
        crop(A.CropRegion(260, 260, 6, 22, OffsetMode.MOVE, OffsetMode.SHRINK)),
        "legacy-region-mixed",
    ),
    case(
        "imageMogr2/crop/!260xa0a0",
        crop(A.CropRegion(260, None, 0, 0)),
        "legacy-region-width-only",
    ),
    case(
        "imageMogr2/crop/!x260-5a7",
        crop(A.CropRegion(None, 260, 5, 7, OffsetMode.SHRINK, OffsetMode.MOVE)),
        "legacy-region-height-only",
    ),
    case(
        "imageMogr2/crop/%21260x260a6a22",
        crop(A.CropRegion(260, 260, 6, 22)),
        "legacy-region-percent-encoded-bang",
    ),
]

BINDINGS = [
    case(
        "imageMogr2/gravity/center/crop/300x300",
        crop(A.CropBox(300, 300), Gravity.CENTER),
        "gravity-before-crop",
    ),
    case(
        "imageMogr2/crop/300x300/gravity/center",
        crop(A.CropBox(300, 300), Gravity.CENTER),
        "gravity-after-crop",
    ),
    case(
        "imageMogr2/crop/300x300/gravity/SouthEast",
        crop(A.CropBox(300, 300), Gravity.SOUTH_EAST),
        "gravity-any-case",
    ),
    case(
        "imageMogr2/cut/400x300x10x20/gravity/southeast",
        mogr(A.Cut(400, 300, 10, 20, Gravity.SOUTH_EAST)),
        "gravity-of-cut",
    ),
    case(
        "imageMogr2/crop/300x300/gravity/south/crop/200x200",
        mogr(A.Crop(A.CropBox(300, 300)), A.Crop(A.CropBox(200, 200), Gravity.SOUTH)),
        "two-crops-gravity-binds-to-the-following-one",
    ),
    case(
        "imageMogr2/gravity/north/crop/300x300/crop/200x200/gravity/south",
        mogr(A.Crop(A.CropBox(300, 300), Gravity.NORTH), A.Crop(A.CropBox(200, 200), Gravity.SOUTH)),
        "two-crops-each-with-its-gravity",
    ),
    case(
        "imageMogr2/crop/300x300/thumbnail/100x/gravity/east",
        mogr(A.Crop(A.CropBox(300, 300), Gravity.EAST), A.Thumbnail(A.FitWidth(100))),
        "gravity-skips-other-operations",
    ),
    case(
        "imageMogr2/gravity/north/gravity/west/crop/10x10",
        crop(A.CropBox(10, 10), Gravity.WEST),
        "later-gravity-overrides",
    ),
    case(
        "imageMogr2/gravity/center/thumbnail/400x",
        thumb(A.FitWidth(400)),
        "gravity-without-crop-is-dropped",
    ),
    case(
        "imageMogr2/pad/1/color/I0ZGMDAwMA/thumbnail/600x500",
        thumb(A.FitBox(600, 500), pad=True, color=RED),
        "pad-and-color-before-thumbnail",
    ),
    case(
        "imageMogr2/thumbnail/600x500/color/I0ZGMDAwMA==/pad/1",
        thumb(A.FitBox(600, 500), pad=True, color=RED),
        "color-padded-base64-then-pad",
    ),
    case(
        "imageMogr2/thumbnail/600x500/color/I0ZGRg",
        thumb(A.FitBox(600, 500), color=WHITE),
        "color-short-hex",
    ),
    case("imageMogr2/thumbnail/1x1/color/RkYwMDAw", thumb(A.FitBox(1, 1), color=RED), "color-without-hash"),
    case("imageMogr2/thumbnail/1x1/color/cmVk", thumb(A.FitBox(1, 1), color=RED), "color-css-name"),
    case(
        "imageMogr2/thumbnail/100x/pad/1/thumbnail/200x",
        mogr(A.Thumbnail(A.FitWidth(100)), A.Thumbnail(A.FitWidth(200), pad=True)),
        "pad-binds-to-the-following-thumbnail",
    ),
    case(
        "imageMogr2/crop/10x10/pad/1",
        crop(A.CropBox(10, 10)),
        "pad-without-thumbnail-is-dropped",
    ),
    case(
        "imageMogr2/format/webp/interlace/1/quality/60/thumbnail/1200x",
        mogr(
            A.Format(OutputFormat.WEBP),
            A.Interlace(True),
            A.Quality(60),
            A.Thumbnail(A.FitWidth(1200)),
        ),
        "operations-stay-in-written-order",
    ),
]

VIEW2 = [
    case("imageView2/0/w/1280/h/960", one(A.ImageView2(mode=0, width=1280, height=960)), "mode-0"),
    case("imageView2/1/w/300/h/300", one(A.ImageView2(mode=1, width=300, height=300)), "mode-1"),
    case("imageView2/2/w/300", one(A.ImageView2(mode=2, width=300)), "mode-2"),
    case("imageView2/3/h/300", one(A.ImageView2(mode=3, height=300)), "mode-3"),
    case("imageView2/4/w/600/h/300", one(A.ImageView2(mode=4, width=600, height=300)), "mode-4"),
    case("imageView2/5/h/300/w/600", one(A.ImageView2(mode=5, width=600, height=300)), "mode-5-any-key-order"),
    case("imageView2/format/png", one(A.ImageView2(format=OutputFormat.PNG)), "mode-less"),
    case("imageView2", one(A.ImageView2()), "bare"),
    case("imageView2/2/w/100/w/200", one(A.ImageView2(mode=2, width=200)), "repeated-key-last-wins"),
    case(
        "imageView2/2/q/90!/q/70",
        one(A.ImageView2(mode=2, quality=70, quality_forced=False)),
        "repeated-quality-last-wins-with-its-bang",
    ),
    case(
        "imageView2/2/w/300/q/75!/rq/50/lq/60/interlace/1/ignore-error/1",
        one(
            A.ImageView2(
                mode=2,
                width=300,
                quality=75,
                quality_forced=True,
                rquality=50,
                lquality=60,
                interlace=True,
                ignore_error_flag=True,
            )
        ),
        "every-key",
    ),
    case("IMAGEVIEW2/1/w/1/", one(A.ImageView2(mode=1, width=1)), "keyword-any-case-trailing-slash"),
]

WATERMARKS = [
    case(
        f"watermark/1/image/{LOGO}",
        one(A.ImageWatermark(image=LOGO_URL)),
        "image-defaults-unset",
    ),
    case(
        f"watermark/1/image/{LOGO}/gravity/northwest/dx/16/dy/-16/blogo/2/scatype/3/spcent/250"
        "/dissolve/70/batch/1/degree/45/spacing/20",
        one(
            A.ImageWatermark(
                image=LOGO_URL,
                gravity=Gravity.NORTH_WEST,
                dx=16,
                dy=-16,
                blogo=BlogoMode.CROP,
                scatype=ScaleType.AREA,
                spcent=250,
                dissolve=70,
                batch=True,
                degree=45,
                spacing=20,
            )
        ),
        "image-every-key",
    ),
    case(
        "watermark/2/text/wqkgRGVtbw",
        one(A.TextWatermark(text="© Demo")),
        "text-base64-unpadded",
    ),
    case(
        "watermark/2/text/wqkgRGVtbw==",
        one(A.TextWatermark(text="© Demo")),
        "text-base64-padded",
    ),
    case("watermark/2/text/YWI=/", one(A.TextWatermark(text="ab")), "text-one-pad-char-trailing-slash"),
    case("watermark/2/text/YQ/text/Yg", one(A.TextWatermark(text="b")), "repeated-key-last-wins"),
    case(
        "watermark/2/text/wqkgRGVtbw/font/c2ltaGVpLnR0Zg/fontsize/24/fill/I0ZGRkZGRg/shadow/50"
        "/gravity/south/dx/0/dy/24/scatype/1/spcent/1000",
        one(
            A.TextWatermark(
                text="© Demo",
                font=Font.SIMHEI,
                fontsize=24,
                fill=WHITE,
                shadow=50,
                gravity=Gravity.SOUTH,
                dx=0,
                dy=24,
                scatype=ScaleType.WIDTH,
                spcent=1000,
            )
        ),
        "text-every-key",
    ),
    case(
        "watermark/2/text/YQ/font/U1RIZWl0aS1MaWdodC50dGM=",
        one(A.TextWatermark(text="a", font=Font.STHEITI_LIGHT)),
        "font-spelled-with-hyphen",
    ),
    case(
        "watermark/2/text/YQ/font/5bm85ZyGLlRURg",
        one(A.TextWatermark(text="a", font=Font.YOUYUAN)),
        "font-chinese-name",
    ),
    case(
        "watermark/3/type/3/text/T3JkZXIxMDA3",
        one(A.BlindWatermark(type=BlindType.TEXT, text="Order1007")),
        "blind-text",
    ),
    case(
        "watermark/3/type/1/image/aHR0cDovL2V4YW1wbGUuY29tL2xvZ28ucG5n",
        one(A.BlindWatermark(type=BlindType.SEMI_BLIND, image=LOGO_URL)),
        "blind-semi-image",
    ),
    case(
        "watermark/3/type/3/text/wqkgRGVtbw/version/3.0",
        one(A.BlindWatermark(type=BlindType.TEXT, text="© Demo", version="3.0")),
        "blind-text-version-3",
    ),
    case(
        f"watermark/4/type/2/image/{LOGO}/version/2.0",
        one(A.ExtractBlindWatermark(type=BlindType.BLIND, image=LOGO_URL, version="2.0")),
        "extract-blind",
    ),
    case(
        "watermark/4/type/3",
        one(A.ExtractBlindWatermark(type=BlindType.TEXT)),
        "extract-blind-text",
    ),
    case("Watermark/2/text/YQ", one(A.TextWatermark(text="a")), "keyword-any-case"),
]

OTHER_STEPS = [
    case("imageInfo", one(A.ImageInfo()), "image-info"),
    case("exif", one(A.Exif()), "exif"),
    case("imageAve", one(A.ImageAve()), "image-ave"),
    case("imageSlim", one(A.ImageSlim()), "image-slim"),
    case("imageInspect/", one(A.ImageInspect()), "image-inspect-trailing-slash"),
    case("style/card", one(A.StyleRef("card")), "style"),
    case("style/my_style-2.v1", one(A.StyleRef("my_style-2.v1")), "style-punctuation"),
    case("QRcode", one(A.QRCode()), "qrcode-bare"),
    case("QRcode/cover/1/bar-type/1", one(A.QRCode(cover=True, bar_type=1)), "qrcode"),
    case(
        "QRcode/cover/0/bar-type/0/segment/1/size/1000",
        one(A.QRCode(cover=False, bar_type=0, segment=1, size=1000)),
        "qrcode-every-key",
    ),
    case(
        "ci-process=AIImageCrop&width=16&height=9&ignore-error=1",
        one(
            A.CiProcess(
                CiProcessName.AI_IMAGE_CROP,
                (("width", "16"), ("height", "9"), ("ignore-error", "1")),
            )
        ),
        "ci-process-with-params",
    ),
    case("ci-process=qrcode", one(A.CiProcess(CiProcessName.QRCODE)), "ci-process-name-any-case"),
    case(
        "ci-process=QRcode&cover&empty=&text=a%26b%7Cc%20d",
        one(A.CiProcess(CiProcessName.QRCODE, (("cover", None), ("empty", ""), ("text", "a&b|c d")))),
        "ci-process-values-decoded-one-by-one",
    ),
]

PIPELINES = [
    case(
        "imageMogr2/thumbnail/800x|imageMogr2/rotate/270|imageMogr2/format/webp",
        one(
            A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(800)),)),
            A.ImageMogr2(ops=(A.Rotate(270),)),
            A.ImageMogr2(ops=(A.Format(OutputFormat.WEBP),)),
        ),
        "three-steps",
    ),
    case(
        "style/card|imageMogr2/format/webp",
        one(A.StyleRef("card"), A.ImageMogr2(ops=(A.Format(OutputFormat.WEBP),))),
        "style-then-step",
    ),
    case("imageMogr2/strip/", mogr(A.Strip()), "trailing-slash"),
    case(
        "imageMogr2/thumbnail/400x/|imageInfo/",
        one(A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(400)),)), A.ImageInfo()),
        "trailing-slashes-in-steps",
    ),
    case(
        "imageMogr2/thumbnail/400x%7CimageInfo",
        one(A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(400)),)), A.ImageInfo()),
        "percent-encoded-bar",
    ),
    case(
        "imageMogr2/thumbnail/400x%257CimageInfo",
        one(A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(400)),)), A.ImageInfo()),
        "double-encoded-bar",
    ),
    case("imageMogr2/thumbnail/%2150p", thumb(A.ScalePercent(50)), "percent-encoded-bang"),
    case("imageMogr2%2Fthumbnail%2F400x300%3E", thumb(A.ShrinkBox(400, 300)), "encoded-slashes"),
    case("imageMogr2/thumbnail/400x300%3C", thumb(A.EnlargeBox(400, 300)), "encoded-less-than"),
    case("imagemogr2/strip", mogr(A.Strip()), "lower-case-keyword"),
    case("  imageInfo\n", one(A.ImageInfo()), "surrounding-whitespace"),
    case("|".join(["imageInfo"] * MAX_STEPS), one(*[A.ImageInfo()] * MAX_STEPS), "ten-steps"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    MOGR_TOKENS + THUMBNAIL_GEOMETRIES + CROPS + BINDINGS + VIEW2 + WATERMARKS + OTHER_STEPS + PIPELINES,
)
def test_parse(text: str, expected: A.Pipeline) -> None:
    assert parse(text) == expected


MOGR2_TOKENS = {
    "thumbnail",
    "pad",
    "color",
    "cut",
    "crop",
    "gravity",
    "iradius",
    "rradius",
    "scrop",
    "rcrop",
    "rotate",
    "auto-orient",
    "flip",
    "format",
    "cgif",
    "egif",
    "interlace",
    "quality",
    "rquality",
    "lquality",
    "blur",
    "sharpen",
    "strip",
    "bright",
    "contrast",
    "grayscale",
    "size-limit",
    "ignore-error",
}


def test_the_table_covers_every_imagemogr2_token() -> None:
    assert len(MOGR2_TOKENS) == 28
    words = {word for param in MOGR_TOKENS for word in param.values[0].split("/")}  # type: ignore[attr-defined]
    assert MOGR2_TOKENS - words == set()


def test_the_table_covers_every_thumbnail_geometry() -> None:
    classes = {type(p.values[1].steps[0].ops[0].geometry) for p in THUMBNAIL_GEOMETRIES}  # type: ignore[attr-defined]
    assert classes == set(A.THUMBNAIL_GEOMETRIES)


# -- spans ----------------------------------------------------------------------------------------


def test_spans_locate_every_node() -> None:
    text = "imageMogr2/thumbnail/400x/crop/300x300|imageInfo"
    pipeline = parse(text)
    mogr_step, info = pipeline.steps
    assert isinstance(mogr_step, A.ImageMogr2)
    thumbnail, crop_op = mogr_step.ops
    assert isinstance(thumbnail, A.Thumbnail)
    assert isinstance(crop_op, A.Crop)
    assert pipeline.span == Span(0, len(text))
    assert text[slice(*mogr_step.span)] == "imageMogr2/thumbnail/400x/crop/300x300"  # type: ignore[misc]
    assert text[slice(*thumbnail.span)] == "thumbnail/400x"  # type: ignore[misc]
    assert text[slice(*thumbnail.geometry.span)] == "400x"  # type: ignore[misc]
    assert text[slice(*crop_op.span)] == "crop/300x300"  # type: ignore[misc]
    assert text[slice(*info.span)] == "imageInfo"  # type: ignore[misc]


def test_a_bound_modifier_keeps_the_span_of_its_operation() -> None:
    text = "imageMogr2/gravity/center/crop/300x300"
    (step,) = parse(text).steps
    assert isinstance(step, A.ImageMogr2)
    (op,) = step.ops
    assert op.span == Span(26, 38)


# -- errors ---------------------------------------------------------------------------------------


def bad(text: str, cls: type[CIError], column: int | None, message: str, id: str) -> object:
    return pytest.param(text, cls, column, message, id=id)


SYNTAX_ERRORS = [
    bad("imageMogr2/thumbnil/400x", ParseError, 12, "unexpected 'thumbnil'; did you mean 'thumbnail'?", "misspelt-op"),
    bad("imageMogr2/fromat/png", ParseError, 12, "did you mean 'format'?", "misspelt-format"),
    bad("imageView/2/w/1", ParseError, 1, "did you mean 'imageView2'?", "misspelt-keyword"),
    bad("imageMogr2/thumbnail", ParseError, 21, "unexpected end of string; expected '/'", "missing-value"),
    bad("imageMogr2/thumbnail/", ParseError, 22, "unexpected end of string", "missing-geometry"),
    bad("imageMogr2/thumbnail/400", ParseError, 25, "expected one of: '@', 'x'", "incomplete-geometry"),
    bad("imageMogr2/thumbnail/400y", ParseError, 25, "unexpected 'y'", "bad-geometry-suffix"),
    bad("imageMogr2/rotate/abc", ParseError, 19, "unexpected 'abc'; expected an integer", "non-numeric"),
    bad("imageMogr2/rquality/50!", ParseError, 23, "unexpected '!'", "bang-only-on-quality"),
    bad("imageMogr2/format/pnj", ParseError, 19, "expected a format name", "unknown-format"),
    bad("imageMogr2/gravity/centre", ParseError, 20, "expected a gravity", "unknown-gravity"),
    bad("imageMogr2/flip/diagonal", ParseError, 17, "vertical or horizontal", "unknown-flip-axis"),
    bad("imageMogr2//strip", ParseError, 12, "unexpected '/'", "double-slash"),
    bad("imageInfo||exif", ParseError, 11, "empty step between two '|'; remove the extra '|'", "empty-step"),
    bad("|imageInfo", ParseError, 1, "empty step at the start of the string; remove the extra '|'", "leading-bar"),
    bad(
        "imageMogr2/thumbnail/400x|",
        ParseError,
        26,
        "empty step at the end of the string; remove the extra '|'",
        "trailing-bar",
    ),
    bad("imageInfo/x", ParseError, 11, "unexpected 'x'", "bare-keyword-with-value"),
    bad("watermark/5/text/YQ", ParseError, 11, "expected one of: '1', '2', '3', '4'", "unknown-watermark-mode"),
    bad("watermark/1/image/YQ/text/YQ", ParseError, 22, "unexpected 'text'", "text-key-on-image-watermark"),
    bad("watermark/4/type/1/image/YQ/level/1", ParseError, 29, "unexpected 'level'", "level-key-on-extraction"),
    bad("watermark/2/text/@@@", ParseError, 18, "expected a URL-safe Base64 value", "not-base64-alphabet"),
    bad("imageView2/1/colors/3", ParseError, 14, "unexpected 'colors'", "unknown-view-key"),
    bad("", ParseError, 1, "unexpected end of string", "empty"),
    bad("ci-process=QRcode|imageInfo", ParseError, 18, "unexpected '|'", "ci-process-chained"),
    bad("imageInfo|ci-process=QRcode", ParseError, 11, "unexpected 'ci-process=QRcode'", "chained-before-ci-process"),
    bad("ci-process=Qrcodee", ParseError, 12, "did you mean 'QRcode'?", "unknown-ci-process"),
    bad(
        "imageMogr2/ignore-error/2",
        InvalidArgumentError,
        25,
        "ignore-error: value must be 1 (mask) or 0 (do not mask), got '2'",
        "ignore-error-2",
    ),
    bad(
        "imageView2/2/ignore-error/3",
        InvalidArgumentError,
        14,
        "imageView2: ignore-error must be 1 (mask) or 0 (do not mask)",
        "view-ignore-error-3",
    ),
    bad("watermark/2/text/Y", InvalidArgumentError, 13, "text must be URL-safe Base64", "truncated-base64"),
    bad("watermark/2/text/_w", InvalidArgumentError, 13, "text must be URL-safe Base64 of UTF-8", "base64-of-non-utf8"),
    bad("watermark/1/image/Y", InvalidArgumentError, 13, "image must be URL-safe Base64", "bad-image-base64"),
    bad("watermark/2/text/YQ/fill/eHl6", InvalidArgumentError, 21, "fill must encode #RRGGBB", "bad-fill-colour"),
    bad("imageMogr2/thumbnail/1x1/color/eHl6", InvalidArgumentError, 26, "color must encode #RRGGBB", "bad-pad-colour"),
    bad("imageMogr2/thumbnail/1x1/color/Y", InvalidArgumentError, 26, "URL-safe Base64", "bad-colour-base64"),
    bad("watermark/1/gravity/north", InvalidArgumentError, 1, "the image parameter is required", "image-required"),
    bad("watermark/2/fontsize/1", InvalidArgumentError, 1, "the text parameter is required", "text-required"),
    bad("watermark/3/image/YQ", InvalidArgumentError, 1, "the type parameter is required", "type-required"),
    bad("watermark/3/type/1", InvalidArgumentError, 1, "image must be given for type 1", "blind-image-required"),
    bad("watermark/3/type/3", InvalidArgumentError, 1, "text must be given for type 3", "blind-text-required"),
    bad("watermark/4/type/2", InvalidArgumentError, 1, "image must be given for type 2", "extract-image-required"),
    bad(
        "watermark/1/image/YQ/scatype/1",
        InvalidArgumentError,
        1,
        "scatype/spcent must be given together",
        "scatype-alone",
    ),
    bad(
        "watermark/2/text/YQ/spcent/10",
        InvalidArgumentError,
        1,
        "scatype/spcent must be given together",
        "spcent-alone",
    ),
    bad("watermark/3/type/3/text/YS1i", InvalidArgumentError, 20, "ASCII letters and digits", "blind-text-not-alnum"),
    bad("style/" + "a" * 65, InvalidArgumentError, 7, "style: name must be 1-64 characters", "style-name-too-long"),
]

RANGE_ERRORS = [
    bad(
        "imageMogr2/thumbnail/!0p",
        ValueRangeError,
        23,
        "percent must be an integer between 1 and 1000, got 0",
        "scale-percent",
    ),
    bad("imageMogr2/thumbnail/!1001px", ValueRangeError, 23, "between 1 and 1000, got 1001", "width-percent"),
    bad("imageMogr2/thumbnail/!x0p", ValueRangeError, 24, "between 1 and 1000, got 0", "height-percent"),
    bad("imageMogr2/thumbnail/0x", ValueRangeError, 22, "thumbnail: width must be an integer between 1", "fit-width"),
    bad("imageMogr2/thumbnail/x0", ValueRangeError, 23, "thumbnail: height must be", "fit-height"),
    bad("imageMogr2/thumbnail/0x10", ValueRangeError, 22, "thumbnail: width must be", "fit-box-width"),
    bad("imageMogr2/thumbnail/10x0>", ValueRangeError, 25, "thumbnail: height must be", "shrink-box-height"),
    bad("imageMogr2/thumbnail/10x0<", ValueRangeError, 25, "thumbnail: height must be", "enlarge-box-height"),
    bad("imageMogr2/thumbnail/!0x10r", ValueRangeError, 23, "thumbnail: width must be", "cover-box-width"),
    bad("imageMogr2/thumbnail/10x0!", ValueRangeError, 25, "thumbnail: height must be", "exact-size-height"),
    bad("imageMogr2/thumbnail/0@", ValueRangeError, 22, "thumbnail: area must be", "max-area"),
    bad("imageMogr2/thumbnail/2147483648x", ValueRangeError, 22, "got 2147483648", "size-over-2-31"),
    bad("imageMogr2/thumbnail/" + "1" * 101 + "x", ValueRangeError, 22, "at most 100 digits", "size-101-digits"),
    bad("imageMogr2/thumbnail/10x10/pad/2", ValueRangeError, 28, "pad must be 0 or 1, got 2", "pad"),
    bad("imageMogr2/cut/0x1x0x0", ValueRangeError, 16, "cut: width must be", "cut-width"),
    bad("imageMogr2/cut/1x0x0x0", ValueRangeError, 18, "cut: height must be", "cut-height"),
    bad("imageMogr2/cut/1x1x2147483648x0", ValueRangeError, 20, "cut: dx must be", "cut-dx"),
    bad("imageMogr2/cut/1x1x0x2147483648", ValueRangeError, 22, "cut: dy must be", "cut-dy"),
    bad("imageMogr2/crop/0x", ValueRangeError, 17, "crop: width must be", "crop-width"),
    bad("imageMogr2/crop/x0", ValueRangeError, 18, "crop: height must be", "crop-height"),
    bad("imageMogr2/crop/1x0", ValueRangeError, 19, "crop: height must be", "crop-box-height"),
    bad("imageMogr2/crop/!0x1a0a0", ValueRangeError, 17, "crop: width must be", "crop-region-width"),
    bad("imageMogr2/crop/!1xa2147483648a0", ValueRangeError, 17, "crop: dx must be", "crop-region-dx"),
    bad("imageMogr2/iradius/0", ValueRangeError, 20, "iradius: radius must be", "iradius"),
    bad("imageMogr2/rradius/0", ValueRangeError, 20, "rradius: radius must be", "rradius"),
    bad("imageMogr2/scrop/0x1", ValueRangeError, 18, "scrop: width must be", "scrop-width"),
    bad("imageMogr2/scrop/1x0", ValueRangeError, 20, "scrop: height must be", "scrop-height"),
    bad("imageMogr2/rcrop/0x1", ValueRangeError, 18, "greater than 0 and at most 10000, got 0.0", "rcrop-min-zero"),
    bad("imageMogr2/rcrop/1x10001", ValueRangeError, 20, "max_ratio must be", "rcrop-max"),
    bad(
        "imageMogr2/rcrop/2x1", ValueRangeError, 18, "min_ratio must be at most max_ratio (1.0), got 2.0", "rcrop-order"
    ),
    bad("imageMogr2/rotate/361", ValueRangeError, 19, "between 0 and 360, got 361", "rotate-361"),
    bad("imageMogr2/rotate/-1", ValueRangeError, 19, "between 0 and 360, got -1", "rotate-negative"),
    bad("imageMogr2/cgif/0", ValueRangeError, 17, "between 1 and 100, got 0", "cgif-0"),
    bad("imageMogr2/cgif/101", ValueRangeError, 17, "between 1 and 100, got 101", "cgif-101"),
    bad("imageMogr2/egif/0", ValueRangeError, 17, "between 1 and 300, got 0", "egif-0"),
    bad("imageMogr2/egif/301", ValueRangeError, 17, "between 1 and 300, got 301", "egif-301"),
    bad("imageMogr2/interlace/2", ValueRangeError, 22, "interlace: enabled must be 0 or 1, got 2", "interlace"),
    bad(
        "imageMogr2/quality/101", ValueRangeError, 20, "quality: value must be an integer between 0 and 100", "quality"
    ),
    bad("imageMogr2/quality/101!", ValueRangeError, 20, "got 101", "quality-forced"),
    bad("imageMogr2/rquality/101", ValueRangeError, 21, "rquality: value must be", "rquality"),
    bad("imageMogr2/lquality/101", ValueRangeError, 21, "lquality: value must be", "lquality"),
    bad(
        "imageMogr2/blur/0x1", ValueRangeError, 17, "blur: radius must be an integer between 1 and 50", "blur-radius-0"
    ),
    bad("imageMogr2/blur/51x1", ValueRangeError, 17, "got 51", "blur-radius-51"),
    bad("imageMogr2/blur/1x0", ValueRangeError, 19, "blur: sigma must be a number greater than 0", "blur-sigma-0"),
    bad("imageMogr2/blur/1x50.5", ValueRangeError, 19, "got 50.5", "blur-sigma-over-50"),
    bad("imageMogr2/sharpen/9", ValueRangeError, 20, "between 10 and 300, got 9", "sharpen-9"),
    bad("imageMogr2/sharpen/301", ValueRangeError, 20, "got 301", "sharpen-301"),
    bad("imageMogr2/bright/101", ValueRangeError, 19, "between -100 and 100, got 101", "bright-101"),
    bad("imageMogr2/bright/-101", ValueRangeError, 19, "got -101", "bright-minus-101"),
    bad("imageMogr2/contrast/-101", ValueRangeError, 21, "contrast: value must be", "contrast"),
    bad("imageMogr2/grayscale/2", ValueRangeError, 22, "grayscale: enabled must be 0 or 1", "grayscale"),
    bad("imageMogr2/size-limit/0k", ValueRangeError, 23, "size-limit: size must be", "size-limit"),
    bad("imageView2/6", ValueRangeError, 12, "mode must be an integer between 0 and 5, got 6", "view-mode"),
    bad("imageView2/1/w/0", ValueRangeError, 14, "imageView2: w must be", "view-w"),
    bad("imageView2/1/h/0", ValueRangeError, 14, "imageView2: h must be", "view-h"),
    bad("imageView2/1/q/101", ValueRangeError, 14, "imageView2: q must be", "view-q"),
    bad("imageView2/1/rq/101", ValueRangeError, 14, "imageView2: rq must be", "view-rq"),
    bad("imageView2/1/lq/101", ValueRangeError, 14, "imageView2: lq must be", "view-lq"),
    bad("imageView2/1/interlace/2", ValueRangeError, 14, "imageView2: interlace must be 0 or 1", "view-interlace"),
    bad(
        "watermark/1/image/YQ/dissolve/0",
        ValueRangeError,
        22,
        "dissolve must be an integer between 1 and 100",
        "dissolve-0",
    ),
    bad("watermark/2/text/YQ/dissolve/101", ValueRangeError, 21, "got 101", "dissolve-101"),
    bad("watermark/1/image/YQ/degree/361", ValueRangeError, 22, "degree must be", "degree"),
    bad("watermark/1/image/YQ/spacing/101", ValueRangeError, 22, "spacing must be", "spacing"),
    bad("watermark/1/image/YQ/batch/2", ValueRangeError, 22, "batch must be 0 or 1", "batch"),
    bad("watermark/1/image/YQ/blogo/3", ValueRangeError, 22, "blogo must be one of 1, 2", "blogo"),
    bad("watermark/1/image/YQ/scatype/4/spcent/1", ValueRangeError, 22, "scatype must be one of 1, 2, 3", "scatype"),
    bad("watermark/1/image/YQ/scatype/1/spcent/1001", ValueRangeError, 32, "between 1 and 1000", "spcent-1001"),
    bad(
        "watermark/1/image/YQ/scatype/3/spcent/251",
        ValueRangeError,
        32,
        "between 1 and 250, got 251",
        "spcent-area-251",
    ),
    bad("watermark/1/image/YQ/scatype/2/spcent/0", ValueRangeError, 32, "got 0", "spcent-0"),
    bad("watermark/1/image/YQ/dx/2147483648", ValueRangeError, 22, "dx must be an integer <= 2147483647", "dx"),
    bad("watermark/1/image/YQ/dy/-2147483648", ValueRangeError, 22, "dy must be an integer >= -2147483647", "dy"),
    bad(
        "watermark/2/text/YQ/fontsize/0",
        ValueRangeError,
        21,
        "fontsize must be an integer between 1 and 1000",
        "fontsize-0",
    ),
    bad("watermark/2/text/YQ/fontsize/1001", ValueRangeError, 21, "got 1001", "fontsize-1001"),
    bad("watermark/2/text/YQ/shadow/101", ValueRangeError, 21, "shadow must be", "shadow"),
    bad(
        "watermark/2/text/YQ/font/eHl6", ValueRangeError, 21, "font must be one of the documented fonts", "unknown-font"
    ),
    bad("watermark/2/text/" + "YWFh" * 334, ValueRangeError, 13, "at most 1000 characters long", "text-too-long"),
    bad("watermark/3/type/4/image/YQ", ValueRangeError, 13, "type must be one of 1, 2, 3", "blind-type"),
    bad(
        "watermark/3/type/2/image/YQ/level/4", ValueRangeError, 29, "level must be an integer between 0 and 3", "level"
    ),
    bad(
        "watermark/3/type/2/image/YQ/version/3.0",
        ValueRangeError,
        29,
        "version must be 1.0 or 2.0 for type 2",
        "version",
    ),
    bad(
        "watermark/3/type/2/image/YQ/version/2.0/level/1",
        ValueRangeError,
        41,
        "level must be absent for type 2 version 2.0 (a level exists for type 2 version 1.0)",
        "level-without-strength",
    ),
    bad("QRcode/segment/2", ValueRangeError, 8, "segment must be an integer between 0 and 1", "qr-segment"),
    bad("QRcode/size/499", ValueRangeError, 8, "size must be an integer between 500 and", "qr-size"),
    bad("QRcode/cover/2", ValueRangeError, 8, "cover must be 0 or 1", "qr-cover"),
    bad("QRcode/bar-type/3", ValueRangeError, 8, "bar-type must be an integer between 0 and 2", "qr-bar-type"),
    bad("|".join(["imageInfo"] * 11), TooManyStepsError, 101, "at most 10 steps are allowed, got 11", "eleven-steps"),
]


def _raise(text: str) -> CIError:
    with pytest.raises(CIError) as info:
        parse(text)
    return info.value


@pytest.mark.parametrize(("text", "cls", "column", "message"), SYNTAX_ERRORS + RANGE_ERRORS)
def test_error(text: str, cls: type[CIError], column: int | None, message: str) -> None:
    error = _raise(text)
    assert type(error) is cls
    assert error.code == "InvalidArgument"
    assert error.status == 400
    assert error.x_errno == -60998
    assert error.column == column
    assert message in error.message
    assert error.maskable is (cls in (ValueRangeError, TooManyStepsError))
    assert error.masked is False  # no ignore-error/1 in these strings
    assert error.text is not None


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        pytest.param("imageMogr2/blur/80x5/ignore-error/1", True, id="range-error-with-ignore-error"),
        pytest.param("imageMogr2/ignore-error/1/blur/80x5", True, id="ignore-error-written-first"),
        pytest.param("imageMogr2/blur/80x5|imageMogr2/ignore-error/1", True, id="ignore-error-in-another-step"),
        pytest.param("imageView2/6/ignore-error/1", True, id="view-ignore-error"),
        pytest.param("imageMogr2/blur/80x5/ignore-error%2F1", True, id="encoded-ignore-error"),
        pytest.param("|".join(["imageInfo"] * 10 + ["imageMogr2/ignore-error/1"]), True, id="eleven-steps"),
        pytest.param("imageMogr2/blur/80x5", False, id="range-error-alone"),
        pytest.param("imageMogr2/blur/80x5/ignore-error/10", False, id="ignore-error-10-is-not-1"),
        pytest.param("imageMogr2/thumbnil/1x/ignore-error/1", False, id="syntax-error-never-masked"),
        pytest.param("watermark/2/text/_w|imageMogr2/ignore-error/1", False, id="bad-base64-never-masked"),
        pytest.param("watermark/3/type/1|imageMogr2/ignore-error/1", False, id="missing-key-never-masked"),
        pytest.param("imageMogr2/ignore-error/1/ignore-error/2", False, id="ignore-error-2-never-masked"),
        pytest.param("imageMogr2/blur/80x5/bogus/ignore-error/1", False, id="syntax-error-after-a-range-error"),
        pytest.param("imageMogr2/blur/80x5/ignore-error/1|", False, id="trailing-bar-after-a-range-error"),
    ],
)
def test_masked_only_with_ignore_error_and_a_maskable_error(text: str, masked: bool) -> None:
    assert _raise(text).masked is masked


@pytest.mark.parametrize(
    ("text", "column"),
    [
        pytest.param("imageMogr2/blur/80x5/bogus/ignore-error/1", 22, id="syntax-error-after"),
        pytest.param("imageMogr2/blur/80x5/ignore-error/1/bogus", 37, id="syntax-error-at-the-end"),
        pytest.param("watermark/2/text/_w/fontsize/0/x", 32, id="syntax-error-after-bad-base64"),
    ],
)
def test_a_syntax_error_anywhere_wins_over_a_value_error(text: str, column: int) -> None:
    error = _raise(text)
    assert type(error) is ParseError
    assert error.column == column
    assert error.masked is False


def test_too_many_steps_points_at_the_eleventh_step() -> None:
    text = "|".join(["imageInfo"] * 10 + ["exif"])
    error = _raise(text)
    assert isinstance(error, TooManyStepsError)
    assert error.limit == 10
    assert error.actual == 11
    assert text[error.span.start : error.span.end] == "exif"  # type: ignore[union-attr]


def test_max_steps_is_configurable() -> None:
    assert len(parse("imageInfo|exif|imageAve", max_steps=3).steps) == 3
    with pytest.raises(TooManyStepsError) as info:
        parse("imageInfo|exif|imageAve", max_steps=2)
    assert info.value.column == 16


def test_syntax_error_lists_what_was_expected() -> None:
    error = _raise("imageMogr2/thumbnail/400")
    assert isinstance(error, ParseError)
    assert error.token == ""
    assert error.expected_tokens == ("'@'", "'x'")


def test_syntax_error_names_the_offending_token() -> None:
    error = _raise("imageMogr2/rotate/abc/strip")
    assert isinstance(error, ParseError)
    assert error.token == "abc"
    assert error.span == Span(18, 21)
    assert error.caret == "imageMogr2/rotate/abc/strip\n                  ^^^"


def test_range_error_names_op_field_and_values() -> None:
    error = _raise("imageMogr2/blur/80x5")
    assert isinstance(error, ValueRangeError)
    assert (error.op, error.field, error.actual) == ("blur", "radius", 80)
    assert error.expected == "an integer between 1 and 50"
    assert error.message == "blur: radius must be an integer between 1 and 50, got 80"


def test_errors_are_located_in_the_decoded_string() -> None:
    error = _raise("imageMogr2%2Fblur%2F80x5")
    assert error.text == "imageMogr2/blur/80x5"
    assert error.column == 17


# -- entry points ---------------------------------------------------------------------------------


def test_parse_accepts_bytes() -> None:
    assert parse(b"imageMogr2/thumbnail/400x") == thumb(A.FitWidth(400))


def test_parse_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(ParseError, match="not UTF-8"):
        parse(b"imageInfo\xff")


@pytest.mark.parametrize("value", [None, 3, ["imageInfo"], bytearray(b"imageInfo")], ids=repr)
def test_parse_refuses_non_strings(value: object) -> None:
    with pytest.raises(TypeError) as info:  # a programming error, not a request's (docs/errors.md)
        parse(value)  # type: ignore[arg-type]
    assert str(info.value) == f"processing string must be str or bytes, got {type(value).__name__}"


def test_parse_results_are_cached() -> None:
    text = "imageMogr2/thumbnail/400x/format/png"
    first = parse(text)
    assert parse(text) is first
    assert parse(text.encode()) is first
    assert parse(text, max_steps=5) == first


@pytest.mark.parametrize(
    ("text", "decoded"),
    [
        ("imageMogr2/thumbnail/400x", "imageMogr2/thumbnail/400x"),
        ("a%7Cb", "a|b"),
        ("a%257Cb", "a|b"),
        ("a%25257Cb", "a|b"),
        ("a%2525257Cb", "a%7Cb"),  # at most three rounds
        ("100%", "100%"),
        ("ci-process=QRcode&x=%7C", "ci-process=QRcode&x=%7C"),
    ],
)
def test_decode_text(text: str, decoded: str) -> None:
    assert decode_text(text) == decoded


# -- parse_url (limits-and-errors.md section 4.1) -------------------------------------------------

SIGNATURE = "q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=1&q-key-time=1&q-header-list=&q-url-param-list=&q-signature=ab"
HOST = "https://photos-1250000000.cos.ap-guangzhou.myqcloud.com/cat.jpg"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(f"{HOST}?imageMogr2/thumbnail/400x", thumb(A.FitWidth(400)), id="plain"),
        pytest.param(f"{HOST}?{SIGNATURE}&imageMogr2/thumbnail/400x", thumb(A.FitWidth(400)), id="after-signature"),
        pytest.param(f"{HOST}?imageMogr2/thumbnail/400x&{SIGNATURE}", thumb(A.FitWidth(400)), id="before-signature"),
        pytest.param(
            f"{HOST}?{SIGNATURE}&watermark/2/text/wqkgRGVtbw==/fill/I0ZGRkZGRg==",
            one(A.TextWatermark(text="© Demo", fill=WHITE)),
            id="base64-padding-inside-the-processing-string",
        ),
        pytest.param(
            "imageMogr2/thumbnail/400x|watermark/2/text/YQ==&x-cos-traffic-limit=819200",
            one(A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(400)),)), A.TextWatermark(text="a")),
            id="query-only-pipeline",
        ),
        pytest.param(f"{HOST}?card", one(A.StyleRef("card")), id="bare-style-name"),
        pytest.param(f"{HOST}?{SIGNATURE}&card", one(A.StyleRef("card")), id="bare-style-name-after-signature"),
        pytest.param(f"{HOST}?style/card", one(A.StyleRef("card")), id="style-form"),
        pytest.param(
            f"{HOST}?style/card%7CimageMogr2/format/webp",
            one(A.StyleRef("card"), A.ImageMogr2(ops=(A.Format(OutputFormat.WEBP),))),
            id="style-then-step-encoded-bar",
        ),
        pytest.param(
            f"{HOST}?ci-process=AIImageCrop&width=16&{SIGNATURE}&height=9",
            one(A.CiProcess(CiProcessName.AI_IMAGE_CROP, (("width", "16"), ("height", "9")))),
            id="ci-process-gathers-its-params-not-the-signature",
        ),
        pytest.param(
            f"{HOST}?{SIGNATURE}&ci-process=QRcode&cover=1",
            one(A.CiProcess(CiProcessName.QRCODE, (("cover", "1"),))),
            id="ci-process-after-signature",
        ),
        pytest.param(f"{HOST}?imageInfo#section", one(A.ImageInfo()), id="fragment-ignored"),
        pytest.param(f"{HOST}?response-content-type=x&IMAGEINFO", one(A.ImageInfo()), id="keyword-any-case"),
        pytest.param(
            f"{HOST}?imageMogr2%2Fthumbnail%2F400x%7CimageInfo",
            one(A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(400)),)), A.ImageInfo()),
            id="percent-encoded-component",
        ),
        pytest.param(
            f"{HOST}?imageInfo&imageAve",
            one(A.ImageInfo()),
            id="first-processing-component-wins",
        ),
    ],
)
def test_parse_url(url: str, expected: A.Pipeline) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        pytest.param(f"{HOST}?{SIGNATURE}", "url: no processing string in the query", id="signature-only"),
        pytest.param(HOST, "url: no query string, so no processing string", id="no-query"),
        pytest.param("", "url: no processing string in the query", id="empty"),
    ],
)
def test_parse_url_without_a_processing_string(url: str, message: str) -> None:
    with pytest.raises(CIError) as info:
        parse_url(url)
    assert type(info.value) is InvalidArgumentError
    assert info.value.message == message
    assert info.value.maskable is False


def test_parse_url_bad_bare_style_name() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse_url(f"{HOST}?bad%20name")
    assert info.value.field == "name"
    assert info.value.column == 1


def test_parse_url_propagates_parse_errors() -> None:
    with pytest.raises(ValueRangeError) as info:
        parse_url(f"{HOST}?{SIGNATURE}&imageMogr2/blur/80x5/ignore-error/1")
    assert info.value.column == 17
    assert info.value.masked is True


def test_parse_url_refuses_non_strings() -> None:
    with pytest.raises(TypeError, match="url must be str, got bytes"):
        parse_url(b"imageInfo")  # type: ignore[arg-type]
