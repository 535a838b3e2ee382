"""``imageInspect`` / ``ci-process=ImageInspect``: data hidden after the end of an image.

Pure byte analysis, no decoding (``extras.md`` section 18; CI's page "异常图片检测",
https://cloud.tencent.com/document/api/436/97894). The end of the real image is found by
walking the container's own structure, never by searching for a marker:

* JPEG: the marker segments (each with its length) up to ``SOS``, then the entropy-coded
  data (``FF00`` stuffing and ``RSTn`` skipped) up to the next marker, repeated for every
  scan, until ``EOI``. An ``FFD9`` inside an EXIF thumbnail or inside the appended data
  cannot end the image early or late;
* PNG: the chunks up to ``IEND`` and its CRC;
* GIF: the blocks (extensions, image descriptors and their sub-blocks) up to the trailer;
* BMP: ``bfSize`` when it is consistent with the pixel data, else pixel offset + rows;
* WebP: the RIFF size (+ the pad byte).

The bytes after that end are "suspicious" unless they are padding (zeros, ``FF`` fill,
whitespace) of at most 1 KiB. Their type comes from the first signature found at the
start of the trailer: ``MPEG-TS`` (``0x47`` sync byte every 188 bytes, at least two
packets), ``ZIP``, ``RAR``, ``7Z``, ``GZIP``, ``BZIP2``, ``XZ``, ``PE`` (a Windows executable:
``MZ`` with a ``PE\\0\\0`` header where ``e_lfanew`` points), ``ELF``, ``MACH-O``, ``PDF``,
``MP4`` (an ISO-BMFF ``ftyp`` box), ``MKV`` (EBML), ``FLV``, ``AVI``, ``SCRIPT`` (``#!``,
``<?php``, ``<script``), an appended image (``JPEG``, ``PNG``, ``GIF``); anything else is
``UNKNOWN``. A file that is an MPEG-TS stream from byte 0 (a video renamed as an image) is
suspicious from byte 0 with ``picType`` ``ts``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from ci_engine.errors import InvalidImageFormatError

__all__ = ["inspect", "inspect_json", "image_end", "classify", "TS_PACKET"]

TS_PACKET = 188
"""Bytes per MPEG transport-stream packet; each starts with the sync byte ``0x47``."""

_PADDING = frozenset(b"\x00\xff \t\r\n")
_MAX_PADDING = 1024
_MAX_SEGMENTS = 100_000


def _ts_packets(data: bytes, start: int) -> int:
    """How many consecutive 188-byte packets with the sync byte start at ``start``."""
    count = 0
    pos = start
    while pos < len(data) and data[pos] == 0x47:
        count += 1
        pos += TS_PACKET
    return count


def _is_ts(data: bytes, start: int) -> bool:
    remaining = len(data) - start
    if remaining < TS_PACKET:
        return False
    needed = 2 if remaining >= 2 * TS_PACKET else 1
    return _ts_packets(data, start) >= max(needed, min(5, remaining // TS_PACKET))


def classify(data: bytes, start: int = 0) -> str:
    """The type of the data at ``data[start:]`` by its signature (see the module docstring)."""
    head = data[start : start + 64]
    if _is_ts(data, start):
        return "MPEG-TS"
    signatures: tuple[tuple[bytes, str], ...] = (
        (b"PK\x03\x04", "ZIP"),
        (b"PK\x05\x06", "ZIP"),
        (b"Rar!\x1a\x07", "RAR"),
        (b"7z\xbc\xaf\x27\x1c", "7Z"),
        (b"\x1f\x8b", "GZIP"),
        (b"BZh", "BZIP2"),
        (b"\xfd7zXZ\x00", "XZ"),
        (b"\x7fELF", "ELF"),
        (b"\xfe\xed\xfa\xce", "MACH-O"),
        (b"\xfe\xed\xfa\xcf", "MACH-O"),
        (b"\xce\xfa\xed\xfe", "MACH-O"),
        (b"\xcf\xfa\xed\xfe", "MACH-O"),
        (b"%PDF", "PDF"),
        (b"\x1a\x45\xdf\xa3", "MKV"),
        (b"FLV\x01", "FLV"),
        (b"\xff\xd8\xff", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"GIF87a", "GIF"),
        (b"GIF89a", "GIF"),
        (b"#!", "SCRIPT"),
        (b"<?php", "SCRIPT"),
        (b"<script", "SCRIPT"),
    )
    for magic, name in signatures:
        if head.startswith(magic):
            return name
    if head.startswith(b"MZ") and len(data) >= start + 64:
        (offset,) = struct.unpack_from("<I", data, start + 0x3C)
        if data[start + offset : start + offset + 4] == b"PE\x00\x00":
            return "PE"
        return "MZ"
    if head[4:8] == b"ftyp":
        return "MP4"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    return "UNKNOWN"


def _jpeg_end(data: bytes) -> int:
    n = len(data)
    pos = 2
    for _ in range(_MAX_SEGMENTS):
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 1 >= n or data[pos] != 0xFF:
            return n  # truncated or damaged: nothing can be said to follow the image
        marker = data[pos + 1]
        if marker == 0xD9:
            return pos + 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if pos + 4 > n:
            return n
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
        if marker == 0xDA:  # entropy-coded data up to the next real marker
            while True:
                found = data.find(b"\xff", pos)
                if found < 0 or found + 1 >= n:
                    return n
                following = data[found + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    pos = found + (2 if following != 0xFF else 1)
                    continue
                pos = found
                break
    return n


def _png_end(data: bytes) -> int:
    pos = 8
    n = len(data)
    for _ in range(_MAX_SEGMENTS):
        if pos + 8 > n:
            return n
        length: int = struct.unpack_from(">I", data, pos)[0]
        kind = data[pos + 4 : pos + 8]
        pos += 12 + length
        if kind == b"IEND":
            return min(pos, n)
    return n


def _gif_sub_blocks(data: bytes, pos: int) -> int:
    n = len(data)
    while pos < n:
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return n


def _gif_end(data: bytes) -> int:
    n = len(data)
    if n < 13:
        return n
    flags = data[10]
    pos = 13 + (3 * (2 ** ((flags & 7) + 1)) if flags & 0x80 else 0)
    for _ in range(_MAX_SEGMENTS):
        if pos >= n:
            return n
        kind = data[pos]
        if kind == 0x3B:
            return pos + 1
        if kind == 0x21:  # extension: label, then sub-blocks
            pos = _gif_sub_blocks(data, pos + 2)
        elif kind == 0x2C:  # image descriptor (+ local table), LZW size, sub-blocks
            if pos + 10 > n:
                return n
            local = data[pos + 9]
            pos += 10 + (3 * (2 ** ((local & 7) + 1)) if local & 0x80 else 0)
            pos = _gif_sub_blocks(data, pos + 1)
        else:
            return pos  # not a block: the GIF ended without a trailer
    return n


def _bmp_end(data: bytes) -> int:
    n = len(data)
    if n < 30:
        return n
    size: int
    offset: int
    header_size: int
    size, offset, header_size = struct.unpack_from("<I4xII", data, 2)
    if header_size >= 16 and n >= 30:
        width, height, _planes, bits = struct.unpack_from("<iiHH", data, 18)
        compression = struct.unpack_from("<I", data, 30)[0] if header_size >= 20 and n >= 34 else 0
        if compression in (0, 3, 6) and width > 0 and bits:
            stride = ((width * bits + 31) // 32) * 4
            computed = offset + stride * abs(height)
            if size < computed:
                size = computed
    if size <= 0 or size > n:
        return n
    return size


def _webp_end(data: bytes) -> int:
    size: int = struct.unpack_from("<I", data, 4)[0]
    end = 8 + size + (size & 1)
    return min(end, len(data))


def _container(data: bytes) -> str | None:
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


_ENDS = {"jpeg": _jpeg_end, "png": _png_end, "gif": _gif_end, "bmp": _bmp_end, "webp": _webp_end}


def image_end(data: bytes) -> tuple[str, int]:
    """The container (``jpeg``, ``png``, ``gif``, ``bmp``, ``webp``) and the offset one past
    its last byte.

    Raises:
        InvalidImageFormatError: not one of these containers.
    """
    kind = _container(data)
    if kind is None:
        raise InvalidImageFormatError("imageInspect: the object is neither an image (JPEG, PNG, GIF, BMP, WebP) nor TS")
    return kind, _ENDS[kind](data)


def inspect(data: bytes) -> dict[str, Any]:
    """The ``imageInspect`` answer for ``data`` as a dict in CI's field order.

    ``picSize`` and the byte positions are JSON numbers (as in CI's samples; a newer table
    types them "String"); ``suspiciousEndByte`` is inclusive (``Begin + Size - 1``).

    Example:
        >>> png = bytes.fromhex("89504e470d0a1a0a") + bytes.fromhex("0000000049454e44ae426082")
        >>> inspect(png + b"\\x47" + bytes(187) + b"\\x47" + bytes(187))
        {'picSize': 396, 'picType': 'png', 'suspicious': True, 'suspiciousBeginByte': 20, \
'suspiciousEndByte': 395, 'suspiciousSize': 376, 'suspiciousType': 'MPEG-TS'}

    Raises:
        InvalidImageFormatError: neither an image of a supported container nor MPEG-TS.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"inspect: data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    size = len(data)
    if _container(data) is None and _is_ts(data, 0):
        return _answer(size, "ts", 0, "MPEG-TS")
    kind, end = image_end(data)
    trailer = data[end:]
    if not trailer or (len(trailer) <= _MAX_PADDING and all(b in _PADDING for b in trailer)):
        return {"picSize": size, "picType": kind, "suspicious": False}
    what = classify(data, end)
    if what == "UNKNOWN":  # padding before the hidden data: type it, report it from the end
        start = end
        while start < size and start - end < _MAX_PADDING and data[start] in _PADDING:
            start += 1
        if start < size:
            what = classify(data, start)
    return _answer(size, kind, end, what)


def _answer(size: int, kind: str, begin: int, what: str) -> dict[str, Any]:
    return {
        "picSize": size,
        "picType": kind,
        "suspicious": True,
        "suspiciousBeginByte": begin,
        "suspiciousEndByte": size - 1,
        "suspiciousSize": size - begin,
        "suspiciousType": what,
    }


def inspect_json(data: bytes) -> bytes:
    """:func:`inspect` as compact UTF-8 JSON (the response body)."""
    return json.dumps(inspect(data), separators=(",", ":")).encode("utf-8")
