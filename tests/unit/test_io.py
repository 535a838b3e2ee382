"""ci_engine.io: sniffing and header probing.

Fixtures are made here, with Pillow (and pillow_heif / pyvips where they are the only
encoder), and every field of the resulting ImageHeader is asserted. Bombs and malformed
headers are built byte by byte. Whatever the input, ``probe`` returns an ImageHeader or raises
InvalidImageFormatError: truncations at every 10 % and random byte flips check that.
"""

from __future__ import annotations

import functools
import io
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageCms, TiffImagePlugin, features

from ci_engine.errors import InvalidImageFormatError
from ci_engine.io import estimate_jpeg_quality, probe, read_exif_orientation, sniff
from ci_engine.types import ImageFormat, ImageHeader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "bombs"))
from make_bombs import box, full_box, ispe  # the ISO-BMFF box writers

F = ImageFormat
SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"


# -- encoders -------------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


def gradient(size: tuple[int, int] = (40, 30), mode: str = "RGB") -> Image.Image:
    """A small image with distinct pixels (so encoders keep every frame)."""
    base = Image.linear_gradient("L").resize(size)
    rgb = Image.merge("RGB", (base, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT), base.rotate(90)))
    if mode == "RGBA":
        rgba = rgb.convert("RGBA")
        rgba.putalpha(base)
        return rgba
    return rgb.convert(mode)


def frames(count: int, size: tuple[int, int] = (24, 20)) -> list[Image.Image]:
    return [Image.new("RGB", size, (40 * i, 255 - 40 * i, 90)) for i in range(count)]


def exif_with(**tags: object) -> Image.Exif:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[int(tag.removeprefix("t"))] = value
    return exif


def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def heif_encoder(fmt: str) -> Callable[..., bytes] | None:
    """An encoder for ``AVIF`` (Pillow's own, else pillow_heif) or ``HEIF`` (pillow_heif),
    or None when none works here: those fixtures are then left out."""
    if not (fmt == "AVIF" and features.check("avif")):
        try:
            import pillow_heif
        except ImportError:  # pragma: no cover - the project depends on it
            return None
        pillow_heif.register_heif_opener()
    try:
        encode(Image.new("RGB", (2, 2)), fmt)
    except Exception:  # pragma: no cover - an encoder is missing from this build
        return None
    return lambda im, **kw: encode(im, fmt, **kw)


# -- byte-level builders -------------------------------------------------------------------------


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bytes(
    width: int, height: int, *, depth: int = 8, color: int = 2, interlace: int = 0, chunks: tuple[bytes, ...] = ()
) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + b"".join(chunks)
        + png_chunk(b"IDAT", zlib.compress(b"\0"))
        + png_chunk(b"IEND", b"")
    )


def jpeg_bytes(width: int, height: int, *, components: int = 3, marker: int = 0xC0, segments: bytes = b"") -> bytes:
    """SOI, ``segments``, an all-ones DQT (quality 100), SOFn, SOS, a little data, EOI."""
    dqt = jpeg_segment(0xDB, b"\x00" + bytes([1] * 64))
    frame = struct.pack(">BHHB", 8, height, width, components)
    sof = jpeg_segment(marker, frame + b"".join(bytes((i + 1, 0x11, 0)) for i in range(components)))
    sos = jpeg_segment(0xDA, bytes((1, 1, 0, 0, 63, 0)))
    return b"\xff\xd8" + segments + dqt + sof + sos + b"\x00" * 8 + b"\xff\xd9"


def jpeg_segment(code: int, payload: bytes) -> bytes:
    return bytes((0xFF, code)) + struct.pack(">H", len(payload) + 2) + payload


GIF_FRAME_1X1 = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"
"""An image descriptor for a 1x1 frame with its LZW data (one 2-byte sub-block)."""


def gif_bytes(width: int, height: int, frame_count: int, *, loop: int | None = 0, trailer: bool = True) -> bytes:
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    if loop is not None:
        head += b"\x21\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", loop) + b"\x00"
    return head + GIF_FRAME_1X1 * frame_count + (b"\x3b" if trailer else b"")


def riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(kind + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1) for kind, data in chunks)
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def vp8x(width: int, height: int, flags: int = 0) -> tuple[bytes, bytes]:
    w, h = width - 1, height - 1
    return b"VP8X", bytes((flags, 0, 0, 0)) + w.to_bytes(3, "little") + h.to_bytes(3, "little")


def bmp_bytes(width: int, height: int, bits: int, *, dib: int = 40, compression: int = 0, masks: bytes = b"") -> bytes:
    if dib == 12:
        header = struct.pack("<IHHHH", 12, width, height, 1, bits)
    else:
        header = struct.pack("<IiiHHIIiiII", dib, width, height, 1, bits, compression, 0, 2835, 2835, 0, 0)
        header += masks
        header = header.ljust(dib if dib > 40 else len(header), b"\x00")
    offset = 14 + len(header)
    return b"BM" + struct.pack("<IHHI", offset + 16, 0, 0, offset) + header + b"\x00" * 16


