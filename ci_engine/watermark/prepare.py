"""Phase 2 of a watermark: from a resolved plan with pending
:class:`~ci_engine.plan.steps.Watermark` steps to one with concrete
:class:`~ci_engine.plan.steps.Composite` steps, just before execution.

For each pending step, on the base size recorded by the planner:

- text (``watermark/2``): the font is resolved (:mod:`ci_engine.watermark.fonts`), the text
  measured and drawn (:mod:`ci_engine.watermark.text`); with ``scatype`` the bitmap is
  resampled (section 3.2 applied to the text box);
- image (``watermark/1``): the URL is fetched through the resolver
  (:mod:`ci_engine.watermark.resources`), a processing query on it is run first (nesting
  depth at most 2), the logo is probed (an animated logo is refused), decoded, resized
  (``scatype``, then ``blogo/1``) and cropped (``blogo/2``) *with the executing backend*, so
  that its resampling matches the rest of the plan;
- tiled (``batch/1``): the overlay is rotated by ``degree`` (clockwise, about its centre,
  transparent corners), put in a cell of the grid step (``spacing``) and repeated from the
  top-left corner (``Composite.tile``);
- otherwise the box is placed by ``gravity``/``dx``/``dy`` (:mod:`ci_engine.watermark.place`)
  and, for text, only the part of the bitmap that lands on the canvas is drawn.

The geometry is all in :mod:`ci_engine.watermark.place`; backends only composite.
"""

from __future__ import annotations

import contextvars
import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ci_engine import ast as A
from ci_engine._dc import replace
from ci_engine.errors import (
    CIError,
    InternalError,
    InvalidArgumentError,
    InvalidImageFormatError,
    UnsupportedForInputError,
    UnsupportedOperationError,
    ValueRangeError,
)
from ci_engine.limits import Limits, check_header, check_input_bytes, current_budget
from ci_engine.plan import steps as P
from ci_engine.types import BlogoMode
from ci_engine.watermark import place
from ci_engine.watermark.fonts import FontLibrary, check_coverage, default_library
from ci_engine.watermark.resources import Resources, as_resolver, parse_cos_url, resolved_bytes
from ci_engine.watermark.text import Bitmap, layout_text

if TYPE_CHECKING:
    from ci_engine.backends.base import Backend
    from ci_engine.plan import ResolvedPlan

__all__ = ["prepare", "MAX_OVERLAY_PIXELS", "MAX_NESTING"]

MAX_OVERLAY_PIXELS = 40_000_000
"""Largest overlay bitmap drawn in full (tiles, scaled text): beyond this the watermark is
refused as out of range. An untiled, unscaled text is drawn only where it lands on the image,
so this does not limit it."""

MAX_NESTING = 2
"""A watermark URL may carry its own processing string, whose watermarks may too; this
deep at most (``watermark.md`` section 3.1)."""

_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("ci_engine_watermark_depth", default=0)


def prepare(
    plan: ResolvedPlan,
    backend: Backend[Any],
    *,
    resources: Resources | None = None,
    fonts: FontLibrary | None = None,
    limits: Limits | None = None,
) -> ResolvedPlan:
    """``plan`` with every pending watermark turned into a :class:`~ci_engine.plan.steps.Composite`
    (or dropped when it does not land on the image).

    Raises:
        AccessDeniedError, NoSuchKeyError, InvalidArgumentError: the logo cannot be fetched.
        InvalidImageFormatError: the logo cannot be decoded.
        UnsupportedForInputError: the logo is animated.
        FontNotFoundError: the font has no file here.
        ValueRangeError: the overlay would be too large to draw.
    """
    if not any(isinstance(step, P.Watermark) for step in plan.steps):
        return plan
    limits = limits or Limits()
    context = _Context(backend, resources, fonts, limits)
    steps: list[P.Prim] = []
    for step, (width, height) in zip(plan.steps, plan.sizes()):
        if not isinstance(step, P.Watermark):
            steps.append(step)
            continue
        if (width, height) != (step.width, step.height):
            raise InternalError(
                f"watermark: planned on {step.width}x{step.height} but the image is {width}x{height} at that step"
            )
        try:
            composite = context.composite(step)
        except CIError as exc:
            if exc.span is None:
                exc.span = step.span
            raise
        if composite is not None:
            steps.append(composite)
    prepared = plan.with_steps(steps)
    return replace(prepared, decode=replace(prepared.decode, sequential=_sequential(prepared)))


