"""BMP reading and writing through Pillow (libvips has no BMP codec)."""

from __future__ import annotations

import io
import struct

import numpy as np
from PIL import BmpImagePlugin, Image

from ci_engine.codecs import Frames
from ci_engine.errors import InvalidImageFormatError

__all__ = ["decode", "encode"]


def decode(data: bytes) -> Frames:
    """Decode a BMP to 8-bit RGB (or RGBA when the file has an alpha channel).

    The plug-in class is opened directly, without ``Image.open``'s decompression-bomb check
    (Pillow's global 179 MP ceiling would refuse BMPs that ci_engine's limits accept: the
    header has been checked against them before this runs)."""
    try:
        with BmpImagePlugin.BmpImageFile(io.BytesIO(data)) as image:
            mode = "RGBA" if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info else "RGB"
            pixels = np.asarray(image.convert(mode))
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError) as exc:
        raise InvalidImageFormatError(f"bmp: cannot decode ({exc})", detail=repr(exc)) from exc
    return Frames(pixels[np.newaxis, ...])


def encode(frames: Frames) -> bytes:
    """Encode the first frame as BMP (24-bit RGB, or 8-bit grey)."""
    pixels = frames.pixels[0]
    channels = pixels.shape[2]
    if channels in (2, 4):  # the planner flattens first; drop alpha defensively
        pixels = pixels[..., : channels - 1]
    mode = "L" if pixels.shape[2] == 1 else "RGB"
    image = Image.fromarray(np.ascontiguousarray(pixels[..., 0] if mode == "L" else pixels), mode)
    out = io.BytesIO()
    image.save(out, format="BMP")
    return out.getvalue()