def heif_bytes(
    width: int,
    height: int,
    *,
    brands: tuple[bytes, ...] = (b"heic", b"mif1", b"heic"),
    primary_props: tuple[bytes, ...] = (),
    items: tuple[tuple[int, bytes, tuple[bytes, ...]], ...] = (),
    refs: tuple[tuple[bytes, int, int], ...] = (),
    tail: bytes = b"",
) -> bytes:
    """ftyp + meta (hdlr, pitm=1, iinf, iref, iprp) + mdat; item 1 is the primary image.

    ``items`` adds (id, type, properties); ``refs`` adds (type, from, to) references.
    """
    all_items = ((1, b"hvc1", (ispe(width, height), *primary_props)), *items)
    props: list[bytes] = []
    associations = b""
    for item_id, _, item_props in all_items:
        indexes = []
        for prop in item_props:
            props.append(prop)
            indexes.append(len(props))
        associations += struct.pack(">HB", item_id, len(indexes)) + bytes(indexes)
    infe = b"".join(
        full_box(b"infe", 2, struct.pack(">HH", item_id, 0) + kind + b"\x00") for item_id, kind, _ in all_items
    )
    ftyp = box(b"ftyp", brands[0] + b"\x00\x00\x00\x00" + b"".join(brands[1:]))
    meta = full_box(
        b"meta",
        0,
        full_box(b"hdlr", 0, b"\x00" * 4 + b"pict" + b"\x00" * 13)
        + full_box(b"pitm", 0, struct.pack(">H", 1))
        + full_box(b"iinf", 0, struct.pack(">H", len(all_items)) + infe)
        + full_box(b"iref", 0, b"".join(box(kind, struct.pack(">HHH", a, 1, b)) for kind, a, b in refs))
        + box(
            b"iprp",
            box(b"ipco", b"".join(props)) + full_box(b"ipma", 0, struct.pack(">I", len(all_items)) + associations),
        ),
    )
    return ftyp + meta + tail + box(b"mdat", b"\x00" * 16)


def tiff_bytes(width: int, height: int, *, ifds: int = 1, big_endian: bool = False, loop: bool = False) -> bytes:
    """A TIFF whose IFDs are chained (``loop`` points the last one back at the first)."""
    order = ">" if big_endian else "<"
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (262, 3, 1), (277, 3, 1)]
    ifd_size = 2 + 12 * len(entries) + 4
    out = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(order + "I", 8)
    for index in range(ifds):
        last = index == ifds - 1
        following = 8 if last and loop else 0 if last else 8 + (index + 1) * ifd_size
        out += struct.pack(order + "H", len(entries))
        for tag, kind, value in entries:
            packed = struct.pack(order + ("HH" if kind == 3 else "I"), *((value, 0) if kind == 3 else (value,)))
            out += struct.pack(order + "HHI", tag, kind, 1) + packed
        out += struct.pack(order + "I", following)
    return out + b"\x00" * 16


def exif_block(orientation: int, *, big_endian: bool) -> bytes:
    order = ">" if big_endian else "<"
    head = b"MM\x00*" if big_endian else b"II*\x00"
    entry = struct.pack(order + "HHI", 0x0112, 3, 1) + struct.pack(order + "HH", orientation, 0)
    return head + struct.pack(order + "I", 8) + struct.pack(order + "H", 1) + entry + b"\x00\x00\x00\x00"


# -- the fixture catalogue ---------------------------------------------------------------------------


def header(fmt: ImageFormat, width: int, height: int, **fields: object) -> ImageHeader:
    return ImageHeader(fmt, width, height, **fields)  # type: ignore[arg-type]


