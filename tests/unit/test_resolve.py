"""Geometry tables: processing string x input size -> exact output size, from the header
alone (no pixels). Cases are the worked examples of imagemogr2.md and imageview2.md plus
edge cases; ids read like sentences."""

from __future__ import annotations

import pytest

import ci_engine as ce
from ci_engine import ast as A
from ci_engine.limits import Limits
from ci_engine.plan import RULES, plan, resolve
from ci_engine.plan import steps as P
from ci_engine.types import ImageFormat, ImageHeader


def header(w: int, h: int, fmt: ImageFormat = ImageFormat.JPEG, **kw: object) -> ImageHeader:
    return ImageHeader(fmt, w, h, **kw)  # type: ignore[arg-type]


def size(rule: str, w: int, h: int, *, rules: tuple = RULES, **kw: object) -> tuple[int, int]:
    resolved = resolve(plan(ce.parse(rule), rules=rules), header(w, h, **kw))
    return resolved.width, resolved.height


# imagemogr2.md section 2.2 (1200x800 static JPEG) and edge cases.
THUMBNAIL = [
    ("thumbnail/!25p", 1200, 800, (300, 200)),
    ("thumbnail/!25px", 1200, 800, (300, 800)),
    ("thumbnail/!x25p", 1200, 800, (1200, 200)),
    ("thumbnail/600x", 1200, 800, (600, 400)),
    ("thumbnail/x200", 1200, 800, (300, 200)),
    ("thumbnail/600x700", 1200, 800, (600, 400)),
    ("thumbnail/2400x2400", 1200, 800, (2400, 1600)),
    ("thumbnail/2400x2400>", 1200, 800, (1200, 800)),
    ("thumbnail/600x1000>", 1200, 800, (600, 400)),
    ("thumbnail/2400x2400<", 1200, 800, (2400, 1600)),
    ("thumbnail/600x700<", 1200, 800, (1200, 800)),
    ("thumbnail/1300x700<", 1200, 800, (1200, 800)),
    ("thumbnail/!600x600r", 1200, 800, (900, 600)),
    ("thumbnail/500x500!", 1200, 800, (500, 500)),
    ("thumbnail/240000@", 1200, 800, (600, 400)),
    ("thumbnail/2000000@", 1200, 800, (1200, 800)),
    ("thumbnail/500x", 1000, 333, (500, 167)),  # 166.5 rounds half up
    ("thumbnail/!150p", 10, 10, (15, 15)),
    ("thumbnail/1x", 1000, 10, (1, 1)),  # at least 1 px
    ("thumbnail/12000x", 1000, 500, (10000, 5000)),  # clamped to 10000 ... still too big below
    ("thumbnail/600x500/pad/1", 1200, 800, (600, 500)),
    ("thumbnail/2000x2000>/pad/1", 1200, 800, (2000, 2000)),
    ("thumbnail/600x/pad/1", 1200, 800, (600, 400)),  # pad ignored on non-box forms
]


@pytest.mark.parametrize(
    "rule,w,h,expected",
    [pytest.param(r, w, h, e, id=f"{r} on {w}x{h} gives {e[0]}x{e[1]}") for r, w, h, e in THUMBNAIL],
)
def test_thumbnail_sizes(rule: str, w: int, h: int, expected: tuple[int, int]) -> None:
    limits = Limits(max_output_side=20_000)
    resolved = resolve(plan(ce.parse("imageMogr2/" + rule), limits=limits), header(w, h))
    assert (resolved.width, resolved.height) == expected


def test_clamped_width_still_fails_the_default_output_ceiling() -> None:
    with pytest.raises(ce.ImageResolutionExceedError) as info:
        size("imageMogr2/thumbnail/12000x", 1000, 500)
    assert info.value.x_errno == -442 and info.value.maskable


def test_pad_centres_the_picture_on_the_colour() -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/thumbnail/600x500/pad/1/color/I0ZGMDAwMA")), header(1200, 800))
    embed = [s for s in resolved.steps if isinstance(s, P.Embed)]
    assert embed == [P.Embed(0, 50, 600, 500, (255, 0, 0, 255))]


