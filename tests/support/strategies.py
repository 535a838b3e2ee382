"""Hypothesis strategies for processing strings and ASTs.

* ``STRATEGIES`` maps every class of :data:`ci_engine.ast.ALL_NODE_CLASSES` to a strategy
  that builds valid instances of it (``st.builds`` inside the ranges the constructors
  enforce). ``nodes()`` draws from all of them, ``steps()`` from the step classes and
  ``pipelines()`` draws whole pipelines that :func:`ci_engine.parse` accepts back (at most
  :data:`ci_engine.parse.MAX_STEPS` steps, a ``ci-process`` request alone).
* ``as_pipeline(node)`` lifts any node (a geometry, an operation, a step) into the smallest
  pipeline that contains it, so every class can be round-tripped through a string.
* ``grammar_strings()`` draws strings from ``grammar/ci.lark`` with explicit strategies for
  the terminals a regex generates badly (Base64 of real text, colours and font names,
  short numbers); ``raw_grammar_strings()`` is the same grammar without them.
"""

from __future__ import annotations

import base64
import functools
import string
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from ci_engine import ast as A
from ci_engine._check import MAX_VALUE
from ci_engine.ast.watermark import BLIND_LEVELS, BLIND_VERSIONS
from ci_engine.parse import MAX_STEPS, load_lark
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

__all__ = [
    "STRATEGIES",
    "as_pipeline",
    "colors",
    "grammar_strings",
    "nodes",
    "pipelines",
    "raw_grammar_strings",
    "steps",
    "texts",
]

# -- leaves ---------------------------------------------------------------------------------------

_FORBIDDEN = "".join(chr(i) for i in range(32) if i != 10) + "\x7f"

#: Characters of a text payload: any Unicode scalar value (no lone surrogates: the codec
#: excludes them) except control characters other than newline.
text_chars = st.characters(codec="utf-8", exclude_characters=_FORBIDDEN)


def texts(max_size: int = 40) -> st.SearchStrategy[str]:
    """Non-empty watermark texts and URLs."""
    return st.text(text_chars, min_size=1, max_size=max_size)


sizes = st.integers(1, MAX_VALUE)
offsets = st.integers(0, MAX_VALUE)
signed = st.integers(-MAX_VALUE, MAX_VALUE)
colors = st.builds(Color, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
gravities = st.sampled_from(Gravity)
optional_gravity = st.none() | gravities
ratio = st.floats(min_value=0, max_value=10000, exclude_min=True, allow_nan=False, allow_infinity=False)
sigma = st.floats(min_value=0, max_value=50, exclude_min=True, allow_nan=False, allow_infinity=False)
style_names = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
ci_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
ci_values = st.none() | st.text(st.characters(codec="utf-8"), max_size=20)


def _opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


# -- geometries and imageMogr2 operations ---------------------------------------------------------

percent = st.integers(1, 1000)

STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    A.ScalePercent: st.builds(A.ScalePercent, percent),
    A.WidthPercent: st.builds(A.WidthPercent, percent),
    A.HeightPercent: st.builds(A.HeightPercent, percent),
    A.FitWidth: st.builds(A.FitWidth, sizes),
    A.FitHeight: st.builds(A.FitHeight, sizes),
    A.FitBox: st.builds(A.FitBox, sizes, sizes),
    A.ShrinkBox: st.builds(A.ShrinkBox, sizes, sizes)
    | st.builds(A.ShrinkBox, sizes, st.none())
    | st.builds(A.ShrinkBox, st.none(), sizes),
    A.EnlargeBox: st.builds(A.EnlargeBox, sizes, sizes)
    | st.builds(A.EnlargeBox, sizes, st.none())
    | st.builds(A.EnlargeBox, st.none(), sizes),
    A.CoverBox: st.builds(A.CoverBox, sizes, sizes),
    A.ExactSize: st.builds(A.ExactSize, sizes, sizes),
    A.MaxArea: st.builds(A.MaxArea, sizes),
    A.CropWidth: st.builds(A.CropWidth, sizes),
    A.CropHeight: st.builds(A.CropHeight, sizes),
    A.CropBox: st.builds(A.CropBox, sizes, sizes),
    A.CropRegion: st.one_of(
        st.builds(
            A.CropRegion, sizes, _opt(sizes), offsets, offsets, st.sampled_from(OffsetMode), st.sampled_from(OffsetMode)
        ),
        st.builds(
            A.CropRegion, st.none(), sizes, offsets, offsets, st.sampled_from(OffsetMode), st.sampled_from(OffsetMode)
        ),
    ),
}