@functools.cache
def catalogue() -> dict[str, tuple[bytes, ImageHeader]]:
    """name -> (file bytes, the exact header ``probe`` must return)."""
    rgb, rgba = gradient(), gradient(mode="RGBA")
    icc = srgb_icc()
    palette = gradient().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    out: dict[str, tuple[bytes, ImageHeader]] = {
        "jpeg": (encode(rgb, "JPEG", quality=75), header(F.JPEG, 40, 30, quality=75)),
        "jpeg_progressive": (
            encode(rgb, "JPEG", quality=90, progressive=True, dpi=(300, 300)),
            header(F.JPEG, 40, 30, quality=90, progressive=True, dpi=(300.0, 300.0)),
        ),
        "jpeg_gray": (
            encode(rgb.convert("L"), "JPEG", quality=60),
            header(F.JPEG, 40, 30, quality=60, color_space="gray"),
        ),
        "jpeg_cmyk": (
            encode(rgb.convert("CMYK"), "JPEG", quality=80),
            header(F.JPEG, 40, 30, quality=80, color_space="cmyk"),
        ),
        "jpeg_icc_exif": (
            encode(rgb, "JPEG", quality=95, icc_profile=icc, exif=exif_with(t274=6)),
            header(F.JPEG, 40, 30, quality=95, orientation=6, icc=True, exif=True),
        ),
        "png_rgb": (encode(rgb, "PNG"), header(F.PNG, 40, 30)),
        "png_rgba": (encode(rgba, "PNG", dpi=(72, 72)), header(F.PNG, 40, 30, has_alpha=True, dpi=(72.0, 72.0))),
        "png_palette_trns": (
            encode(palette, "PNG", transparency=0),
            header(F.PNG, 40, 30, has_alpha=True, bit_depth=4),
        ),
        "png_16bit": (
            encode(Image.new("I;16", (12, 7), 4000), "PNG"),
            header(F.PNG, 12, 7, bit_depth=16, color_space="gray"),
        ),
        "png_icc_exif": (
            encode(rgb, "PNG", icc_profile=icc, exif=exif_with(t274=8)),
            header(F.PNG, 40, 30, orientation=8, icc=True, exif=True),
        ),
        "apng": (
            encode(frames(1)[0], "PNG", save_all=True, append_images=frames(3)[1:], loop=0),
            header(F.PNG, 24, 20, frames=3, loop=0),
        ),
        "gif": (encode(palette, "GIF", interlace=False), header(F.GIF, 40, 30)),
        "gif_interlaced": (encode(palette, "GIF", interlace=True), header(F.GIF, 40, 30, progressive=True)),
        "gif_animated": (
            encode(frames(1)[0], "GIF", save_all=True, append_images=frames(5)[1:], loop=0, optimize=False),
            header(F.GIF, 24, 20, frames=5, loop=0),
        ),
        "gif_transparent": (
            encode(palette, "GIF", transparency=3, interlace=False),
            header(F.GIF, 40, 30, has_alpha=True),
        ),
        "webp_lossy": (encode(rgb, "WEBP", quality=80), header(F.WEBP, 40, 30)),
        "webp_lossless_alpha": (encode(rgba, "WEBP", lossless=True), header(F.WEBP, 40, 30, has_alpha=True)),
        "webp_animated": (
            encode(frames(1)[0], "WEBP", save_all=True, append_images=frames(4)[1:], loop=0),
            header(F.WEBP, 24, 20, frames=4, loop=0),
        ),
        "webp_exif_icc": (
            encode(rgb, "WEBP", exif=exif_with(t274=3), icc_profile=icc),
            header(F.WEBP, 40, 30, orientation=3, icc=True, exif=True),
        ),
        "bmp_24": (encode(rgb, "BMP"), header(F.BMP, 40, 30, dpi=(96.0, 96.0))),
        # Pillow writes RGBA as 32-bit BI_RGB and reads it back as RGB: no alpha mask, no alpha.
        "bmp_32": (encode(rgba, "BMP"), header(F.BMP, 40, 30, dpi=(96.0, 96.0))),
        "bmp_palette": (encode(palette, "BMP"), header(F.BMP, 40, 30, bit_depth=8, dpi=(96.0, 96.0))),
        "tiff_rgb": (encode(rgb, "TIFF", dpi=(150, 150)), header(F.TIFF, 40, 30, dpi=(150.0, 150.0))),
        "tiff_rgba_pages": (
            encode(rgba, "TIFF", save_all=True, append_images=[rgba, rgba]),
            header(F.TIFF, 40, 30, frames=3, has_alpha=True),
        ),
        "tiff_cmyk": (encode(rgb.convert("CMYK"), "TIFF"), header(F.TIFF, 40, 30, color_space="cmyk")),
        "tiff_gray16_oriented": (
            encode(Image.new("I;16", (9, 5)), "TIFF", exif=exif_with(t274=5)),
            header(F.TIFF, 9, 5, bit_depth=16, color_space="gray", orientation=5),
        ),
        "bigtiff": (encode(rgb, "TIFF", big_tiff=True), header(F.TIFF, 40, 30)),
    }
    avif, heif = heif_encoder("AVIF"), heif_encoder("HEIF")
    if avif is not None:
        out["avif_rgba"] = (avif(rgba), header(F.AVIF, 40, 30, has_alpha=True, dynamic_range="sdr"))
        out["avif_gray"] = (avif(rgb.convert("L")), header(F.AVIF, 40, 30, color_space="gray", dynamic_range="sdr"))
        out["avif_animated"] = (
            avif(frames(1)[0], save_all=True, append_images=frames(3)[1:]),
            header(F.AVIF, 24, 20, frames=3, dynamic_range="sdr"),
        )
    if heif is not None:
        # 33x17 is padded by the HEVC encoder; the clean aperture (clap) gives the size back.
        out["heif_rgba"] = (
            heif(gradient((33, 17), "RGBA")),
            header(F.HEIF, 33, 17, has_alpha=True, dynamic_range="sdr"),
        )
        out["heif_rgb"] = (heif(rgb), header(F.HEIF, 40, 30, dynamic_range="sdr"))
    return out


FIXTURES = sorted(catalogue())


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_header_is_exact(name: str) -> None:
    data, expected = catalogue()[name]
    assert sniff(data) is expected.format
    assert probe(data) == expected


@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_agrees_with_pillow(name: str) -> None:
    """Size and frame count as Pillow's lazy open reports them (the decoder's view)."""
    data, expected = catalogue()[name]
    with Image.open(io.BytesIO(data)) as im:
        # Pillow's TIFF plugin reports the size after the orientation tag; libvips (and the
        # header contract) the stored size.
        stored = expected.oriented_size if expected.format is F.TIFF else (expected.width, expected.height)
        assert im.size == stored
        assert getattr(im, "n_frames", 1) == expected.frames


def test_pyvips_fixtures_agree() -> None:
    pyvips = pytest.importorskip("pyvips")
    image = pyvips.Image.black(40, 30, bands=3) + 100
    interlaced = image.write_to_buffer(".png", interlace=True)
    # libvips' default resolution is 1 px/mm = 25.4 dpi, stored in pHYs as 1000 px/m.
    assert probe(interlaced) == header(F.PNG, 40, 30, progressive=True, exif=True, dpi=(25.0, 25.0))
    for depth in (8, 10, 12):
        try:
            avif = image.write_to_buffer(".avif", compression="av1", bitdepth=depth)
        except pyvips.Error:  # pragma: no cover - an AVIF encoder is missing
            pytest.skip("libvips has no AVIF encoder here")
        assert probe(avif) == header(F.AVIF, 40, 30, bit_depth=depth, exif=True)
        loaded = pyvips.Image.new_from_buffer(avif, "")
        assert (loaded.width, loaded.height) == (40, 30)


