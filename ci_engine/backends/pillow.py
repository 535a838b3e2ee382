"""The Pillow/numpy backend: the fallback when pyvips cannot load, and the second
implementation the differential tests hold libvips to.

The only module besides :mod:`ci_engine.codecs` that imports Pillow, and the only one that
touches pixels with numpy outside the codecs. Every primitive follows the libvips backend
(:mod:`ci_engine.backends.vips`) formula for formula; where libvips' arithmetic is observable
(rounding, truncation, fixed-point tables) it is reproduced, and the measured remaining
differences are in ``tests/support/tolerances.py`` and ``docs/backends.md``.

Decisions:

- Handle: :class:`PillowImage`, a frozen record of one read-only ``(frames, height, width,
  channels)`` uint8 array (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) with the delays, loop
  count, EXIF, ICC and XMP. Primitives return new handles and never write into an array
  they did not allocate, so one decoded image can feed several plans.
- Decode: Pillow's format classes are opened directly for the format the header named (no
  format guessing). Pillow's decompression-bomb check in ``Image.open`` reads the process
  global ``Image.MAX_IMAGE_PIXELS`` (89 MP warning, 179 MP error) and would refuse images
  that ci_engine's own limits (250 MP by default, configurable per call) accept: ci_engine
  checks the header against its limits before any decode, and this module checks that the
  file decodes to exactly the header's size before allocating pixels; the global is never
  touched. A ``DecompressionBombError``/``Warning`` raised anyway (Pillow's crop check) is
  an :class:`~ci_engine.errors.ImageResolutionExceedError`.
- Shrink-on-load: JPEG through ``draft()`` (libjpeg DCT scaling, sizes rounded up, the
  executor allows the pixel); WebP has no scaled decode in Pillow, so a WebP the planner
  asked to shrink is decoded whole and area-averaged (``BOX``) to the planned size, as
  libwebp's scaled decode averages (its fixed-point rescaler, on the YUV planes for lossy
  files, is not reproduced): on small high-frequency images the difference to libvips is
  mean 4.3 (BOX) against 6.2 (Lanczos); no memory saving.
- Colour: the libvips backend's policy: CMYK and RGB with a non-sRGB ICC profile go to sRGB
  through LittleCMS (``PIL.ImageCms``, relative intent; CMYK without a profile uses Pillow's
  naive conversion, libvips its built-in CMYK profile); 16-bit to 8-bit; palette to RGB/RGBA;
  grey stays grey.
- Resize = libvips ``resize(kernel="lanczos3")``: axes that shrink go through Pillow's
  Lanczos with ``reducing_gap=2.0`` (libvips' default ``gap``: an integer box shrink then a
  Lanczos3 reduce; measured closest to libvips of the Pillow options), axes that grow
  through libvips' upsampler, reproduced here: Catmull-Rom bicubic on a 1/64-pixel table,
  mapping output ``j`` to input ``j / scale - 0.5``, edges extended. Alpha is premultiplied
  in float, as libvips does.
- Rotate (any angle) = libvips ``rotate`` reproduced in numpy: the same bounding box, the same
  bicubic table and fixed-point arithmetic, then centred on the step's size.
- Blur = libvips ``gaussblur``: the integer mask ``rint(20 exp(-x^2 / 2 sigma^2))`` truncated
  at the radius, two passes; uchar images through libvips' fixed-point vector arithmetic,
  premultiplied alpha images in float.
- Smart crop: an attention map in numpy (edges + saturation + skin tones, on a reduced copy
  of frame 0), and the window of the requested size with the largest summed attention,
  found with a summed-area table; ties go to the window nearest the centre. libvips finds
  its window differently, so the two backends may choose different windows.
- Encoders: Pillow's, with libvips' defaults (JPEG 4:4:4 chroma from quality 90, no Huffman
  optimisation unless progressive); interlaced PNG, which Pillow cannot write, is written
  by :func:`_png_adam7` here; GIF, BMP and HEIF through :mod:`ci_engine.codecs` as on libvips.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageFile, features

from ci_engine._dc import dataclass, replace
from ci_engine.backends.base import Backend, Capabilities
from ci_engine.codecs import Frames
from ci_engine.codecs import bmp as bmp_codec
from ci_engine.codecs import gif as gif_codec
from ci_engine.codecs import heif as heif_codec
from ci_engine.errors import (
    BackendError,
    ImageResolutionExceedError,
    InvalidImageFormatError,
    UnsupportedOperationError,
)
from ci_engine.plan import steps as P
from ci_engine.types import ImageFormat, ImageHeader

__all__ = ["PillowBackend", "PillowImage", "AVIF_AVAILABLE"]

U8 = NDArray[np.uint8]
F32 = NDArray[np.float32]
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
EXIF_PREFIX = b"Exif\x00\x00"
ROTATE_CHUNK = 1 << 18
"""Output pixels computed at once by the rotation (bounds its temporary arrays)."""
BAND_PIXELS = 1 << 18
"""Pixels per horizontal band of a convolution (blur, sharpen), halo rows excluded: its
temporaries are float64 copies of the band, so memory stays bounded on large images."""


def _avif_available() -> bool:
    try:
        return bool(features.check("avif"))
    except (ValueError, OSError):  # a Pillow without the feature name
        return False


AVIF_AVAILABLE = _avif_available()
"""Pillow's own AVIF plugin is here (Pillow >= 11.2 built with libavif)."""


# -- the handle --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PillowImage:
    """A decoded image: ``pixels`` is ``(frames, height, width, channels)`` uint8, read-only."""

    pixels: U8
    delays: tuple[int, ...] = ()
    loop: int = 0
    exif: bytes | None = None
    icc: bytes | None = None
    xmp: bytes | None = None

    def __post_init__(self) -> None:
        if self.pixels.ndim != 4 or self.pixels.dtype != np.uint8 or self.pixels.shape[3] not in (1, 2, 3, 4):
            raise ValueError(f"pixels must be (n, h, w, 1..4) uint8, got {self.pixels.shape} {self.pixels.dtype}")
        if self.pixels.flags.writeable:
            self.pixels.flags.writeable = False

    @property
    def frames(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[3])

    @property
    def has_alpha(self) -> bool:
        return self.channels in (2, 4)

    def with_pixels(self, pixels: NDArray[Any]) -> PillowImage:
        """A new handle with these pixels (metadata kept)."""
        return replace(self, pixels=np.ascontiguousarray(pixels, dtype=np.uint8))


# -- the backend -------------------------------------------------------------------------------------


