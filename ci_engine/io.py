"""Byte-level input: format sniffing and header probing, without decoding a pixel.

``sniff`` names the container from its magic bytes; ``probe`` reads just enough of the
container (markers, chunks, boxes, directories) to fill an :class:`ImageHeader`, so that the
limits of ``limits-and-errors.md`` section 2 can be checked *before* any decoder allocates the
image: a 1 KB file declaring 100,000 x 100,000 px is measured here in microseconds.

Both backends use this module, so a file is accepted or refused identically on libvips and on
Pillow. It is pure Python (``struct`` and ``zlib`` only): no imaging library is imported.

Robustness rules, shared by every format reader:

* every read is bounds-checked; a malformed or truncated header raises
  :class:`InvalidImageFormatError` naming the format and the problem, never ``IndexError``,
  ``struct.error`` or ``ValueError``;
* every loop advances through the data or is counted, so its cost is bounded by the input
  length (or a stated cap); nested containers are walked with explicit loops, never recursion;
  what a file may repeat is capped per file, not only per structure (issue 12), so that a
  32 MB file costs a few tens of milliseconds whatever it repeats;
* with ``limits``, a size over them is refused as soon as the header states it, and the
  limits are checked on what decoders allocate, not only on the size they deliver; a header
  that can be read two ways (two primary items) is refused;
* the header ends where the image data starts (JPEG ``SOS``, PNG ``IDAT``, the first GIF
  frame); truncation before that point is an error, truncation after it is the decoder's
  business. Frame counts of GIF, animated WebP and TIFF count the frames fully present
  (GIF and WebP up to ``_MAX_FRAMES``; a TIFF of more than ``_MAX_TIFF_IFDS`` pages is refused);
* what decoders would expand without bound is measured here, cheaply: a PNG whose IDAT run is
  longer than its declared size can need (a zlib bomb), or whose compressed metadata inflates
  past ``_MAX_PNG_METADATA``, is refused;
* metadata that decoders tolerate when broken (an unreadable EXIF block) is read leniently:
  it yields the defaults (orientation 1, no dpi) instead of failing the image.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from typing import Any

from ci_engine.errors import ImageResolutionExceedError, InvalidImageFormatError
from ci_engine.limits import Limits, check_header
from ci_engine.types import ImageFormat, ImageHeader

__all__ = ["sniff", "probe", "estimate_jpeg_quality", "read_exif_orientation"]

_U16BE = struct.Struct(">H")
_U32BE = struct.Struct(">I")
_U64BE = struct.Struct(">Q")
_U16LE = struct.Struct("<H")
_U32LE = struct.Struct("<I")
_U64LE = struct.Struct("<Q")

_MAX_TIFF_IFDS = 1_000
"""Most directories (pages) in a TIFF chain; a longer chain is refused. libtiff walks the
whole chain when libvips opens the file (about 25 us per directory, twice), so 280,000 tiny
directories in 32 MB would cost seconds before the first page is read."""

_MAX_BLOCKS = 10_000
"""Most JPEG segments or PNG chunks before the image data, and most ISOBMFF boxes in one
container. Real files have tens (a HEIF grid has one ``infe`` per tile); the cap keeps a
32 MB file of empty segments from costing more than a few milliseconds of Python."""

_MAX_FRAMES = 10_000
"""GIF frames and WebP ANMF chunks are counted up to this many, then the count stops: ten
times the default frame limit (``Limits.max_frames``), and it keeps a 32 MB file of empty
frames (2.6 million) to 3 ms of probing instead of 0.8 s."""

_MAX_JPEG_SCANS = 100
"""Most scans in a JPEG, progressive or sequential (real encoders write 5 to 20 progressive
scans, and a sequential file one per component at most). Every scan is a pass over the whole
image, and libjpeg has no limit of its own: a 1,024 x 1,024 JPEG of 10,000 empty 12-byte
scans costs Pillow 7 s of CPU, and libjpeg re-reads a sequential file's repeated scans too.
Counted with ``bytes.find`` of the SOS marker, which the entropy-coded data cannot contain
(a 0xFF there is followed by 0x00), up to the cap."""

_MAX_PNG_METADATA = 1 << 20
"""Most bytes a compressed PNG metadata chunk (iCCP, zTXt, iTXt) may inflate to: Pillow's
``MAX_TEXT_CHUNK``, so that both backends refuse the same files (libspng would skip it)."""

_MAX_PNG_METADATA_TOTAL = 4 << 20
"""Most bytes all the compressed metadata chunks of one PNG may inflate to together (before
and after the image data): each chunk's own cap alone let 10,000 chunks of 1 KB inflate to
1 MiB each, 10 GB of inflating (34 s) for a 10 MB file."""

_MAX_PNG_CHUNKS = 1 << 15
"""Most chunks in a whole PNG, image data and the chunks after it included (a 32 MB file
holds 4,000 IDAT chunks of libpng's 8 KB; Pillow reads every chunk in Python)."""

_MAX_JPEG_PADDING = 1 << 16
"""Most fill bytes (``0xFF`` before a marker) and stray bytes between segments in one JPEG
header. Real files have none or a few; Pillow steps over each in Python (0.3 us a byte)."""

_MAX_JPEG_TABLES = 64
"""Most quantisation tables defined before the first scan of a JPEG (real files define 2 to
4). A DQT segment holds up to 1,008 tables: 490 of them in 32 MB cost the probe 0.6 s,
libjpeg 1.1 s and Pillow, which reads each table in Python, 3.2 s."""

_MAX_GIF_BLOCKS = 1 << 16
"""Most image data sub-blocks shorter than 255 bytes in one GIF. Encoders write full
sub-blocks and one short one to end each frame; runs of full sub-blocks are skipped many at
a time (one strided slice), the others one by one: 15 million one-byte sub-blocks in 30 MB
cost 1.2 s to walk."""

_MAX_GIF_EXTENSION_BLOCKS = 1 << 14
"""Most extension blocks and their sub-blocks in one GIF, walked one by one (Pillow walks
them in Python too; a real animation has two per frame, and frames are counted to
``_MAX_FRAMES`` at most): 10 million empty comments in 30 MB cost 3 s to walk."""

_MAX_TIFF_ENTRIES = 4_096
"""Most entries in one TIFF directory: libtiff's own sanity check (``TIFFFetchDirectory``
refuses more), and a 30 MB BigTIFF directory of 1.5 million entries cost 1.4 s to read."""

_MAX_TIFF_SAMPLES = 6
"""Most samples per pixel: Pillow's ``MAX_SAMPLESPERPIXEL``. libvips decodes any count, each
one a band: a TIFF of 255 samples per pixel cost it 1.4 GB while it declared a small size."""

_MAX_DECODED_BYTES_PER_PIXEL = 8
"""What the pixel limit is taken to cost per pixel (16-bit RGBA): an image whose samples x
bits per pixel would decode to more than ``max_input_pixels`` x this many bytes is refused
on its pixels (``input_pixels``), whatever its width x height."""

_MAX_BRANDS = 256


def _bad(fmt: str, message: str) -> InvalidImageFormatError:
    return InvalidImageFormatError(f"{fmt}: {message}")


class _Reader:
    """A cursor over ``data[pos:end]`` whose reads raise ``InvalidImageFormatError`` when
    they would cross ``end``."""

    __slots__ = ("_u16", "_u32", "_u64", "data", "end", "fmt", "pos")

    def __init__(self, data: bytes, pos: int, end: int, fmt: str, *, big_endian: bool = True) -> None:
        self.data = data
        self.pos = pos
        self.end = min(end, len(data))
        self.fmt = fmt
        if big_endian:
            self._u16, self._u32, self._u64 = _U16BE, _U32BE, _U64BE
        else:
            self._u16, self._u32, self._u64 = _U16LE, _U32LE, _U64LE

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def need(self, count: int, what: str) -> None:
        if count < 0 or self.pos + count > self.end:
            raise _bad(self.fmt, f"truncated {what} at offset {self.pos}")

    def skip(self, count: int, what: str = "data") -> None:
        self.need(count, what)
        self.pos += count

    def u8(self, what: str = "field") -> int:
        self.need(1, what)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def u16(self, what: str = "field") -> int:
        self.need(2, what)
        value: int = self._u16.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return value

    def u32(self, what: str = "field") -> int:
        self.need(4, what)
        value: int = self._u32.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return value

    def u64(self, what: str = "field") -> int:
        self.need(8, what)
        value: int = self._u64.unpack_from(self.data, self.pos)[0]
        self.pos += 8
        return value

    def take(self, count: int, what: str = "field") -> bytes:
        self.need(count, what)
        value = bytes(self.data[self.pos : self.pos + count])
        self.pos += count
        return value


def _round_half_up(value: float) -> float:
    return float(math.floor(value + 0.5))


def _ppm_to_dpi(ppm: int) -> float:
    """Pixels per metre to dots per inch, rounded half up (``info.md`` section 1.1)."""
    return float((ppm * 254 + 5000) // 10000)


def _dpi_pair(x: float, y: float) -> tuple[float, float] | None:
    if x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y):
        return (float(x), float(y))
    return None


# -- sniffing ---------------------------------------------------------------------------------

_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"})
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})

_FOREIGN_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "PDF"),
    (b"8BPS", "PSD (Photoshop)"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 codestream"),
    (b"qoif", "QOI"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"%!PS", "PostScript"),
)
_UNSUPPORTED = "supported inputs are JPEG, PNG, GIF, WebP, BMP, TIFF, HEIF and AVIF"


def sniff(data: bytes) -> ImageFormat:
    """Identify the container format by its magic bytes.

    APNG is reported as PNG. HEIF and AVIF share the ISOBMFF ``ftyp`` box and are told apart
    by its brands (see :func:`_isobmff_format`).

    Args:
        data: the file's bytes (only the first few dozen are looked at).

    Returns:
        The container format.

    Raises:
        InvalidImageFormatError: empty or too short input, or a signature that is not one of
            the supported formats; the message names what was seen (SVG, PDF, PSD ...).
    """
    if not data:
        raise InvalidImageFormatError("input: empty data is not an image")
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return ImageFormat.JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ImageFormat.PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return ImageFormat.GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageFormat.WEBP
    if head[:2] == b"BM" and len(head) >= 18 and _U32LE.unpack_from(head, 14)[0] in _BMP_DIB_SIZES:
        return ImageFormat.BMP
    if head[4:8] == b"ftyp":
        return _isobmff_format(data)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return ImageFormat.TIFF
    raise InvalidImageFormatError(_describe_unknown(head, len(data)))