def test_sample_photos() -> None:
    kleiber = probe((SAMPLES / "kleiber.jpg").read_bytes())
    assert kleiber == header(F.JPEG, 1200, 675, quality=88)
    assert probe((SAMPLES / "ladybird.jpg").read_bytes()) == header(F.JPEG, 960, 600, quality=88)


# -- sniffing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "seen"),
    [
        (b"", "empty"),
        (b"\xff\xd8", "too short"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"  <svg width='10' height='10'></svg>", "SVG"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03", "PSD"),
        (b"<!DOCTYPE html><html></html>", "HTML"),
        (b"RIFF\x24\x00\x00\x00AVI LIST", "RIFF"),
        (b"BM" + b"\x00" * 12 + struct.pack("<I", 999) + b"\x00" * 20, "DIB header size 999"),
        (box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41"), "isom"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
        (b"hello, this is plain text", "unrecognised signature"),
    ],
)
def test_sniff_rejects_with_a_message_naming_what_was_seen(data: bytes, seen: str) -> None:
    with pytest.raises(InvalidImageFormatError, match=seen) as info:
        sniff(data)
    assert info.value.code == "InvalidImageFormat"
    with pytest.raises(InvalidImageFormatError):
        probe(data)


@pytest.mark.parametrize(
    ("brands", "expected"),
    [
        ((b"avif", b"mif1", b"miaf"), F.AVIF),
        ((b"avis", b"msf1", b"avif"), F.AVIF),
        ((b"mif1", b"mif1", b"avif", b"miaf"), F.AVIF),  # avif is the only specific brand
        ((b"heic", b"mif1", b"heic"), F.HEIF),
        ((b"mif1", b"mif1", b"heic", b"avif"), F.HEIF),  # two specific brands, generic major
        ((b"msf1", b"msf1", b"hevc"), F.HEIF),
        ((b"mif1", b"mif1", b"miaf"), F.HEIF),
        ((b"heix", b"mif1", b"avif"), F.HEIF),  # the major brand decides
    ],
)
def test_sniff_isobmff_brands(brands: tuple[bytes, ...], expected: ImageFormat) -> None:
    assert sniff(box(b"ftyp", brands[0] + b"\x00\x00\x00\x00" + b"".join(brands[1:]))) is expected


def test_sniff_signatures() -> None:
    assert sniff(b"\xff\xd8\xff") is F.JPEG
    assert sniff(b"GIF87a") is F.GIF
    assert sniff(b"MM\x00*\x00\x00\x00\x08") is F.TIFF
    assert sniff(b"II+\x00\x08\x00\x00\x00") is F.TIFF  # BigTIFF
    assert sniff(bmp_bytes(2, 2, 24, dib=12)) is F.BMP


# -- JPEG ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation(orientation: int) -> None:
    data = encode(gradient((16, 8)), "JPEG", quality=70, exif=exif_with(t274=orientation))
    got = probe(data)
    assert got == header(F.JPEG, 16, 8, quality=70, orientation=orientation, exif=True)
    assert got.oriented_size == ((8, 16) if orientation >= 5 else (16, 8))


def test_jpeg_quality_round_trips_1_to_100() -> None:
    image = gradient((16, 16))
    for quality in range(1, 101):
        data = encode(image, "JPEG", quality=quality)
        assert probe(data).quality == quality, quality
        with Image.open(io.BytesIO(data)) as im:
            assert estimate_jpeg_quality(im.quantization) == quality


def test_jpeg_quality_of_sixteen_bit_tables() -> None:
    """libjpeg without force_baseline writes 16-bit tables below quality ~25."""
    luminance = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)  # fmt: skip
    for quality in range(1, 101):
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        table = [max(1, (v * scale + 50) // 100) for v in luminance]
        assert estimate_jpeg_quality([table]) == quality
        assert estimate_jpeg_quality([table[::-1]]) == quality  # the order does not matter


def test_the_written_out_ijg_sums_are_libjpeg_scaling() -> None:
    # io._IJG_SUMS is written out (computing it cost tens of ms at every start-up).
    from ci_engine.io import _IJG_CHROMINANCE, _IJG_LUMINANCE, _IJG_SUMS, _ijg_table_sum

    assert set(_IJG_SUMS) == {255, 32767}
    for ceiling, sums in _IJG_SUMS.items():
        assert sums == tuple(
            (_ijg_table_sum(_IJG_LUMINANCE, q, ceiling), _ijg_table_sum(_IJG_CHROMINANCE, q, ceiling))
            for q in range(1, 101)
        )


def test_estimate_jpeg_quality_edges() -> None:
    assert estimate_jpeg_quality([[1] * 64, [1] * 64]) == 100
    assert estimate_jpeg_quality({0: [1] * 64}) == 100
    assert estimate_jpeg_quality([[255] * 64, [255] * 64]) == 1
    assert 1 <= estimate_jpeg_quality([[7] * 64]) <= 100
    with pytest.raises(ValueError, match="no quantisation table"):
        estimate_jpeg_quality([])
    with pytest.raises(ValueError, match="63 entries"):
        estimate_jpeg_quality([[1] * 63])


def test_jpeg_ycck_from_the_adobe_transform_flag() -> None:
    data = bytearray(encode(gradient().convert("CMYK"), "JPEG", quality=80))
    at = data.find(b"Adobe")
    assert at > 0 and data[at + 11] == 0
    data[at + 11] = 2
    assert probe(bytes(data)).color_space == "ycck"


def test_jpeg_dpi_sources() -> None:
    cm = jpeg_segment(0xE0, b"JFIF\x00\x01\x02\x02" + struct.pack(">HH", 118, 118) + b"\x00\x00")
    assert probe(jpeg_bytes(8, 8, segments=cm)).dpi == (300.0, 300.0)  # 118 dots/cm
    aspect_only = jpeg_segment(0xE0, b"JFIF\x00\x01\x02\x00" + struct.pack(">HH", 1, 1) + b"\x00\x00")
    assert probe(jpeg_bytes(8, 8, segments=aspect_only)).dpi is None
    # JFIF states no unit: the EXIF resolution is used, as Pillow and libvips do.
    exif = exif_with(t282=TiffImagePlugin.IFDRational(240, 1), t283=TiffImagePlugin.IFDRational(240, 1), t296=2)
    data = encode(gradient((8, 8)), "JPEG", quality=50, exif=exif)
    assert probe(data) == header(F.JPEG, 8, 8, quality=50, exif=True, dpi=(240.0, 240.0))
    with Image.open(io.BytesIO(data)) as im:
        assert im.info["dpi"] == (240, 240)


def test_jpeg_big_endian_exif_and_gain_map() -> None:
    app1 = jpeg_segment(0xE1, b"Exif\x00\x00" + exif_block(7, big_endian=True))
    xmp = jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta hdrgm:Version='1.0'/>")
    got = probe(jpeg_bytes(10, 6, segments=app1 + xmp))
    assert got == header(F.JPEG, 10, 6, quality=100, orientation=7, exif=True, dynamic_range="gainmap hdr")
    iso = jpeg_segment(0xE2, b"urn:iso:std:iso:ts:21496:-1\x00\x00\x00")
    assert probe(jpeg_bytes(10, 6, segments=iso)).dynamic_range == "gainmap hdr"


def test_jpeg_markers() -> None:
    assert probe(jpeg_bytes(9, 4, marker=0xC2)).progressive
    assert probe(jpeg_bytes(9, 4, components=4)).color_space == "cmyk"
    assert probe(jpeg_bytes(9, 4, components=2)).color_space == "other"
    # garbage before a marker is skipped, as libjpeg does
    assert probe(jpeg_bytes(9, 4, segments=jpeg_segment(0xE5, b"x") + b"\x00\x13\x37")).width == 9
    for broken, message in [
        (jpeg_bytes(9, 4).replace(b"\xff\xc0", b"\xff\xe5"), "before the frame header"),
        (jpeg_bytes(9, 0), "DNL"),
        (jpeg_bytes(0, 4), "invalid dimensions"),
        (b"\xff\xd8\xff\xd9", "end of image"),
        (b"\xff\xd8\xff\xe0\x00\x01", "bad length"),
        (jpeg_bytes(9, 4)[:-20], "truncated"),
    ]:
        with pytest.raises(InvalidImageFormatError, match=message):
            probe(broken)


# -- EXIF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True])
def test_read_exif_orientation(big_endian: bool) -> None:
    for value in range(1, 9):
        block = exif_block(value, big_endian=big_endian)
        assert read_exif_orientation(block) == value
        assert read_exif_orientation(b"Exif\x00\x00" + block) == value
    assert read_exif_orientation(exif_block(9, big_endian=big_endian)) == 1
    assert read_exif_orientation(exif_block(0, big_endian=big_endian)) == 1


@pytest.mark.parametrize(
    "block",
    [b"", b"II*\x00", b"XX*\x00\x08\x00\x00\x00", b"II*\x00\xff\xff\x00\x00", b"MM\x00*\x00\x00\x00\x08\xff\xff"],
)
def test_read_exif_orientation_is_lenient(block: bytes) -> None:
    assert read_exif_orientation(block) == 1


# -- PNG -----------------------------------------------------------------------------------------


def test_png_chunks() -> None:
    phys = png_chunk(b"pHYs", struct.pack(">IIB", 2835, 3937, 1))
    assert probe(png_bytes(5, 4, chunks=(phys,))).dpi == (72.0, 100.0)
    unknown_unit = png_chunk(b"pHYs", struct.pack(">IIB", 2835, 2835, 0))
    assert probe(png_bytes(5, 4, chunks=(unknown_unit,))).dpi is None
    assert probe(png_bytes(5, 4, interlace=1)).progressive
    assert probe(png_bytes(5, 4, color=4)) == header(F.PNG, 5, 4, has_alpha=True, color_space="gray")
    assert probe(png_bytes(5, 4, color=3, depth=2)) == header(F.PNG, 5, 4, bit_depth=2)
    pq = png_chunk(b"cICP", bytes((9, 16, 0, 1)))
    assert probe(png_bytes(5, 4, chunks=(pq,))).dynamic_range == "hdr"
    srgb = png_chunk(b"cICP", bytes((1, 13, 0, 1)))
    assert probe(png_bytes(5, 4, chunks=(srgb,))).dynamic_range == "sdr"
    invalid_actl = png_chunk(b"acTL", struct.pack(">II", 0, 0))
    assert probe(png_bytes(5, 4, chunks=(invalid_actl,))).frames == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (png_bytes(5, 4, depth=3), "bit depth"),
        (png_bytes(5, 4, color=5), "bit depth"),
        (png_bytes(5, 4, interlace=2), "interlace"),
        (png_bytes(0, 4), "invalid dimensions"),
        (png_bytes(2**31, 4), "2\\^31"),
        (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", b"\x00" * 12), "IHDR"),
        (
            b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + png_chunk(b"IEND", b""),
            "no IDAT",
        ),
        (png_bytes(5, 4, chunks=(struct.pack(">I", 1000) + b"tEXt",)), "runs past the end"),
    ],
)
def test_png_malformed(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageFormatError, match=message):
        probe(data)


# -- GIF -----------------------------------------------------------------------------------------


def test_gif_counts_complete_frames_of_a_truncated_file() -> None:
    data = gif_bytes(3, 3, 4, trailer=False)
    assert probe(data) == header(F.GIF, 3, 3, frames=4, loop=0)
    assert probe(data[:-1]).frames == 3  # the last terminator is missing
    assert probe(gif_bytes(3, 3, 2, loop=None)) == header(F.GIF, 3, 3, frames=2)
    assert probe(gif_bytes(3, 3, 2, loop=5)).loop == 5
    with pytest.raises(InvalidImageFormatError, match="no complete frame"):
        probe(gif_bytes(3, 3, 0))
    with pytest.raises(InvalidImageFormatError, match="no complete frame"):
        probe(gif_bytes(3, 3, 1)[:-4])


# -- WebP ----------------------------------------------------------------------------------------


def test_webp_chunks() -> None:
    anim = riff([vp8x(7, 5, 0x12), (b"ANIM", b"\x00" * 4 + struct.pack("<H", 3))] + [(b"ANMF", b"\x00" * 25)] * 6)
    assert probe(anim) == header(F.WEBP, 7, 5, frames=6, loop=3, has_alpha=True)
    assert probe(anim[:-10]).frames == 5  # the sixth frame is cut
    with pytest.raises(InvalidImageFormatError, match="without a complete frame"):
        probe(riff([vp8x(7, 5, 0x02)]))
    with pytest.raises(InvalidImageFormatError, match="ANMF chunk at offset 30 is too small"):
        probe(riff([vp8x(7, 5, 0x02), (b"ANMF", b"\x00" * 16)]))
    assert probe(riff([vp8x(7, 5, 0x08), (b"EXIF", exif_block(6, big_endian=True))])) == header(
        F.WEBP, 7, 5, orientation=6, exif=True
    )
    for broken, message in [
        (riff([(b"VP8 ", b"\x01\x00\x00\x9d\x01\x2a" + b"\x00" * 4)]), "key frame"),
        (riff([(b"VP8L", b"\x2e" + b"\x00" * 4)]), "VP8L signature"),
        (riff([(b"VP8L", b"\x2f" + struct.pack("<I", 1 << 29))]), "version"),
        (riff([(b"ALPH", b"\x00" * 10)]), "unknown first chunk"),
        (riff([(b"VP8X", b"\x00" * 4)]), "too small"),
        (b"RIFF\x04\x00\x00\x00WEBP", "too small"),
    ]:
        with pytest.raises(InvalidImageFormatError, match=message):
            probe(broken)


# -- BMP -----------------------------------------------------------------------------------------


def test_bmp_headers() -> None:
    alpha_mask = struct.pack("<IIII", 0xFF0000, 0xFF00, 0xFF, 0xFF000000)
    v5 = bmp_bytes(6, -4, 32, dib=124, compression=3, masks=alpha_mask)
    assert probe(v5) == header(F.BMP, 6, 4, has_alpha=True, dpi=(72.0, 72.0))
    no_alpha = bmp_bytes(6, 4, 32, dib=124, compression=3, masks=alpha_mask[:12] + b"\x00" * 4)
    assert not probe(no_alpha).has_alpha
    with_alpha_bitfields = bmp_bytes(6, 4, 32, dib=40, compression=6, masks=alpha_mask)
    assert probe(with_alpha_bitfields).has_alpha
    assert probe(bmp_bytes(6, 4, 32, dib=108, compression=0, masks=alpha_mask)).has_alpha is False
    assert probe(bmp_bytes(300, 200, 8, dib=12)) == header(F.BMP, 300, 200)
    assert probe(bmp_bytes(3, 3, 1)) == header(F.BMP, 3, 3, bit_depth=1, dpi=(72.0, 72.0))
    with pytest.raises(InvalidImageFormatError, match="bit count"):
        probe(bmp_bytes(3, 3, 7))
    with pytest.raises(InvalidImageFormatError, match="invalid dimensions"):
        probe(bmp_bytes(-3, 3, 24))
    with pytest.raises(InvalidImageFormatError, match="truncated"):
        probe(bmp_bytes(3, 3, 24)[:30])


# -- HEIF / AVIF -----------------------------------------------------------------------------------

ALPHA_AUX = full_box(b"auxC", 0, b"urn:mpeg:mpegB:cicp:systems:auxiliary:alpha\x00")
NCLX_PQ = box(b"colr", b"nclx" + struct.pack(">HHHB", 9, 16, 9, 0x80))


def test_heif_properties() -> None:
    pixi10 = full_box(b"pixi", 0, b"\x03\x0a\x0a\x0a")
    assert probe(heif_bytes(64, 48, primary_props=(pixi10,))) == header(F.HEIF, 64, 48, bit_depth=10)
    irot = box(b"irot", b"\x01")
    clap = box(b"clap", struct.pack(">8I", 61, 1, 47, 1, 0, 1, 0, 1))
    cropped = probe(heif_bytes(64, 48, primary_props=(clap, irot)))
    assert (cropped.width, cropped.height) == (47, 61)  # cropped to 61x47, then turned
    prof = box(b"colr", b"prof" + b"\x00" * 16)
    got = probe(heif_bytes(64, 48, primary_props=(prof, NCLX_PQ)))
    assert (got.icc, got.dynamic_range) == (True, "hdr")
    alpha = heif_bytes(64, 48, items=((2, b"hvc1", (ispe(64, 48), ALPHA_AUX)),), refs=((b"auxl", 2, 1),))
    assert probe(alpha).has_alpha
    thumbnail_alpha = heif_bytes(64, 48, items=((2, b"hvc1", (ALPHA_AUX,)),), refs=((b"auxl", 2, 3),))
    assert not probe(thumbnail_alpha).has_alpha
    exif = heif_bytes(64, 48, items=((2, b"Exif", ()),), refs=((b"cdsc", 2, 1),))
    assert probe(exif) == header(F.HEIF, 64, 48, exif=True)
    gain_map = heif_bytes(64, 48, brands=(b"avif", b"mif1"), items=((2, b"tmap", ()),))
    assert probe(gain_map) == header(F.AVIF, 64, 48, dynamic_range="gainmap hdr")
    av1c_mono_12 = box(b"av1C", bytes((0x81, 0x00, 0x70, 0x00)))
    assert probe(heif_bytes(8, 8, brands=(b"avif",), primary_props=(av1c_mono_12,))) == header(
        F.AVIF, 8, 8, bit_depth=12, color_space="gray"
    )


def test_heif_grid_takes_depth_from_its_first_tile() -> None:
    pixi10 = full_box(b"pixi", 0, b"\x03\x0a\x0a\x0a")
    grid = heif_bytes(
        4096, 3072, items=((2, b"hvc1", (ispe(512, 512), pixi10)), (3, b"hvc1", (ispe(512, 512), pixi10))),
        refs=((b"dimg", 1, 2),),
    )  # fmt: skip
    assert probe(grid) == header(F.HEIF, 4096, 3072, bit_depth=10)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (box(b"ftyp", b"heic\x00\x00\x00\x00mif1") + box(b"mdat", b""), "no meta box"),
        (heif_bytes(8, 8)[:-5], "bad size"),
        (heif_bytes(8, 8).replace(b"pict", b"vide"), "handler"),
        (heif_bytes(8, 8).replace(b"pitm", b"pitx"), "no primary item"),
        (heif_bytes(8, 8).replace(b"ispe", b"ispx"), "no image size"),
        (heif_bytes(0, 8), "invalid dimensions"),
        (box(b"ftyp", b"heic\x00\x00\x00\x00mif1") + b"\x00\x00\x00\x04meta", "bad size"),
        (box(b"ftyp", b"heic\x00\x00\x00\x00mif1") + b"\x00\x00\x00\x01meta\x00\x00", "largesize"),
        (box(b"ftyp", b"heic\x00\x00\x00\x00mif1") + b"\x00\x00\x00\x01meta" + struct.pack(">Q", 2**40), "bad size"),
    ],
)
def test_heif_malformed(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageFormatError, match=message):
        probe(data)


