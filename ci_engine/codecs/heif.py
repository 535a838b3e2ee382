"""HEIF/HEIC reading and writing through pillow-heif (the pyvips-binary wheel has no
HEVC codec)."""

from __future__ import annotations

import io

import numpy as np

from ci_engine.codecs import Frames
from ci_engine.errors import InvalidImageFormatError

__all__ = ["decode", "encode"]


def decode(data: bytes) -> Frames:
    """Decode the primary image of a HEIF file to 8-bit RGB(A), with its EXIF and ICC."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=True)
        pixels = np.asarray(heif)
    except (OSError, ValueError, RuntimeError, SyntaxError, EOFError, IndexError, KeyError) as exc:
        # libheif's "unsupported feature" arrives as SyntaxError, no decodable image as IndexError
        raise InvalidImageFormatError(f"heif: cannot decode ({exc})", detail=repr(exc)) from exc
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    exif = heif.info.get("exif")
    icc = heif.info.get("icc_profile")
    return Frames(np.ascontiguousarray(pixels)[np.newaxis, ...], exif=exif or None, icc=icc or None)


def encode(frames: Frames, *, quality: int, strip: bool) -> bytes:
    """Encode the first frame as HEIC (HEVC) at ``quality``."""
    import pillow_heif

    pixels = frames.pixels[0]
    channels = pixels.shape[2]
    if channels in (1, 2):
        pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
    mode = "RGBA" if pixels.shape[2] == 4 else "RGB"
    height, width = pixels.shape[:2]
    heif = pillow_heif.from_bytes(mode=mode, size=(width, height), data=np.ascontiguousarray(pixels).tobytes())
    options: dict[str, object] = {"quality": quality}
    if not strip:
        if frames.exif:
            options["exif"] = frames.exif
        if frames.icc:
            options["icc_profile"] = frames.icc
    out = io.BytesIO()
    heif.save(out, **options)
    return out.getvalue()