thumbnail_geometries = st.one_of([STRATEGIES[cls] for cls in A.THUMBNAIL_GEOMETRIES])
crop_geometries = st.one_of([STRATEGIES[cls] for cls in A.CROP_GEOMETRIES])

STRATEGIES.update(
    {
        A.Thumbnail: st.builds(A.Thumbnail, thumbnail_geometries, _opt(st.booleans()), _opt(colors)),
        A.Cut: st.builds(A.Cut, sizes, sizes, offsets, offsets, optional_gravity),
        A.Crop: st.builds(A.Crop, crop_geometries, optional_gravity),
        A.IRadius: st.builds(A.IRadius, sizes),
        A.RRadius: st.builds(A.RRadius, sizes),
        A.SmartCrop: st.builds(A.SmartCrop, sizes, sizes),
        A.RatioCrop: st.tuples(ratio, ratio).map(sorted).map(lambda pair: A.RatioCrop(*pair)),
        A.Rotate: st.builds(A.Rotate, st.integers(0, 360)),
        A.AutoOrient: st.builds(A.AutoOrient),
        A.Flip: st.builds(A.Flip, st.sampled_from(FlipAxis)),
        A.Format: st.builds(A.Format, st.sampled_from(OutputFormat)),
        A.CGif: st.builds(A.CGif, st.integers(1, 100)),
        A.EGif: st.builds(A.EGif, st.integers(1, 300)),
        A.Interlace: st.builds(A.Interlace, st.booleans()),
        A.Quality: st.builds(A.Quality, st.integers(0, 100), st.booleans()),
        A.RQuality: st.builds(A.RQuality, st.integers(0, 100)),
        A.LQuality: st.builds(A.LQuality, st.integers(0, 100)),
        A.Blur: st.builds(A.Blur, st.integers(1, 50), sigma),
        A.Sharpen: st.builds(A.Sharpen, st.integers(10, 300)),
        A.Strip: st.builds(A.Strip),
        A.Bright: st.builds(A.Bright, st.integers(-100, 100)),
        A.Contrast: st.builds(A.Contrast, st.integers(-100, 100)),
        A.Grayscale: st.builds(A.Grayscale, st.booleans()),
        A.SizeLimit: st.builds(A.SizeLimit, sizes, st.sampled_from(SizeUnit), st.booleans()),
        A.IgnoreError: st.builds(A.IgnoreError),
        A.IndexCrop: st.builds(A.IndexCrop, sizes, st.none(), offsets)
        | st.builds(A.IndexCrop, st.none(), sizes, offsets),
        A.Frame: st.builds(A.Frame, sizes),
        A.AIGCMetadata: st.builds(
            A.AIGCMetadata,
            label=texts(),
            content_producer=_opt(texts()),
            produce_id=_opt(texts()),
            reserved_code1=_opt(texts()),
            content_propagator=_opt(texts()),
            propagate_id=_opt(texts()),
            reserved_code2=_opt(texts()),
        ),
    }
)

mogr_ops = st.one_of([STRATEGIES[cls] for cls in A.MOGR_OPS])

# -- steps ----------------------------------------------------------------------------------------


@st.composite
def _image_view2(draw: st.DrawFn) -> A.ImageView2:
    quality = draw(_opt(st.integers(0, 100)))
    return A.ImageView2(
        mode=draw(_opt(st.integers(0, 5))),
        width=draw(_opt(sizes)),
        height=draw(_opt(sizes)),
        format=draw(_opt(st.sampled_from(OutputFormat))),
        quality=quality,
        quality_forced=quality is not None and draw(st.booleans()),
        rquality=draw(_opt(st.integers(0, 100))),
        lquality=draw(_opt(st.integers(0, 100))),
        interlace=draw(_opt(st.booleans())),
        ignore_error_flag=draw(st.booleans()),
    )