def test_animated_input_is_never_enlarged() -> None:
    gif = dict(fmt=ImageFormat.GIF, frames=10)
    assert size("imageMogr2/thumbnail/800x", 400, 300, **gif) == (400, 300)
    assert size("imageMogr2/thumbnail/!200p", 400, 300, **gif) == (400, 300)
    assert size("imageMogr2/thumbnail/800x100!", 400, 300, **gif) == (400, 100)
    assert size("imageMogr2/thumbnail/200x", 400, 300, **gif) == (200, 150)


# imagemogr2.md sections 3 and 4 (1200x800).
CUT_CROP = [
    ("cut/400x300x100x50", (100, 50, 400, 300)),
    ("cut/400x300x10x20/gravity/southeast", (790, 480, 400, 300)),
    ("cut/1000x300x500x0", (500, 0, 700, 300)),
    ("cut/400x300x10x20/gravity/center", (400, 250, 400, 300)),
    ("cut/400x300x10x20/gravity/north", (400, 20, 400, 300)),
    ("cut/400x300x10x20/gravity/west", (10, 250, 400, 300)),
    ("crop/600x", (0, 0, 600, 800)),
    ("crop/x500/gravity/south", (0, 300, 1200, 500)),
    ("crop/2000x", None),  # larger than the input: clamped, nothing to crop
    ("crop/!300x200a10a20", (10, 20, 300, 200)),
    ("crop/!300x200-10a20", (0, 20, 290, 200)),
    ("crop/!300x200a10a20/gravity/southeast", (910, 620, 290, 180)),
]


@pytest.mark.parametrize("rule,box", [pytest.param(r, b, id=f"{r} keeps {b}") for r, b in CUT_CROP])
def test_cut_and_crop_boxes(rule: str, box: tuple[int, int, int, int] | None) -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/" + rule), rules=()), header(1200, 800))
    crops = [(s.left, s.top, s.width, s.height) for s in resolved.steps if isinstance(s, P.Crop)]
    assert crops == ([] if box is None else [box])


def test_crop_box_scales_then_crops_at_gravity() -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/crop/400x400"), rules=()), header(1200, 800))
    assert resolved.steps == (P.Resize(600, 400), P.Crop(0, 0, 400, 400))
    resolved = resolve(plan(ce.parse("imageMogr2/crop/400x400/gravity/center"), rules=()), header(1200, 800))
    assert resolved.steps == (P.Resize(600, 400), P.Crop(100, 0, 400, 400))


def test_cut_outside_the_image_is_a_masked_range_error() -> None:
    with pytest.raises(ce.ValueRangeError) as info:
        size("imageMogr2/cut/100x100x1200x0", 1200, 800)
    assert info.value.maskable and info.value.span is not None


def test_written_order_crop_then_scale_and_scale_then_crop() -> None:
    # imagemogr2.md section 1.2 examples.
    assert size("imageMogr2/crop/300x300/thumbnail/600x", 1200, 800) == (600, 600)
    assert size("imageMogr2/thumbnail/600x/crop/300x300", 1200, 800) == (300, 300)


# imageview2.md section 7.
VIEW = [
    ("imageView2/1/w/300/h/300", 1200, 800, (300, 300)),
    ("imageView2/2/w/300/h/300", 1200, 800, (300, 200)),
    ("imageView2/3/w/300/h/300", 1200, 800, (450, 300)),
    ("imageView2/4/w/600/h/300", 1200, 800, (600, 400)),
    ("imageView2/5/w/600/h/300", 1200, 800, (600, 300)),
    ("imageView2/0/w/600/h/300", 1200, 800, (450, 300)),
    ("imageView2/2/w/600", 1200, 800, (600, 400)),
    ("imageView2/2/h/200", 1200, 800, (300, 200)),
    ("imageView2/1/w/300", 1200, 800, (300, 300)),
    ("imageView2/3/h/300", 1200, 800, (450, 300)),
    ("imageView2/2/w/2400/h/2400", 1200, 800, (1200, 800)),
    ("imageView2/format/webp/q/70", 1200, 800, (1200, 800)),
    ("imageView2/5/w/600/h/300", 800, 1200, (300, 600)),
    ("imageView2/4/w/600/h/300", 800, 1200, (400, 600)),
    ("imageView2/1/w/400/h/400", 300, 200, (200, 200)),  # section 2.3: small image
    ("imageView2/0/w/1280/h/960", 4000, 3000, (1280, 960)),
]


