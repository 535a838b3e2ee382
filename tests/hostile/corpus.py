"""Small valid images of every input format (the seeds of the malformed, fuzz, concurrency
and leak tests), and processing strings that exercise every part of the pipeline."""

from __future__ import annotations

import functools
import io
from typing import Any

import numpy as np
from PIL import Image


def _pixels(width: int, height: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 255 // max(width - 1, 1) + y * 64 // max(height - 1, 1)) % 256
    out = np.stack([(base + 80 * c) % 256 for c in range(channels)], axis=2)
    out = out + rng.integers(0, 24, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


@functools.cache
def samples() -> dict[str, bytes]:
    """name -> bytes: 24 x 16 images (animations of 3 frames), one per format and variant."""
    rgb = Image.fromarray(_pixels(24, 16, 3, 1), "RGB")
    rgba = Image.fromarray(_pixels(24, 16, 4, 2), "RGBA")
    frames = [Image.fromarray(_pixels(24, 16, 3, seed), "RGB") for seed in range(3)]
    exif = Image.Exif()
    exif[0x0112] = 6
    out = {
        "jpeg": _save(rgb, "JPEG", quality=85),
        "jpeg-progressive-exif": _save(rgb, "JPEG", quality=70, progressive=True, exif=exif.tobytes()),
        "jpeg-grey": _save(rgb.convert("L"), "JPEG"),
        "jpeg-cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "png": _save(rgb, "PNG"),
        "png-rgba-interlaced": _save(rgba, "PNG", interlace=1),
        "png-palette": _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "PNG", transparency=0),
        "png-16bit": _save(Image.fromarray(_pixels(24, 16, 1, 3)[..., 0].astype(np.uint16) * 257), "PNG"),
        "apng": _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=50),
        "gif": _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"),
        "gif-animated": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0),
        "webp": _save(rgb, "WEBP", quality=80),
        "webp-lossless-alpha": _save(rgba, "WEBP", lossless=True),
        "webp-animated": _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50),
        "bmp": _save(rgb, "BMP"),
        "bmp-palette": _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16), "BMP"),
        "tiff": _save(rgb, "TIFF", compression="tiff_deflate"),
        "tiff-pages": _save(rgba, "TIFF", save_all=True, append_images=[rgba]),
    }
    try:
        import pillow_heif

        heif = io.BytesIO()
        pillow_heif.from_pillow(rgb).save(heif, quality=60)
        out["heif"] = heif.getvalue()
    except Exception:  # pragma: no cover - no HEVC encoder here
        pass
    try:
        out["avif"] = _save(rgba, "AVIF", quality=60)
    except Exception:  # pragma: no cover - Pillow without AVIF
        pass
    return out


RULES = (
    "imageMogr2/thumbnail/12x",
    "imageMogr2/thumbnail/!50p/format/png",
    "imageMogr2/crop/10x10/gravity/center/format/webp",
    "imageMogr2/rotate/33/format/jpg/quality/60",
    "imageMogr2/auto-orient/blur/3x2/format/gif",
    "imageMogr2/iradius/5/format/png",
    "imageMogr2/cut/8x6x2x2|imageMogr2/flip/vertical",
    "imageMogr2/grayscale/1/sharpen/80/format/bmp",
    "imageMogr2/thumbnail/40x40!|imageView2/2/w/20/h/20",
    "imageView2/1/w/10/h/10/format/png",
    "imageMogr2/cgif/2/thumbnail/8x",
    "imageMogr2/strip/format/png/interlace/1",
    "imageMogr2/scrop/10x10",
    "imageInfo",
)
"""Processing strings over the pipeline: resize, crop, rotate, blur, masks, pipelines,
formats, frames, metadata and information."""