@st.composite
def _common(draw: st.DrawFn) -> dict[str, Any]:
    """The keys shared by image and text watermarks (scatype and spcent come in pairs)."""
    scatype = draw(_opt(st.sampled_from(ScaleType)))
    spcent = None
    if scatype is not None:
        spcent = draw(st.integers(1, 250 if scatype is ScaleType.AREA else 1000))
    return {
        "gravity": draw(optional_gravity),
        "dx": draw(_opt(signed)),
        "dy": draw(_opt(signed)),
        "dissolve": draw(_opt(st.integers(1, 100))),
        "batch": draw(_opt(st.booleans())),
        "degree": draw(_opt(st.integers(0, 360))),
        "spacing": draw(_opt(st.integers(0, 100))),
        "scatype": scatype,
        "spcent": spcent,
    }


@st.composite
def _image_watermark(draw: st.DrawFn) -> A.ImageWatermark:
    return A.ImageWatermark(
        image=draw(texts(60)),
        blogo=draw(_opt(st.sampled_from(BlogoMode))),
        **draw(_common()),
    )


@st.composite
def _text_watermark(draw: st.DrawFn) -> A.TextWatermark:
    return A.TextWatermark(
        text=draw(texts()),
        font=draw(_opt(st.sampled_from(Font))),
        fontsize=draw(_opt(st.integers(1, 1000))),
        fill=draw(_opt(colors)),
        shadow=draw(_opt(st.integers(0, 100))),
        **draw(_common()),
    )


alnum = st.text(st.sampled_from(string.ascii_letters + string.digits), min_size=1, max_size=20)


@st.composite
def _blind_fields(draw: st.DrawFn) -> dict[str, Any]:
    """type, image, text and version satisfying the rules of both blind watermark classes."""
    kind = draw(st.sampled_from(BlindType))
    version = draw(st.sampled_from([None, *BLIND_VERSIONS[kind]]))
    if kind is BlindType.TEXT:
        text = draw(texts() if version in ("2.0", "3.0") else alnum)
        image = draw(_opt(texts()))
    else:
        image = draw(texts())
        text = draw(_opt(texts()))
    return {"type": kind, "image": image, "text": text, "version": version}


@st.composite
def _blind_watermark(draw: st.DrawFn) -> A.BlindWatermark:
    fields = draw(_blind_fields())
    effective = fields["version"] or ("1.0" if fields["type"] is not BlindType.SEMI_BLIND else None)
    level = draw(_opt(st.integers(0, 3))) if effective in BLIND_LEVELS[fields["type"]] else None
    return A.BlindWatermark(level=level, **fields)


@st.composite
def _extract_blind_watermark(draw: st.DrawFn) -> A.ExtractBlindWatermark:
    fields = draw(_blind_fields())
    if fields["type"] is BlindType.TEXT and draw(st.booleans()):
        fields["text"] = None  # extraction of a text mark needs no text
    return A.ExtractBlindWatermark(**fields)


STRATEGIES.update(
    {
        A.ImageMogr2: st.builds(A.ImageMogr2, st.lists(mogr_ops, max_size=6).map(tuple)),
        A.ImageView2: _image_view2(),
        A.ImageWatermark: _image_watermark(),
        A.TextWatermark: _text_watermark(),
        A.BlindWatermark: _blind_watermark(),
        A.ExtractBlindWatermark: _extract_blind_watermark(),
        A.ImageInfo: st.builds(A.ImageInfo),
        A.Exif: st.builds(A.Exif),
        A.ImageAve: st.builds(A.ImageAve),
        A.ImageSlim: st.builds(A.ImageSlim),
        A.ImageInspect: st.builds(A.ImageInspect),
        A.StyleRef: st.builds(A.StyleRef, style_names),
        A.QRCode: st.builds(
            A.QRCode,
            cover=_opt(st.booleans()),
            bar_type=_opt(st.integers(0, 2)),
            segment=_opt(st.integers(0, 1)),
            size=_opt(st.integers(500, MAX_VALUE)),
        ),
        A.CiProcess: st.builds(
            A.CiProcess,
            st.sampled_from(CiProcessName),
            st.lists(st.tuples(ci_keys, ci_values), max_size=4).map(tuple),
        ),
    }
)