@pytest.mark.parametrize(
    "rule,w,h,expected", [pytest.param(*c, id=f"{c[0]} on {c[1]}x{c[2]} gives {c[3]}") for c in VIEW]
)
def test_image_view2_sizes(rule: str, w: int, h: int, expected: tuple[int, int]) -> None:
    assert size(rule, w, h) == expected


@pytest.mark.parametrize(
    "rule,w,h,expected",
    [
        ("imageMogr2/rotate/270", 1200, 800, (800, 1200)),
        ("imageMogr2/rotate/45", 1200, 800, (1415, 1415)),
        ("imageMogr2/rotate/360", 1200, 800, (1200, 800)),
        ("imageMogr2/iradius/300", 1200, 800, (600, 600)),
        ("imageMogr2/rradius/50", 1200, 800, (1200, 800)),
        ("imageMogr2/rcrop/0.5x1.2", 1200, 800, (960, 800)),
        ("imageMogr2/rcrop/2x3", 1200, 800, (1200, 600)),
        ("imageMogr2/scrop/300x300", 1200, 800, (300, 300)),
        ("imageMogr2/thumbnail/800x|imageMogr2/rotate/270|imageMogr2/format/webp", 1600, 1200, (600, 800)),
    ],
)
def test_other_geometry(rule: str, w: int, h: int, expected: tuple[int, int]) -> None:
    assert size(rule, w, h) == expected


def test_iradius_range_and_gif_refusal() -> None:
    with pytest.raises(ce.ValueRangeError):
        size("imageMogr2/iradius/400", 1200, 800)
    with pytest.raises(ce.UnsupportedForInputError):
        size("imageMogr2/iradius/100", 1200, 800, fmt=ImageFormat.GIF)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_auto_orient_gives_the_upright_size(orientation: int) -> None:
    upright = (800, 1200) if orientation >= 5 else (1200, 800)
    assert size("imageMogr2/auto-orient", 1200, 800, orientation=orientation) == upright
    resolved = resolve(plan(ce.parse("imageMogr2/auto-orient")), header(1200, 800, orientation=orientation))
    assert resolved.encode.reset_orientation is (orientation != 1)


# Quality arithmetic (imagemogr2.md section 16): JPEG input with q0 = 90.
QUALITY = [
    ("imageMogr2/quality/70", 70),
    ("imageMogr2/quality/95", 90),
    ("imageMogr2/quality/95!", 95),
    ("imageMogr2/rquality/50", 45),
    ("imageMogr2/lquality/95", 95),
    ("imageMogr2/lquality/80", 90),
    ("imageMogr2/quality/0!", 1),
    ("imageMogr2/quality/50|imageMogr2/lquality/60", 60),
    ("imageMogr2/rquality/33", 30),  # 29.7 rounds half up
    ("imageView2/q/70!", 70),
    ("imageMogr2/format/png", None),
]


@pytest.mark.parametrize("rule,expected", QUALITY)
def test_quality_arithmetic(rule: str, expected: int | None) -> None:
    resolved = resolve(plan(ce.parse(rule)), header(100, 100, quality=90))
    assert resolved.encode.quality == expected


def test_quality_of_inputs_without_a_quality_notion_falls_back_to_90() -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/format/jpg")), header(100, 100, fmt=ImageFormat.PNG))
    assert resolved.encode.quality == 90