def _sequential(plan: ResolvedPlan) -> bool:
    """Compositing reads the image top to bottom, like the streamable steps: the decoder may
    stream when every other step allows it (``ci_engine.plan`` decides for those)."""
    from ci_engine.plan import _sequential as plan_sequential

    others = [s for s in plan.steps if not isinstance(s, P.Composite)]
    return plan_sequential(others) and plan.encode.size_limit is None


class _Context:
    def __init__(self, backend: Backend[Any], resources: Resources | None, fonts: FontLibrary | None, limits: Limits):
        self.backend = backend
        self.resources = resources
        self.resolver = as_resolver(resources)
        self.fonts = fonts
        self.limits = limits
        self.budget = current_budget(limits)

    # -- one watermark -------------------------------------------------------------------------------
    def composite(self, step: P.Watermark) -> P.Composite | None:
        mark = step.mark
        width, height = step.width, step.height
        tiled = bool(mark.batch)
        if isinstance(mark, A.TextWatermark):
            bitmap = self._text(mark, width, height, tiled)
        elif isinstance(mark, A.ImageWatermark):
            bitmap = self._logo(mark, width, height)
        else:
            raise UnsupportedOperationError(f"watermark/{getattr(mark, 'mode', '?')}: not implemented by ci_engine")
        if bitmap is None:
            return None
        opacity = mark.effective_dissolve / 100
        origin = step.origin
        if tiled:
            return _tiled(bitmap, mark, opacity, origin, step.span, (width, height), self.budget.charge_pixels)
        bw, bh = bitmap.box
        x, y = place.position(mark.effective_gravity, width, height, bw, bh, mark.dx or 0, mark.dy or 0)
        ox, oy = bitmap.origin
        return _make(bitmap.pixels, ((x - ox, y - oy),), opacity, False, origin, step.span, bitmap.neutral)

    # -- text ----------------------------------------------------------------------------------------
    def _text(self, mark: A.TextWatermark, width: int, height: int, tiled: bool) -> Bitmap | None:
        library = self.fonts or default_library()
        primary = library.resolve(mark.effective_font)
        fallback = library.fallback()
        key = (mark.text, primary, fallback, mark.effective_fontsize, mark.effective_fill.rgb, mark.shadow or 0)
        layout = _LAYOUTS.get(key)
        if layout is None:
            check_coverage(mark.text, primary, fallback)  # never boxes in place of glyphs
            layout = layout_text(mark.text, primary, fallback, px=key[3], fill=key[4], shadow=key[5])
            _LAYOUTS.put(key, layout, 0)
        if tiled or mark.scatype is not None:
            _check_overlay_size(layout.size, "watermark/2", "the rendered text")
            self.budget.charge_pixels(layout.size[0] * layout.size[1], "watermark/2: drawing the text")
            bitmap = _render(key, layout, None)
            if mark.scatype is not None and mark.spcent is not None:
                bw, bh = bitmap.box
                target = place.scale_size(mark.scatype, mark.spcent, width, height, bw, bh)
                bitmap = _resample(bitmap, target, self.budget.charge_pixels)
            return bitmap
        # Placed once: draw only what lands on the canvas.
        bw, bh = layout.box
        x, y = place.position(mark.effective_gravity, width, height, bw, bh, mark.dx or 0, mark.dy or 0)
        ox, oy = layout.origin
        fw, fh = layout.size
        visible = place.clip(x - ox, y - oy, fw, fh, width, height)
        if visible is None:
            return None
        vx, vy, vw, vh = visible
        self.budget.charge_pixels(vw * vh, "watermark/2: drawing the text")
        window = (vx - (x - ox), vy - (y - oy), vx - (x - ox) + vw, vy - (y - oy) + vh)
        return _render(key, layout, window)

    # -- image ----------------------------------------------------------------------------------------
    def _logo(self, mark: A.ImageWatermark, width: int, height: int) -> Bitmap:
        from ci_engine.io import probe

        url = mark.image
        budget = self.budget
        budget.count_image(f"watermark/1 image {url!r}")
        fetched = resolved_bytes(url, self.resolver.fetch(url))  # a caller's Resolver may return anything
        data = self._nested(url, fetched)
        check_input_bytes(len(data), self.limits)
        # A nested request charged what it read itself; its result is read again here.
        budget.charge_bytes(len(data), f"watermark/1 image {url!r}")
        try:
            header = probe(data, limits=self.limits)
        except InvalidImageFormatError as exc:
            raise InvalidImageFormatError(
                f"watermark/1: the watermark image {url!r} is not an image ci_engine can read", detail=exc.message
            ) from exc
        if header.frames > 1:
            raise UnsupportedForInputError(
                f"watermark/1: the watermark image {url!r} is animated ({header.frames} frames); "
                "an animated image cannot be used as a watermark",
                op="watermark/1",
                field="image",
                actual=url,
            )
        check_header(header, self.limits)
        budget.charge_pixels(header.width * header.height, f"watermark/1: decoding {url!r}")
        backend = self.backend
        if header.format not in backend.capabilities.loads:
            raise UnsupportedOperationError(
                f"watermark/1: backend {backend.name} cannot decode the {header.format.value} watermark image {url!r}"
            )
        try:
            image = backend.decode(data, P.DecodeSpec(format=header.format), header)
        except InvalidImageFormatError as exc:
            raise InvalidImageFormatError(
                f"watermark/1: the watermark image {url!r} cannot be decoded", detail=exc.detail or exc.message
            ) from exc
        w0, h0, _ = backend.size(image)
        w, h = w0, h0
        if mark.scatype is not None and mark.spcent is not None:
            w, h = place.scale_size(mark.scatype, mark.spcent, width, height, w0, h0)
        if mark.blogo is BlogoMode.SCALE:
            w, h = place.blogo_scale_size(width, height, w, h)
        _check_overlay_size((w, h), "watermark/1", "the scaled watermark image")
        if (w, h) != (w0, h0):
            budget.charge_pixels(w * h, f"watermark/1: scaling {url!r}")
            image = backend.resize(image, P.Resize(w, h, origin="watermark/1"))
        if mark.blogo is BlogoMode.CROP:
            cw, ch = place.blogo_crop_size(width, height, w, h)
            if (cw, ch) != (w, h):
                image = backend.crop(image, P.Crop(0, 0, cw, ch, origin="watermark/1"))
        pixels = _rgba(backend.to_array(image)[0])
        return Bitmap(pixels, (int(pixels.shape[1]), int(pixels.shape[0])))

    def _nested(self, url: str, data: bytes) -> bytes:
        """Run the processing string carried by the watermark URL's query, if any."""
        query = parse_cos_url(url).query
        if not query or not _has_processing(query):
            return data
        depth = _DEPTH.get()
        if depth >= MAX_NESTING:
            raise InvalidArgumentError(
                f"watermark/1: the watermark URL {url!r} nests processing deeper than {MAX_NESTING} levels",
                op="watermark/1",
                field="image",
            )
        from ci_engine.api import process
        from ci_engine.parse import parse_url

        pipeline = parse_url("?" + query, max_steps=self.limits.max_steps)
        token = _DEPTH.set(depth + 1)
        try:
            result = process(
                data,
                pipeline,
                backend=self.backend.name,
                limits=self.limits,
                resources=self.resources,
                fonts=self.fonts,
            )
        finally:
            _DEPTH.reset(token)
        return result.data