def _isobmff_format(data: bytes) -> ImageFormat:
    """HEIF or AVIF from the ``ftyp`` brands.

    AVIF when ``avif``/``avis`` is the major brand, or when it is the only specific brand among
    the compatible ones (no ``heic``/``heix``/``hevc``/``hevx``/``heim``/``heis``). Otherwise
    HEIF when any HEIF brand, specific or generic (``mif1``, ``msf1``), is present.
    """
    size = _U32BE.unpack_from(data, 0)[0]
    if size < 16:
        raise _bad("isobmff", f"ftyp box too small ({size} bytes)")
    end = min(size, len(data))
    if end < 12:
        raise _bad("isobmff", "too short to read the ftyp brands")
    major = bytes(data[8:12])
    compatible = {bytes(data[i : i + 4]) for i in range(16, min(end, 16 + 4 * _MAX_BRANDS) - 3, 4)}
    if major in _AVIF_BRANDS:
        return ImageFormat.AVIF
    if major in _HEIF_BRANDS:
        return ImageFormat.HEIF
    if compatible & _AVIF_BRANDS and not compatible & _HEIF_BRANDS:
        return ImageFormat.AVIF
    if ({major} | compatible) & (_HEIF_BRANDS | _HEIF_GENERIC_BRANDS):
        return ImageFormat.HEIF
    brands = ", ".join(b.decode("latin-1") for b in [major, *sorted(compatible - {major})])
    raise InvalidImageFormatError(f"input: ISO media file with brands {brands} is not HEIF or AVIF; {_UNSUPPORTED}")


def _describe_unknown(head: bytes, length: int) -> str:
    for signature, name in _FOREIGN_SIGNATURES:
        if head.startswith(signature):
            return f"input: {name} is not a supported image format; {_UNSUPPORTED}"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in head.lower()):
        return f"input: SVG is not a supported input format here; {_UNSUPPORTED}"
    if text.startswith((b"<!doctype html", b"<html")):
        return "input: HTML document, not an image"
    if text.startswith(b"<?xml"):
        return "input: XML document, not an image"
    if head[:2] == b"BM" and length >= 18:
        return f"input: BMP signature with an implausible DIB header size {_U32LE.unpack_from(head, 14)[0]}"
    if head[:4] == b"RIFF":
        return f"input: RIFF container of type {head[8:12]!r} is not WebP"
    if length < 12:
        return f"input: too short to be an image ({length} bytes)"
    return f"input: unrecognised signature {head[:8].hex(' ')}; {_UNSUPPORTED}"


# -- probing ----------------------------------------------------------------------------------


def probe(data: bytes, *, limits: Limits | None = None) -> ImageHeader:
    """Read the header of an image without decoding it.

    Args:
        data: the complete file (only the header region is parsed; for GIF, animated WebP and
            TIFF the frame/chunk/directory chain is walked without reading pixel data).
        limits: when given, the input limits are checked as soon as the header states a size
            (before the rest of the file is walked), on every size a decoder will really
            allocate (a HEIF grid and its tiles before ``clap`` crops them, an auxiliary alpha
            image, TIFF samples x bits), and on the final header (:func:`check_header`).

    Returns:
        An :class:`ImageHeader`. Without ``limits``, dimensions are returned as declared,
        however large: the limits are then checked by the caller.

    Raises:
        InvalidImageFormatError: unknown format, or a malformed, truncated or ambiguous
            header (two primary items, a GIF frame larger than its screen ...).
        ImageResolutionExceedError: with ``limits``, a size over them.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    fmt = sniff(data)
    try:
        header = _PROBES[fmt](data, limits)
    except (IndexError, struct.error, ValueError, OverflowError) as exc:  # pragma: no cover - safety net
        raise InvalidImageFormatError(f"{fmt.value}: malformed header", detail=repr(exc)) from exc
    if limits is not None:
        check_header(header, limits)
    return header


def _check_size(limits: Limits | None, fmt: ImageFormat, width: int, height: int, frames: int = 1) -> None:
    """The input limits on a size the header states (or a decoder will allocate), as soon as
    it is read: a file declaring too much is refused before the rest of it is walked."""
    if limits is not None and width > 0 and height > 0:
        check_header(ImageHeader(fmt, width, height, frames=max(1, frames)), limits)


def _frame_stop(limits: Limits | None, fmt: ImageFormat) -> int:
    """How many frames to count before the count is over the frame limits anyway (the walk
    stops there and :func:`check_header` refuses the file); the probe's own cap without
    limits."""
    if limits is None:
        return _MAX_FRAMES
    most = limits.max_frames
    if fmt is ImageFormat.GIF:
        most = min(most, limits.max_gif_frames)
    return max(1, min(_MAX_FRAMES, most + 1))


def _header(fmt: ImageFormat, width: int, height: int, **fields: Any) -> ImageHeader:
    """The ImageHeader, after the checks every format shares (positive size, orientation)."""
    if width <= 0 or height <= 0:
        raise _bad(fmt.value, f"invalid dimensions {width}x{height}")
    orientation = fields.get("orientation", 1)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        fields["orientation"] = 1
    return ImageHeader(fmt, width, height, **fields)


# -- EXIF / TIFF directories --------------------------------------------------------------------

# type -> (struct code, size); rationals are two codes.
_TIFF_TYPES: dict[int, tuple[str, int]] = {
    1: ("B", 1),
    2: ("B", 1),
    3: ("H", 2),
    4: ("I", 4),
    5: ("II", 8),
    6: ("b", 1),
    7: ("B", 1),
    8: ("h", 2),
    9: ("i", 4),
    10: ("ii", 8),
    11: ("f", 4),
    12: ("d", 8),
    13: ("I", 4),
    16: ("Q", 8),
    17: ("q", 8),
    18: ("Q", 8),
}
_MAX_TAG_VALUES = 16
"""Values read per tag: the tags probed need the first one or a few."""

_TAG_WIDTH, _TAG_HEIGHT, _TAG_BITS, _TAG_PHOTOMETRIC = 256, 257, 258, 262
_TAG_ORIENTATION, _TAG_SAMPLES, _TAG_XRES, _TAG_YRES = 274, 277, 282, 283
_TAG_RES_UNIT, _TAG_EXTRA_SAMPLES, _TAG_EXIF_IFD, _TAG_ICC = 296, 338, 34665, 34675
_TAG_TILE_WIDTH, _TAG_TILE_LENGTH = 322, 323


class _Tiff:
    """The byte order and offset size of a TIFF (or EXIF) structure."""

    __slots__ = ("bigtiff", "data", "first_ifd", "fmt", "order")

    def __init__(self, data: bytes, fmt: str) -> None:
        if len(data) < 8:
            raise _bad(fmt, "truncated TIFF header")
        if data[:2] == b"II":
            self.order = "<"
        elif data[:2] == b"MM":
            self.order = ">"
        else:
            raise _bad(fmt, f"bad TIFF byte order {bytes(data[:2])!r}")
        self.data = data
        self.fmt = fmt
        magic = self.unpack("H", 2)[0]
        if magic == 42:
            self.bigtiff = False
            self.first_ifd = self._int("I", 4)
        elif magic == 43 and len(data) >= 16 and self.unpack("HH", 4) == (8, 0):
            self.bigtiff = True
            self.first_ifd = self._int("Q", 8)
        else:
            raise _bad(fmt, f"bad TIFF magic number {magic}")

    def unpack(self, code: str, offset: int) -> tuple[int | float, ...]:
        size = struct.calcsize(self.order + code)
        if offset < 0 or offset + size > len(self.data):
            raise _bad(self.fmt, f"TIFF field at offset {offset} runs past the end")
        values: tuple[int | float, ...] = struct.unpack_from(self.order + code, self.data, offset)
        return values

    def _int(self, code: str, offset: int) -> int:
        return int(self.unpack(code, offset)[0])

    def ifd_span(self, offset: int) -> tuple[int, int, int]:
        """(entry count, offset of the first entry, offset of the next-IFD pointer)."""
        if self.bigtiff:
            count = self._int("Q", offset)
            first = offset + 8
        else:
            count = self._int("H", offset)
            first = offset + 2
        entry = 20 if self.bigtiff else 12
        if count > (len(self.data) - first) // entry:
            raise _bad(self.fmt, f"directory at offset {offset} declares {count} entries, past the end")
        if count > _MAX_TIFF_ENTRIES:
            raise _bad(
                self.fmt, f"directory at offset {offset} declares {count} entries, more than {_MAX_TIFF_ENTRIES}"
            )
        return count, first, first + count * entry

    def next_ifd(self, offset: int) -> int:
        """The offset of the directory after the one at ``offset`` (0 when none)."""
        _, _, pointer = self.ifd_span(offset)
        return self._int("Q" if self.bigtiff else "I", pointer)

    def read_ifd(self, offset: int, wanted: Container[int]) -> dict[int, tuple[int | float, ...]]:
        """The first values of the ``wanted`` tags of one directory.

        Tags of an unknown type, or whose values lie outside the data, are skipped;
        a rational with a zero denominator is skipped.
        """
        count, first, _ = self.ifd_span(offset)
        entry_size, inline = (20, 8) if self.bigtiff else (12, 4)
        out: dict[int, tuple[int | float, ...]] = {}
        for index in range(count):
            base = first + index * entry_size
            tag, typ = self.unpack("HH", base)
            if tag not in wanted or tag in out:
                continue
            kind = _TIFF_TYPES.get(int(typ))
            if kind is None:
                continue
            code, size = kind
            n = self._int("Q" if self.bigtiff else "I", base + 4)
            where = base + (12 if self.bigtiff else 8)
            if n * size > inline:
                where = self._int("Q" if self.bigtiff else "I", where)
            n = min(n, _MAX_TAG_VALUES)
            if n == 0 or where + n * size > len(self.data):
                continue
            raw = struct.unpack_from(self.order + code * n, self.data, where)
            if len(code) == 2:
                if any(raw[i + 1] == 0 for i in range(0, len(raw), 2)):
                    continue
                out[int(tag)] = tuple(raw[i] / raw[i + 1] for i in range(0, len(raw), 2))
            else:
                out[int(tag)] = tuple(raw)
        return out


def _first_int(values: Mapping[int, tuple[int | float, ...]], tag: int, default: int) -> int:
    found = values.get(tag)
    if not found:
        return default
    value = found[0]
    return int(value) if isinstance(value, int) else default


def _resolution(values: Mapping[int, tuple[int | float, ...]]) -> tuple[float, float] | None:
    """dpi from XResolution/YResolution/ResolutionUnit (2 = inch, 3 = cm; 1 = no unit)."""
    if _TAG_XRES not in values or _TAG_YRES not in values:
        return None
    x, y = float(values[_TAG_XRES][0]), float(values[_TAG_YRES][0])
    unit = _first_int(values, _TAG_RES_UNIT, 2)
    if unit == 3:
        x, y = _round_half_up(x * 2.54), _round_half_up(y * 2.54)
    elif unit != 2:
        return None
    return _dpi_pair(x, y)


def _strip_exif_prefix(data: bytes) -> bytes:
    return data[6:] if data[:4] == b"Exif" and len(data) >= 6 else data


def _exif_ifd0(tiff_bytes: bytes, wanted: Container[int]) -> dict[int, tuple[int | float, ...]]:
    """Tags of IFD0 of an EXIF block; ``{}`` when the block is unreadable (EXIF is lenient)."""
    try:
        tiff = _Tiff(_strip_exif_prefix(tiff_bytes), "exif")
        return tiff.read_ifd(tiff.first_ifd, wanted)
    except (InvalidImageFormatError, struct.error):
        return {}


def read_exif_orientation(tiff_bytes: bytes) -> int:
    """The EXIF orientation (tag 0x0112 of IFD0) of a TIFF-structured EXIF block.

    Args:
        tiff_bytes: the EXIF payload starting at its TIFF header (``II*\\0`` or ``MM\\0*``);
            a leading ``Exif\\0\\0`` is tolerated.

    Returns:
        1..8; 1 when the tag is absent, out of range, or the block is unreadable.
    """
    value = _first_int(_exif_ifd0(tiff_bytes, (_TAG_ORIENTATION,)), _TAG_ORIENTATION, 1)
    return value if 1 <= value <= 8 else 1


# -- JPEG ---------------------------------------------------------------------------------------

_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_IJG_CHROMINANCE = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
) + (99,) * 32  # fmt: skip
"""The example tables of ITU-T T.81 Annex K, the base of libjpeg's ``jpeg_set_quality``."""