class PillowBackend(Backend[PillowImage]):
    """Execute plans with Pillow and numpy."""

    name = "pillow"

    @property
    def capabilities(self) -> Capabilities:
        formats = set(ImageFormat)
        if not AVIF_AVAILABLE:
            formats.discard(ImageFormat.AVIF)
        return Capabilities(
            loads=frozenset(formats),
            saves=frozenset(formats),
            shrink_on_load=frozenset({ImageFormat.JPEG}),
            animated=True,
            methods=P.BACKEND_METHODS,
        )

    # -- decode -----------------------------------------------------------------------------------
    def decode(self, data: bytes, spec: P.DecodeSpec, header: ImageHeader) -> PillowImage:
        fmt = spec.format
        try:
            if fmt is ImageFormat.BMP:
                return _from_frames(bmp_codec.decode(data))
            if fmt is ImageFormat.HEIF:
                return _normalize_icc(_from_frames(heif_codec.decode(data)))
            if fmt is ImageFormat.AVIF and not AVIF_AVAILABLE:
                raise UnsupportedOperationError("backend pillow: cannot decode avif (Pillow has no AVIF support here)")
            return _decode_pillow(data, spec, header)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageResolutionExceedError(
                f"{fmt.value}: the image is too large to decode",
                kind="input_pixels",
                limit=Image.MAX_IMAGE_PIXELS or 0,
                actual=header.width * header.height,
                detail=repr(exc),
            ) from exc
        except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError) as exc:
            raise InvalidImageFormatError(f"{fmt.value}: cannot decode the image", detail=repr(exc)) from exc

    # -- encode -----------------------------------------------------------------------------------
    def encode(self, image: PillowImage, spec: P.EncodeSpec, *, quality: int | None = None) -> bytes:
        q = quality if quality is not None else spec.quality
        exif = None if spec.strip else image.exif
        if exif and spec.reset_orientation:
            exif = _reset_orientation(exif)
        icc = None if spec.strip else image.icc
        xmp = None if spec.strip else image.xmp
        fmt = spec.format
        try:
            if fmt is ImageFormat.GIF:
                return gif_codec.encode(_frames(image), interlace=spec.progressive)
            if fmt is ImageFormat.BMP:
                return bmp_codec.encode(_frames(image))
            if fmt is ImageFormat.HEIF:
                return heif_codec.encode(_frames(replace(image, exif=exif)), quality=q or 50, strip=spec.strip)
            if fmt is ImageFormat.PNG and spec.progressive:
                return _png_adam7(image.pixels[0], icc=icc, exif=exif)
            return _encode_pillow(image, fmt, q, spec.progressive, exif, icc, xmp)
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(f"pillow: cannot encode {fmt.value}", backend=self.name, detail=repr(exc)) from exc

    def size(self, image: PillowImage) -> tuple[int, int, int]:
        n, height, width, _ = image.pixels.shape
        return int(width), int(height), int(n)

    def to_array(self, image: PillowImage) -> U8:
        return np.array(image.pixels, dtype=np.uint8, copy=True)

    # -- geometry -----------------------------------------------------------------------------------
    def resize(self, image: PillowImage, step: P.Resize) -> PillowImage:
        if image.pixels.shape[1:3] == (step.height, step.width):
            return image
        return image.with_pixels(_per_frame(image.pixels, lambda f: _resize(f, step.width, step.height)))

    def crop(self, image: PillowImage, step: P.Crop) -> PillowImage:
        _, height, width, _ = image.pixels.shape
        if step.left < 0 or step.top < 0 or step.left + step.width > width or step.top + step.height > height:
            raise BackendError(f"crop {step} is outside the {width}x{height} image", backend=self.name)
        box = image.pixels[:, step.top : step.top + step.height, step.left : step.left + step.width]
        return image.with_pixels(box.copy())

    def embed(self, image: PillowImage, step: P.Embed) -> PillowImage:
        pixels = _with_alpha(image.pixels) if step.background[3] < 255 else image.pixels
        n, height, width, channels = pixels.shape
        out = np.empty((n, step.height, step.width, channels), np.uint8)
        out[:] = np.asarray(_colour(channels, step.background), np.uint8)
        out[:, step.top : step.top + height, step.left : step.left + width] = pixels
        return image.with_pixels(out)

    def rotate90(self, image: PillowImage, step: P.Rotate90) -> PillowImage:
        return image.with_pixels(np.rot90(image.pixels, k=-(step.turns % 4), axes=(1, 2)).copy())

    def rotate(self, image: PillowImage, step: P.Rotate) -> PillowImage:
        pixels = _with_alpha(image.pixels) if step.background[3] < 255 else image.pixels
        bg = _colour(pixels.shape[3], step.background)
        return image.with_pixels(
            _per_frame(pixels, lambda f: _rotate(f, step.degrees, step.width, step.height, bg)),
        )

    def flip(self, image: PillowImage, step: P.Flip) -> PillowImage:
        axis = 2 if step.horizontal else 1
        return image.with_pixels(np.flip(image.pixels, axis=axis).copy())

    def smartcrop(self, image: PillowImage, step: P.SmartCrop) -> PillowImage:
        left, top = attention_window(image.pixels[0], step.width, step.height)
        box = image.pixels[:, top : top + step.height, left : left + step.width]
        return image.with_pixels(box.copy())

    def composite(self, image: PillowImage, step: P.Composite) -> PillowImage:
        from ci_engine.watermark.blend import composite_frames  # the numpy reference of "over"

        return image.with_pixels(composite_frames(image.pixels, step))

    def select_frames(self, image: PillowImage, step: P.SelectFrames) -> PillowImage:
        delays = list(image.delays) or [100] * image.frames
        pixels = image.pixels[[g[0] for g in step.groups]]
        merged = tuple(sum(delays[i] for i in g if i < len(delays)) for g in step.groups)
        return replace(image.with_pixels(pixels.copy()), delays=merged)

    # -- pixels ----------------------------------------------------------------------------------------
    def blur(self, image: PillowImage, step: P.Blur) -> PillowImage:
        mask = gauss_mask(step.sigma, blur_min_ampl(step.sigma, step.radius), integer=True)
        if len(mask) == 1:
            return image
        radius = len(mask) // 2
        if not image.has_alpha:
            convolve: Callable[[U8], U8] = lambda band: _convsep_uchar(band, mask)  # noqa: E731
            return image.with_pixels(_per_frame(image.pixels, lambda f: _in_bands(f, radius, convolve)))

        def one(band: U8) -> U8:
            work = _premultiply(band)
            return _unpremultiply(_convsep_float(work, mask, mask.sum()))

        return image.with_pixels(_per_frame(image.pixels, lambda f: _in_bands(f, radius, one)))

    def sharpen(self, image: PillowImage, step: P.Sharpen) -> PillowImage:
        k = step.amount / 100
        mask = gauss_mask(step.sigma, 0.2, integer=False)
        colour_bands = image.channels - (1 if image.has_alpha else 0)

        def one(band: U8) -> U8:
            colour = band[..., :colour_bands].astype(np.float32)
            blurred = _convsep_float(colour, mask, mask.sum())
            sharp = (colour * np.float32(1 + k) - blurred * np.float32(k)).astype(np.float32)
            out = band.copy()
            out[..., :colour_bands] = np.clip(np.rint(sharp), 0, 255)
            return np.asarray(out, np.uint8)

        radius = len(mask) // 2
        return image.with_pixels(_per_frame(image.pixels, lambda f: _in_bands(f, radius, one)))

    def linear(self, image: PillowImage, step: P.Linear) -> PillowImage:
        pixels = image.pixels
        colour_bands = image.channels - (1 if image.has_alpha else 0)
        # libvips' linear(uchar=True) computes in single precision and truncates towards
        # zero, clamped.
        colour = pixels[..., :colour_bands].astype(np.float32)
        value = np.trunc(colour * np.float32(step.slope) + np.float32(step.offset))
        out = pixels.copy()
        out[..., :colour_bands] = np.clip(value, 0, 255)
        return image.with_pixels(out)

    def grayscale(self, image: PillowImage, step: P.Grayscale) -> PillowImage:
        pixels = image.pixels
        colour_bands = image.channels - (1 if image.has_alpha else 0)
        if colour_bands < 3:
            return image
        rgb = pixels[..., :3].astype(np.float64)
        # libvips' recomb computes in double and stores float; rint of that.
        luma = (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32)
        grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., np.newaxis]
        out = grey if not image.has_alpha else np.concatenate([grey, pixels[..., 3:4]], axis=3)
        return image.with_pixels(out)

    def mask(self, image: PillowImage, step: P.Mask) -> PillowImage:
        _, height, width, _ = image.pixels.shape
        cov = coverage(step.shape, step.radius, width, height)[np.newaxis, :, :, np.newaxis]
        bg = step.background
        if bg[3] < 255:
            pixels = _with_alpha(image.pixels)
            out = pixels.copy()
            alpha = pixels[..., -1:].astype(np.float32)
            out[..., -1:] = np.clip(np.rint(alpha * cov), 0, 255)
            return image.with_pixels(out)
        pixels = image.pixels
        colour_bands = image.channels - (1 if image.has_alpha else 0)
        fill = np.asarray(_colour(colour_bands, bg), np.float32)
        colour = pixels[..., :colour_bands].astype(np.float32)
        out = pixels.copy()
        out[..., :colour_bands] = np.clip(np.rint(colour * cov + fill * (1 - cov)), 0, 255)
        if image.has_alpha:
            alpha = pixels[..., -1:].astype(np.float32)
            out[..., -1:] = np.clip(np.rint(alpha * cov + 255 * (1 - cov)), 0, 255)
        return image.with_pixels(out)

    def flatten(self, image: PillowImage, step: P.Flatten) -> PillowImage:
        if not image.has_alpha:
            return image
        return image.with_pixels(_flatten(image.pixels, _colour(image.channels - 1, step.background)))