_CHAINABLE = tuple(cls for cls in A.STEPS if cls is not A.CiProcess)


def steps(*, chainable: bool = False) -> st.SearchStrategy[A.Step]:
    """Any step; with ``chainable`` only the steps that may be joined with ``|``."""
    classes = _CHAINABLE if chainable else A.STEPS
    return st.one_of([STRATEGIES[cls] for cls in classes])


def pipelines(max_steps: int = 4) -> st.SearchStrategy[A.Pipeline]:
    """Pipelines that :func:`ci_engine.parse` accepts back: 1..``max_steps`` chainable steps,
    or one ``ci-process`` request."""
    assert 1 <= max_steps <= MAX_STEPS
    chained = st.lists(steps(chainable=True), min_size=1, max_size=max_steps)
    return st.one_of(
        chained.map(lambda items: A.Pipeline(steps=tuple(items))),
        STRATEGIES[A.CiProcess].map(lambda step: A.Pipeline(steps=(step,))),
    )


STRATEGIES[A.Pipeline] = pipelines()


def nodes() -> st.SearchStrategy[A.Node]:
    """A node of any class."""
    return st.one_of([STRATEGIES[cls] for cls in A.ALL_NODE_CLASSES])


def as_pipeline(node: A.Node) -> A.Pipeline:
    """The smallest pipeline containing ``node`` (so that it has a string form)."""
    if isinstance(node, A.Pipeline):
        return node
    if isinstance(node, A.Step):
        return A.Pipeline(steps=(node,))
    if isinstance(node, A.MogrOp):
        return as_pipeline(A.ImageMogr2(ops=(node,)))
    if isinstance(node, A.CROP_GEOMETRIES):
        return as_pipeline(A.Crop(node))  # type: ignore[arg-type]
    if isinstance(node, A.THUMBNAIL_GEOMETRIES):
        return as_pipeline(A.Thumbnail(node))  # type: ignore[arg-type]
    raise TypeError(f"no pipeline for {type(node).__name__}")


# -- strings from the grammar ---------------------------------------------------------------------


def _b64(data: bytes, padded: bool) -> str:
    out = base64.urlsafe_b64encode(data).decode("ascii")
    return out if padded else out.rstrip("=")


_B64_PAYLOADS = st.one_of(
    texts(24),
    colors.map(lambda c: c.hex),
    colors.map(lambda c: c.hex.lower()),
    st.sampled_from([f.value for f in Font]),
    alnum,
)

b64_tokens = st.builds(_b64, _B64_PAYLOADS.map(lambda s: s.encode("utf-8")), st.booleans())
"""URL-safe Base64 of real UTF-8 text, ``#RRGGBB`` colours and font names, padded or not."""

_EXPLICIT: dict[str, st.SearchStrategy[str]] = {
    "B64": b64_tokens | st.from_regex(r"[A-Za-z0-9_-]{1,8}={0,2}", fullmatch=True),
    "INT": st.from_regex(r"[0-9]{1,4}", fullmatch=True),
    "SIGNED_INT": st.from_regex(r"-?[0-9]{1,4}", fullmatch=True),
    "DECIMAL": st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3})?", fullmatch=True),
    "OFFSET": st.from_regex(r"[a-][0-9]{1,4}", fullmatch=True),
    "STYLE_NAME": st.from_regex(r"[A-Za-z0-9._-]{1,12}", fullmatch=True),
    "CI_PROCESS_NAME": st.sampled_from([n.value for n in CiProcessName])
    | st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,8}", fullmatch=True),
    "CI_PARAM_KEY": ci_keys,
    "CI_PARAM_VALUE": st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).map(lambda s: quote(s, safe="")),
}


@functools.cache
def _lark() -> Any:
    return load_lark()


def grammar_strings() -> st.SearchStrategy[str]:
    """Strings of the grammar with realistic terminal values (most of them parse)."""
    return from_lark(_lark(), start="start", explicit=_EXPLICIT)


def raw_grammar_strings() -> st.SearchStrategy[str]:
    """Strings of the grammar with every terminal drawn from its regex alone."""
    return from_lark(_lark(), start="start")