def _ijg_table_sum(base: Sequence[int], quality: int, ceiling: int) -> int:
    """Sum of ``base`` scaled as libjpeg's ``jpeg_quality_scaling``/``jpeg_add_quant_table``."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return sum(min(max((value * scale + 50) // 100, 1), ceiling) for value in base)


# ceiling 255: baseline tables (force_baseline, what libjpeg/Pillow write); 32767: 16-bit tables.
# (luminance sum, chrominance sum) for qualities 1..100: _ijg_table_sum of the tables above,
# written out because computing them costs tens of ms at every start-up (test_io checks them).
# From quality 24 on no scaled entry exceeds 255, so both ceilings share those sums.
_IJG_SUMS_FROM_24: tuple[tuple[int, int], ...] = (
    (7668, 11453), (7376, 11010), (7084, 10567), (6823, 10175), (6562, 9787), (6345, 9455),
    (6125, 9122), (5939, 8844), (5756, 8565), (5571, 8288), (5421, 8114), (5240, 7841),
    (5086, 7616), (4976, 7447), (4829, 7227), (4719, 7060), (4616, 6897), (4463, 6672),
    (4393, 6562), (4280, 6396), (4166, 6226), (4092, 6116), (3980, 5948), (3909, 5838),
    (3835, 5729), (3755, 5614), (3688, 5505), (3621, 5396), (3541, 5281), (3467, 5172),
    (3396, 5062), (3323, 4947), (3247, 4837), (3170, 4726), (3096, 4614), (3021, 4506),
    (2952, 4395), (2874, 4282), (2804, 4173), (2727, 4061), (2657, 3950), (2583, 3839),
    (2509, 3727), (2437, 3617), (2362, 3505), (2290, 3394), (2211, 3284), (2136, 3169),
    (2068, 3060), (1996, 2949), (1915, 2836), (1858, 2780), (1773, 2669), (1692, 2556),
    (1620, 2445), (1552, 2336), (1477, 2221), (1398, 2111), (1326, 2000), (1251, 1888),
    (1179, 1778), (1109, 1666), (1031, 1555), (961, 1444), (884, 1332), (814, 1223),
    (736, 1110), (667, 999), (592, 891), (518, 779), (441, 668), (369, 558),
    (292, 443), (221, 333), (151, 224), (86, 115), (64, 64),
)  # fmt: skip
_IJG_SUMS: dict[int, tuple[tuple[int, int], ...]] = {
    255: (
        (16320, 16320), (16315, 16320), (15946, 16320), (15277, 16218), (14655, 16010), (14073, 15731),
        (13623, 15523), (13230, 15369), (12859, 15245), (12560, 15110), (12240, 14985), (11861, 14864),
        (11456, 14754), (11081, 14635), (10714, 14526), (10360, 14429), (10027, 14346), (9679, 14267),
        (9368, 14204), (9056, 13790), (8680, 13121), (8331, 12511), (7995, 11954),
        *_IJG_SUMS_FROM_24,
    ),
    32767: (
        (184400, 275250), (92200, 137625), (61445, 91697), (46114, 68840), (36880, 55050), (30719, 45876),
        (26334, 39314), (23056, 34422), (20471, 30529), (18440, 27525), (16748, 24969), (15344, 22911),
        (14160, 21129), (13166, 19633), (12279, 18351), (11505, 17183), (10843, 16182), (10209, 15236),
        (9700, 14459), (9234, 13790), (8774, 13121), (8370, 12511), (8008, 11954),
        *_IJG_SUMS_FROM_24,
    ),
}  # fmt: skip


def estimate_jpeg_quality(tables: Mapping[int, Sequence[int]] | Sequence[Sequence[int]]) -> int:
    """Estimate the IJG quality (1..100) a JPEG was encoded at from its quantisation tables.

    The method is ImageMagick's: compare the sum of the luminance table (and of the
    chrominance table when there is one) with the sums of libjpeg's tables for every
    quality 1..100 and pick the closest (sum of absolute differences; ties go to the higher
    quality). The reference tables are the Annex K tables scaled exactly as libjpeg's
    ``jpeg_set_quality`` does (scale ``5000/q`` below 50, ``200 - 2q`` from 50, integer
    rounding, entries clamped to 1..255 for baseline tables, or to 1..32767 when a table has
    entries above 255). The reference luminance sums strictly decrease with quality, so a
    table written by libjpeg at quality ``q`` gives back exactly ``q``; all-ones tables give
    100. Sums do not depend on the order of the entries (zigzag as stored in DQT, or natural).

    Args:
        tables: quantisation tables by table id (``{0: luminance, 1: chrominance}``, the shape
            of Pillow's ``Image.quantization``), or a sequence ``[luminance, chrominance]``.
            Each table has 64 entries; the chrominance table is optional.

    Returns:
        The estimated quality, 1..100.

    Raises:
        ValueError: no table, or a table without 64 entries.
    """
    if isinstance(tables, Mapping):
        ordered = [tables[key] for key in sorted(tables)]
    else:
        ordered = list(tables)
    if not ordered:
        raise ValueError("estimate_jpeg_quality: no quantisation table")
    used = ordered[:2]
    for table in used:
        if len(table) != 64:
            raise ValueError(f"estimate_jpeg_quality: a quantisation table has {len(table)} entries, not 64")
    ceiling = 32767 if any(value > 255 for table in used for value in table) else 255
    sums = [sum(table) for table in used]
    best_quality, best_error = 100, -1
    for quality in range(100, 0, -1):
        reference = _IJG_SUMS[ceiling][quality - 1]
        error = sum(abs(s - r) for s, r in zip(sums, reference))
        if best_error < 0 or error < best_error:
            best_quality, best_error = quality, error
    return best_quality


_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_ISO_21496 = b"urn:iso:std:iso:ts:21496:-1\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def _probe_jpeg(data: bytes, limits: Limits | None = None) -> ImageHeader:
    """Walk the markers from SOI to the first SOS (and count the scans of a progressive one).

    Reads SOFn (size, components, precision, progressive), DQT (quality), APP0 JFIF (dpi),
    APP1 EXIF (orientation; dpi when JFIF states no unit), APP1 XMP and APP2 (Ultra HDR /
    ISO 21496-1 gain maps), APP2 ICC_PROFILE and APP14 Adobe (CMYK vs YCCK). Garbage between
    segments is skipped up to the next ``0xFF`` as libjpeg does, and runs of fill bytes in one
    step; both together are capped at ``_MAX_JPEG_PADDING`` bytes, and quantisation tables at
    ``_MAX_JPEG_TABLES``. Every JPEG, progressive or
    sequential, may hold at most ``_MAX_JPEG_SCANS`` scans.
    """
    n = len(data)
    pos = 2
    sof: tuple[int, int, int, int, list[int]] | None = None  # marker, precision, width, height, table ids
    tables: dict[int, list[int]] = {}
    adobe_transform: int | None = None
    jfif_dpi: tuple[float, float] | None = None
    exif: bytes | None = None
    icc = gain_map = False
    padding = defined = 0
    for _ in range(_MAX_BLOCKS):
        found = data.find(b"\xff", pos, pos + _MAX_JPEG_PADDING - padding + 1)
        if found < 0:
            if data.find(b"\xff", pos) < 0:
                raise _bad("jpeg", "truncated before the image data (no SOS marker)")
            raise _bad("jpeg", f"more than {_MAX_JPEG_PADDING} stray or fill bytes between segments")
        padding += found - pos
        pos = found + 1
        if pos < n and data[pos] == 0xFF:  # fill bytes: skipped in one step, counted
            window = data[pos : pos + _MAX_JPEG_PADDING - padding + 1]
            run = len(window) - len(window.lstrip(b"\xff"))
            padding += run
            if padding > _MAX_JPEG_PADDING:
                raise _bad("jpeg", f"more than {_MAX_JPEG_PADDING} stray or fill bytes between segments")
            pos += run
        if pos >= n:
            raise _bad("jpeg", "truncated before the image data (no SOS marker)")
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE or marker == 0x00:
            continue
        if marker == 0xD8:
            raise _bad("jpeg", f"unexpected second SOI marker at offset {pos - 2}")
        if marker == 0xD9:
            raise _bad("jpeg", "end of image before any scan (no SOS marker)")
        if marker == 0xDA:
            if sof is None:
                raise _bad("jpeg", "scan (SOS) before the frame header (SOF)")
            scan = pos - 2
            for _ in range(_MAX_JPEG_SCANS):  # sequential files too; stops at the cap
                scan = data.find(b"\xff\xda", scan + 2)
                if scan < 0:
                    break
            else:
                raise _bad("jpeg", f"more than {_MAX_JPEG_SCANS} scans")
            break
        if pos + 2 > n:
            raise _bad("jpeg", f"truncated segment header of marker 0x{marker:02X}")
        length = _U16BE.unpack_from(data, pos)[0]
        start, end = pos + 2, pos + length
        if length < 2 or end > n:
            raise _bad("jpeg", f"segment 0x{marker:02X} at offset {pos - 2} has a bad length {length}")
        if marker in _JPEG_SOF:
            if sof is not None:
                raise _bad("jpeg", "two frame headers (SOF)")
            sof = _jpeg_sof(data, marker, start, end)
            _check_size(limits, ImageFormat.JPEG, sof[2], sof[3])
        elif marker == 0xDB:
            defined = _jpeg_dqt(data, start, end, tables, defined)
        elif marker == 0xE0 and data.startswith(b"JFIF\x00", start) and length >= 16:
            units = data[start + 7]
            x, y = _U16BE.unpack_from(data, start + 8)[0], _U16BE.unpack_from(data, start + 10)[0]
            if units == 1:
                jfif_dpi = _dpi_pair(x, y)
            elif units == 2:
                jfif_dpi = _dpi_pair(_round_half_up(x * 2.54), _round_half_up(y * 2.54))
        elif marker == 0xE1:
            if data.startswith(b"Exif\x00", start) and exif is None:
                exif = bytes(data[start + 6 : end])
            elif data.startswith(_XMP, start) and data.find(b"hdrgm:", start, end) >= 0:
                gain_map = True
        elif marker == 0xE2:
            if data.startswith(b"ICC_PROFILE\x00", start):
                icc = True
            elif data.startswith(_ISO_21496, start):
                gain_map = True
        elif marker == 0xEE and data.startswith(b"Adobe", start) and length >= 14:
            adobe_transform = data[start + 11]
        pos = end
    else:
        raise _bad("jpeg", f"more than {_MAX_BLOCKS} segments before the image data")
    if sof is None:  # pragma: no cover - SOS without SOF raised above
        raise _bad("jpeg", "no frame header (SOF)")
    marker, precision, width, height, table_ids = sof
    components = len(table_ids)
    if components == 1:
        color_space = "gray"
    elif components == 3:
        color_space = "srgb"
    elif components == 4:
        color_space = "ycck" if adobe_transform == 2 else "cmyk"
    else:
        color_space = "other"
    quality = None
    used = [tables[t] for t in dict.fromkeys(table_ids[:2]) if t in tables]
    if used and all(t in tables for t in table_ids):
        quality = estimate_jpeg_quality(used)
    dpi = jfif_dpi
    orientation = 1
    if exif is not None:
        values = _exif_ifd0(exif, (_TAG_ORIENTATION, _TAG_XRES, _TAG_YRES, _TAG_RES_UNIT))
        orientation = _first_int(values, _TAG_ORIENTATION, 1)
        if dpi is None:
            dpi = _resolution(values)
    return _header(
        ImageFormat.JPEG,
        width,
        height,
        orientation=orientation,
        bit_depth=precision,
        color_space=color_space,
        quality=quality,
        progressive=marker in _JPEG_PROGRESSIVE,
        icc=icc,
        exif=exif is not None,
        dpi=dpi,
        dynamic_range="gainmap hdr" if gain_map else "unknow",
    )


def _jpeg_sof(data: bytes, marker: int, start: int, end: int) -> tuple[int, int, int, int, list[int]]:
    reader = _Reader(data, start, end, "jpeg")
    precision = reader.u8("frame header")
    height = reader.u16("frame header")
    width = reader.u16("frame header")
    count = reader.u8("frame header")
    if count == 0:
        raise _bad("jpeg", "frame header with no components")
    if height == 0:
        raise _bad("jpeg", "height defined by a DNL marker is not supported")
    table_ids = []
    for _ in range(count):
        reader.skip(2, "frame component")
        table_ids.append(reader.u8("frame component"))
    return marker, precision, width, height, table_ids


def _jpeg_dqt(data: bytes, start: int, end: int, tables: dict[int, list[int]], defined: int) -> int:
    """Read the tables of one DQT segment into ``tables``; the count of tables defined so far
    in the file (``defined`` before), at most ``_MAX_JPEG_TABLES``."""
    reader = _Reader(data, start, end, "jpeg")
    while reader.remaining > 0:
        defined += 1
        if defined > _MAX_JPEG_TABLES:
            raise _bad("jpeg", f"more than {_MAX_JPEG_TABLES} quantisation tables")
        spec = reader.u8("quantisation table")
        precision, table_id = spec >> 4, spec & 0x0F
        if precision > 1 or table_id > 3:
            raise _bad("jpeg", f"bad quantisation table header 0x{spec:02X}")
        if precision == 0:
            tables[table_id] = list(reader.take(64, "quantisation table"))
        else:
            reader.need(128, "quantisation table")
            tables[table_id] = list(struct.unpack_from(">64H", data, reader.pos))
            reader.pos += 128
    return defined


# -- PNG ----------------------------------------------------------------------------------------

_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png_idat_bound(width: int, height: int, depth: int, color: int, interlace: int) -> int:
    """The most IDAT bytes an image of this header can need: its filtered rows (Adam7 adds a
    filter byte and a partial byte per pass row, under 4 per image row), stored rather than
    compressed, plus an eighth and 64 KB of slack for deflate's block headers and flushes.
    More is a zlib bomb: libspng inflates the whole stream, ~8 GB/s of CPU for zeros."""
    row = (width * depth * _PNG_CHANNELS[color] + 7) // 8 + 1
    raw = height * row + (4 * height if interlace else 0)
    return raw + raw // 8 + 65_536


def _png_walk_rest(data: bytes, pos: int, bound: int, chunks: int, budget: list[int]) -> None:
    """Walk the chunks from the first IDAT (at ``pos``) to IEND: refuse an IDAT run longer
    than ``bound`` bytes (a zlib bomb), more than ``_MAX_PNG_CHUNKS`` chunks in the file or
    ``_MAX_BLOCKS`` besides the image data (``chunks`` were before it), and compressed
    metadata past the file's inflate ``budget``. A truncated or garbled tail ends the walk
    quietly: it is the decoders' business."""
    n = len(data)
    total = 0
    others = chunks
    in_idat = True
    unpack = _U32BE.unpack_from
    while pos + 12 <= n:
        chunks += 1
        if chunks > _MAX_PNG_CHUNKS:
            raise _bad("png", f"more than {_MAX_PNG_CHUNKS} chunks")
        length, ctype = unpack(data, pos)[0], data[pos + 4 : pos + 8]
        end = pos + 8 + length
        if ctype == b"IDAT" and in_idat:
            total += length
            if total > bound:
                raise _bad("png", f"the image data runs past {bound} bytes, more than the declared size can need")
        else:
            in_idat = False
            if ctype == b"IEND" or length > 0x7FFFFFFF or end + 4 > n:
                return
            if ctype != b"fdAT":
                others += 1
                if others > _MAX_BLOCKS:
                    raise _bad("png", f"more than {_MAX_BLOCKS} chunks besides the image data")
            if ctype in (b"iCCP", b"zTXt", b"iTXt"):
                _png_check_inflated(data, ctype, pos + 8, end, budget)
        pos = end + 4


def _png_check_inflated(data: bytes, ctype: bytes, start: int, end: int, budget: list[int]) -> None:
    """Refuse a compressed iCCP, zTXt or iTXt chunk that inflates past ``_MAX_PNG_METADATA``,
    or past what is left of the file's ``budget`` (``_MAX_PNG_METADATA_TOTAL``), inflating at
    most that much; a chunk too broken to read is left to the decoders."""
    pos = data.find(b"\x00", start, min(end, start + 80))  # keyword / profile name
    if pos < 0:
        return
    pos += 1
    if ctype == b"iTXt":
        if pos + 2 > end or data[pos] != 1:  # not compressed
            return
        pos += 2
        for _ in range(2):  # language tag, translated keyword
            pos = data.find(b"\x00", pos, end) + 1
            if pos <= 0:
                return
    else:
        pos += 1  # compression method
    most = min(_MAX_PNG_METADATA, budget[0])
    try:
        inflated = len(zlib.decompressobj().decompress(memoryview(data)[pos:end], most + 1))
    except zlib.error:
        return
    if inflated > _MAX_PNG_METADATA:
        raise _bad("png", f"{ctype.decode('latin-1')} chunk inflates to more than {_MAX_PNG_METADATA} bytes")
    if inflated > most:
        raise _bad("png", f"the compressed metadata inflates to more than {_MAX_PNG_METADATA_TOTAL} bytes")
    budget[0] -= inflated


def _probe_png(data: bytes, limits: Limits | None = None) -> ImageHeader:
    """Read IHDR, then walk the chunks up to the first IDAT (tRNS, pHYs, iCCP, eXIf, acTL,
    cICP), then the rest of the chunks (:func:`_png_walk_rest`); compressed metadata is inflated
    up to ``_MAX_PNG_METADATA`` bytes a chunk and ``_MAX_PNG_METADATA_TOTAL`` a file, and the
    IDAT run is measured. Chunk CRCs are not verified."""
    n = len(data)
    if n < 33:
        raise _bad("png", "truncated IHDR chunk")
    length, ctype = _U32BE.unpack_from(data, 8)[0], data[12:16]
    if ctype != b"IHDR" or length != 13:
        raise _bad("png", "the first chunk is not a 13-byte IHDR")
    width, height, depth, color, compression, filtering, interlace = struct.unpack_from(">IIBBBBB", data, 16)
    if width > 0x7FFFFFFF or height > 0x7FFFFFFF:
        raise _bad("png", f"dimensions {width}x{height} exceed 2^31-1")
    if depth not in _PNG_DEPTHS.get(color, ()):
        raise _bad("png", f"invalid bit depth {depth} for colour type {color}")
    if compression or filtering or interlace > 1:
        raise _bad("png", "unknown compression, filter or interlace method")
    _check_size(limits, ImageFormat.PNG, width, height)
    budget = [_MAX_PNG_METADATA_TOTAL]
    chunks = 1
    has_alpha = color in (4, 6)
    dpi: tuple[float, float] | None = None
    icc = False
    exif: bytes | None = None
    frames, loop = 1, None
    dynamic_range = "unknow"
    pos = 33
    for chunks in range(1, _MAX_BLOCKS + 1):  # noqa: B007 - the count goes on after the loop
        if pos + 8 > n:
            raise _bad("png", "truncated before the image data (no IDAT chunk)")
        length, ctype = _U32BE.unpack_from(data, pos)[0], data[pos + 4 : pos + 8]
        if ctype == b"IDAT":
            break
        if ctype == b"IEND":
            raise _bad("png", "no IDAT chunk before IEND")
        start, end = pos + 8, pos + 8 + length
        if length > 0x7FFFFFFF or end + 4 > n:
            raise _bad("png", f"chunk {ctype!r} at offset {pos} runs past the end")
        if ctype in (b"iCCP", b"zTXt", b"iTXt"):
            _png_check_inflated(data, ctype, start, end, budget)
        if ctype == b"tRNS":
            has_alpha = True
        elif ctype == b"pHYs" and length == 9 and data[start + 8] == 1:
            x, y = struct.unpack_from(">II", data, start)
            dpi = _dpi_pair(_ppm_to_dpi(x), _ppm_to_dpi(y))
        elif ctype == b"iCCP":
            icc = True
        elif ctype == b"eXIf" and exif is None:
            exif = bytes(data[start:end])
        elif ctype == b"acTL" and length == 8:
            num_frames, num_plays = struct.unpack_from(">II", data, start)
            if 0 < num_frames <= 0x7FFFFFFF:  # otherwise invalid APNG: the default image is shown
                frames, loop = num_frames, num_plays
                _check_size(limits, ImageFormat.PNG, width, height, frames)
        elif ctype == b"cICP" and length == 4:
            dynamic_range = _transfer_dynamic_range(data[start + 1])
        pos = end + 4
    else:
        raise _bad("png", f"more than {_MAX_BLOCKS} chunks before the image data")
    _png_walk_rest(data, pos, _png_idat_bound(width, height, depth, color, interlace), chunks, budget)
    return _header(
        ImageFormat.PNG,
        width,
        height,
        frames=frames,
        orientation=read_exif_orientation(exif) if exif is not None else 1,
        has_alpha=has_alpha,
        bit_depth=depth,
        color_space="gray" if color in (0, 4) else "srgb",
        progressive=interlace == 1,
        icc=icc,
        exif=exif is not None,
        dpi=dpi,
        loop=loop,
        dynamic_range=dynamic_range,
    )


def _transfer_dynamic_range(transfer: int) -> str:
    """``info.md`` section 1.1: PQ (16) / HLG (18) -> hdr; BT.709 (1) / sRGB (13) -> sdr."""
    if transfer in (16, 18):
        return "hdr"
    if transfer in (1, 13):
        return "sdr"
    return "unknow"


# -- GIF ----------------------------------------------------------------------------------------


def _probe_gif(data: bytes, limits: Limits | None = None) -> ImageHeader:
    """Read the logical screen, then walk the blocks counting the frames fully present.

    Data sub-blocks are skipped by their length bytes: runs of full (255-byte) sub-blocks many
    at a time, each other one in one step, capped at ``_MAX_GIF_BLOCKS`` a file; extension
    blocks and their sub-blocks are capped at ``_MAX_GIF_EXTENSION_BLOCKS``. A frame whose own
    rectangle is wider or taller than the logical screen is refused: decoders allocate the
    frame (Pillow) or clip it (libvips), so the screen would not bound what they allocate. A
    truncated file counts the frames that end before the cut; an unknown block ends the walk.
    At least one frame is required.
    """
    n = len(data)
    if n < 13:
        raise _bad("gif", "truncated logical screen descriptor")
    width, height = struct.unpack_from("<HH", data, 6)
    packed = data[10]
    pos = 13
    if packed & 0x80:
        pos += 3 << ((packed & 7) + 1)
    if pos >= n or data[pos] not in (0x21, 0x2C):  # text after the magic is no GIF, whatever it "declares"
        raise _bad("gif", "no complete frame")
    _check_size(limits, ImageFormat.GIF, width, height)
    stop = _frame_stop(limits, ImageFormat.GIF)
    frames = 0
    has_alpha = interlaced = False
    loop: int | None = None
    short = extensions = 0
    try:
        while frames < stop:
            block = data[pos]
            if block == 0x2C:  # image descriptor
                frame_width, frame_height = _U16LE.unpack_from(data, pos + 5)[0], _U16LE.unpack_from(data, pos + 7)[0]
                if frame_width > width or frame_height > height:
                    raise _bad(
                        "gif",
                        f"frame {frames + 1} is {frame_width}x{frame_height}, larger than the {width}x{height} screen",
                    )
                local = data[pos + 9]
                pos += 10
                if local & 0x80:
                    pos += 3 << ((local & 7) + 1)
                pos += 1  # LZW minimum code size
                size = data[pos]
                while size:
                    if size == 255:  # a run of full sub-blocks: their length bytes are 256 apart
                        lengths = data[pos : pos + (1 << 20) : 256]
                        pos += 256 * (len(lengths) - len(lengths.lstrip(b"\xff")))
                    else:
                        short += 1
                        if short > _MAX_GIF_BLOCKS:
                            raise _bad("gif", f"more than {_MAX_GIF_BLOCKS} short image data sub-blocks")
                        pos += size + 1
                    size = data[pos]
                pos += 1
                if frames == 0:
                    interlaced = bool(local & 0x40)
                frames += 1
            elif block == 0x21:  # extension
                label = data[pos + 1]
                pos += 2
                size = data[pos]
                if label == 0xF9 and size >= 4 and data[pos + 1] & 1:
                    has_alpha = True
                elif (
                    label == 0xFF
                    and size == 11
                    and (data.startswith(b"NETSCAPE2.0", pos + 1) or data.startswith(b"ANIMEXTS1.0", pos + 1))
                    and data[pos + 12] >= 3
                    and data[pos + 13] == 1
                ):
                    loop = data[pos + 14] | data[pos + 15] << 8
                extensions += 1
                while size and extensions <= _MAX_GIF_EXTENSION_BLOCKS:
                    pos += size + 1
                    size = data[pos]
                    extensions += 1
                if extensions > _MAX_GIF_EXTENSION_BLOCKS:
                    raise _bad("gif", f"more than {_MAX_GIF_EXTENSION_BLOCKS} extension blocks and sub-blocks")
                pos += 1
            else:  # 0x3B trailer, or a byte that is no block: the stream ends here
                break
    except (IndexError, struct.error):
        pass  # truncated: the frames counted are the complete ones
    if frames == 0:
        raise _bad("gif", "no complete frame")
    return _header(
        ImageFormat.GIF,
        width,
        height,
        frames=frames,
        has_alpha=has_alpha,
        progressive=interlaced,
        loop=loop,
    )


# -- WebP ---------------------------------------------------------------------------------------


def _probe_webp(data: bytes, limits: Limits | None = None) -> ImageHeader:
    """Read the first chunk (VP8, VP8L or VP8X); for VP8X walk the chunks for ANIM, ANMF
    (frame count) and EXIF (orientation). Every chunk is counted: more than ``_MAX_BLOCKS``
    besides the frames is refused, and so is a frame whose rectangle leaves the canvas
    (libwebp's demuxer refuses it too, after reading the whole file)."""
    n = len(data)
    riff_size = _U32LE.unpack_from(data, 4)[0]
    if riff_size < 4 + 8:
        raise _bad("webp", f"RIFF size {riff_size} is too small")
    end = min(n, 8 + riff_size)
    reader = _Reader(data, 12, end, "webp", big_endian=False)
    fourcc = reader.take(4, "first chunk header")
    size = reader.u32("first chunk header")
    start = reader.pos
    minimum = {b"VP8 ": 10, b"VP8L": 5, b"VP8X": 10}.get(fourcc)
    if minimum is None:
        raise _bad("webp", f"unknown first chunk {fourcc!r}")
    if size < minimum:
        raise _bad("webp", f"{fourcc.decode('latin-1')} chunk too small ({size} bytes)")
    reader.need(minimum, f"{fourcc.decode('latin-1')} chunk")
    if fourcc == b"VP8 ":
        tag = data[start] | data[start + 1] << 8 | data[start + 2] << 16
        if tag & 1 or data[start + 3 : start + 6] != b"\x9d\x01\x2a":
            raise _bad("webp", "VP8 data does not start with a key frame")
        width = _U16LE.unpack_from(data, start + 6)[0] & 0x3FFF
        height = _U16LE.unpack_from(data, start + 8)[0] & 0x3FFF
        _check_size(limits, ImageFormat.WEBP, width, height)
        return _header(ImageFormat.WEBP, width, height)
    if fourcc == b"VP8L":
        if data[start] != 0x2F:
            raise _bad("webp", "bad VP8L signature")
        bits = _U32LE.unpack_from(data, start + 1)[0]
        if bits >> 29:
            raise _bad("webp", f"unknown VP8L version {bits >> 29}")
        _check_size(limits, ImageFormat.WEBP, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        return _header(
            ImageFormat.WEBP, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, has_alpha=bool(bits >> 28 & 1)
        )
    flags = data[start]
    width = (data[start + 4] | data[start + 5] << 8 | data[start + 6] << 16) + 1
    height = (data[start + 7] | data[start + 8] << 8 | data[start + 9] << 16) + 1
    _check_size(limits, ImageFormat.WEBP, width, height)
    animated = bool(flags & 0x02)
    frames, loop = 0, None
    exif: bytes | None = None
    unpack = _U32LE.unpack_from
    pos = start + size + (size & 1)
    stop = _frame_stop(limits, ImageFormat.WEBP)
    others = 0
    while pos + 8 <= end and frames < stop:  # the complete chunks after VP8X, one step each
        c_start = pos + 8
        c_end = c_start + unpack(data, pos + 4)[0]
        if c_end > end:
            break
        if data.startswith(b"ANMF", pos):
            if c_end - c_start < 24:  # 16-byte frame header + a bitstream chunk header
                raise _bad("webp", f"ANMF chunk at offset {pos} is too small")
            x, y = 2 * (unpack(data, c_start)[0] & 0xFFFFFF), 2 * (unpack(data, c_start + 3)[0] & 0xFFFFFF)
            frame_width = (unpack(data, c_start + 6)[0] & 0xFFFFFF) + 1
            frame_height = (unpack(data, c_start + 9)[0] & 0xFFFFFF) + 1
            if x + frame_width > width or y + frame_height > height:
                raise _bad(
                    "webp",
                    f"frame {frames + 1} ({frame_width}x{frame_height} at {x},{y}) leaves the {width}x{height} canvas",
                )
            frames += 1
        else:
            others += 1
            if others > _MAX_BLOCKS:
                raise _bad("webp", f"more than {_MAX_BLOCKS} chunks besides the frames")
        if data.startswith(b"ANIM", pos) and c_end - c_start >= 6:
            loop = _U16LE.unpack_from(data, c_start + 4)[0]
        elif data.startswith(b"EXIF", pos) and exif is None:
            exif = bytes(data[c_start:c_end])
        pos = c_end + ((c_end - c_start) & 1)
    if animated and frames == 0:
        raise _bad("webp", "animated file without a complete frame")
    return _header(
        ImageFormat.WEBP,
        width,
        height,
        frames=frames if animated else 1,
        orientation=read_exif_orientation(exif) if exif is not None else 1,
        has_alpha=bool(flags & 0x10),
        icc=bool(flags & 0x20),
        exif=bool(flags & 0x08) or exif is not None,
        loop=loop if animated else None,
    )


# -- BMP ----------------------------------------------------------------------------------------


def _probe_bmp(data: bytes, limits: Limits | None = None) -> ImageHeader:
    """Read the DIB header: OS/2 core (12 bytes), OS/2 2.x (16/64), BITMAPINFOHEADER (40) and
    its V2..V5 extensions (52, 56, 108, 124).

    Alpha is reported only for 32-bit images whose header carries a non-zero alpha mask with
    BI_BITFIELDS/BI_ALPHABITFIELDS compression (V3+ headers, or a 40-byte header followed by
    four masks): a plain 32-bit BI_RGB file's fourth byte is padding to most readers.
    """
    dib = _U32LE.unpack_from(data, 14)[0]
    if len(data) < 14 + min(dib, 40):
        raise _bad("bmp", f"truncated {dib}-byte DIB header")
    ppm = (0, 0)
    compression = 0
    if dib == 12:
        width, height, _, bits = struct.unpack_from("<HHHH", data, 18)
    else:
        width, height, _, bits = struct.unpack_from("<iiHH", data, 18)
        if dib >= 20:
            compression = _U32LE.unpack_from(data, 30)[0]
        if dib >= 40:
            ppm = struct.unpack_from("<ii", data, 38)
    if bits not in (1, 2, 4, 8, 16, 24, 32, 64):
        raise _bad("bmp", f"invalid bit count {bits}")
    has_alpha = False
    if bits == 32 and ((dib >= 56 and compression in (3, 6)) or (dib == 40 and compression == 6)):
        has_alpha = len(data) >= 70 and _U32LE.unpack_from(data, 66)[0] != 0
    return _header(
        ImageFormat.BMP,
        width,
        abs(height),
        has_alpha=has_alpha,
        bit_depth=bits if bits <= 8 else 16 if bits == 64 else 8,
        dpi=_dpi_pair(_ppm_to_dpi(ppm[0]), _ppm_to_dpi(ppm[1])) if min(ppm) > 0 else None,
    )


# -- TIFF ---------------------------------------------------------------------------------------

_TIFF_WANTED = frozenset(
    {
        _TAG_WIDTH,
        _TAG_HEIGHT,
        _TAG_BITS,
        _TAG_PHOTOMETRIC,
        _TAG_ORIENTATION,
        _TAG_SAMPLES,
        _TAG_XRES,
        _TAG_YRES,
        _TAG_RES_UNIT,
        _TAG_EXTRA_SAMPLES,
        _TAG_EXIF_IFD,
        _TAG_ICC,
        _TAG_TILE_WIDTH,
        _TAG_TILE_LENGTH,
    }
)

_MAX_TIFF_TILE_SLACK = 1_024
"""A TIFF tile may be as large as its image (rounded up to 16, as tile sizes are) or this
many pixels a side, not more: libtiff decodes whole tiles, so a 16 x 16 TIFF of one
16,384 x 16,384 tile cost Pillow 0.8-1.2 s and 256 MB for 256 pixels."""


def _probe_tiff(data: bytes, limits: Limits | None = None) -> ImageHeader:
    """Read the first directory, then follow the directory chain to count the pages (a loop
    or a pointer past the end ends the count; more than ``_MAX_TIFF_IFDS`` is refused).

    A directory of more than ``_MAX_TIFF_ENTRIES`` entries, of more than
    ``_MAX_TIFF_SAMPLES`` samples per pixel, or of tiles larger than the image needs (see
    ``_MAX_TIFF_TILE_SLACK``) is refused; with ``limits``, so is an image whose
    samples x bits would decode to more than ``_MAX_DECODED_BYTES_PER_PIXEL`` bytes a pixel at
    the pixel limit."""
    tiff = _Tiff(data, "tiff")
    if tiff.first_ifd == 0:
        raise _bad("tiff", "no image directory")
    values = tiff.read_ifd(tiff.first_ifd, _TIFF_WANTED)
    width = _first_int(values, _TAG_WIDTH, 0)
    height = _first_int(values, _TAG_HEIGHT, 0)
    samples = _first_int(values, _TAG_SAMPLES, 1)
    _check_size(limits, ImageFormat.TIFF, width, height)
    if not 1 <= samples <= _MAX_TIFF_SAMPLES:
        raise _bad("tiff", f"{samples} samples per pixel (at most {_MAX_TIFF_SAMPLES} can be decoded)")
    bits = max((int(b) for b in values.get(_TAG_BITS, (1,)) if isinstance(b, int)), default=1)
    if not 1 <= bits <= 64:
        raise _bad("tiff", f"{bits} bits per sample")
    tile = _first_int(values, _TAG_TILE_WIDTH, 0), _first_int(values, _TAG_TILE_LENGTH, 0)
    for side, size in zip(tile, (width, height)):
        if side > max(-(-size // 16) * 16, _MAX_TIFF_TILE_SLACK):
            raise _bad("tiff", f"tiles of {tile[0]}x{tile[1]} for a {width}x{height} image")
    if limits is not None and width > 0 and height > 0:
        decoded = width * height * samples * ((bits + 7) // 8)
        if decoded > limits.max_input_pixels * _MAX_DECODED_BYTES_PER_PIXEL:
            raise ImageResolutionExceedError(
                f"input: {width}x{height} x {samples} samples of {bits} bits decodes to {decoded} bytes, "
                f"more than the {_MAX_DECODED_BYTES_PER_PIXEL} bytes a pixel the limit of "
                f"{limits.max_input_pixels} pixels allows",
                kind="input_pixels",
                limit=limits.max_input_pixels,
                actual=decoded // _MAX_DECODED_BYTES_PER_PIXEL,
            )
    extra = values.get(_TAG_EXTRA_SAMPLES, ())
    photometric = _first_int(values, _TAG_PHOTOMETRIC, 2 if samples >= 3 else 1)
    if photometric in (0, 1):
        color_space = "gray"
    elif photometric in (2, 3, 6):
        color_space = "srgb"
    elif photometric == 5 and samples - len(extra) == 4:
        color_space = "cmyk"
    else:
        color_space = "other"
    frames, seen = 1, {tiff.first_ifd}
    offset = _tiff_next(tiff, tiff.first_ifd)
    stop = _frame_stop(limits, ImageFormat.TIFF) if limits is not None else _MAX_TIFF_IFDS + 1
    while offset > 0 and offset not in seen and frames < stop:
        seen.add(offset)
        following = _tiff_next(tiff, offset)
        if following < 0:
            break
        frames += 1
        if frames > _MAX_TIFF_IFDS:
            raise _bad("tiff", f"more than {_MAX_TIFF_IFDS} directories")
        offset = following
    return _header(
        ImageFormat.TIFF,
        width,
        height,
        frames=frames,
        orientation=_first_int(values, _TAG_ORIENTATION, 1),
        has_alpha=any(value in (1, 2) for value in extra),
        bit_depth=_first_int(values, _TAG_BITS, 1),
        color_space=color_space,
        icc=_TAG_ICC in values,
        exif=_TAG_EXIF_IFD in values,
        dpi=_resolution(values),
    )


def _tiff_next(tiff: _Tiff, offset: int) -> int:
    """The next directory's offset, or -1 when the directory at ``offset`` is incomplete."""
    try:
        return tiff.next_ifd(offset)
    except InvalidImageFormatError:
        return -1


# -- HEIF / AVIF ----------------------------------------------------------------------------------

_ALPHA_AUX_TYPES = frozenset({b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha", b"urn:mpeg:hevc:2015:auxid:1"})
_GAIN_MAP_AUX_TYPES = frozenset({b"urn:com:apple:photo:2020:aux:hdrgainmap"})
_MAX_ITEMS = 10_000
"""Cap on items and associations read from ``iinf``/``ipma`` (real files have a few hundred)."""

_MAX_HEIF_BOXES = 2 * _MAX_BLOCKS
"""Most boxes walked in one HEIF/AVIF file, all containers together (a grid of 10,000 tiles
has 10,000 ``infe`` boxes): the per-container cap alone let 400 ``iinf`` boxes of 10,000
children each cost seconds."""

_MAX_HEIF_ENTRIES = 100_000
"""Most entries read from ``ipma`` (items and their associations), ``iref`` (references) and
``iloc`` (items and extents) in one file, all boxes together. A grid of 10,000 tiles needs
about 60,000; the per-box cap alone let a file repeat ``ipma`` boxes to 16 million
associations (19 s, 700 MB)."""

_HEIF_SINGLE_BOXES = frozenset({b"hdlr", b"pitm", b"iinf", b"iloc", b"iref", b"iprp", b"idat"})
"""Boxes a ``meta`` holds at most once: two primary items (``pitm``), or two of any of these,
are ambiguous (decoders pick the first, the probe would pick another), and refused."""


class _HeifWalk:
    """The per-file budgets of a HEIF/AVIF probe."""

    __slots__ = ("boxes", "entries", "fmt")

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.boxes = _MAX_HEIF_BOXES
        self.entries = _MAX_HEIF_ENTRIES

    def spend(self, count: int, what: str) -> None:
        self.entries -= count
        if self.entries < 0:
            raise _bad(self.fmt, f"more than {_MAX_HEIF_ENTRIES} {what} entries in the file")


def _boxes(
    data: bytes, pos: int, end: int, fmt: str, walk: _HeifWalk | None = None
) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of the ISOBMFF boxes in ``data[pos:end]``.

    Size 0 means "to the end of the parent", size 1 a 64-bit ``largesize``; a box that is
    shorter than its header or runs past its parent raises ``InvalidImageFormatError``, and so
    does a container of more than ``_MAX_BLOCKS`` boxes, or a file of more than
    ``_MAX_HEIF_BOXES`` (counted in ``walk``).
    """
    count = 0
    while pos < end:
        count += 1
        if count > _MAX_BLOCKS:
            raise _bad(fmt, f"more than {_MAX_BLOCKS} boxes in one container")
        if walk is not None:
            walk.boxes -= 1
            if walk.boxes < 0:
                raise _bad(fmt, f"more than {_MAX_HEIF_BOXES} boxes in the file")
        if pos + 8 > end:
            raise _bad(fmt, f"truncated box header at offset {pos}")
        size = _U32BE.unpack_from(data, pos)[0]
        box_type = bytes(data[pos + 4 : pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise _bad(fmt, f"truncated largesize of box {box_type!r}")
            size = _U64BE.unpack_from(data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if box_type == b"uuid":
            header += 16
        if size < header or pos + size > end:
            raise _bad(fmt, f"box {box_type!r} at offset {pos} has a bad size {size}")
        yield box_type, pos + header, pos + size
        pos += size


class _HeifItems:
    """What ``meta`` says about the items: types, properties, references and locations."""

    def __init__(self, walk: _HeifWalk) -> None:
        self.walk = walk
        self.primary: int | None = None
        self.handler: bytes | None = None
        self.types: dict[int, bytes] = {}
        self.properties: list[tuple[bytes, int, int]] = []  # ipco children, index 1-based
        self.associations: dict[int, list[int]] = {}  # item id -> property indexes
        self.references: list[tuple[bytes, int, list[int]]] = []  # (type, from, to)
        self.iloc: tuple[int, int] | None = None  # payload of the iloc box
        self.idat: tuple[int, int] | None = None  # payload of the idat box

    def item_properties(self, item: int) -> list[tuple[bytes, int, int]]:
        return [self.properties[i - 1] for i in self.associations.get(item, ()) if 0 < i <= len(self.properties)]

    def referenced(self, ref_type: bytes, source: int) -> list[int]:
        return [to for kind, frm, tos in self.references if kind == ref_type and frm == source for to in tos]

    def size(self, data: bytes, item: int) -> tuple[int, int] | None:
        """The item's ``ispe`` (the size its decoder allocates), None when it has none."""
        ispe = next(((s, e) for t, s, e in self.item_properties(item) if t == b"ispe"), None)
        if ispe is None or ispe[1] - ispe[0] < 12:
            return None
        width, height = struct.unpack_from(">II", data, ispe[0] + 4)
        return int(width), int(height)


def _probe_heif(data: bytes, limits: Limits | None = None) -> ImageHeader:
    """Walk the top-level boxes; from ``meta`` read hdlr, pitm, iinf, iref, iloc and iprp
    (ipco/ipma) to find the primary item's ``ispe`` (size), ``pixi``/``av1C``/``hvcC`` (bit
    depth, monochrome), ``colr`` (ICC, CICP transfer) and auxiliary alpha / gain-map images.

    The size reported is the one decoders deliver: ``clap`` (clean aperture, which encoders add
    when they pad odd sizes) crops it and ``irot`` by 90/270 degrees swaps it, in association
    order, since libheif applies both. The limits (when given) are checked on what decoders
    allocate before that: the ``ispe`` size, a grid's output size and its tiles (which must
    agree: see :func:`_heif_check_grid`) and the primary image's alpha plane.
    An ``avis`` sequence reports the sample count of its picture track.

    Boxes and entries are counted per file (``_MAX_HEIF_BOXES``, ``_MAX_HEIF_ENTRIES``), and
    an ambiguous file is refused: two ``meta`` boxes, two of a box ``meta`` holds once (two
    ``pitm``: two primary items), an item declared twice, or an item in two ``ipma`` entries.

    The EXIF orientation of a HEIF is not reported: decoders (libheif) apply ``irot``/``imir``
    and the EXIF tag must then be ignored, so orientation is always 1.
    """
    fmt = sniff(data).value
    image_format = ImageFormat(fmt)
    n = len(data)
    walk = _HeifWalk(fmt)
    meta: tuple[int, int] | None = None
    moov: tuple[int, int] | None = None
    for box_type, start, end in _boxes(data, 0, n, fmt, walk):
        if box_type == b"meta":
            if meta is not None:
                raise _bad(fmt, "two meta boxes at the top level")
            meta = (start, end)
        elif box_type == b"moov" and moov is None:
            moov = (start, end)
    if meta is None:
        raise _bad(fmt, "no meta box")
    items = _heif_meta(data, meta[0], meta[1], fmt, walk)
    if items.handler != b"pict":
        raise _bad(fmt, f"meta handler is {items.handler!r}, not 'pict'")
    if items.primary is None:
        raise _bad(fmt, "no primary item (pitm)")
    primary = items.primary
    props = items.item_properties(primary)
    size = items.size(data, primary)
    if size is None:
        raise _bad(fmt, "the primary item has no image size (ispe)")
    width, height = size
    _check_size(limits, image_format, width, height)  # what is decoded, before clap crops it
    tiles = items.referenced(b"dimg", primary)
    if items.types.get(primary) == b"grid":
        _heif_check_grid(data, items, primary, tiles, size, limits)
    for prop_type, s, e in props:  # transformative properties, in association order
        if prop_type == b"clap" and e - s >= 16:
            width_n, width_d, height_n, height_d = struct.unpack_from(">IIII", data, s)
            if width_d and height_d:
                width, height = (2 * width_n + width_d) // (2 * width_d), (2 * height_n + height_d) // (2 * height_d)
        elif prop_type == b"irot" and e > s and data[s] & 1:
            width, height = height, width
    detail = _heif_image_detail(data, props)
    if detail[0] is None and tiles:
        tile_detail = _heif_image_detail(data, items.item_properties(tiles[0]))
        detail = (tile_detail[0], tile_detail[1], detail[2] or tile_detail[2], detail[3] or tile_detail[3])
    bit_depth, gray, icc, transfer = detail
    has_alpha = gain_map = False
    auxl = [(source, targets) for kind, source, targets in items.references if kind == b"auxl"]
    auxiliaries = {source for source, targets in auxl if primary in targets}
    for item in items.types:
        for prop_type, s, e in items.item_properties(item):
            if prop_type != b"auxC" or e - s < 5:
                continue
            nul = data.find(b"\x00", s + 4, e)
            aux_type = bytes(data[s + 4 : nul if nul >= 0 else e])
            is_aux_of_primary = item in auxiliaries or not auxl
            if aux_type in _ALPHA_AUX_TYPES and is_aux_of_primary:
                has_alpha = True
                alpha = items.size(data, item)
                if alpha is not None:  # decoded with the primary image
                    _check_size(limits, image_format, *alpha)
            elif aux_type in _GAIN_MAP_AUX_TYPES:
                gain_map = True
    if b"tmap" in items.types.values():
        gain_map = True
    frames = 1
    if moov is not None and fmt == "avif":
        frames = max(1, _isobmff_sample_count(data, moov[0], moov[1], fmt, walk))
    if gain_map:
        dynamic_range = "gainmap hdr"
    else:
        dynamic_range = _transfer_dynamic_range(transfer) if transfer is not None else "unknow"
    return _header(
        image_format,
        width,
        height,
        frames=frames,
        has_alpha=has_alpha,
        bit_depth=bit_depth or 8,
        color_space="gray" if gray else "srgb",
        icc=icc,
        exif=b"Exif" in items.types.values(),
        dynamic_range=dynamic_range,
    )


def _heif_check_grid(
    data: bytes, items: _HeifItems, grid: int, tiles: list[int], size: tuple[int, int], limits: Limits | None
) -> None:
    """A grid item is decoded by allocating its output size (the descriptor's) and decoding
    every tile at its own ``ispe`` size: refuse a descriptor that cannot be read or disagrees
    with the grid's ``ispe``, a tile count other than rows x columns, tiles of different
    sizes, and tiles that do not tile the output (more than one partial row or column), so
    that what is decoded is bounded by the size checked; with ``limits``, check the tile."""
    fmt = items.walk.fmt
    descriptor = _heif_item_data(data, items, grid, 12)
    if descriptor is None or len(descriptor) < 8:
        raise _bad(fmt, f"cannot read the descriptor of grid item {grid}")
    rows, columns = descriptor[2] + 1, descriptor[3] + 1
    if descriptor[1] & 1:
        if len(descriptor) < 12:
            raise _bad(fmt, f"truncated descriptor of grid item {grid}")
        output = struct.unpack_from(">II", descriptor, 4)
    else:
        output = struct.unpack_from(">HH", descriptor, 4)
    if tuple(output) != size:
        raise _bad(
            fmt, f"grid item {grid} is {output[0]}x{output[1]} by its descriptor, {size[0]}x{size[1]} by its ispe"
        )
    if len(tiles) != rows * columns:
        raise _bad(fmt, f"grid item {grid} has {len(tiles)} tiles, not {rows} x {columns}")
    tile_size = items.size(data, tiles[0])
    if tile_size is None or any(items.size(data, tile) != tile_size for tile in set(tiles)):
        raise _bad(fmt, f"the tiles of grid item {grid} are not all of one size")
    tile_width, tile_height = tile_size
    if not (columns - 1) * tile_width < size[0] <= columns * tile_width or not (
        (rows - 1) * tile_height < size[1] <= rows * tile_height
    ):
        raise _bad(
            fmt, f"{rows} x {columns} tiles of {tile_width}x{tile_height} do not tile the {size[0]}x{size[1]} grid"
        )
    _check_size(limits, ImageFormat(fmt), tile_width, tile_height)


def _heif_item_data(data: bytes, items: _HeifItems, item: int, most: int) -> bytes | None:
    """The first ``most`` bytes of an item's first extent (``iloc``: in the file, or in
    ``idat``), None when the item has no location that can be read."""
    if items.iloc is None:
        return None
    fmt = items.walk.fmt
    reader = _Reader(data, items.iloc[0], items.iloc[1], fmt)
    version = reader.u8("iloc box")
    reader.skip(3, "iloc box")
    sizes = reader.u8("iloc box")
    offset_size, length_size = sizes >> 4, sizes & 0x0F
    sizes = reader.u8("iloc box")
    base_size, index_size = sizes >> 4, (sizes & 0x0F) if version in (1, 2) else 0
    if any(size not in (0, 4, 8) for size in (offset_size, length_size, base_size, index_size)):
        raise _bad(fmt, "iloc box with a field size other than 0, 4 or 8")

    def number(size: int) -> int:
        return 0 if size == 0 else reader.u32("iloc entry") if size == 4 else reader.u64("iloc entry")

    count = reader.u16("iloc box") if version < 2 else reader.u32("iloc box")
    items.walk.spend(count, "iloc")
    for _ in range(count):
        item_id = reader.u16("iloc entry") if version < 2 else reader.u32("iloc entry")
        method = reader.u16("iloc entry") & 0x0F if version in (1, 2) else 0
        reader.skip(2, "iloc entry")  # data reference index
        base = number(base_size)
        extents = reader.u16("iloc entry")
        items.walk.spend(extents, "iloc")
        first: tuple[int, int] | None = None
        for _ in range(extents):
            number(index_size)
            offset, length = number(offset_size), number(length_size)
            if first is None:
                first = (offset, length)
        if item_id != item:
            continue
        if first is None or method not in (0, 1):
            return None
        start = base + first[0]
        if method == 1:
            if items.idat is None:
                return None
            start += items.idat[0]
            limit = items.idat[1]
        else:
            limit = len(data)
        end = min(limit, start + (first[1] or limit), start + most)
        return bytes(data[start:end]) if start < end else None
    return None


def _heif_meta(data: bytes, start: int, end: int, fmt: str, walk: _HeifWalk) -> _HeifItems:
    items = _HeifItems(walk)
    seen: set[bytes] = set()
    for box_type, s, e in _boxes(data, start + 4, end, fmt, walk):  # meta is a full box
        if box_type in _HEIF_SINGLE_BOXES:
            if box_type in seen:
                what = "two primary items" if box_type == b"pitm" else "two of them"
                raise _bad(fmt, f"meta holds two {box_type.decode('latin-1')} boxes ({what}): ambiguous")
            seen.add(box_type)
        if box_type not in _HEIF_SINGLE_BOXES:
            continue
        reader = _Reader(data, s, e, fmt)
        if box_type == b"hdlr":
            reader.skip(8, "hdlr box")
            items.handler = reader.take(4, "hdlr box")
        elif box_type == b"pitm":
            version = reader.u8("pitm box")
            reader.skip(3, "pitm box")
            items.primary = reader.u16("pitm box") if version == 0 else reader.u32("pitm box")
        elif box_type == b"iloc":
            items.iloc = (s, e)
        elif box_type == b"idat":
            items.idat = (s, e)
        elif box_type == b"iinf":
            version = reader.u8("iinf box")
            reader.skip(3, "iinf box")
            reader.skip(2 if version == 0 else 4, "iinf box")
            for child, cs, ce in _boxes(data, reader.pos, e, fmt, walk):
                if child == b"infe" and len(items.types) < _MAX_ITEMS:
                    _heif_infe(data, cs, ce, fmt, items)
        elif box_type == b"iref":
            version = reader.u8("iref box")
            reader.skip(3, "iref box")
            for ref_type, ref_start, ref_end in _boxes(data, reader.pos, e, fmt, walk):
                ref = _Reader(data, ref_start, ref_end, fmt)
                source = ref.u16("reference") if version == 0 else ref.u32("reference")
                count = ref.u16("reference")
                ref.need(count * (2 if version == 0 else 4), "reference list")
                walk.spend(count + 1, "iref")
                targets = list(
                    struct.unpack_from(f">{count}{'H' if version == 0 else 'I'}", data, ref.pos) if count else ()
                )
                items.references.append((ref_type, source, targets))
        elif box_type == b"iprp":
            for child, cs, ce in _boxes(data, s, e, fmt, walk):
                if child == b"ipco":
                    if items.properties:
                        raise _bad(fmt, "iprp holds two ipco boxes: ambiguous")
                    items.properties = list(_boxes(data, cs, ce, fmt, walk))
                elif child == b"ipma":
                    _heif_ipma(data, cs, ce, fmt, items)
    return items


def _heif_infe(data: bytes, start: int, end: int, fmt: str, items: _HeifItems) -> None:
    # Direct reads rather than a _Reader: a file may hold thousands of these.
    if end - start < 4:
        raise _bad(fmt, f"truncated infe box at offset {start}")
    version = data[start]
    if version < 2:
        return  # version 0/1 entries carry no item type
    id_size = 2 if version == 2 else 4
    if end - start < 10 + id_size:
        raise _bad(fmt, f"truncated infe box at offset {start}")
    item_id = (_U16BE if version == 2 else _U32BE).unpack_from(data, start + 4)[0]
    if item_id in items.types:
        raise _bad(fmt, f"item {item_id} is declared twice: ambiguous")
    items.types[item_id] = bytes(data[start + 6 + id_size : start + 10 + id_size])


def _heif_ipma(data: bytes, start: int, end: int, fmt: str, items: _HeifItems) -> None:
    reader = _Reader(data, start, end, fmt)
    version = reader.u8("ipma box")
    flags = reader.u8() << 16 | reader.u16("ipma box")
    count = reader.u32("ipma box")
    if count > reader.remaining // 3 or count > _MAX_ITEMS:
        raise _bad(fmt, f"ipma declares {count} entries, past the end")
    items.walk.spend(count, "ipma")
    wide = flags & 1
    for _ in range(count):
        item_id = reader.u16("ipma entry") if version < 1 else reader.u32("ipma entry")
        associations = reader.u8("ipma entry")
        if item_id in items.associations:
            raise _bad(fmt, f"item {item_id} has two ipma entries: ambiguous")
        items.walk.spend(associations, "ipma")
        reader.need(associations * (2 if wide else 1), "ipma entry")
        if wide:
            raw = struct.unpack_from(f">{associations}H", data, reader.pos)
            items.associations[item_id] = [index & 0x7FFF for index in raw]
            reader.pos += 2 * associations
        else:
            items.associations[item_id] = [index & 0x7F for index in data[reader.pos : reader.pos + associations]]
            reader.pos += associations


def _heif_image_detail(data: bytes, props: list[tuple[bytes, int, int]]) -> tuple[int | None, bool, bool, int | None]:
    """(bit depth, monochrome, ICC profile, CICP transfer) from an item's properties."""
    depth: int | None = None
    gray = icc = False
    transfer: int | None = None
    for prop_type, s, e in props:
        if prop_type == b"pixi" and e - s >= 6 and depth is None:
            channels = data[s + 4]
            if channels:
                depth, gray = data[s + 5], channels == 1
        elif prop_type == b"av1C" and e - s >= 3 and depth is None:
            flags = data[s + 2]
            depth = (12 if flags & 0x20 else 10) if flags & 0x40 else 8
            gray = bool(flags & 0x10)
        elif prop_type == b"hvcC" and e - s >= 19 and depth is None:
            depth = (data[s + 17] & 0x07) + 8
            gray = data[s + 16] & 0x03 == 0
        elif prop_type == b"colr" and e - s >= 4:
            kind = data[s : s + 4]
            if kind in (b"prof", b"rICC"):
                icc = True
            elif kind == b"nclx" and e - s >= 8 and transfer is None:
                transfer = _U16BE.unpack_from(data, s + 6)[0]
    return depth, gray, icc, transfer


def _isobmff_sample_count(data: bytes, start: int, end: int, fmt: str, walk: _HeifWalk) -> int:
    """Samples in the first picture track (``moov/trak/mdia/minf/stbl/stsz``), 0 if none."""
    for trak_type, ts, te in _boxes(data, start, end, fmt, walk):
        if trak_type != b"trak":
            continue
        for mdia_type, ms, me in _boxes(data, ts, te, fmt, walk):
            if mdia_type != b"mdia":
                continue
            handler: bytes | None = None
            count = 0
            for box_type, s, e in _boxes(data, ms, me, fmt, walk):
                if box_type == b"hdlr" and e - s >= 12:
                    handler = bytes(data[s + 8 : s + 12])
                elif box_type == b"minf":
                    count = _stbl_sample_count(data, s, e, fmt, walk)
            if handler == b"pict":
                return count
    return 0


def _stbl_sample_count(data: bytes, start: int, end: int, fmt: str, walk: _HeifWalk) -> int:
    for box_type, s, e in _boxes(data, start, end, fmt, walk):
        if box_type != b"stbl":
            continue
        for child, cs, ce in _boxes(data, s, e, fmt, walk):
            if child in (b"stsz", b"stz2") and ce - cs >= 12:
                return int(_U32BE.unpack_from(data, cs + 8)[0])
    return 0


_PROBES: dict[ImageFormat, Callable[[bytes, Limits | None], ImageHeader]] = {
    ImageFormat.JPEG: _probe_jpeg,
    ImageFormat.PNG: _probe_png,
    ImageFormat.GIF: _probe_gif,
    ImageFormat.WEBP: _probe_webp,
    ImageFormat.BMP: _probe_bmp,
    ImageFormat.HEIF: _probe_heif,
    ImageFormat.AVIF: _probe_heif,
    ImageFormat.TIFF: _probe_tiff,
}
