"""The libvips backend (pyvips). The only module that imports pyvips.

Decisions (docs/architecture.md has the long form):

- Colour: images are decoded to 8-bit sRGB. CMYK/YCCK and RGB images whose embedded ICC
  profile is not an sRGB one are converted with ``icc_transform`` (as libvips' own
  thumbnailer does); 16-bit images are converted to 8 bits; grey stays grey.
- Alpha: resampling steps (resize, rotate, blur) run premultiplied.
- Animations are "toilet rolls" (frames stacked vertically, ``page-height``); geometry and
  neighbourhood steps run frame by frame, point operations on the whole roll.
- libvips has no BMP codec and this wheel no HEVC codec; GIF output is faster through
  Pillow: those go through :mod:`ci_engine.codecs`.
- Process settings, made once at construction: the operation cache is off (every request
  is different and a cache holds images alive), untrusted loaders are blocked, and the
  concurrency is chosen per request (1 thread for small outputs, where thread start-up costs
  more than it saves; the libvips default for large ones).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyvips

from ci_engine.backends.base import Backend, Capabilities
from ci_engine.errors import BackendError, InvalidImageFormatError
from ci_engine.plan import steps as P
from ci_engine.types import ImageFormat, ImageHeader

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ci_engine.codecs import Frames

# numpy and ci_engine.codecs (numpy, Pillow, pillow-heif) are imported where they are used
# (BMP, HEIF, GIF output, watermarks, to_array): a JPEG/PNG/WebP/AVIF request never pays
# for them (docs/architecture.md, "Start-up").

__all__ = ["VipsBackend"]

Image = pyvips.Image
SMALL_OUTPUT = 2_000_000
"""Outputs up to this many pixels run with one libvips thread."""

_LOADERS = (
    "jpegload_buffer",
    "pngload_buffer",
    "gifload_buffer",
    "webpload_buffer",
    "heifload_buffer",
    "tiffload_buffer",
)


def _configure() -> None:
    pyvips.cache_set_max(0)
    try:
        pyvips.block_untrusted_set(True)
    except AttributeError:  # pyvips built against an old libvips
        pass


PIN_CONCURRENCY_ENV = "CI_ENGINE_VIPS_CONCURRENCY"
"""When this environment variable holds a positive integer at the time the backend is first
built, libvips' thread count is set to it once and :meth:`VipsBackend.tune` leaves it alone.
A process that runs several requests at once (``ci-engine serve``) sets it, so that no request
changes the process-wide setting under another one."""


def _pinned_concurrency() -> int | None:
    value = os.environ.get(PIN_CONCURRENCY_ENV, "").strip()
    if not value:
        return None
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count > 0 else None


class VipsBackend(Backend[Any]):
    """Execute plans with libvips."""

    name = "vips"
    _configured = False

    def __init__(self) -> None:
        if not VipsBackend._configured:
            _configure()
            VipsBackend._configured = True
        self._default_concurrency = pyvips.concurrency_get() or (os.cpu_count() or 1)
        self._pinned = _pinned_concurrency()
        if self._pinned is not None:
            pyvips.concurrency_set(self._pinned)

    @property
    def capabilities(self) -> Capabilities:
        every = frozenset(ImageFormat)
        return Capabilities(
            loads=every,
            saves=every,
            shrink_on_load=frozenset({ImageFormat.JPEG, ImageFormat.WEBP}),
            animated=True,
            methods=P.BACKEND_METHODS,
        )

    def tune(self, output_pixels: int, output_format: ImageFormat | None = None) -> None:
        """Pick the libvips concurrency for a request producing ``output_pixels`` (in
        ``output_format``, when known): one thread for small outputs, except AVIF, whose AV1
        encoder takes its thread count from libvips' and is the bulk of such a request
        (measured: a 720 px AVIF encodes in 0.8 s on 2 threads, 1.0-1.4 s on one)."""
        if self._pinned is not None:  # set once for the process (a server's worker pool)
            return
        small = output_pixels <= SMALL_OUTPUT and output_format is not ImageFormat.AVIF
        pyvips.concurrency_set(1 if small else self._default_concurrency)

    # -- decode -----------------------------------------------------------------------------------
    def decode(self, data: bytes, spec: P.DecodeSpec, header: ImageHeader) -> Any:
        fmt = spec.format
        access = "sequential" if spec.sequential else "random"
        frames = -1 if spec.frames > 1 else 1
        try:
            if fmt is ImageFormat.BMP:
                from ci_engine.codecs import bmp as bmp_codec

                return _from_frames(bmp_codec.decode(data))
            if fmt is ImageFormat.HEIF:
                from ci_engine.codecs import heif as heif_codec

                return _normalize(_from_frames(heif_codec.decode(data)))
            if fmt is ImageFormat.JPEG:
                image = Image.jpegload_buffer(data, shrink=spec.shrink, access=access, fail_on="truncated")
            elif fmt is ImageFormat.WEBP:
                # libwebp scales both axes by one factor to rint(size * scale); the plan wants
                # the floor (header // shrink) with the whole picture in it: use the axis ratio
                # that lands both axes there, else resize the pixel of difference away.
                w, h = max(1, header.width // spec.shrink), max(1, header.height // spec.shrink)
                scale = 1.0
                if spec.shrink > 1:
                    fits = [s for s in (h / header.height, w / header.width) if _scaled(header, s) == (w, h)]
                    scale = fits[0] if fits else max(w / header.width, h / header.height)
                image = Image.webpload_buffer(data, n=frames, scale=scale, access=access, fail_on="truncated")
                if spec.shrink > 1 and (image.width, image.height) != (w, h):
                    image = _resize(image, w, h)
            elif fmt is ImageFormat.GIF:
                image = Image.gifload_buffer(data, n=frames, access=access, fail_on="truncated")
            elif fmt is ImageFormat.PNG:
                image = Image.pngload_buffer(data, access=access, fail_on="truncated")
            elif fmt is ImageFormat.AVIF:
                image = Image.heifload_buffer(data, access=access, fail_on="truncated")
            else:
                image = Image.tiffload_buffer(data, access=access, fail_on="truncated")
        except pyvips.Error as exc:
            raise InvalidImageFormatError(f"{fmt.value}: cannot decode the image", detail=str(exc)) from exc
        return _normalize(image)

    # -- encode -----------------------------------------------------------------------------------
    def encode(self, image: Any, spec: P.EncodeSpec, *, quality: int | None = None) -> bytes:
        q = quality if quality is not None else spec.quality
        image = image.copy()
        if spec.reset_orientation and image.get_typeof("orientation"):
            image.set("orientation", 1)
        keep = "none" if spec.strip else "all"
        fmt = spec.format
        try:
            if fmt is ImageFormat.JPEG:
                return bytes(image.jpegsave_buffer(Q=q or 75, interlace=spec.progressive, keep=keep))
            if fmt is ImageFormat.PNG:
                return bytes(image.pngsave_buffer(interlace=spec.progressive, keep=keep))
            if fmt is ImageFormat.WEBP:
                return bytes(image.webpsave_buffer(Q=q or 75, keep=keep))
            if fmt is ImageFormat.AVIF:
                return bytes(image.heifsave_buffer(Q=q or 50, compression="av1", keep=keep))
            if fmt is ImageFormat.TIFF:
                return bytes(image.tiffsave_buffer(keep=keep))
            frames = self._frames(image)
            if fmt is ImageFormat.GIF:
                from ci_engine.codecs import gif as gif_codec

                return gif_codec.encode(frames, interlace=spec.progressive)
            if fmt is ImageFormat.BMP:
                from ci_engine.codecs import bmp as bmp_codec

                return bmp_codec.encode(frames)
            from ci_engine.codecs import heif as heif_codec

            return heif_codec.encode(frames, quality=q or 50, strip=spec.strip)
        except pyvips.Error as exc:
            raise _classify(exc, f"encode {fmt.value}") from exc

    def input_error(self, exc: Exception) -> InvalidImageFormatError | None:
        """The input's fault behind a step's failure, or None: libvips decodes lazily, so a
        corrupt image body first fails in whichever step reads the pixels."""
        if isinstance(exc, pyvips.Error):
            classified = _classify(exc, "a step")
            if isinstance(classified, InvalidImageFormatError):
                return classified
        return None

    def materialize(self, image: Any) -> Any:
        try:
            return image.copy_memory()
        except pyvips.Error as exc:
            raise _classify(exc, "decode") from exc

    def size(self, image: Any) -> tuple[int, int, int]:
        height = _page_height(image)
        return image.width, height, image.height // height

    def to_array(self, image: Any) -> NDArray[np.uint8]:
        return self._frames(image).pixels

    def _frames(self, image: Any) -> Frames:
        import numpy as np

        from ci_engine.codecs import Frames

        try:
            array = np.asarray(image.numpy(), dtype=np.uint8)
        except pyvips.Error as exc:
            raise _classify(exc, "decode") from exc
        if array.ndim == 2:
            array = array[..., np.newaxis]
        height = _page_height(image)
        pixels = array.reshape(image.height // height, height, image.width, image.bands)
        delays = list(image.get("delay")) if image.get_typeof("delay") else []
        loop = int(image.get("loop")) if image.get_typeof("loop") else 0
        exif = bytes(image.get("exif-data")) if image.get_typeof("exif-data") else None
        icc = bytes(image.get("icc-profile-data")) if image.get_typeof("icc-profile-data") else None
        return Frames(pixels, delays, loop, exif, icc)

    # -- geometry -----------------------------------------------------------------------------------
    def resize(self, image: Any, step: P.Resize) -> Any:
        return _per_page(image, lambda page: _resize(page, step.width, step.height))

    def crop(self, image: Any, step: P.Crop) -> Any:
        return _per_page(image, lambda page: page.crop(step.left, step.top, step.width, step.height))

    def embed(self, image: Any, step: P.Embed) -> Any:
        def one(page: Any) -> Any:
            page = _with_alpha(page) if step.background[3] < 255 else page
            return page.embed(
                step.left,
                step.top,
                step.width,
                step.height,
                extend="background",
                background=_colour(page, step.background),
            )

        return _per_page(image, one)

    def rotate90(self, image: Any, step: P.Rotate90) -> Any:
        angle = {1: "d90", 2: "d180", 3: "d270"}[step.turns % 4]
        return _per_page(image, lambda page: page.rot(angle))

    def rotate(self, image: Any, step: P.Rotate) -> Any:
        def one(page: Any) -> Any:
            # libvips' affine premultiplies an image with alpha itself (and undoes it), so
            # the page goes in as it is: premultiplying here too darkened or tinted every
            # anti-aliased edge. The backgrounds used are transparent or opaque, for which
            # the premultiplied value is the value itself.
            page = _with_alpha(page) if step.background[3] < 255 else page
            bg = list(_colour(page, step.background))
            out = page.rotate(step.degrees, background=bg, interpolate=pyvips.Interpolate.new("bicubic"))
            return _fit(out, step.width, step.height, bg).cast("uchar")

        return _per_page(image, one)

    def flip(self, image: Any, step: P.Flip) -> Any:
        if step.horizontal:
            return image.fliphor()
        return _per_page(image, lambda page: page.flipver())

    def smartcrop(self, image: Any, step: P.SmartCrop) -> Any:
        first = image.crop(0, 0, image.width, _page_height(image))
        window = first.smartcrop(step.width, step.height, interesting="attention")
        left, top = -window.xoffset, -window.yoffset
        return _per_page(image, lambda page: page.crop(left, top, step.width, step.height))

    def select_frames(self, image: Any, step: P.SelectFrames) -> Any:
        height = _page_height(image)
        count = image.height // height
        delays = list(image.get("delay")) if image.get_typeof("delay") else [100] * count
        pages = [image.crop(0, g[0] * height, image.width, height) for g in step.groups]
        out = Image.arrayjoin(pages, across=1) if len(pages) > 1 else pages[0]
        out = out.copy()
        out.set_type(pyvips.GValue.gint_type, "page-height", height)
        out.set_type(pyvips.GValue.gint_type, "n-pages", len(pages))
        out.set_type(
            pyvips.GValue.array_int_type, "delay", [sum(delays[i] for i in g if i < len(delays)) for g in step.groups]
        )
        return out

    # -- pixels ----------------------------------------------------------------------------------------
    def blur(self, image: Any, step: P.Blur) -> Any:
        # A Gaussian truncated at `radius` px: libvips builds the mask until its amplitude,
        # relative to the centre, falls below min_ampl. gaussblur takes min_ampl >= 0.001 and
        # sigma >= 0.01 and silently uses its defaults (0.2, 1.5) for values out of range; the
        # integer mask rint(20 v) has no further non-zero tap below 0.001, and a mask of
        # 8 sigma < 1 px is the identity.
        if 8 * step.sigma < 1:
            return image
        min_ampl = max(0.001, min(0.999, math.exp(-(step.radius**2) / (2 * step.sigma**2)) * 0.999))
        return _per_page(image, lambda page: _premultiplied(page, lambda x: x.gaussblur(step.sigma, min_ampl=min_ampl)))

    def sharpen(self, image: Any, step: P.Sharpen) -> Any:
        k = step.amount / 100

        def one(page: Any) -> Any:
            colour, alpha = _split_alpha(page)
            blurred = colour.gaussblur(step.sigma, precision="float")
            out = (colour.cast("float") * (1 + k) - blurred * k).rint().cast("uchar")
            return _join_alpha(out, alpha, page)

        return _per_page(image, one)

    def linear(self, image: Any, step: P.Linear) -> Any:
        colour, alpha = _split_alpha(image)
        out = colour.linear([step.slope] * colour.bands, [step.offset] * colour.bands, uchar=True)
        return _join_alpha(out, alpha, image)

    def grayscale(self, image: Any, step: P.Grayscale) -> Any:
        colour, alpha = _split_alpha(image)
        if colour.bands >= 3:
            luma = colour.recomb([[0.299, 0.587, 0.114]]).rint().cast("uchar")
        else:
            luma = colour
        out = luma if alpha is None else luma.bandjoin(alpha)
        return out.copy(interpretation="b-w")

    def mask(self, image: Any, step: P.Mask) -> Any:
        height = _page_height(image)
        coverage = _coverage(step.shape, step.radius, image.width, height)
        bg = step.background

        def one(page: Any) -> Any:
            if bg[3] < 255:
                page = _with_alpha(page)
                colour, alpha = _split_alpha(page)
                assert alpha is not None
                return _join_alpha(colour, (alpha * coverage).rint().cast("uchar"), page)
            colour, alpha = _split_alpha(page)
            fill = _colour(colour, bg)
            out = (colour * coverage + [v * 1.0 for v in fill] * (1 - coverage)).rint().cast("uchar")
            if alpha is not None:
                alpha = (alpha * coverage + 255 * (1 - coverage)).rint().cast("uchar")
            return _join_alpha(out, alpha, page)

        return _per_page(image, one)

    def flatten(self, image: Any, step: P.Flatten) -> Any:
        if not image.hasalpha():
            return image
        background = _colour(image, step.background)[: image.bands - 1]
        out = image.flatten(background=background).cast("uchar")
        return out.copy(interpretation=image.interpretation)

    def composite(self, image: Any, step: P.Composite) -> Any:
        # Only the pixels under the overlay are computed (crop, blend, insert back): a small
        # watermark on a large image costs next to nothing. Same formula as
        # ci_engine.watermark.blend, which the Pillow backend runs.
        # A tile grid is the tile repeated lazily by libvips (replicate), never expanded in
        # memory: its cost follows the canvas, not the number of tiles.
        import numpy as np

        from ci_engine.watermark.blend import regions
        from ci_engine.watermark.place import clip

        def one(page: Any) -> Any:
            if page.bands - (1 if page.hasalpha() else 0) < 3 and not step.grey:
                page = page.colourspace("srgb")
            grey = page.bands - (1 if page.hasalpha() else 0) < 3
            if step.tile:
                tile = _from_array(np.ascontiguousarray(step.overlay[..., [0, 3]] if grey else step.overlay))
                for x, y in step.placements:
                    box = clip(x, y, page.width - x, page.height - y, page.width, page.height)
                    if box is None:
                        continue
                    left, top, w, h = box
                    px, py = (left - x) % tile.width, (top - y) % tile.height
                    across, down = -(-(px + w) // tile.width), -(-(py + h) // tile.height)
                    overlay = tile.replicate(across, down).crop(px, py, w, h)
                    page = page.insert(_over(page.crop(left, top, w, h), overlay, step.opacity), left, top)
                return page
            for left, top, w, h, part in regions(step, page.width, page.height):
                overlay = _from_array(np.ascontiguousarray(part[..., [0, 3]] if grey else part))
                patch = _over(page.crop(left, top, w, h), overlay, step.opacity)
                page = page.insert(patch, left, top)
            return page

        return _per_page(image, one)


# -- helpers ------------------------------------------------------------------------------------------


def _from_array(array: NDArray[np.uint8]) -> Any:
    height, width, bands = array.shape
    return Image.new_from_memory(array.tobytes(), width, height, bands, "uchar")


def _over(base: Any, overlay: Any, opacity: float) -> Any:
    """``overlay`` (colour + alpha, uchar) over ``base`` (same colour bands, optional alpha):
    ``out_a = a + a_b (1 - a)``, ``out_c = (c a + c_b a_b (1 - a)) / out_a``."""
    colours = overlay.bands - 1
    a = overlay.extract_band(colours) * (opacity / 255)
    oc = overlay.extract_band(0, n=colours)
    colour, alpha = _split_alpha(base)
    if alpha is None:
        out = colour + (oc - colour) * a
        return _join_alpha(out.rint().cast("uchar"), None, base)
    ab = alpha * (1 / 255)
    out_a = a + ab * (1 - a)
    out = (oc * a + colour * ab * (1 - a)) / out_a  # libvips gives 0 where out_a is 0
    return _join_alpha(out.rint().cast("uchar"), (out_a * 255).rint().cast("uchar"), base)


def _page_height(image: Any) -> int:
    if image.get_typeof("page-height"):
        height = int(image.get("page-height"))
        if 0 < height <= image.height and image.height % height == 0:
            return height
    return int(image.height)


def _per_page(image: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to every frame of an animation (to the image itself otherwise)."""
    height = _page_height(image)
    if height == image.height:
        return fn(image)
    pages = [fn(image.crop(0, i * height, image.width, height)) for i in range(image.height // height)]
    out = Image.arrayjoin(pages, across=1).copy()
    out.set_type(pyvips.GValue.gint_type, "page-height", pages[0].height)
    for name in ("delay", "loop", "n-pages"):
        if image.get_typeof(name):
            out.set_type(image.get_typeof(name), name, image.get(name))
    return out


def _normalize(image: Any) -> Any:
    """8-bit sRGB (grey stays grey), alpha kept."""
    interpretation = image.interpretation
    profile = image.get("icc-profile-data") if image.get_typeof("icc-profile-data") else None
    try:
        if interpretation in ("cmyk",) or (
            profile is not None and b"sRGB" not in bytes(profile) and interpretation in ("srgb", "rgb16")
        ):
            image = image.icc_transform("srgb", embedded=True, intent="relative")
        if image.format != "uchar" or interpretation not in ("srgb", "b-w", "rgb16", "grey16", "cmyk"):
            target = "b-w" if image.bands - (1 if image.hasalpha() else 0) == 1 else "srgb"
            image = image.colourspace(target)
            if image.format != "uchar":
                image = image.cast("uchar")
    except pyvips.Error as exc:
        raise _classify(exc, "decode") from exc
    return image


def _from_frames(frames: Frames) -> Any:
    import numpy as np

    pixels = frames.pixels
    n, height, width, bands = pixels.shape
    image = Image.new_from_memory(np.ascontiguousarray(pixels).tobytes(), width, height * n, bands, "uchar")
    image = image.copy(interpretation="b-w" if bands <= 2 else "srgb")
    if n > 1:
        image.set_type(pyvips.GValue.gint_type, "page-height", height)
    if frames.exif:
        image.set_type(pyvips.GValue.blob_type, "exif-data", frames.exif)
    if frames.icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", frames.icc)
    return image


def _scaled(header: ImageHeader, scale: float) -> tuple[int, int]:
    """The size libwebp's scaled decode gives (``rint`` of each side times ``scale``)."""
    return max(1, round(header.width * scale)), max(1, round(header.height * scale))


def _resize(image: Any, width: int, height: int) -> Any:
    if (image.width, image.height) == (width, height):
        return image
    alpha = image.hasalpha()
    work = image.premultiply() if alpha else image
    out = work.resize(width / image.width, vscale=height / image.height, kernel="lanczos3")
    if (out.width, out.height) != (width, height):  # libvips rounds; make the size exact
        out = _fit(out, width, height, [0] * out.bands)
    if alpha:
        out = out.unpremultiply()
    return out.cast("uchar") if out.format != "uchar" else out


def _fit(image: Any, width: int, height: int, background: list[float]) -> Any:
    """Centre ``image`` on exactly ``width`` x ``height`` (crop or extend by the
    difference, which is a pixel or two of rounding)."""
    if image.width > width or image.height > height:
        left, top = max(0, (image.width - width) // 2), max(0, (image.height - height) // 2)
        image = image.crop(left, top, min(width, image.width), min(height, image.height))
    if image.width < width or image.height < height:
        image = image.embed(
            (width - image.width) // 2,
            (height - image.height) // 2,
            width,
            height,
            extend="background",
            background=background,
        )
    return image


def _premultiplied(image: Any, fn: Callable[[Any], Any]) -> Any:
    if not image.hasalpha():
        return fn(image).cast("uchar")
    return fn(image.premultiply()).unpremultiply().cast("uchar")


def _split_alpha(image: Any) -> tuple[Any, Any | None]:
    if image.hasalpha():
        return image.extract_band(0, n=image.bands - 1), image.extract_band(image.bands - 1)
    return image, None


def _join_alpha(colour: Any, alpha: Any | None, like: Any) -> Any:
    out = colour if alpha is None else colour.bandjoin(alpha)
    return out.copy(interpretation=like.interpretation)


def _with_alpha(image: Any) -> Any:
    if image.hasalpha():
        return image
    return image.bandjoin_const([255]).copy(interpretation=image.interpretation)


def _colour(image: Any, rgba: P.RGBA) -> list[float]:
    """``rgba`` as a background for ``image``'s bands (grey images get the luma)."""
    r, g, b, a = rgba
    colour_bands = image.bands - (1 if image.hasalpha() else 0)
    values = [float(r), float(g), float(b)] if colour_bands >= 3 else [round(0.299 * r + 0.587 * g + 0.114 * b)]
    return values + ([float(a)] if image.hasalpha() else [])


def _coverage(shape: str, radius: int, width: int, height: int) -> Any:
    """Anti-aliased shape coverage in 0..1: ``clamp(r - d + 0.5, 0, 1)`` where ``d`` is the
    distance from the pixel centre to the circle centre (``circle``: the image centre;
    ``rounded``: the nearest corner centre, 0 away from the corners)."""
    xy = Image.xyz(width, height)
    x = xy.extract_band(0) + 0.5
    y = xy.extract_band(1) + 0.5
    if shape == "circle":
        dx, dy = x - width / 2, y - height / 2
    else:
        cx = (x < radius).ifthenelse(radius, (x > width - radius).ifthenelse(width - radius, x))
        cy = (y < radius).ifthenelse(radius, (y > height - radius).ifthenelse(height - radius, y))
        dx, dy = x - cx, y - cy
    d = (dx * dx + dy * dy) ** 0.5
    cov = (radius + 0.5) - d
    cov = (cov > 1).ifthenelse(1, cov)
    return (cov < 0).ifthenelse(0, cov)


def _classify(exc: pyvips.Error, where: str) -> Exception:
    """libvips errors raised while reading the input are the input's fault."""
    text = f"{exc.message} {exc.detail}"
    if any(
        name in text
        for name in ("load", "Jpeg", "jpeg", "png", "gif", "webp", "heif", "tiff", "truncated", "Premature")
    ):
        return InvalidImageFormatError("the image data is corrupt or truncated", detail=text.strip())
    return BackendError(f"libvips failed during {where}", backend="vips", detail=text.strip())
