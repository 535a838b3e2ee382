"""Typed AST -> canonical processing string (the inverse of :func:`ci_engine.parse`).

``parse(render(p)) == p`` holds for every AST. The canonical form: API keywords in CI's
spelling (``imageMogr2``), enum tokens in lower case, Base64 without ``=`` padding, colours
as ``#RRGGBB``, key/value families (``imageView2``, watermarks) in a fixed key order, and a
modifier (``gravity``, ``pad``, ``color``) written right after its operation, or right
before it when another operation of the same kind follows in the step (so that the binding
rule of ``imagemogr2.md`` section 1.2 gives it back to the same operation).

This module must not import :mod:`ci_engine.parse` (the round-trip tests would prove
nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

from ci_engine import _check
from ci_engine import ast as A
from ci_engine.errors import InvalidArgumentError

__all__ = ["render", "RENDERERS"]

N = TypeVar("N", bound=A.Node)
RENDERERS: dict[type, Callable[[Any], str]] = {}
"""One renderer per concrete AST class (checked complete by the test suite)."""


def _renders(*classes: type) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    def register(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        for cls in classes:
            RENDERERS[cls] = fn
        return fn

    return register


def render(node: A.Node) -> str:
    """The canonical string of a pipeline, a step, an operation or a geometry.

    Example:
        >>> from ci_engine import ast as A
        >>> render(A.Pipeline(steps=(A.ImageMogr2(ops=(A.Thumbnail(A.FitWidth(400)),)),)))
        'imageMogr2/thumbnail/400x'
    """
    fn = RENDERERS.get(type(node))
    if fn is None:
        raise InvalidArgumentError(f"render: unsupported node type {type(node).__name__}")
    return fn(node)


def _b64(text: str) -> str:
    return _check.b64_encode(text.encode("utf-8"))


def _dec(value: float) -> str:
    return _check.format_decimal(value)


# -- pipeline ------------------------------------------------------------------------------------


@_renders(A.Pipeline)
def _pipeline(node: A.Pipeline) -> str:
    return "|".join(render(step) for step in node.steps)


# -- imageMogr2 ----------------------------------------------------------------------------------


@_renders(A.ScalePercent)
def _scale_percent(g: A.ScalePercent) -> str:
    return f"!{g.percent}p"


@_renders(A.WidthPercent)
def _width_percent(g: A.WidthPercent) -> str:
    return f"!{g.percent}px"


@_renders(A.HeightPercent)
def _height_percent(g: A.HeightPercent) -> str:
    return f"!x{g.percent}p"


@_renders(A.FitWidth, A.CropWidth)
def _width_only(g: A.FitWidth | A.CropWidth) -> str:
    return f"{g.width}x"


@_renders(A.FitHeight, A.CropHeight)
def _height_only(g: A.FitHeight | A.CropHeight) -> str:
    return f"x{g.height}"


_BOX_SUFFIX = {A.FitBox: "", A.ShrinkBox: ">", A.EnlargeBox: "<", A.ExactSize: "!", A.CropBox: ""}


@_renders(*_BOX_SUFFIX)
def _box(g: A.FitBox | A.CropBox | A.ShrinkBox) -> str:
    width = "" if g.width is None else g.width
    height = "" if g.height is None else g.height
    return f"{width}x{height}{_BOX_SUFFIX[type(g)]}"


@_renders(A.CoverBox)
def _cover_box(g: A.CoverBox) -> str:
    return f"!{g.width}x{g.height}r"


@_renders(A.MaxArea)
def _max_area(g: A.MaxArea) -> str:
    return f"{g.area}@"


@_renders(A.CropRegion)
def _crop_region(g: A.CropRegion) -> str:
    width = "" if g.width is None else str(g.width)
    height = "" if g.height is None else str(g.height)
    return f"!{width}x{height}{g.dx_mode.value}{g.dx}{g.dy_mode.value}{g.dy}"


def _modifiers(op: A.MogrOp) -> list[str]:
    out: list[str] = []
    if isinstance(op, A.Thumbnail):
        if op.pad is not None:
            out.append(f"pad/{int(op.pad)}")
        if op.color is not None:
            out.append(f"color/{_b64(op.color.hex)}")
    elif isinstance(op, (A.Crop, A.Cut)) and op.gravity is not None:
        out.append(f"gravity/{op.gravity.value}")
    return out


def _op_body(op: A.MogrOp) -> str:
    """The operation without its modifiers."""
    if isinstance(op, A.Thumbnail):
        return f"thumbnail/{render(op.geometry)}"
    if isinstance(op, A.Crop):
        return f"crop/{render(op.geometry)}"
    if isinstance(op, A.Cut):
        return f"cut/{op.width}x{op.height}x{op.dx}x{op.dy}"
    return render(op)


_MODIFIED_GROUPS: tuple[tuple[type, ...], ...] = ((A.Thumbnail,), (A.Crop, A.Cut))


@_renders(A.ImageMogr2)
def _image_mogr2(node: A.ImageMogr2) -> str:
    parts = [A.ImageMogr2.keyword]
    ops = node.ops
    for i, op in enumerate(ops):
        mods = _modifiers(op)
        group = next((g for g in _MODIFIED_GROUPS if isinstance(op, g)), None)
        later = group is not None and any(isinstance(o, group) for o in ops[i + 1 :])
        if later:
            parts += mods
        parts.append(_op_body(op))
        if not later:
            parts += mods
    return "/".join(parts)


@_renders(A.Thumbnail, A.Crop, A.Cut)
def _modified_op(op: A.Thumbnail | A.Crop | A.Cut) -> str:
    return "/".join([_op_body(op), *_modifiers(op)])


def _one(attr: str, fmt: Callable[[Any], str] = str) -> Callable[[Any], str]:
    def fn(op: Any) -> str:
        return f"{op.keyword}/{fmt(getattr(op, attr))}"

    return fn


def _bare(op: A.Node) -> str:
    return op.keyword


_simple_cls: type
for _simple_cls, _attr in (
    (A.IRadius, "radius"),
    (A.RRadius, "radius"),
    (A.Rotate, "degrees"),
    (A.CGif, "frames"),
    (A.EGif, "interval"),
    (A.RQuality, "value"),
    (A.LQuality, "value"),
    (A.Sharpen, "amount"),
    (A.Bright, "value"),
    (A.Contrast, "value"),
):
    RENDERERS[_simple_cls] = _one(_attr)
RENDERERS[A.Flip] = _one("axis", lambda v: str(v.value))
RENDERERS[A.Format] = _one("format", lambda v: str(v.value))
RENDERERS[A.Interlace] = _one("enabled", lambda v: str(int(v)))
RENDERERS[A.Grayscale] = _one("enabled", lambda v: str(int(v)))
for _bare_cls in (A.AutoOrient, A.Strip, A.ImageInfo, A.Exif, A.ImageAve, A.ImageSlim, A.ImageInspect):
    RENDERERS[_bare_cls] = _bare


@_renders(A.AIGCMetadata)
def _aigc_metadata(op: A.AIGCMetadata) -> str:
    return "/".join([op.keyword, *(f"{key}/{_b64(value)}" for key, value in op.items())])


@_renders(A.IndexCrop)
def _index_crop(op: A.IndexCrop) -> str:
    axis, size = ("width", op.width) if op.width is not None else ("height", op.height)
    return f"indexcrop/{axis}/{size}/index/{op.index}"


RENDERERS[A.Frame] = _one("number")


@_renders(A.IgnoreError)
def _ignore_error(op: A.IgnoreError) -> str:
    return "ignore-error/1"


@_renders(A.SmartCrop)
def _scrop(op: A.SmartCrop) -> str:
    return f"scrop/{op.width}x{op.height}"


@_renders(A.RatioCrop)
def _rcrop(op: A.RatioCrop) -> str:
    return f"rcrop/{_dec(op.min_ratio)}x{_dec(op.max_ratio)}"


@_renders(A.Quality)
def _quality(op: A.Quality) -> str:
    return f"quality/{op.value}{'!' if op.forced else ''}"


@_renders(A.Blur)
def _blur(op: A.Blur) -> str:
    return f"blur/{op.radius}x{_dec(op.sigma)}"


@_renders(A.SizeLimit)
def _size_limit(op: A.SizeLimit) -> str:
    return f"size-limit/{op.size}{op.unit.value}{'!' if op.keep_smaller else ''}"


# -- imageView2 ----------------------------------------------------------------------------------


@_renders(A.ImageView2)
def _image_view2(node: A.ImageView2) -> str:
    parts = [A.ImageView2.keyword]
    if node.mode is not None:
        parts.append(str(node.mode))
    if node.width is not None:
        parts.append(f"w/{node.width}")
    if node.height is not None:
        parts.append(f"h/{node.height}")
    if node.format is not None:
        parts.append(f"format/{node.format.value}")
    if node.quality is not None:
        parts.append(f"q/{node.quality}{'!' if node.quality_forced else ''}")
    if node.rquality is not None:
        parts.append(f"rq/{node.rquality}")
    if node.lquality is not None:
        parts.append(f"lq/{node.lquality}")
    if node.interlace is not None:
        parts.append(f"interlace/{int(node.interlace)}")
    if node.ignore_error_flag:
        parts.append("ignore-error/1")
    return "/".join(parts)


# -- watermarks ----------------------------------------------------------------------------------

_WM_FORMAT: dict[str, Callable[[Any], str]] = {
    "image": _b64,
    "text": _b64,
    "font": lambda f: _b64(f.value),
    "fill": lambda c: _b64(c.hex),
    "gravity": lambda g: str(g.value),
    "blogo": lambda b: str(b.value),
    "scatype": lambda s: str(s.value),
    "type": lambda t: str(t.value),
    "batch": lambda b: str(int(b)),
}

_WM_KEYS: dict[type, tuple[str, ...]] = {
    A.ImageWatermark: (
        "image",
        "gravity",
        "dx",
        "dy",
        "blogo",
        "scatype",
        "spcent",
        "dissolve",
        "batch",
        "degree",
        "spacing",
    ),
    A.TextWatermark: (
        "text",
        "font",
        "fontsize",
        "fill",
        "dissolve",
        "gravity",
        "dx",
        "dy",
        "batch",
        "degree",
        "spacing",
        "shadow",
        "scatype",
        "spcent",
    ),
    A.BlindWatermark: ("type", "image", "text", "level", "version"),
    A.ExtractBlindWatermark: ("type", "image", "text", "version"),
}


@_renders(*_WM_KEYS)
def _watermark(node: Any) -> str:
    parts = [f"watermark/{node.mode}"]
    for key in _WM_KEYS[type(node)]:
        value = getattr(node, key)
        if value is not None:
            parts.append(f"{key}/{_WM_FORMAT.get(key, str)(value)}")
    return "/".join(parts)


# -- the rest ----------------------------------------------------------------------------------


@_renders(A.StyleRef)
def _style_ref(node: A.StyleRef) -> str:
    return f"style/{node.name}"


@_renders(A.QRCode)
def _qr_code(node: A.QRCode) -> str:
    parts = [A.QRCode.keyword]
    if node.cover is not None:
        parts.append(f"cover/{int(node.cover)}")
    if node.bar_type is not None:
        parts.append(f"bar-type/{node.bar_type}")
    if node.segment is not None:
        parts.append(f"segment/{node.segment}")
    if node.size is not None:
        parts.append(f"size/{node.size}")
    return "/".join(parts)


@_renders(A.CiProcess)
def _ci_process(node: A.CiProcess) -> str:
    parts = [f"ci-process={node.name.value}"]
    for key, value in node.params:
        parts.append(key if value is None else f"{key}={quote(value, safe='')}")
    return "&".join(parts)