class _Cache:
    """A small thread-safe LRU for text layouts and bitmaps: a service stamps the same text
    on many images, and measuring and drawing it is most of a text watermark's own cost.
    Entries over ``max_pixels`` are not kept; cached bitmaps are read-only."""

    def __init__(self, size: int, max_pixels: int = 4_000_000) -> None:
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._size = size
        self._max_pixels = max_pixels
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any, pixels: int) -> None:
        if pixels > self._max_pixels:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


_LAYOUTS = _Cache(64)
_BITMAPS = _Cache(32)


def _render(key: tuple[Any, ...], layout: Any, window: tuple[int, int, int, int] | None) -> Bitmap:
    full = (key, window)
    bitmap: Bitmap | None = _BITMAPS.get(full)
    if bitmap is None:
        bitmap = layout.render(window)
        bitmap.pixels.flags.writeable = False
        _BITMAPS.put(full, bitmap, bitmap.size[0] * bitmap.size[1])
    return bitmap


def _has_processing(query: str) -> bool:
    from urllib.parse import unquote

    from ci_engine.parse import KEYWORDS

    keywords = {k.lower() for k in KEYWORDS}
    for component in query.split("&"):
        lead = unquote(component).split("/", 1)[0].split("|", 1)[0].lower()
        if lead in keywords and "=" not in lead:
            return True
    return False


