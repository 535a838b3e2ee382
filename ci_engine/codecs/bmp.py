"""BMP reading and writing through Pillow (libvips has no BMP codec).

RLE4/RLE8 bitmaps are expanded here rather than by Pillow's RLE decoder, which is written in
Python a pixel (RLE4) or a padding byte (end of line) at a time: a 4,000 x 4,000 RLE BMP of
end-of-line codes cost it 1.7-3.7 s. :func:`_rle_indices` follows the same rules with one
slice per command, so its cost follows the file's length (at most one command per two
bytes) plus a ``memset`` of the declared pixels.
"""

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
            source = _rle_image(image, data) if image.tile and image.tile[0][0] == "bmp_rle" else image
            pixels = np.asarray(source.convert(mode))
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError) as exc:
        raise InvalidImageFormatError(f"bmp: cannot decode ({exc})", detail=repr(exc)) from exc
    return Frames(pixels[np.newaxis, ...])


def _rle_image(image: BmpImagePlugin.BmpImageFile, data: bytes) -> Image.Image:
    """The RLE bitmap of ``image`` (opened, not loaded) decoded by :func:`_rle_indices`: the
    same pixels as Pillow's ``bmp_rle`` decoder."""
    _, _, offset, args = image.tile[0]
    assert isinstance(args, tuple)  # (rawmode, rle4, direction) for "bmp_rle"
    rle4, direction = bool(args[1]), args[-1]
    width, height = image.size
    indices = _rle_indices(data, int(offset), width, height, rle4)
    rawmode = "L" if image.mode in ("1", "L") else "P"
    out = Image.frombytes(image.mode, image.size, indices, "raw", rawmode, 0, direction)
    if image.mode == "P" and image.palette is not None:
        palette = image.palette
        out.putpalette(palette.palette, palette.rawmode or palette.mode)
    return out


def _rle_indices(buf: bytes, pos: int, xsize: int, ysize: int, rle4: bool) -> bytes:
    """Expand the RLE4/RLE8 stream at ``buf[pos:]`` into ``xsize * ysize`` palette indices,
    row by row in file order, exactly as Pillow's ``BmpRleDecoder`` does (including its
    leniency: runs past the row are cut; ``ValueError`` when the stream ends before the
    bitmap is full)."""
    dest = xsize * ysize
    out = bytearray(dest)  # positions past ``n`` are still zero: padding is free
    n = x = 0
    end = len(buf)
    while n < dest and pos + 2 <= end:
        count, byte = buf[pos], buf[pos + 1]
        pos += 2
        if count:  # encoded mode: ``count`` pixels of one value (RLE4: two alternating)
            if x + count > xsize:
                count = max(0, xsize - x)
                if not count:
                    continue
            m = min(count, dest - n)
            if rle4:
                out[n : n + m] = (bytes((byte >> 4, byte & 0x0F)) * ((m + 1) // 2))[:m]
            else:
                out[n : n + m] = bytes((byte,)) * m
            n += count
            x += count
        elif byte == 0:  # end of line
            if n % xsize:
                n += xsize - n % xsize
            x = 0
        elif byte == 1:  # end of bitmap
            break
        elif byte == 2:  # delta
            if pos + 2 > end:
                break
            right, up = buf[pos], buf[pos + 1]
            pos += 2
            n += min(dest - n, right + up * xsize)
            x = n % xsize
        else:  # absolute mode: ``byte`` literal pixels, padded to a 16-bit boundary
            wanted = min(dest - n, byte)
            if rle4:
                byte_count = (wanted + 1) // 2
                chunk = np.frombuffer(buf, np.uint8, min(byte_count, max(0, end - pos)), pos)
                nibbles = np.empty(2 * len(chunk), np.uint8)
                nibbles[0::2] = chunk >> 4
                nibbles[1::2] = chunk & 0x0F
                got = min(wanted, len(nibbles))
                out[n : n + got] = nibbles[:got].tobytes()
                read = len(chunk)
            else:
                byte_count = wanted
                piece = buf[pos : pos + byte_count]
                got = read = len(piece)
                out[n : n + got] = piece
            pos += read
            n += got
            if read < byte_count or n >= dest:
                break
            x += byte
            if pos % 2:
                pos += 1
    if n < dest:  # Pillow: the stream ended (or said "end of bitmap") before the last row
        raise ValueError("not enough image data")
    return bytes(out)


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
