"""Symbolic plan + image header -> primitive steps with integer geometry.

Geometry is resolved here, once, from the header: a backend never decides a size. The
resolver walks the symbolic operations keeping the state of the image as it would be after
each one (size, frames, alpha, format, EXIF orientation, quality), emits primitives, and
checks the output limits at the end of every ``|`` step (``limits-and-errors.md``
section 2: "a chain is checked step by step").

Errors raised here point at the operation in the processing string (its span).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ci_engine import ast as A
from ci_engine._dc import dataclass, field
from ci_engine.errors import Span, UnsupportedForInputError, UnsupportedOperationError, ValueRangeError
from ci_engine.limits import Limits, check_output
from ci_engine.plan import geometry as G
from ci_engine.plan import steps as P
from ci_engine.plan.lower import StepEncode, ViewScale
from ci_engine.types import FlipAxis, Gravity, ImageFormat, ImageHeader, OffsetMode, OutputFormat

__all__ = ["State", "RESOLVERS", "resolve_ops", "DEFAULT_QUALITY", "input_quality"]

DEFAULT_QUALITY = 90
"""``q0`` of inputs without a quality notion (``imagemogr2.md`` section 16)."""


def input_quality(header: ImageHeader) -> int:
    """``q0``: the JPEG quality estimated from the quantisation tables, else 90."""
    if header.format is ImageFormat.JPEG and header.quality is not None:
        return header.quality
    return DEFAULT_QUALITY


@dataclass(slots=True)
class State:
    """The image as it will be after the primitives emitted so far."""

    header: ImageHeader
    limits: Limits
    final_format: ImageFormat
    width: int
    height: int
    frames: int
    format: ImageFormat
    has_alpha: bool
    orientation: int
    quality: int
    prims: list[P.Prim] = field(default_factory=list)
    reset_orientation: bool = False
    progressive: bool | None = None
    strip: bool = False
    size_limit: A.SizeLimit | None = None
    aigc: A.AIGCMetadata | None = None

    def push(self, prim: P.Prim) -> None:
        self.prims.append(prim)
        self.width, self.height = prim.out_size(self.width, self.height)

    @property
    def background(self) -> P.RGBA:
        """Fill for uncovered pixels: transparent when the output keeps alpha, else white
        (``imagemogr2.md`` sections 6 and 10)."""
        return P.TRANSPARENT if self.final_format.alpha_capable else P.WHITE

    def clamp(self, value: int) -> int:
        """CI treats width/height-type parameters above 10000 as 10000."""
        return min(value, self.limits.max_param_value)


Resolver = Callable[[Any, State], None]
RESOLVERS: dict[type, Resolver] = {}
"""One resolver per symbolic operation class; it emits primitives onto the state."""


def _resolves(cls: type) -> Callable[[Resolver], Resolver]:
    def register(fn: Resolver) -> Resolver:
        RESOLVERS[cls] = fn
        return fn

    return register


def _range_error(node: A.Node, field_name: str, expected: str, actual: object) -> ValueRangeError:
    op = node.keyword
    span = node.span
    if span is not None and span.end - span.start > len(op) + 1:
        span = Span(span.start + len(op) + 1, span.end)  # the value, after "<op>/"
    return ValueRangeError(
        f"{op}: {field_name} must be {expected}, got {actual!r}",
        op=op,
        field=field_name,
        expected=expected,
        actual=actual,
        span=span,
    )


# -- geometry -------------------------------------------------------------------------------------


@_resolves(A.Thumbnail)
def _thumbnail(node: A.Thumbnail, st: State) -> None:
    tw, th = G.thumbnail_size(node.geometry, st.width, st.height, st.limits.max_param_value)
    if st.frames > 1:  # animated images are never enlarged (imagemogr2.md section 2)
        tw, th = min(tw, st.width), min(th, st.height)
    if (tw, th) != (st.width, st.height):
        st.push(P.Resize(tw, th, origin="thumbnail", span=node.span))
    if node.pads:
        g = node.geometry
        assert isinstance(g, (A.FitBox, A.ShrinkBox, A.EnlargeBox))
        assert g.width is not None and g.height is not None  # Thumbnail.pads
        bw, bh = st.clamp(g.width), st.clamp(g.height)
        if (bw, bh) != (st.width, st.height) and bw >= st.width and bh >= st.height:
            color = node.color.rgb if node.color is not None else (255, 255, 255)
            left, top = (bw - st.width) // 2, (bh - st.height) // 2
            st.push(P.Embed(left, top, bw, bh, (*color, 255), origin="pad", span=node.span))


def _crop_to(st: State, left: int, top: int, width: int, height: int, node: A.Node) -> None:
    """Crop to a box clipped to the image; an empty intersection is a range error."""
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(st.width, left + width), min(st.height, top + height)
    if x1 <= x0 or y1 <= y0:
        raise _range_error(
            node, "region", f"a region inside the {st.width}x{st.height} image", (left, top, width, height)
        )
    if (x0, y0, x1 - x0, y1 - y0) != (0, 0, st.width, st.height):
        st.push(P.Crop(x0, y0, x1 - x0, y1 - y0, origin=node.keyword, span=node.span))


@_resolves(A.Cut)
def _cut(node: A.Cut, st: State) -> None:
    w, h = st.clamp(node.width), st.clamp(node.height)
    if node.gravity is None:
        if node.dx >= st.width or node.dy >= st.height:
            raise _range_error(node, "dx/dy", f"inside the {st.width}x{st.height} image", (node.dx, node.dy))
        _crop_to(st, node.dx, node.dy, w, h, node)
        return
    # The rectangle is aligned to its anchor and dx/dy push it inwards; the middle
    # column ignores dx and the middle row ignores dy (imagemogr2.md section 3).
    g = node.gravity
    x = (node.dx, (st.width - w) // 2, st.width - w - node.dx)[g.column]
    y = (node.dy, (st.height - h) // 2, st.height - h - node.dy)[g.row]
    _crop_to(st, x, y, w, h, node)


@_resolves(A.Crop)
def _crop(node: A.Crop, st: State) -> None:
    g = node.geometry
    gravity = node.gravity or Gravity.NORTH_WEST
    if isinstance(g, A.CropBox):
        bw, bh = min(st.clamp(g.width), st.width), min(st.clamp(g.height), st.height)
        rw, rh = G.cover_size(st.width, st.height, bw, bh)
        if (rw, rh) != (st.width, st.height):
            st.push(P.Resize(rw, rh, origin="crop", span=node.span))
        x, y = G.anchor(gravity, st.width, st.height, bw, bh)
        _crop_to(st, x, y, bw, bh, node)
        return
    if isinstance(g, A.CropWidth):
        bw, bh = min(st.clamp(g.width), st.width), st.height
    elif isinstance(g, A.CropHeight):
        bw, bh = st.width, min(st.clamp(g.height), st.height)
    else:
        assert isinstance(g, A.CropRegion)
        bw = st.width if g.width is None else min(st.clamp(g.width), st.width)
        bh = st.height if g.height is None else min(st.clamp(g.height), st.height)
        x, y = G.anchor(gravity, st.width, st.height, bw, bh)
        if g.dx_mode is OffsetMode.MOVE:
            x += g.dx
        else:
            bw -= g.dx
        if g.dy_mode is OffsetMode.MOVE:
            y += g.dy
        else:
            bh -= g.dy
        _crop_to(st, x, y, bw, bh, node)
        return
    x, y = G.anchor(gravity, st.width, st.height, bw, bh)
    _crop_to(st, x, y, bw, bh, node)


@_resolves(A.IndexCrop)
def _index_crop(node: A.IndexCrop, st: State) -> None:
    """Slices ``length`` wide (high) from the left (top); the last one may be narrower. An
    index past the last slice keeps the image (docs/compatibility.md)."""
    if node.width is not None:
        length = st.clamp(node.width)
        if node.index * length >= st.width:
            return
        _crop_to(st, node.index * length, 0, length, st.height, node)
    else:
        assert node.height is not None
        length = st.clamp(node.height)
        if node.index * length >= st.height:
            return
        _crop_to(st, 0, node.index * length, st.width, length, node)


@_resolves(A.Frame)
def _frame(node: A.Frame, st: State) -> None:
    """Keep frame ``number`` (from 1), or the last one past the end; a static image is
    unchanged (docs/compatibility.md)."""
    if st.frames > 1:
        st.push(P.SelectFrames(((min(node.number, st.frames) - 1,),), origin="frame", span=node.span))
        st.frames = 1


def _no_gif(node: A.Node, st: State) -> None:
    if st.header.format is ImageFormat.GIF:
        raise UnsupportedForInputError(f"{node.keyword}: not supported for GIF input", op=node.keyword, span=node.span)


@_resolves(A.IRadius)
def _iradius(node: A.IRadius, st: State) -> None:
    _no_gif(node, st)
    r = node.radius
    if 2 * r >= min(st.width, st.height):
        raise _range_error(node, "radius", f"less than half of min({st.width}, {st.height})", r)
    _crop_to(st, (st.width - 2 * r) // 2, (st.height - 2 * r) // 2, 2 * r, 2 * r, node)
    st.push(P.Mask("circle", r, st.background, origin="iradius", span=node.span))
    st.has_alpha = st.has_alpha or st.background[3] < 255


@_resolves(A.RRadius)
def _rradius(node: A.RRadius, st: State) -> None:
    _no_gif(node, st)
    r = node.radius
    if 2 * r >= min(st.width, st.height):
        raise _range_error(node, "radius", f"less than half of min({st.width}, {st.height})", r)
    st.push(P.Mask("rounded", r, st.background, origin="rradius", span=node.span))
    st.has_alpha = st.has_alpha or st.background[3] < 255


@_resolves(A.SmartCrop)
def _scrop(node: A.SmartCrop, st: State) -> None:
    bw, bh = min(st.clamp(node.width), st.width), min(st.clamp(node.height), st.height)
    rw, rh = G.cover_size(st.width, st.height, bw, bh)
    if (rw, rh) != (st.width, st.height):
        st.push(P.Resize(rw, rh, origin="scrop", span=node.span))
    if (bw, bh) != (st.width, st.height):
        st.push(P.SmartCrop(bw, bh, origin="scrop", span=node.span))


@_resolves(A.RatioCrop)
def _rcrop(node: A.RatioCrop, st: State) -> None:
    from fractions import Fraction

    ratio = Fraction(st.width, st.height)
    low, high = Fraction(node.min_ratio), Fraction(node.max_ratio)
    if ratio > high:
        nw = min(st.width, G.round_half_up(st.height * high))
        _crop_to(st, (st.width - nw) // 2, 0, nw, st.height, node)
    elif ratio < low:
        nh = min(st.height, G.round_half_up(st.width / low))
        _crop_to(st, 0, (st.height - nh) // 2, st.width, nh, node)


@_resolves(A.Rotate)
def _rotate(node: A.Rotate, st: State) -> None:
    degrees = node.degrees % 360
    if degrees == 0:
        return
    if degrees % 90 == 0:
        st.push(P.Rotate90(degrees // 90, origin="rotate", span=node.span))
        return
    w, h = G.rotated_size(st.width, st.height, degrees)
    st.push(P.Rotate(degrees, w, h, st.background, origin="rotate", span=node.span))
    st.has_alpha = st.has_alpha or st.background[3] < 255


@_resolves(A.AutoOrient)
def _auto_orient(node: A.AutoOrient, st: State) -> None:
    for kind, arg in G.ORIENTATIONS.get(st.orientation, ()):
        if kind == "rotate90":
            st.push(P.Rotate90(arg, origin="auto-orient", span=node.span))
        else:
            st.push(P.Flip(bool(arg), origin="auto-orient", span=node.span))
    if st.orientation != 1:
        st.reset_orientation = True
    st.orientation = 1


@_resolves(A.Flip)
def _flip(node: A.Flip, st: State) -> None:
    st.push(P.Flip(node.axis is FlipAxis.HORIZONTAL, origin="flip", span=node.span))


@_resolves(ViewScale)
def _view(node: ViewScale, st: State) -> None:
    bw = None if node.width is None else st.clamp(node.width)
    bh = None if node.height is None else st.clamp(node.height)
    from fractions import Fraction  # (imageView2 only)

    s = min(Fraction(1), G.view_scale(node.mode, st.width, st.height, bw, bh))
    tw, th = G.scaled(st.width, st.height, s)
    if (tw, th) != (st.width, st.height):
        st.push(P.Resize(tw, th, origin="imageView2", span=node.span))
    if node.mode in (1, 5):
        box_w = bw if bw is not None else bh
        box_h = bh if bh is not None else bw
        assert box_w is not None and box_h is not None
        if node.mode == 5 and st.width < st.height:  # the long edge follows the image
            box_w, box_h = box_h, box_w
        cw, ch = G.shrink_box(st.width, st.height, box_w, box_h)
        _crop_to(st, (st.width - cw) // 2, (st.height - ch) // 2, cw, ch, A.ImageView2(span=node.span))


# -- filters --------------------------------------------------------------------------------------


@_resolves(A.Blur)
def _blur(node: A.Blur, st: State) -> None:
    st.push(P.Blur(node.sigma, node.radius, origin="blur", span=node.span))


@_resolves(A.Sharpen)
def _sharpen(node: A.Sharpen, st: State) -> None:
    st.push(P.Sharpen(node.amount, origin="sharpen", span=node.span))


def _brightness_contrast(bright: int, contrast: int) -> tuple[float, float]:
    """The ImageMagick brightness-contrast model on 0..1 values (``imagemogr2.md``
    section 20): ``slope = max(0, tan(pi (C/100 + 1) / 4))``,
    ``intercept = B/100 + ((100 - B)/200) (1 - slope)``. Returned on the 0..255 scale."""
    import math

    slope = max(0.0, math.tan(math.pi * (contrast / 100 + 1) / 4))
    intercept = bright / 100 + ((100 - bright) / 200) * (1 - slope)
    return slope, intercept * 255


@_resolves(A.Bright)
def _bright(node: A.Bright, st: State) -> None:
    if node.value:
        st.push(P.Linear(*_brightness_contrast(node.value, 0), origin="bright", span=node.span))


@_resolves(A.Contrast)
def _contrast(node: A.Contrast, st: State) -> None:
    if node.value:
        st.push(P.Linear(*_brightness_contrast(0, node.value), origin="contrast", span=node.span))


@_resolves(A.Grayscale)
def _grayscale(node: A.Grayscale, st: State) -> None:
    if node.enabled:
        st.push(P.Grayscale(origin="grayscale", span=node.span))


# -- end of a step: encoding parameters --------------------------------------------------------------


def _frame_groups_cgif(frames: int, n: int) -> tuple[tuple[int, ...], ...] | None:
    """``cgif/<N>`` (``imagemogr2.md`` section 14): N = 1 keeps the first 30 frames; N > 1
    keeps N frames sampled evenly, each carrying the delays of the frames it replaces."""
    if n == 1:
        return tuple((i,) for i in range(30)) if frames > 30 else None
    if frames <= n:
        return None
    bounds = [i * frames // n for i in range(n + 1)]
    return tuple(tuple(range(bounds[i], bounds[i + 1])) for i in range(n))


def _frame_groups_egif(frames: int, interval: int) -> tuple[tuple[int, ...], ...] | None:
    """``egif/<I>``: keep every I-th frame, merging the delays of the skipped ones."""
    if interval <= 1:
        return None
    return tuple(tuple(range(k, min(k + interval, frames))) for k in range(0, frames, interval))


def apply_quality(q: int, enc: StepEncode) -> int:
    """One step's quality arithmetic (``imagemogr2.md`` section 16): ``quality`` (forced
    or a cap), else ``rquality`` (a ratio, half up), then ``lquality`` (a floor)."""
    if enc.quality is not None:
        q = enc.quality.value if enc.quality.forced else min(q, enc.quality.value)
    elif enc.rquality is not None:
        q = G.round_ratio(q * enc.rquality, 100) if enc.rquality else 0
    if enc.lquality is not None:
        q = max(q, enc.lquality)
    return max(1, q)


@_resolves(StepEncode)
def _step_encode(enc: StepEncode, st: State) -> None:
    st.quality = apply_quality(st.quality, enc)
    if enc.interlace is not None:
        st.progressive = enc.interlace
    st.strip = st.strip or enc.strip
    if enc.size_limit is not None:
        st.size_limit = enc.size_limit
    if enc.aigc is not None:
        st.aigc = enc.aigc
    if st.frames > 1:
        groups = None
        if enc.cgif is not None and st.format is ImageFormat.GIF:
            groups = _frame_groups_cgif(st.frames, enc.cgif)
        if enc.egif is not None and st.format in (ImageFormat.GIF, ImageFormat.WEBP):
            groups = _compose(groups, _frame_groups_egif(st.frames if groups is None else len(groups), enc.egif))
        if groups is not None:
            st.push(P.SelectFrames(groups, origin="cgif" if enc.cgif else "egif", span=enc.span))
            st.frames = len(groups)
    if enc.format is not None:
        st.format = output_container(enc.format, st, enc)
        if not st.format.alpha_capable and st.has_alpha:
            st.push(P.Flatten(P.WHITE, origin="format", span=enc.span))
            st.has_alpha = False
    check_output(st.width, st.height, st.frames, st.limits)


def _compose(
    first: tuple[tuple[int, ...], ...] | None, second: tuple[tuple[int, ...], ...] | None
) -> tuple[tuple[int, ...], ...] | None:
    if first is None or second is None:
        return first or second
    return tuple(tuple(i for g in group for i in first[g]) for group in second)


def output_container(fmt: OutputFormat, st: State, node: Any) -> ImageFormat:
    """The container an output token writes here, or the documented refusal."""
    try:
        container = ImageFormat.from_output(fmt)
    except KeyError:
        # A valid CI format that ci_engine does not build: 501, like the other unbuilt
        # features, at the format's value (docs/errors.md).
        raise UnsupportedOperationError(
            f"format: no {fmt.value} encoder is available here; write jpg, png, webp, gif, bmp, heif or avif",
            span=getattr(node, "format_span", None) or getattr(node, "span", None),
        ) from None
    if container is ImageFormat.HEIF and st.header.format is ImageFormat.GIF:
        raise UnsupportedForInputError(
            "format: GIF input cannot be converted to HEIF",
            op="format",
            field="format",
            span=getattr(node, "span", None),
        )
    return container


def resolve_ops(ops: list[Any], st: State) -> None:
    """Emit the primitives of every symbolic operation onto ``st``."""
    for op in ops:
        resolver = RESOLVERS.get(type(op))
        if resolver is None:
            from ci_engine.errors import UnsupportedOperationError

            name = getattr(op, "keyword", type(op).__name__)
            raise UnsupportedOperationError(f"{name}: not implemented by ci_engine", span=getattr(op, "span", None))
        resolver(op, st)