def _check_overlay_size(size: tuple[int, int], op: str, what: str) -> None:
    w, h = size
    if w * h > MAX_OVERLAY_PIXELS:
        raise ValueRangeError(
            f"{op}: {what} would be {w}x{h}, more than the {MAX_OVERLAY_PIXELS} pixels an overlay may have",
            op=op,
            field="size",
            expected=f"at most {MAX_OVERLAY_PIXELS} pixels",
            actual=f"{w}x{h}",
        )


def _rgba(frame: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """An ``(h, w, c)`` frame (grey, grey + alpha, RGB, RGBA) as RGBA."""
    channels = frame.shape[-1]
    if channels == 4:
        return np.ascontiguousarray(frame)
    out = np.empty((*frame.shape[:2], 4), dtype=np.uint8)
    if channels in (1, 2):
        out[..., :3] = frame[..., :1]
    else:
        out[..., :3] = frame[..., :3]
    out[..., 3] = frame[..., 1] if channels == 2 else 255
    return out


def _pil_rgba(pixels: NDArray[np.uint8]) -> Any:
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(pixels), "RGBA").convert("RGBa")


def _from_pil(image: Any) -> NDArray[np.uint8]:
    return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()


def _resample(bitmap: Bitmap, box: tuple[int, int], charge: Callable[[int, str], None] | None = None) -> Bitmap:
    """Scale ``bitmap`` so that its box becomes ``box`` (Lanczos, premultiplied alpha)."""
    from PIL import Image

    bw, bh = bitmap.box
    tw, th = box
    if (tw, th) == (bw, bh):
        return bitmap
    fx, fy = tw / bw, th / bh
    fw, fh = bitmap.size
    nw, nh = max(1, round(fw * fx)), max(1, round(fh * fy))
    _check_overlay_size((nw, nh), "watermark/2", "the scaled text")
    if charge is not None:
        charge(nw * nh, "watermark/2: scaling the text")
    scaled = _pil_rgba(bitmap.pixels).resize((nw, nh), Image.Resampling.LANCZOS)
    ox, oy = bitmap.origin
    return Bitmap(_from_pil(scaled), (tw, th), (round(ox * fx), round(oy * fy)), bitmap.neutral)