# -- decode helpers ---------------------------------------------------------------------------------


PNG_TRAILING_CHUNKS = 64
"""Chunks after the image data that the Pillow backend keeps (text, ``eXIf`` ...): Pillow
reads every chunk between the last IDAT and IEND in Python, so 2.1 M text chunks there cost
it 7.7 s. The rest is cut and the file closed with IEND (libspng skips them itself)."""

_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _png_trailer_cut(data: bytes) -> bytes:
    """``data`` without the chunks after the image data beyond :data:`PNG_TRAILING_CHUNKS`
    (an APNG, whose frames follow the first IDAT, is left as it is)."""
    pos, end, seen_idat, after = 8, len(data), False, 0
    while pos + 12 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"IEND" or (kind == b"acTL" and not seen_idat):
            return data
        if kind == b"IDAT":
            seen_idat = True
        elif seen_idat:
            after += 1
            if after > PNG_TRAILING_CHUNKS:
                return data[:pos] + _PNG_IEND
        pos += 12 + length
    return data


def _open(data: bytes, fmt: ImageFormat) -> ImageFile.ImageFile:
    """The Pillow image file for ``data`` read as ``fmt`` (no format guessing, and no
    ``Image.open`` decompression-bomb check: see the module docstring)."""
    fp = io.BytesIO(data)
    if fmt is ImageFormat.JPEG:
        from PIL import JpegImagePlugin

        return JpegImagePlugin.JpegImageFile(fp)
    if fmt is ImageFormat.PNG:
        from PIL import PngImagePlugin

        return PngImagePlugin.PngImageFile(io.BytesIO(_png_trailer_cut(data)))
    if fmt is ImageFormat.GIF:
        from PIL import GifImagePlugin

        return GifImagePlugin.GifImageFile(fp)
    if fmt is ImageFormat.WEBP:
        from PIL import WebPImagePlugin

        return WebPImagePlugin.WebPImageFile(fp)
    if fmt is ImageFormat.TIFF:
        from PIL import TiffImagePlugin

        return TiffImagePlugin.TiffImageFile(fp)
    if fmt is ImageFormat.AVIF:
        from PIL import AvifImagePlugin  # type: ignore[attr-defined, unused-ignore]

        image: ImageFile.ImageFile = AvifImagePlugin.AvifImageFile(fp)
        return image
    raise InvalidImageFormatError(f"{fmt.value}: not decoded by Pillow here")