def test_heif_box_sizes() -> None:
    data = heif_bytes(8, 8)
    last = data.rfind(b"mdat") - 4
    to_end = data[:last] + b"\x00\x00\x00\x00mdat" + b"\x00" * 5  # size 0: to the end of the file
    assert probe(to_end).width == 8
    large = data[:last] + b"\x00\x00\x00\x01mdat" + struct.pack(">Q", 16 + 3) + b"abc"
    assert probe(large).width == 8
    huge_ipma = data.replace(b"ipma\x00\x00\x00\x00\x00\x00\x00\x01", b"ipma\x00\x00\x00\x00\xff\xff\xff\xff")
    with pytest.raises(InvalidImageFormatError, match="ipma"):
        probe(huge_ipma)


# -- TIFF ----------------------------------------------------------------------------------------


def test_tiff_directory_chain() -> None:
    assert probe(tiff_bytes(5, 3)) == header(F.TIFF, 5, 3, color_space="gray")
    assert probe(tiff_bytes(5, 3, big_endian=True, ifds=4)).frames == 4
    assert probe(tiff_bytes(5, 3, ifds=3, loop=True)).frames == 3  # loop guard
    assert probe(tiff_bytes(5, 3, ifds=1_000)).frames == 1_000
    long_chain = tiff_bytes(5, 3, ifds=12_000)
    started = time.perf_counter()
    with pytest.raises(InvalidImageFormatError, match="more than 1000 directories"):  # libtiff would walk it all
        probe(long_chain)
    assert time.perf_counter() - started < 1.0
    truncated_chain = tiff_bytes(5, 3, ifds=3)[: 8 + 2 * 66 + 30]
    assert probe(truncated_chain).frames == 2
    for broken, message in [
        (b"II*\x00\x00\x00\x00\x00", "no image directory"),
        (b"II*\x00\xff\x00\x00\x00" + b"\x00" * 8, "runs past the end"),
        (b"II*\x00\x08\x00\x00\x00\xff\xff", "past the end"),
        (b"II+\x00\x04\x00\x00\x00" + b"\x00" * 8, "magic"),
        (tiff_bytes(0, 3), "invalid dimensions"),
    ]:
        with pytest.raises(InvalidImageFormatError, match=message):
            probe(broken)