def _rotate(pixels: NDArray[np.uint8], degree: int, window: tuple[int, int] | None = None) -> NDArray[np.uint8]:
    """Rotate clockwise by ``degree`` about the centre, growing the canvas to the rotated
    bounding box (:func:`place.rotated_box`), transparent outside (bicubic, premultiplied
    alpha). With ``window`` = ``(w, h)``, only the top-left ``w`` x ``h`` of that box is
    computed: the cost follows the pixels kept, not the size of the rotated box."""
    from PIL import Image

    h, w = pixels.shape[:2]
    if degree % 90 == 0:
        out = pixels if degree % 360 == 0 else np.rot90(pixels, k=-(degree // 90) % 4)
        return np.ascontiguousarray(out if window is None else out[: window[1], : window[0]])
    bw, bh = place.rotated_box(w, h, degree)
    matrix, (nw, nh) = _rotation(w, h, degree)
    # Exactly the rotated bounding box (Pillow's may be a pixel larger): centre-crop or centre-pad.
    top, left = max(0, (nh - bh) // 2), max(0, (nw - bw) // 2)
    source = _pil_rgba(pixels)
    if window is not None and nw >= bw and nh >= bh:
        a, b, c, d, e, f = matrix  # the top-left of the cropped box is (left, top) of Pillow's
        shifted = (a, b, c + a * left + b * top, d, e, f + d * left + e * top)
        vw, vh = min(window[0], bw), min(window[1], bh)
        part = source.transform((vw, vh), Image.Transform.AFFINE, shifted, Image.Resampling.BICUBIC)
        return np.ascontiguousarray(_from_pil(part))
    rotated = _from_pil(source.transform((nw, nh), Image.Transform.AFFINE, matrix, Image.Resampling.BICUBIC))
    rotated = rotated[top : top + bh, left : left + bw]
    if rotated.shape[:2] != (bh, bw):
        out = np.zeros((bh, bw, 4), dtype=np.uint8)
        oy, ox = (bh - rotated.shape[0]) // 2, (bw - rotated.shape[1]) // 2
        out[oy : oy + rotated.shape[0], ox : ox + rotated.shape[1]] = rotated
        rotated = out
    if window is not None:
        rotated = rotated[: window[1], : window[0]]
    return np.ascontiguousarray(rotated)


def _rotation(w: int, h: int, degree: int) -> tuple[tuple[float, ...], tuple[int, int]]:
    """The affine matrix (output to input) and canvas size of Pillow's
    ``rotate(-degree, expand=True)`` on a ``w`` x ``h`` image, computed as Pillow computes
    them, so that a window of the canvas can be transformed alone."""
    angle = math.radians(degree)  # Pillow's rotate(-degree) uses -radians(-degree)
    cos, sin = round(math.cos(angle), 15), round(math.sin(angle), 15)
    a, b, d, e = cos, sin, -sin, cos
    cx, cy = w / 2, h / 2
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy
    xs, ys = [], []
    for x, y in ((0, 0), (w, 0), (w, h), (0, h)):
        xs.append(a * x + b * y + c)
        ys.append(d * x + e * y + f)
    nw = math.ceil(max(xs)) - math.floor(min(xs))
    nh = math.ceil(max(ys)) - math.floor(min(ys))
    tx, ty = -(nw - w) / 2.0, -(nh - h) / 2.0
    c, f = a * tx + b * ty + c, d * tx + e * ty + f
    return (a, b, c, d, e, f), (nw, nh)


def _tiled(
    bitmap: Bitmap,
    mark: Any,
    opacity: float,
    origin: str,
    span: Any,
    canvas: tuple[int, int],
    charge: Callable[[int, str], None],
) -> P.Composite:
    """The tile grid: the overlay (all of its bitmap: box, ink and shadow) rotated by
    ``degree``, in a cell of the grid step, repeated from the top-left corner.

    Only what can land on the canvas is computed: a tile (or a cell) larger than the canvas
    is cut to it before it is rotated or drawn, since the grid starts at the top-left corner
    and the next tile lies beyond the canvas. The size is checked and charged to the
    request's work budget before the rotation."""
    degree = mark.degree or 0
    op = f"watermark/{mark.mode}"
    h, w = bitmap.pixels.shape[:2]
    tw, th = place.rotated_box(w, h, degree)
    sx, sy = place.tile_step(tw, th, mark.effective_spacing)
    width, height = canvas
    vw, vh = min(tw, width), min(th, height)  # the part of the first tile on the canvas
    cw, ch = min(sx, width), min(sy, height)  # a cell cut to the canvas tiles it the same
    _check_overlay_size((cw, ch), op, "the tile")
    if degree % 90:
        charge(vw * vh, f"{op}: rotating the tile")
    charge(cw * ch, f"{op}: the tile cell")
    pixels = _rotate(bitmap.pixels, degree, (vw, vh))
    cell = np.zeros((ch, cw, 4), dtype=np.uint8)
    cell[: pixels.shape[0], : pixels.shape[1]] = pixels
    return _make(cell, ((0, 0),), opacity, True, origin, span, bitmap.neutral)


def _make(
    pixels: NDArray[np.uint8],
    placements: tuple[tuple[int, int], ...],
    opacity: float,
    tile: bool,
    origin: str,
    span: Any,
    grey: bool | None = None,
) -> P.Composite:
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if grey is None:  # neutral wherever visible
        hidden = pixels[..., 3] == 0
        grey = bool(
            np.all((pixels[..., 0] == pixels[..., 1]) | hidden) and np.all((pixels[..., 1] == pixels[..., 2]) | hidden)
        )
    h, w = pixels.shape[:2]
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=8)
    digest.update(f"{w}x{h}".encode())
    return P.Composite(
        pixels,
        (int(w), int(h)),
        placements,
        opacity,
        tile=tile,
        grey=grey,
        key=digest.hexdigest(),
        origin=origin,
        span=span,
    )