def test_cgif_samples_frames_evenly_and_merges_delays() -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/cgif/40")), header(10, 10, fmt=ImageFormat.GIF, frames=120))
    (select,) = resolved.steps
    assert isinstance(select, P.SelectFrames) and len(select.groups) == 40
    assert select.groups[1] == (3, 4, 5) and resolved.frames == 40
    first30 = resolve(plan(ce.parse("imageMogr2/cgif/1")), header(10, 10, fmt=ImageFormat.GIF, frames=120))
    assert first30.frames == 30


def test_animated_to_static_keeps_one_frame_and_gif_to_heif_is_refused() -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/format/jpg")), header(10, 10, fmt=ImageFormat.GIF, frames=12))
    assert resolved.frames == 1 and resolved.decode.frames == 1
    with pytest.raises(ce.UnsupportedForInputError):
        resolve(plan(ce.parse("imageMogr2/format/heif")), header(10, 10, fmt=ImageFormat.GIF))


def test_tpg_output_names_the_missing_encoder() -> None:
    with pytest.raises(ce.UnsupportedOperationError, match="no tpg encoder is available here; write jpg"):
        resolve(plan(ce.parse("imageMogr2/format/tpg")), header(10, 10))


def test_alpha_is_flattened_for_jpeg_output() -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/format/jpg")), header(10, 10, fmt=ImageFormat.PNG, has_alpha=True))
    assert resolved.steps == (P.Flatten(P.WHITE),)


def test_corner_fill_follows_the_output_format() -> None:
    png = resolve(plan(ce.parse("imageMogr2/rradius/5")), header(100, 100, fmt=ImageFormat.PNG))
    jpg = resolve(plan(ce.parse("imageMogr2/rradius/5")), header(100, 100))
    assert png.steps == (P.Mask("rounded", 5, P.TRANSPARENT),)
    assert jpg.steps == (P.Mask("rounded", 5, P.WHITE),)


def test_rules_keep_the_geometry() -> None:
    for rule in (
        "imageMogr2/thumbnail/400x",
        "imageMogr2/thumbnail/!300x300r/gravity/center/crop/300x300",
        "imageView2/1/w/200/h/200",
    ):
        assert size(rule, 6000, 4000) == size(rule, 6000, 4000, rules=())


def test_shrink_on_load_picks_the_largest_factor_that_keeps_the_target() -> None:
    resolved = resolve(plan(ce.parse("imageMogr2/thumbnail/400x")), header(6028, 3391))
    assert resolved.decode.shrink == 8 and resolved.decoded_size == (753, 423)
    assert resolved.steps == (P.Resize(400, 225),)
    big = resolve(plan(ce.parse("imageMogr2/thumbnail/1600x")), header(6028, 3391))
    assert big.decode.shrink == 2
    none = resolve(plan(ce.parse("imageMogr2/thumbnail/4000x")), header(6028, 3391))
    assert none.decode.shrink == 1
    png = resolve(plan(ce.parse("imageMogr2/thumbnail/400x")), header(6028, 3391, fmt=ImageFormat.PNG))
    assert png.decode.shrink == 1


def test_info_step_must_be_last() -> None:
    with pytest.raises(ce.InvalidArgumentError):
        plan(ce.parse("imageInfo|imageMogr2/thumbnail/100x"))


def test_unexpanded_style_and_unimplemented_steps_say_so() -> None:
    with pytest.raises(ce.NoSuchStyleError):
        plan(ce.parse("style/card"))
    with pytest.raises(ce.UnsupportedOperationError, match="watermark/3"):
        plan(ce.parse("watermark/3/type/3/text/T3JkZXIxMDA3"))


def test_pipeline_and_watermark_counts() -> None:
    eleven = A.Pipeline(steps=tuple(A.ImageMogr2(ops=(A.Strip(),)) for _ in range(11)))
    with pytest.raises(ce.TooManyStepsError):
        plan(eleven)
    assert plan(eleven, limits=Limits(max_steps=11)).ops