# -- bombs -----------------------------------------------------------------------------------------

SIDE = 100_000


def bombs() -> dict[str, tuple[bytes, tuple[int, int]]]:
    """Tiny files declaring huge images. JPEG and GIF store sizes in 16 bits: their largest
    declarable image, 65,535 x 65,535 (4.3 gigapixels), is the bomb."""
    vp8x_bomb = riff([vp8x(SIDE, SIDE), (b"VP8 ", b"\x00" * 10)])
    return {
        "png": (png_bytes(SIDE, SIDE), (SIDE, SIDE)),
        "jpeg": (jpeg_bytes(65_535, 65_535), (65_535, 65_535)),
        "gif": (gif_bytes(65_535, 65_535, 1), (65_535, 65_535)),
        "webp": (vp8x_bomb, (SIDE, SIDE)),
        "bmp": (bmp_bytes(SIDE, -SIDE, 24), (SIDE, SIDE)),
        "heif": (heif_bytes(SIDE, SIDE), (SIDE, SIDE)),
        "avif": (heif_bytes(SIDE, SIDE, brands=(b"avif", b"mif1")), (SIDE, SIDE)),
        "tiff": (tiff_bytes(SIDE, SIDE), (SIDE, SIDE)),
    }


def measure(data: bytes) -> tuple[ImageHeader, float, int]:
    """(header, best time of 5 runs in seconds, peak bytes allocated by one probe)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        result = probe(data)
        best = min(best, time.perf_counter() - started)
    # The peak is measured in a fresh interpreter: tracemalloc counts every thread of the
    # process, and other tests of this xdist worker may have left threads running (a Dask
    # client, a server fixture) whose allocations would land in this figure.
    peak = int(
        subprocess.run(
            [sys.executable, "-c", _PEAK],
            input=data,
            capture_output=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout
    )
    return result, best, peak


_PEAK = """\
import sys, tracemalloc
from ci_engine.io import probe
data = sys.stdin.buffer.read()
probe(data)
tracemalloc.start()
probe(data)
print(tracemalloc.get_traced_memory()[1])
"""


@pytest.mark.parametrize("name", sorted(bombs()))
def test_bomb_headers_are_read_without_allocating(name: str) -> None:
    data, size = bombs()[name]
    assert len(data) < 1024
    result, seconds, peak = measure(data)
    assert (result.width, result.height) == size
    assert seconds < 0.005, f"{name}: {seconds * 1e3:.2f} ms"
    assert peak < 64 * 1024, f"{name}: {peak} bytes"


def test_gif_with_100000_frames() -> None:
    data = gif_bytes(1, 1, 100_000)
    result, seconds, peak = measure(data)
    assert result == header(F.GIF, 1, 1, frames=10_000, loop=0)  # the count stops at 10,000
    assert seconds < 1.0, f"{seconds * 1e3:.1f} ms"
    assert peak < 64 * 1024, f"{peak} bytes"


def test_declared_frame_counts_are_only_read() -> None:
    actl = png_chunk(b"acTL", struct.pack(">II", 2**31 - 1, 0))
    assert probe(png_bytes(1, 1, chunks=(actl,))).frames == 2**31 - 1


# -- robustness --------------------------------------------------------------------------------------


def probe_or_invalid(data: bytes) -> ImageHeader | None:
    """``probe``, with InvalidImageFormatError mapped to None; anything else propagates."""
    try:
        result = probe(data)
    except InvalidImageFormatError:
        return None
    assert isinstance(result, ImageHeader)
    return result


CORPUS = {
    **{name: data for name, (data, _) in catalogue().items()},
    **{f"bomb_{name}": data for name, (data, _) in bombs().items()},
    "gif_frames": gif_bytes(2, 2, 7),
    "tiff_chain": tiff_bytes(5, 3, ifds=3),
    "heif_alpha": heif_bytes(8, 8, items=((2, b"hvc1", (ispe(8, 8), ALPHA_AUX)),), refs=((b"auxl", 2, 1),)),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_truncation_at_every_tenth(name: str) -> None:
    data = CORPUS[name]
    for tenth in range(10):
        probe_or_invalid(data[: len(data) * tenth // 10])


@given(
    name=st.sampled_from(sorted(CORPUS)),
    flips=st.lists(st.tuples(st.booleans(), st.integers(0, 2**24), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_random_byte_flips(name: str, flips: list[tuple[bool, int, int]]) -> None:
    """Flips land in the first 256 bytes (the headers) or anywhere in the file."""
    data = bytearray(CORPUS[name])
    for in_header, position, value in flips:
        data[position % (min(len(data), 256) if in_header else len(data))] = value
    probe_or_invalid(bytes(data))


SIGNATURES = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"GIF89a",
    b"RIFF\xff\xff\x00\x00WEBP",
    b"BM" + b"\x00" * 12 + b"\x28\x00\x00\x00",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic",
]


@given(prefix=st.sampled_from(SIGNATURES), tail=st.binary(max_size=300))
def test_random_bodies_behind_a_valid_signature(prefix: bytes, tail: bytes) -> None:
    probe_or_invalid(prefix + tail)


def test_io_imports_no_imaging_library() -> None:
    code = (
        "import sys, ci_engine.io\n"
        "bad = {'PIL', 'pyvips', 'numpy', 'pillow_heif'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