def _decode_pillow(data: bytes, spec: P.DecodeSpec, header: ImageHeader) -> PillowImage:
    fmt = spec.format
    if fmt is ImageFormat.GIF:
        return _decode_gif(data, spec, header)
    with _open(data, fmt) as im:
        if im.size != (header.width, header.height):
            raise InvalidImageFormatError(
                f"{fmt.value}: the header says {header.width}x{header.height} "
                f"but Pillow reads {im.size[0]}x{im.size[1]}"
            )
        if fmt is ImageFormat.JPEG and spec.shrink > 1:
            im.draft(im.mode, (max(1, im.size[0] // spec.shrink), max(1, im.size[1] // spec.shrink)))
        exif = _exif_bytes(im.info.get("exif"))
        icc = im.info.get("icc_profile") or None
        if im.mode == "CMYK":  # converted to sRGB below, as libvips' icc_transform does
            icc = _srgb_bytes()
        xmp = im.info.get("xmp") or None
        if isinstance(xmp, str):
            xmp = xmp.encode("utf-8")
        animated_webp = fmt is ImageFormat.WEBP and int(getattr(im, "n_frames", 1) or 1) > 1
        if animated_webp and im.mode == "RGB" and getattr(im, "rawmode", "") == "RGBX":
            # Frames may carry alpha that the VP8X header does not announce (Pillow's own
            # writer does this); libvips keeps it. libwebp's animation decoder delivers RGBA:
            # read the fourth byte as alpha instead of padding.
            im.rawmode = "RGBA"  # type: ignore[attr-defined]
            im._mode = "RGBA"
        count = int(getattr(im, "n_frames", 1) or 1) if spec.frames > 1 else 1
        target = _target_mode(im, header, animated=count > 1)
        frames: list[U8] = []
        delays: list[int] = []
        for index in range(count):
            if index:
                im.seek(index)
            im.load()
            frames.append(_to_array(im, target))
            delays.append(int(im.info.get("duration", 0) or 0))
        loop = int(im.info.get("loop", 0) or 0)
    pixels = np.stack(frames) if len(frames) > 1 else frames[0][np.newaxis]
    if animated_webp and pixels.shape[3] == 4 and not header.has_alpha and bool((pixels[..., 3] == 255).all()):
        pixels = np.ascontiguousarray(pixels[..., :3])
    image = PillowImage(
        pixels,
        delays=tuple(delays) if count > 1 or fmt is ImageFormat.WEBP else (),
        loop=loop,
        exif=exif,
        icc=icc,
        xmp=xmp if isinstance(xmp, bytes) else None,
    )
    if fmt is ImageFormat.JPEG and spec.shrink > 1:
        # libjpeg's scaled IDCT rounds the size up; libvips keeps the floor (the same pixels
        # without the partial last block): so does the plan.
        height, width = header.height // spec.shrink, header.width // spec.shrink
        image = image.with_pixels(image.pixels[:, : max(1, height), : max(1, width)].copy())
    if fmt is ImageFormat.WEBP and spec.shrink > 1:  # no scaled decode in Pillow: reduce after
        size = (max(1, header.width // spec.shrink), max(1, header.height // spec.shrink))
        image = image.with_pixels(_per_frame(image.pixels, lambda f: _box(f, size)))
    return _normalize_icc(image)


@dataclass(frozen=True, slots=True)
class _GifFrame:
    left: int
    top: int
    width: int
    height: int
    disposal: int
    transparent: int | None
    delay: int
    descriptor: bytes
    """The image descriptor, its local colour table and its LZW data, as in the file."""
    palette: bytes


def _gif_blocks(data: bytes) -> tuple[int, int, bytes, int, int | None, list[_GifFrame]]:
    """Walk a GIF: (screen width, height, global colour table, background index, NETSCAPE
    repeat count or None, frames)."""

    def sub_blocks(pos: int) -> int:
        size = data[pos]
        while size:
            pos += size + 1
            size = data[pos]
        return pos + 1

    width, height, packed, background = struct.unpack_from("<HHBB", data, 6)
    pos = 13
    gct = b""
    if packed & 0x80:
        gct = data[pos : pos + (3 << ((packed & 7) + 1))]
        pos += len(gct)
    frames: list[_GifFrame] = []
    repeats: int | None = None
    disposal, transparent, delay = 0, None, 0
    try:
        while pos < len(data):
            block = data[pos]
            if block == 0x21:
                label, size = data[pos + 1], data[pos + 2]
                if label == 0xF9 and size >= 4:
                    flags, delay, index = struct.unpack_from("<BHB", data, pos + 3)
                    disposal = (flags >> 2) & 7
                    transparent = index if flags & 1 else None
                elif label == 0xFF and data[pos + 3 : pos + 14] in (b"NETSCAPE2.0", b"ANIMEXTS1.0"):
                    sub = pos + 14
                    if data[sub] >= 3 and data[sub + 1] == 1:
                        repeats = data[sub + 2] | data[sub + 3] << 8
                pos = sub_blocks(pos + 2)
            elif block == 0x2C:
                left, top, fw, fh, flags = struct.unpack_from("<HHHHB", data, pos + 1)
                start = pos
                pos += 10
                lct = b""
                if flags & 0x80:
                    lct = data[pos : pos + (3 << ((flags & 7) + 1))]
                    pos += len(lct)
                pos = sub_blocks(pos + 1)
                frames.append(
                    _GifFrame(left, top, fw, fh, disposal, transparent, delay * 10, data[start:pos], lct or gct)
                )
                disposal, transparent, delay = 0, None, 0
            else:  # the trailer, or bytes that are no block: the stream ends here
                break
    except (IndexError, struct.error):
        pass  # truncated: the complete frames are kept (as the header probe counted them)
    return width, height, gct, background, repeats, frames


def _gif_indices(frame: _GifFrame, gct: bytes) -> U8:
    """A frame's colour indices, decoded by Pillow's LZW decoder from a one-frame GIF holding
    just that image at (0, 0) (public API only; Pillow composites frames its own way)."""
    descriptor = bytearray(frame.descriptor)
    descriptor[1:5] = b"\0\0\0\0"  # at the origin of its own screen
    screen_flags = (0x80 | (len(gct).bit_length() - 3)) if gct else 0
    head = b"GIF89a" + struct.pack("<HHBBB", frame.width, frame.height, screen_flags, 0, 0) + gct
    with Image.open(io.BytesIO(head + bytes(descriptor) + b"\x3b"), formats=["GIF"]) as single:
        single.load()
        indices = np.asarray(single.convert("P") if single.mode not in ("P", "L") else single, np.uint8)
    return indices


def _decode_gif(data: bytes, spec: P.DecodeSpec, header: ImageHeader) -> PillowImage:
    """GIF frames composited as libvips' loader (libnsgif) does: the canvas starts
    transparent; "restore to background" clears a frame's rectangle to transparent when that
    frame had a transparent colour, else to the background colour; "restore to previous"
    brings back the canvas from before the frame; transparent pixels leave the canvas."""
    width, height, gct, background, repeats, frames = _gif_blocks(data)
    if (width, height) != (header.width, header.height) or not frames:
        raise InvalidImageFormatError(f"gif: cannot read the {header.width}x{header.height} image")
    count = min(len(frames), spec.frames if spec.frames > 1 else 1)
    bg = np.zeros(4, np.uint8)
    if gct and background < len(gct) // 3:
        bg = np.array([*gct[3 * background : 3 * background + 3], 255], np.uint8)
    canvas = np.zeros((height, width, 4), np.uint8)
    saved: U8 | None = None
    previous: _GifFrame | None = None
    out: list[U8] = []
    for frame in frames[:count]:
        if previous is not None:
            x0, y0 = min(previous.left, width), min(previous.top, height)
            x1, y1 = min(previous.left + previous.width, width), min(previous.top + previous.height, height)
            if previous.disposal == 2:
                canvas[y0:y1, x0:x1] = 0 if previous.transparent is not None else bg
            elif previous.disposal == 3 and saved is not None:
                canvas = saved
        if frame.disposal == 3:
            saved = canvas.copy()
        indices = _gif_indices(frame, gct)
        palette = np.frombuffer(frame.palette.ljust(768, b"\0")[:768], np.uint8).reshape(256, 3)
        x1, y1 = min(frame.left + frame.width, width), min(frame.top + frame.height, height)
        if x1 > frame.left and y1 > frame.top:
            part = indices[: y1 - frame.top, : x1 - frame.left]
            region = canvas[frame.top : y1, frame.left : x1]
            opaque = np.ones(part.shape, bool) if frame.transparent is None else part != frame.transparent
            region[opaque] = np.concatenate([palette[part[opaque]], np.full((int(opaque.sum()), 1), 255, np.uint8)], 1)
        out.append(canvas.copy())
        previous = frame
    pixels = np.stack(out)
    if not header.has_alpha:
        pixels = np.ascontiguousarray(pixels[..., :3])
    # Frames.loop counts plays: NETSCAPE n repeats is n + 1 plays, 0 forever, none once.
    loop = 1 if repeats is None else (repeats + 1 if repeats else 0)
    return PillowImage(pixels, delays=tuple(f.delay for f in frames[:count]), loop=loop)


def _target_mode(im: Image.Image, header: ImageHeader, *, animated: bool) -> str:
    """The mode an image decodes to: libvips' band layout for the same file."""
    mode = im.mode
    transparency = "transparency" in im.info
    if mode in ("1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return "LA" if transparency else "L"
    if mode in ("LA", "La"):
        return "LA"
    if mode == "P":
        palette_mode = im.palette.mode if im.palette is not None else "RGB"
        if palette_mode in ("L", "LA"):
            return "LA" if transparency or palette_mode == "LA" else "L"
        return "RGBA" if transparency or palette_mode == "RGBA" else "RGB"
    if mode in ("RGBA", "RGBa", "PA") or (mode == "RGB" and transparency):
        return "RGBA"
    if mode == "CMYK":
        return "CMYK"
    return "RGBA" if animated and mode == "RGBA" else "RGB"


def _to_array(im: Image.Image, target: str) -> U8:
    """One frame as ``(h, w, c)`` uint8 in the ``target`` layout (``CMYK`` frames go to sRGB
    here, with the embedded profile when there is one)."""
    mode = im.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        raw = np.asarray(im)
        if mode == "F":
            grey = np.clip(np.rint(raw), 0, 255).astype(np.uint8)
        elif mode == "I" and int(raw.max(initial=0)) <= 255:
            grey = raw.astype(np.uint8)
        else:  # 16-bit: the high byte, rounded (libvips' grey16 -> b-w)
            grey = np.clip(np.rint(raw.astype(np.float64) / 257), 0, 255).astype(np.uint8)
        out: U8 = grey[..., np.newaxis]
        if target == "LA":
            trns = im.info.get("transparency")
            alpha = np.where(raw == trns, 0, 255).astype(np.uint8) if trns is not None else np.full_like(grey, 255)
            out = np.concatenate([out, alpha[..., np.newaxis]], axis=2)
        return out
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(im), np.uint8)
    if mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")
    if target == "LA" and im.mode == "L":
        trns = im.info.get("transparency")
        grey = np.asarray(im, np.uint8)
        alpha = np.where(grey == trns, 0, 255).astype(np.uint8) if isinstance(trns, int) else np.full_like(grey, 255)
        return np.asarray(np.dstack([grey, alpha]), np.uint8)
    if im.mode != target:
        im = im.convert(target)
    array = np.asarray(im, np.uint8)
    return array[..., np.newaxis] if array.ndim == 2 else array


def _cmyk_to_rgb(im: Image.Image) -> Image.Image:
    profile = im.info.get("icc_profile")
    if profile:
        from PIL import ImageCms

        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
            out = ImageCms.profileToProfile(
                im,
                source,
                _srgb_profile(),
                renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                outputMode="RGB",
            )
            if out is not None:
                return out
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass
    return im.convert("RGB")


@lru_cache(maxsize=1)
def _srgb_profile() -> Any:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@lru_cache(maxsize=1)
def _srgb_bytes() -> bytes:
    return bytes(_srgb_profile().tobytes())


def _normalize_icc(image: PillowImage) -> PillowImage:
    """RGB(A) with an embedded ICC profile that is not an sRGB one goes to sRGB (libvips'
    ``_normalize`` policy); the sRGB profile then travels with the image."""
    icc = image.icc
    if not icc or b"sRGB" in icc or image.channels < 3:
        return image
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if source.profile.xcolor_space.strip() != "RGB":
            return image
        mode = "RGBA" if image.has_alpha else "RGB"
        transform = ImageCms.buildTransform(
            source, _srgb_profile(), mode, mode, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC
        )
    except (ImageCms.PyCMSError, OSError, ValueError, AttributeError):
        return image  # an unreadable profile: the pixels are used as they are (libvips does too)
    frames = [
        np.asarray(transform.apply(Image.fromarray(np.ascontiguousarray(f), mode)), np.uint8) for f in image.pixels
    ]
    return replace(image.with_pixels(np.stack(frames)), icc=_srgb_bytes())


def _exif_bytes(value: Any) -> bytes | None:
    if isinstance(value, Image.Exif):
        value = value.tobytes()
    if not value:
        return None
    data = bytes(value)
    return data if data.startswith(EXIF_PREFIX) else EXIF_PREFIX + data


def _from_frames(frames: Frames) -> PillowImage:
    return PillowImage(
        np.ascontiguousarray(frames.pixels, dtype=np.uint8),
        delays=tuple(frames.delays),
        loop=frames.loop,
        exif=_exif_bytes(frames.exif),
        icc=frames.icc or None,
    )


def _frames(image: PillowImage) -> Frames:
    return Frames(image.pixels, list(image.delays), image.loop, image.exif, image.icc)


# -- encode helpers ---------------------------------------------------------------------------------


def _reset_orientation(exif: bytes) -> bytes:
    parsed = Image.Exif()
    try:
        parsed.load(exif)
    except (OSError, ValueError, SyntaxError, struct.error):
        return exif
    if parsed.get(0x0112, 1) == 1:
        return exif
    parsed[0x0112] = 1
    return bytes(parsed.tobytes())


def _pil(frame: U8) -> Image.Image:
    channels = frame.shape[2]
    data = np.ascontiguousarray(frame[..., 0] if channels == 1 else frame)
    return Image.fromarray(data, MODES[channels])


def _encode_pillow(
    image: PillowImage,
    fmt: ImageFormat,
    quality: int | None,
    progressive: bool,
    exif: bytes | None,
    icc: bytes | None,
    xmp: bytes | None,
) -> bytes:
    pixels = image.pixels
    options: dict[str, Any] = {}
    if icc:
        options["icc_profile"] = icc
    if exif:
        options["exif"] = exif
    out = io.BytesIO()
    if fmt is ImageFormat.JPEG:
        frame = pixels[0]
        if frame.shape[2] in (2, 4):  # libvips' savers flatten a stray alpha onto black
            frame = _flatten(frame[np.newaxis], [0.0] * (frame.shape[2] - 1))[0]
        q = quality or 75
        if xmp:
            options["xmp"] = xmp
        _pil(frame).save(
            out,
            format="JPEG",
            quality=q,
            progressive=progressive,
            optimize=progressive,
            subsampling=0 if q >= 90 else 2,
            **options,
        )
        return out.getvalue()
    if fmt is ImageFormat.PNG:
        if xmp:
            from PIL import PngImagePlugin

            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8", "replace"))
            options["pnginfo"] = info
        _pil(pixels[0]).save(out, format="PNG", compress_level=6, **options)
        return out.getvalue()
    if fmt is ImageFormat.WEBP:
        frames = [_pil(_rgb_layout(f)) for f in pixels]
        if xmp:
            options["xmp"] = xmp
        webp: dict[str, Any] = {"format": "WEBP", "quality": quality or 75, "method": 4, **options}
        if len(frames) > 1:
            delays = list(image.delays) + [100] * (len(frames) - len(image.delays))
            webp.update(save_all=True, append_images=frames[1:], duration=delays[: len(frames)], loop=image.loop)
        frames[0].save(out, **webp)
        return out.getvalue()
    if fmt is ImageFormat.AVIF:
        q = quality or 50
        frame = _rgb_layout(pixels[0])
        _pil(frame).save(out, format="AVIF", quality=q, speed=4, subsampling="4:4:4" if q >= 90 else "4:2:0", **options)
        return out.getvalue()
    if fmt is ImageFormat.TIFF:
        _pil(pixels[0]).save(out, format="TIFF", **options)
        return out.getvalue()
    raise UnsupportedOperationError(f"backend pillow: cannot encode {fmt.value}")


def _rgb_layout(frame: U8) -> U8:
    """Grey (and grey + alpha) as RGB(A), for encoders that take colour only."""
    if frame.shape[2] >= 3:
        return frame
    grey = np.repeat(frame[..., :1], 3, axis=2)
    return np.concatenate([grey, frame[..., 1:]], axis=2) if frame.shape[2] == 2 else grey


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_adam7(frame: U8, *, icc: bytes | None = None, exif: bytes | None = None) -> bytes:
    """An Adam7-interlaced 8-bit PNG of ``frame`` (Pillow writes only non-interlaced PNG).

    Each row gets the cheapest of the None, Sub and Up filters (sum of absolute signed
    residuals, the usual heuristic); the stream is deflated at level 6 like libvips'."""
    height, width, channels = frame.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = bytearray()
    for x0, y0, dx, dy in _ADAM7:
        sub = frame[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        rows = sub.reshape(sub.shape[0], -1).astype(np.int16)
        none = rows
        left = np.zeros_like(rows)
        left[:, channels:] = rows[:, :-channels]
        sub_f = rows - left
        up = np.zeros_like(rows)
        up[1:] = rows[:-1]
        up_f = rows - up
        candidates = np.stack([none, sub_f, up_f])
        signed = ((candidates + 128) % 256) - 128
        cost = np.abs(signed).sum(axis=2)
        choice = cost.argmin(axis=0)
        chosen = candidates[choice, np.arange(rows.shape[0])] % 256
        lines = np.concatenate([choice[:, np.newaxis].astype(np.int16), chosen], axis=1)
        raw += lines.astype(np.uint8).tobytes()
    parts = [b"\x89PNG\r\n\x1a\n", _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 1))]
    if icc:
        parts.append(_png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        parts.append(_png_chunk(b"eXIf", exif[len(EXIF_PREFIX) :] if exif.startswith(EXIF_PREFIX) else exif))
    parts.append(_png_chunk(b"IDAT", zlib.compress(bytes(raw), 6)))
    parts.append(_png_chunk(b"IEND", b""))
    return b"".join(parts)


# -- pixel helpers ----------------------------------------------------------------------------------


def _per_frame(pixels: U8, fn: Callable[[U8], U8]) -> U8:
    """Apply ``fn`` to every frame."""
    return np.stack([fn(frame) for frame in pixels])


def _in_bands(frame: U8, radius: int, fn: Callable[[U8], U8], band_pixels: int | None = None) -> U8:
    """``fn(frame)`` for a neighbourhood operation of ``radius`` (an output row reads input
    rows up to ``radius`` away), computed band by band: each band of rows is given to ``fn``
    with ``radius`` real rows above and below it, and only the band's own rows are kept, so
    the result is the same as ``fn(frame)`` while the temporaries are a band's, not the
    image's. (Extended edges still happen only at the image's top and bottom.)"""
    height, width = frame.shape[:2]
    rows = max(4 * radius, 1, (BAND_PIXELS if band_pixels is None else band_pixels) // max(1, width))
    if height <= rows + 2 * radius:
        return fn(frame)
    out: U8 | None = None
    for top in range(0, height, rows):
        low, high = max(0, top - radius), min(height, top + rows + radius)
        part = fn(frame[low:high])[top - low : top - low + min(rows, height - top)]
        if out is None:
            out = np.empty((height, *part.shape[1:]), part.dtype)
        out[top : top + len(part)] = part
    assert out is not None
    return out


def _with_alpha(pixels: U8) -> U8:
    if pixels.shape[3] in (2, 4):
        return pixels
    alpha = np.full((*pixels.shape[:3], 1), 255, np.uint8)
    return np.concatenate([pixels, alpha], axis=3)


def _colour(channels: int, rgba: P.RGBA) -> list[float]:
    """``rgba`` for an image of ``channels`` bands (grey images get the luma), as libvips'
    ``_colour``: 1-2 bands grey (+ alpha), 3-4 RGB (+ alpha)."""
    r, g, b, a = rgba
    colour_bands = channels - (1 if channels in (2, 4) else 0)
    values = [float(r), float(g), float(b)] if colour_bands >= 3 else [float(round(0.299 * r + 0.587 * g + 0.114 * b))]
    return values + ([float(a)] if channels in (2, 4) else [])


def _flatten(pixels: U8, background: Sequence[float]) -> U8:
    """libvips ``flatten`` on uchar: ``(p a + bg (255 - a)) / 255``, integer division."""
    alpha = pixels[..., -1:].astype(np.int32)
    colour = pixels[..., :-1].astype(np.int32)
    bg = np.asarray([int(v) for v in background[: pixels.shape[-1] - 1]], np.int32)
    return ((colour * alpha + bg * (255 - alpha)) // 255).astype(np.uint8)


def _premultiply(frame: U8) -> F32:
    work = frame.astype(np.float32)
    work[..., :-1] *= work[..., -1:] / np.float32(255)
    return work


def _unpremultiply(work: NDArray[np.floating[Any]]) -> U8:
    """libvips ``unpremultiply`` then ``cast("uchar")``: divide by alpha / 255 (0 where alpha is
    0), truncate, clamp."""
    alpha = work[..., -1:]
    safe = np.where(alpha > 0, alpha, 1)
    colour = np.where(alpha > 0, work[..., :-1] * (255 / safe), 0)
    out = np.concatenate([colour, alpha], axis=-1)
    return np.asarray(np.clip(np.trunc(out), 0, 255), np.uint8)


def _premultiply_float(work: F32) -> F32:
    """libvips ``premultiply`` on float data: the factor uses alpha clipped to 0..255, the
    alpha band is kept as it is."""
    out = work.copy()
    out[..., :-1] *= np.clip(out[..., -1:], 0, 255) / np.float32(255)
    return np.asarray(out, np.float32)


def _unpremultiply_float(work: F32) -> F32:
    """libvips ``unpremultiply`` on float data: colour times ``255 / alpha`` (0 where alpha is
    0), then the alpha band clipped to 0..255."""
    alpha = work[..., -1:]
    factor = np.where(alpha > 0, np.float32(255) / np.where(alpha > 0, alpha, 1), 0).astype(np.float32)
    out = work.copy()
    out[..., :-1] *= factor
    out[..., -1:] = np.clip(alpha, 0, 255)
    return np.asarray(out, np.float32)


def _reduce(frame: U8, factor: int) -> U8:
    out = np.asarray(_pil(frame).reduce(factor), np.uint8)
    return out[..., np.newaxis] if out.ndim == 2 else out


# -- resize ----------------------------------------------------------------------------------------


def _resize(frame: U8, width: int, height: int) -> U8:
    """libvips ``resize`` to exactly ``width`` x ``height`` (see the module docstring)."""
    in_h, in_w, channels = frame.shape
    alpha = channels in (2, 4)
    down = (min(width, in_w), min(height, in_h))
    if not alpha:
        work: NDArray[Any] = frame
        if down != (in_w, in_h):
            work = _reduce_lanczos_u8(frame, down)
        if (width, height) != down:
            work = _upsample(work, width, height, integer=True)
        return np.asarray(work, np.uint8)
    premul: NDArray[Any] = _premultiply(frame)
    if down != (in_w, in_h):
        premul = _reduce_lanczos_float(premul, down)
    if (width, height) != down:
        premul = _upsample(premul, width, height, integer=False)
    return _unpremultiply(premul)


def _box(frame: U8, size: tuple[int, int]) -> U8:
    """An area-average resize to ``size`` (premultiplied by Pillow when there is alpha)."""
    out = np.asarray(_pil(frame).resize(size, Image.Resampling.BOX), np.uint8)
    return out[..., np.newaxis] if out.ndim == 2 else out


def _reduce_lanczos_u8(frame: U8, size: tuple[int, int]) -> U8:
    out = np.asarray(_pil(frame).resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0), np.uint8)
    return out[..., np.newaxis] if out.ndim == 2 else out


def _reduce_lanczos_float(work: F32, size: tuple[int, int]) -> F32:
    bands = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(work[..., k]), "F").resize(
                size, Image.Resampling.LANCZOS, reducing_gap=2.0
            ),
            np.float32,
        )
        for k in range(work.shape[2])
    ]
    return np.stack(bands, axis=2)


# libvips' bicubic interpolator: Catmull-Rom coefficients tabulated at 1/64 pixel
# (VIPS_TRANSFORM_SCALE), as doubles for float images and as 12-bit fixed point
# (VIPS_INTERPOLATE_SCALE, truncated towards zero) for uchar images.
TRANSFORM_SCALE = 64
INTERPOLATE_SHIFT = 12


def _catmull(x: NDArray[np.float64]) -> NDArray[np.float64]:
    dx = 1.0 - x
    x2 = dx * x
    mx2 = -0.5 * x2
    c0 = mx2 * dx
    c3 = x * mx2
    c1 = x2 * (-1.5 * x + 1.0) + dx
    c2 = 1.0 - (c0 + c1 + c3)
    return np.stack([c0, c1, c2, c3], axis=-1)


_BICUBIC_F = _catmull(np.arange(TRANSFORM_SCALE + 1, dtype=np.float32).astype(np.float64) / TRANSFORM_SCALE)
_BICUBIC_I = np.trunc(_BICUBIC_F * (1 << INTERPOLATE_SHIFT)).astype(np.int64)
_BICUBIC_I32 = _BICUBIC_I.astype(np.int32)


def _taps(coord: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """For input coordinates (pixel ``i`` at ``i``, already shifted positive): the first of
    the four taps and the table row (libvips rounds the position to 1/64 from a truncated
    1/128)."""
    scaled = np.floor(coord * (TRANSFORM_SCALE * 2)).astype(np.int64)
    row = ((scaled & (TRANSFORM_SCALE * 2 - 1)) + 1) >> 1
    return np.floor(coord).astype(np.int64) - 1, row


def _fixed_round(value: NDArray[Any]) -> NDArray[Any]:
    return (value + (1 << (INTERPOLATE_SHIFT - 1))) >> INTERPOLATE_SHIFT


def _upsample(work: NDArray[Any], width: int, height: int, *, integer: bool) -> NDArray[Any]:
    """libvips' upscaling pass (``affine`` with the bicubic interpolator): output ``j`` reads
    input ``j / s - 0.5`` on both axes (``s`` = 1 on an axis that does not grow), edges
    extended. ``integer``: uchar arithmetic (fixed point, rounded per pass).

    Computed in bands of output rows (about :data:`BAND_PIXELS` output pixels each): the
    64-bit temporaries of one band are a few MB, so the memory of an upscale is the output
    (1 byte per pixel and band) plus a constant, whatever the factor (a 1 x 1 PNG upscaled
    to 5,000 x 5,000 once took 1.7 GB)."""
    in_h, in_w, channels = work.shape
    pad = 3
    sx = width / in_w if width > in_w else 1.0
    sy = height / in_h if height > in_h else 1.0
    xs = np.arange(width, dtype=np.float64) / sx - 0.5 + pad
    ys = np.arange(height, dtype=np.float64) / sy - 0.5 + pad
    x0, xrow = _taps(xs)
    y0, yrow = _taps(ys)
    # The interpolator's positions are quantised to 1/64 px, so an enlargement repeats the
    # same (first tap, coefficients) pairs: each distinct column and row is computed once and
    # copied (the same arithmetic, so the same values; a 1 x 1 -> 9,999 x 9,999 upscale is
    # 64 x 64 computations and 100 M copies).
    ucols, inv_x = np.unique(x0 * 128 + xrow, return_inverse=True)
    ux0, uxrow = ucols // 128, ucols % 128
    cols = np.clip(ux0[:, np.newaxis] + np.arange(4)[np.newaxis, :] - pad, 0, in_w - 1)  # (distinct, 4)
    out = np.empty((height, width, channels), np.uint8 if integer else np.float32)
    band = max(1, BAND_PIXELS // max(1, width))
    for r0 in range(0, height, band):
        r1 = min(height, r0 + band)
        urows, inv_y = np.unique(y0[r0:r1] * 128 + yrow[r0:r1], return_inverse=True)
        uy0, uyrow = urows // 128, urows % 128
        lo, hi = int(uy0[0]), int(uy0[-1]) + 4  # the padded input rows this band reads
        # rows of the edge-padded input: padded row i is input row clip(i - pad)
        strip = work[np.clip(np.arange(lo, hi) - pad, 0, in_h - 1)]  # (hi - lo, in_w, channels)
        yy = uy0 - lo
        if integer:
            # int32 is exact here: |coefficient| < 2^13, so a 4-tap sum of 8-bit values
            # (then of rounded values < 2^10) stays under 2^25.
            src = strip.astype(np.int32)
            cx, cy = _BICUBIC_I32[uxrow], _BICUBIC_I32[uyrow]
            rows = sum(cx[np.newaxis, :, k, np.newaxis] * src[:, cols[:, k]] for k in range(4))
            rows = _fixed_round(np.asarray(rows))
            acc = sum(cy[:, k, np.newaxis, np.newaxis] * rows[yy + k] for k in range(4))
            result: NDArray[Any] = np.clip(_fixed_round(np.asarray(acc)), 0, 255).astype(np.uint8)
        else:
            srcf = strip.astype(np.float64)
            fx, fy = _BICUBIC_F[uxrow], _BICUBIC_F[uyrow]
            rowsf = sum(fx[np.newaxis, :, k, np.newaxis] * srcf[:, cols[:, k]] for k in range(4))
            result = np.asarray(sum(fy[:, k, np.newaxis, np.newaxis] * np.asarray(rowsf)[yy + k] for k in range(4)))
        out[r0:r1] = np.take(np.take(result, inv_y, axis=0), inv_x, axis=1)
    return out


# -- rotate ----------------------------------------------------------------------------------------


def _rotate(frame: U8, degrees: int, width: int, height: int, bg: list[float]) -> U8:
    """libvips ``rotate(degrees, interpolate=bicubic, background=bg)`` then the centred fit to
    ``width`` x ``height`` of the libvips backend (premultiplied when there is alpha)."""
    alpha = frame.shape[2] in (2, 4)
    background = np.asarray(bg, np.float64)
    if alpha:
        # libvips' affine premultiplies an image with alpha once, interpolates, undoes the
        # premultiplication and casts back to 8 bits (truncating). The backgrounds used are
        # transparent or opaque, for which the premultiplied value is the value itself.
        rotated_f, _ = _vips_rotate(_premultiply_float(frame.astype(np.float32)), degrees, background, integer=False)
        rotated: NDArray[Any] = np.asarray(np.clip(np.trunc(_unpremultiply_float(rotated_f)), 0, 255), np.uint8)
        fill = np.rint(background).astype(np.uint8)
    else:
        rotated, fill = _vips_rotate(frame, degrees, background, integer=True)
    return np.asarray(_fit(rotated, width, height, fill), np.uint8)


def _vips_rotate(
    work: NDArray[Any], degrees: int, background: NDArray[np.float64], *, integer: bool
) -> tuple[NDArray[Any], NDArray[Any]]:
    """libvips' ``rotate``: the output is the bounding box of the rotated input corners
    ``(0,0) (w,0) (0,h) (w,h)`` (rounded to nearest), each output pixel reads the input at the
    inverse rotation of its integer position, with a bicubic over a background-extended edge."""
    in_h, in_w, channels = work.shape
    t = math.radians(degrees)
    a, b, c, d = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    corners = [(0.0, 0.0), (float(in_w), 0.0), (0.0, float(in_h)), (float(in_w), float(in_h))]
    xs = [a * x + b * y for x, y in corners]
    ys = [c * x + d * y for x, y in corners]
    left, top = _round_int(min(xs)), _round_int(min(ys))
    out_w, out_h = _round_int(max(xs) - min(xs)), _round_int(max(ys) - min(ys))
    pad = 4
    fill = np.rint(background).astype(np.uint8) if integer else background.astype(np.float32)
    padded = np.empty((in_h + 2 * pad, in_w + 2 * pad, channels), work.dtype)
    padded[:] = fill
    padded[pad : pad + in_h, pad : pad + in_w] = work
    # Kept in its own type (uint8 or float32): each gathered chunk is widened on its own, the
    # same values as widening the whole image first (exact) for a chunk's memory, not 4-8x
    # the image's.
    flat = padded.reshape(-1, channels)
    # every run of 4 horizontal neighbours as one row: one gather per kernel row
    quads = np.lib.stride_tricks.as_strided(
        flat, shape=(flat.shape[0] - 3, 4, channels), strides=(flat.strides[0], flat.strides[0], flat.strides[1])
    )
    stride = padded.shape[1]
    out = np.empty((out_h * out_w, channels), np.uint8 if integer else np.float32)
    out[:] = fill
    det = a * d - b * c
    total = out_h * out_w
    for start in range(0, total, ROTATE_CHUNK):
        index = np.arange(start, min(total, start + ROTATE_CHUNK))
        ox = (index % out_w + left).astype(np.float64)
        oy = (index // out_w + top).astype(np.float64)
        ix = (d * ox - b * oy) / det + pad
        iy = (-c * ox + a * oy) / det + pad
        # libvips interpolates where the source lies in [-1, w) x [-1, h), else writes the
        # background
        inside = (ix >= pad - 1) & (iy >= pad - 1) & (ix < pad + in_w) & (iy < pad + in_h)
        if not inside.any():
            continue
        index, ix, iy = index[inside], ix[inside], iy[inside]
        x0, xrow = _taps(ix)
        y0, yrow = _taps(iy)
        if integer:
            cx, cy = _BICUBIC_I[xrow].astype(np.int32), _BICUBIC_I[yrow].astype(np.int32)
            acc = np.zeros((len(index), channels), np.int64)
            for j in range(4):
                row = np.einsum("nk,nkc->nc", cx, quads[(y0 + j) * stride + x0].astype(np.int32))
                acc += cy[:, j, np.newaxis] * _fixed_round(row.astype(np.int64))
            out[index] = np.clip(_fixed_round(acc), 0, 255).astype(np.uint8)
        else:
            fx, fy = _BICUBIC_F[xrow], _BICUBIC_F[yrow]
            accf = np.zeros((len(index), channels), np.float64)
            for j in range(4):
                taps = quads[(y0 + j) * stride + x0].astype(np.float64)
                accf += fy[:, j, np.newaxis] * np.einsum("nk,nkc->nc", fx, taps)
            out[index] = accf.astype(np.float32)
    return out.reshape(out_h, out_w, channels), fill


def _round_int(value: float) -> int:
    return math.floor(value + 0.5)


def _fit(work: NDArray[Any], width: int, height: int, fill: NDArray[Any]) -> NDArray[Any]:
    """The libvips backend's ``_fit``: centre on exactly ``width`` x ``height``, cropping or
    extending by the difference."""
    h, w = work.shape[:2]
    if w > width or h > height:
        left, top = max(0, (w - width) // 2), max(0, (h - height) // 2)
        work = work[top : top + min(height, h), left : left + min(width, w)]
        h, w = work.shape[:2]
    if w < width or h < height:
        out = np.empty((height, width, work.shape[2]), work.dtype)
        out[:] = fill
        left, top = (width - w) // 2, (height - h) // 2
        out[top : top + h, left : left + w] = work
        work = out
    return work


# -- convolution -----------------------------------------------------------------------------------


def blur_min_ampl(sigma: float, radius: int) -> float:
    """The ``min_ampl`` that truncates libvips' Gaussian at ``radius`` px (as the libvips
    backend passes it; gaussblur accepts 0.001..1)."""
    return max(0.001, min(0.999, math.exp(-(radius**2) / (2 * sigma**2)) * 0.999))


def gauss_mask(sigma: float, min_ampl: float, *, integer: bool) -> NDArray[np.float64]:
    """libvips ``gaussmat(sigma, min_ampl, separable)``: taps out to the first amplitude below
    ``min_ampl`` (at most ``8 sigma``), ``rint(20 v)`` when ``integer``."""
    sig2 = 2.0 * sigma * sigma
    max_x = int(min(max(8 * sigma, 0), 5000))
    x = 0
    while x < max_x:
        if math.exp(-(x * x) / sig2) < min_ampl:
            break
        x += 1
    width = 2 * max(x - 1, 0) + 1
    offsets = np.arange(width, dtype=np.float64) - width // 2
    values = np.exp(-(offsets**2) / sig2)
    if integer:
        values = np.rint(20 * values)
    return values


def _shifted(work: NDArray[Any], radius: int, axis: int) -> NDArray[Any]:
    pad = [(0, 0)] * work.ndim
    pad[axis] = (radius, radius)
    return np.pad(work, pad, mode="edge")


def _window(padded: NDArray[Any], axis: int, start: int, n: int) -> NDArray[Any]:
    """``n`` rows (axis 0) or columns (axis 1) of ``padded`` from ``start``: a view."""
    return padded[start : start + n] if axis == 0 else padded[:, start : start + n]


def _convsep_float(work: NDArray[Any], mask: NDArray[np.float64], scale: float) -> F32:
    """Separable convolution in float, rows then columns, edges extended (libvips ``convsep``
    on float data: ``sum(k p) / scale`` per pass, accumulated in double, stored as float)."""
    out = np.asarray(work, np.float32)
    radius = len(mask) // 2
    for axis in (1, 0):
        padded = _shifted(out, radius, axis)
        n = out.shape[axis]
        acc = np.zeros(out.shape, np.float64)
        term = np.empty(out.shape, np.float64)
        for i, k in enumerate(mask):
            if k:
                np.multiply(_window(padded, axis, i, n), k, out=term)
                acc += term
        out = (acc / scale).astype(np.float32)
    return out


def _vector_mask(mask: NDArray[np.float64]) -> tuple[NDArray[np.int64], int] | None:
    """libvips ``vips_convi_intize`` (Highway build): the mask over one power of two, or None
    when libvips would refuse it and take its C path."""
    n = len(mask)
    if math.ceil(math.log2(n)) > 10:
        return None
    scaled = mask / mask.sum()
    shift = math.ceil(math.log2(float(scaled.max())) + 1)
    exp = 7 - shift
    mant = np.rint(128 * scaled * 2.0**-shift).astype(np.int64)
    if (mant < -128).any() or (mant > 127).any() or exp <= 0:
        return None
    true_value = min(255, max(0, int(float((128 * scaled[mant != 0]).sum()))))
    int_sum = int((128 * mant).sum())
    int_value = min(255, max(0, (int_sum + (1 << (exp - 1))) >> exp))
    if abs(true_value - int_value) > 2:
        return None
    return mant, exp


def _convsep_uchar(frame: U8, mask: NDArray[np.float64]) -> U8:
    """libvips ``convsep`` with an integer mask on uchar data: each pass rounds back to uchar,
    with the fixed-point vector arithmetic when libvips takes it, else the C path's
    ``(sum + scale / 2) / scale``."""
    vector = _vector_mask(mask)
    radius = len(mask) // 2
    coeffs = vector[0] if vector is not None else mask.astype(np.int64)
    # int32 holds every sum: 255 * 127 * 1024 taps (vector path) or 255 * 20 * 5000 (C path)
    work = frame.astype(np.int32)
    for axis in (1, 0):
        padded = _shifted(work, radius, axis)
        n = work.shape[axis]
        acc = np.zeros(work.shape, np.int32)
        term = np.empty(work.shape, np.int32)
        for i, k in enumerate(coeffs):
            if k:
                np.multiply(_window(padded, axis, i, n), int(k), out=term)
                acc += term
        if vector is not None:
            exp = vector[1]
            work = np.clip((acc + (1 << (exp - 1))) >> exp, 0, 255).astype(np.int32)
        else:
            scale = max(1, round(float(mask.sum())))
            work = np.clip((acc + scale // 2) // scale, 0, 255).astype(np.int32)
    return work.astype(np.uint8)


# -- mask ------------------------------------------------------------------------------------------


def coverage(shape: str, radius: int, width: int, height: int) -> F32:
    """Anti-aliased coverage in 0..1, ``clamp(r - d + 0.5, 0, 1)`` with ``d`` the distance from
    the pixel centre to the circle centre (the libvips backend's ``_coverage``)."""
    x = np.arange(width, dtype=np.float32)[np.newaxis, :] + np.float32(0.5)
    y = np.arange(height, dtype=np.float32)[:, np.newaxis] + np.float32(0.5)
    if shape == "circle":
        dx = np.broadcast_to(x - np.float32(width / 2), (height, width))
        dy = np.broadcast_to(y - np.float32(height / 2), (height, width))
    else:
        r = np.float32(radius)
        cx = np.where(x < r, r, np.where(x > width - r, np.float32(width - radius), x))
        cy = np.where(y < r, r, np.where(y > height - r, np.float32(height - radius), y))
        dx = np.broadcast_to(x - cx, (height, width))
        dy = np.broadcast_to(y - cy, (height, width))
    d = np.sqrt(dx * dx + dy * dy)
    return np.asarray(np.clip(np.float32(radius + 0.5) - d, 0, 1), np.float32)


# -- smart crop ------------------------------------------------------------------------------------

ATTENTION_SIDE = 32
"""The attention map is computed on a copy of frame 0 reduced to this many pixels a side (as
libvips does): fine texture averages out, objects remain."""
SKIN = np.array([0.78, 0.57, 0.44])
_SRGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_D65 = np.array([95.047, 100.0, 108.883])


def attention_map(frame: U8) -> F32:
    """Where the eye goes, per pixel (libvips' ``attention`` measures, after smartcrop.js):

    - edges: the absolute 4-neighbour Laplacian of the luminance Y (CIE XYZ, 0..100), times 5;
    - skin: ``100 (1 - d)`` with ``d`` the distance of the normalised XYZ colour from the skin
      tone (0.78, 0.57, 0.44);
    - saturation: CIE Lab ``a*`` (reds and skin score, greens count against);

    the colour measures only where Y > 5 (dark areas carry no colour), transparent pixels
    (premultiplied) count as black."""
    work = frame.astype(np.float64)
    if frame.shape[2] in (2, 4):
        work = work[..., :-1] * (work[..., -1:] / 255)
    if work.shape[2] == 1:
        work = np.repeat(work, 3, axis=2)
    c = work / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _SRGB_TO_XYZ.T * 100
    y = xyz[..., 1]
    p = np.pad(y, 1, mode="edge")
    edges = np.abs(4 * y - p[:-2, 1:-1] - p[2:, 1:-1] - p[1:-1, :-2] - p[1:-1, 2:]) * 5
    lit = y > 5
    norm = np.sqrt((xyz * xyz).sum(axis=2))
    unit = xyz / np.maximum(norm, 1e-9)[..., np.newaxis]
    skin = np.where(lit, 100 - 100 * np.sqrt(((unit - SKIN) ** 2).sum(axis=2)), 0)
    t = xyz / _D65
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    saturation = np.where(lit, 500 * (f[..., 0] - f[..., 1]), 0)
    return np.asarray(edges + skin + saturation, np.float32)


def attention_window(frame: U8, width: int, height: int) -> tuple[int, int]:
    """``(left, top)`` of the ``width`` x ``height`` window of ``frame`` with the most attention:
    :func:`attention_map` on a copy of the frame reduced (box filter) to at most
    :data:`ATTENTION_SIDE` pixels a side, less its median and squared; the window scaled to
    that map, its sum at every position from a summed-area table; among positions within
    0.1 % of the best, the one nearest the centre; mapped back to the frame."""
    in_h, in_w = frame.shape[:2]
    if (width, height) == (in_w, in_h):
        return 0, 0
    mw, mh = min(in_w, ATTENTION_SIDE), min(in_h, ATTENTION_SIDE)
    small = frame
    if (mw, mh) != (in_w, in_h):
        small = np.asarray(_pil(frame).resize((mw, mh), Image.Resampling.BOX), np.uint8)
        small = small[..., np.newaxis] if small.ndim == 2 else small
    # What stands out from the image's typical level, squared: a window holding the most
    # salient object beats a wide, moderately busy one (libvips centres on the maximum).
    raw = attention_map(small).astype(np.float64)
    saliency = np.maximum(0, raw - float(np.median(raw))) ** 2
    ww = min(mw, max(1, round(width * mw / in_w)))
    wh = min(mh, max(1, round(height * mh / in_h)))
    table = np.zeros((mh + 1, mw + 1), np.float64)
    table[1:, 1:] = saliency.cumsum(axis=0).cumsum(axis=1)
    sums = table[wh:, ww:] - table[:-wh, ww:] - table[wh:, :-ww] + table[:-wh, :-ww]
    best = float(sums.max())
    ys, xs = np.nonzero(sums >= best - max(1e-9, abs(best) * 1e-3))
    cx, cy = (mw - ww) / 2, (mh - wh) / 2
    pick = int(np.argmin((xs - cx) ** 2 + (ys - cy) ** 2))
    # the window's centre in the map, back to the frame
    centre_x = (int(xs[pick]) + ww / 2) * in_w / mw
    centre_y = (int(ys[pick]) + wh / 2) * in_h / mh
    left = min(max(0, round(centre_x - width / 2)), in_w - width)
    top = min(max(0, round(centre_y - height / 2)), in_h - height)
    return int(left), int(top)
