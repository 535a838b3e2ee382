"""imageInfo, exif, imageAve and the persistent-processing ImageInfo values (info.md).

Fixtures are built here: images with Pillow / pillow-heif, EXIF blocks with a small TIFF
writer (so that types, byte order, rationals and odd structures are exactly what the test
says).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import ci_engine as ce
from ci_engine import info
from ci_engine.backends import available_backends, get_backend
from ci_engine.io import probe
from ci_engine.plan.steps import DecodeSpec

BACKENDS = available_backends()
SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"
INFO_KEYS = [
    "format",
    "width",
    "height",
    "size",
    "md5",
    "dynamic_range",
    "frame_count",
    "bit_depth",
    "vertical_dpi",
    "horizontal_dpi",
]


# -- a small TIFF/EXIF writer -----------------------------------------------------------------

Entry = tuple[int, int, int, bytes]  # tag, type, count, value bytes


class Tiff:
    """Builds an EXIF block: IFD0, then the Exif, GPS, Interop directories and IFD1."""

    def __init__(self, order: str = "<") -> None:
        self.order = order

    def ascii(self, tag: int, text: str) -> Entry:
        raw = text.encode() + b"\x00"
        return (tag, 2, len(raw), raw)

    def short(self, tag: int, *values: int) -> Entry:
        return (tag, 3, len(values), struct.pack(f"{self.order}{len(values)}H", *values))

    def long(self, tag: int, *values: int) -> Entry:
        return (tag, 4, len(values), struct.pack(f"{self.order}{len(values)}I", *values))

    def rational(self, tag: int, *pairs: tuple[int, int]) -> Entry:
        flat = [v for pair in pairs for v in pair]
        return (tag, 5, len(pairs), struct.pack(f"{self.order}{len(flat)}I", *flat))

    def srational(self, tag: int, *pairs: tuple[int, int]) -> Entry:
        flat = [v for pair in pairs for v in pair]
        return (tag, 10, len(pairs), struct.pack(f"{self.order}{len(flat)}i", *flat))

    def undefined(self, tag: int, raw: bytes) -> Entry:
        return (tag, 7, len(raw), raw)

    def byte(self, tag: int, *values: int) -> Entry:
        return (tag, 1, len(values), bytes(values))

    def _ifd(self, entries: list[Entry], start: int, next_ifd: int = 0) -> bytes:
        o = self.order
        data_at = start + 2 + 12 * len(entries) + 4
        body, extra = struct.pack(o + "H", len(entries)), b""
        for tag, kind, count, raw in sorted(entries, key=lambda e: e[0]):
            if len(raw) <= 4:
                value = raw.ljust(4, b"\x00")
            else:
                value = struct.pack(o + "I", data_at + len(extra))
                extra += raw + b"\x00" * (len(raw) & 1)
            body += struct.pack(o + "HHI", tag, kind, count) + value
        return body + struct.pack(o + "I", next_ifd) + extra

    def build(
        self,
        ifd0: list[Entry],
        exif: list[Entry] | None = None,
        gps: list[Entry] | None = None,
        interop: list[Entry] | None = None,
        ifd1: list[Entry] | None = None,
    ) -> bytes:
        """The block (TIFF header first). Pointer tags are added to IFD0 / the Exif IFD."""
        o = self.order
        ifd0, exif = list(ifd0), list(exif) if exif is not None else None
        if exif is not None:
            ifd0.append(self.long(0x8769, 0))
            if interop is not None:
                exif.append(self.long(0xA005, 0))
        if gps is not None:
            ifd0.append(self.long(0x8825, 0))
        order = [("ifd0", ifd0), ("exif", exif), ("gps", gps), ("interop", interop), ("ifd1", ifd1)]
        present = [(name, entries) for name, entries in order if entries is not None]
        sizes = {name: len(self._ifd(entries, 0)) for name, entries in present}
        offsets, pos = {}, 8
        for name, _ in present:
            offsets[name] = pos
            pos += sizes[name]

        def patch(entries: list[Entry], tag: int, target: str) -> None:
            for i, entry in enumerate(entries):
                if entry[0] == tag:
                    entries[i] = self.long(tag, offsets[target])

        if exif is not None:
            patch(ifd0, 0x8769, "exif")
            if interop is not None:
                patch(exif, 0xA005, "interop")
        if gps is not None:
            patch(ifd0, 0x8825, "gps")
        out = (b"II*\x00" if o == "<" else b"MM\x00*") + struct.pack(o + "I", 8)
        for name, entries in present:
            following = offsets["ifd1"] if name == "ifd0" and ifd1 is not None else 0
            out += self._ifd(entries, offsets[name], following)
        return out


def camera_exif(order: str = "<") -> bytes:
    t = Tiff(order)
    return t.build(
        ifd0=[
            t.ascii(0x010F, "Canon"),
            t.ascii(0x0110, "Canon EOS 5D"),
            t.short(0x0112, 6),
            t.rational(0x011A, (300, 1)),
            t.rational(0x011B, (300, 1)),
            t.short(0x0128, 2),
            t.ascii(0x0132, "2023:05:01 10:20:30"),
            t.short(0x0213, 2),
            t.undefined(0xC4A5, b"PrintIM\x000300"),  # private tag: skipped
        ],
        exif=[
            t.rational(0x829A, (1, 250)),
            t.rational(0x829D, (56, 10)),
            t.short(0x8827, 200),
            t.undefined(0x9000, b"0231"),
            t.ascii(0x9003, "2023:05:01 10:20:30"),
            t.undefined(0x9101, bytes([1, 2, 3, 0])),
            t.srational(0x9204, (-1, 3)),
            t.rational(0x920A, (0, 1)),
            t.undefined(0x927C, b"maker note blob"),  # MakerNote: skipped
            t.undefined(0xA000, b"0100"),
            t.short(0xA001, 1),
            t.short(0xA002, 64),
            t.short(0xA003, 48),
            t.short(0xA402, 0),
            t.ascii(0x0132, "1999:01:01 00:00:00"),  # duplicate of IFD0's DateTime: IFD0 wins
        ],
        gps=[
            t.byte(0x0000, 2, 2, 0, 0),
            t.ascii(0x0001, "N"),
            t.rational(0x0002, (22, 1), (33, 1), (1234, 100)),
            t.ascii(0x0003, "E"),
            t.rational(0x0004, (114, 1), (3, 1), (0, 1)),
            t.byte(0x0005, 0),
            t.rational(0x0006, (1525, 10)),
        ],
        interop=[t.ascii(0x0001, "R98"), t.undefined(0x0002, b"0100")],
        ifd1=[t.short(0x0103, 6), t.long(0x0201, 0), t.long(0x0202, 0), t.ascii(0x010E, "thumbnail")],
    )


CAMERA_TAGS = {
    "ColorSpace": "sRGB",
    "ComponentsConfiguration": "1 2 3 0",
    "DateTime": "2023:05:01 10:20:30",
    "DateTimeOriginal": "2023:05:01 10:20:30",
    "ExifVersion": "48 50 51 49",
    "ExposureBiasValue": "-1/3",
    "ExposureMode": "0",
    "ExposureTime": "1/250",
    "FNumber": "56/10",
    "FlashpixVersion": "48 49 48 48",
    "FocalLength": "0/1",
    "GPSAltitude": "1525/10",
    "GPSAltitudeRef": "0",
    "GPSLatitude": "22/1 33/1 1234/100",
    "GPSLatitudeRef": "N",
    "GPSLongitude": "114/1 3/1 0/1",
    "GPSLongitudeRef": "E",
    "GPSVersionID": "2 2 0 0",
    "ISOSpeedRatings": "200",
    "InteroperabilityIndex": "R98",
    "InteroperabilityVersion": "48 49 48 48",
    "Make": "Canon",
    "Model": "Canon EOS 5D",
    "Orientation": "6",
    "PixelXDimension": "64",
    "PixelYDimension": "48",
    "ResolutionUnit": "2",
    "XResolution": "300/1",
    "YCbCrPositioning": "2",
    "YResolution": "300/1",
}


# -- image fixtures -----------------------------------------------------------------------------


def rgb(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def jpeg_with_exif(order: str = "<") -> bytes:
    return save(rgb(), "JPEG", quality=90, exif=b"Exif\x00\x00" + camera_exif(order), dpi=(300, 300))


def heif(**options: Any) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(rgb(64, 48)).save(out, quality=80, **options)
    return out.getvalue()


def png_chunks(data: bytes) -> list[bytes]:
    pos, names = 8, []
    while pos < len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        names.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return names


def info_of(data: bytes) -> dict[str, str]:
    result = ce.process(data, "imageInfo")
    parsed: dict[str, str] = json.loads(result.data)
    return parsed


def exif_of(data: bytes) -> Any:
    return json.loads(ce.process(data, "exif").data)


def ave_of(data: bytes, rule: str = "imageAve", backend: str = "auto") -> str:
    value: str = json.loads(ce.process(data, rule, backend=backend).data)["RGB"]
    return value


# -- imageInfo ----------------------------------------------------------------------------------


def test_image_info_jpeg_field_by_field() -> None:
    data = jpeg_with_exif()
    result = ce.process(data, "imageInfo")
    assert (result.format, result.width, result.height, result.frames, result.quality) == ("json", 0, 0, 0, None)
    assert result.mime_type == "application/json"
    assert result.plan is not None and result.plan.info is not None
    parsed = json.loads(result.data)
    assert list(parsed) == INFO_KEYS
    assert parsed == {
        "format": "jpeg",
        "width": "64",
        "height": "48",
        "size": str(len(data)),
        "md5": hashlib.md5(data).hexdigest(),
        "dynamic_range": "unknow",
        "frame_count": "1",
        "bit_depth": "8",
        "vertical_dpi": "300",
        "horizontal_dpi": "300",
    }
    # compact separators, UTF-8, exactly this byte string
    assert result.data == json.dumps(parsed, separators=(",", ":")).encode()


def test_image_info_width_height_are_stored_not_oriented() -> None:
    data = save(rgb(64, 32), "JPEG", exif=b"Exif\x00\x00" + camera_exif())  # Orientation 6
    parsed = info_of(data)
    assert (parsed["width"], parsed["height"]) == ("64", "32")


def test_image_info_png_phys_dpi_per_axis() -> None:
    data = save(rgb(), "PNG", dpi=(96, 300))
    assert b"pHYs" in png_chunks(data)
    x_ppm, y_ppm = struct.unpack_from(">II", data, data.index(b"pHYs") + 4)
    assert (x_ppm, y_ppm) == (3780, 11811)  # 96.012 and 299.99 dpi
    parsed = info_of(data)
    assert (parsed["horizontal_dpi"], parsed["vertical_dpi"]) == ("96", "300")
    assert (parsed["format"], parsed["bit_depth"], parsed["frame_count"]) == ("png", "8", "1")


def test_image_info_defaults_dpi_to_72() -> None:
    data = save(rgb(), "PNG")
    assert b"pHYs" not in png_chunks(data)
    parsed = info_of(data)
    assert (parsed["vertical_dpi"], parsed["horizontal_dpi"]) == ("72", "72")


def test_image_info_16_bit_png() -> None:
    pixels = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 17).astype(np.uint16)
    data = save(Image.fromarray(pixels), "PNG")
    assert data[24] == 16  # IHDR bit depth
    parsed = info_of(data)
    assert (parsed["bit_depth"], parsed["width"], parsed["height"]) == ("16", "64", "48")


def test_image_info_palette_png_reports_index_depth() -> None:
    image = rgb().quantize(colors=16)
    data = save(image, "PNG", bits=4)
    assert (data[24], data[25]) == (4, 3)  # 4-bit palette
    assert info_of(data)["bit_depth"] == "4"


def test_image_info_animated_gif_frame_count() -> None:
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    data = out.getvalue()
    parsed = info_of(data)
    assert (parsed["format"], parsed["frame_count"], parsed["width"], parsed["height"]) == ("gif", "3", "40", "30")
    assert parsed["size"] == str(len(data)) and parsed["md5"] == hashlib.md5(data).hexdigest()


def test_image_info_heif() -> None:
    data = heif()
    header = probe(data)
    parsed = info_of(data)
    assert list(parsed) == INFO_KEYS
    assert (parsed["format"], parsed["width"], parsed["height"]) == ("heif", "64", "48")
    assert (parsed["frame_count"], parsed["bit_depth"]) == ("1", "8")
    assert parsed["dynamic_range"] == header.dynamic_range  # as the container signals (nclx)
    assert parsed["dynamic_range"] in ("sdr", "unknow")
    assert parsed["size"] == str(len(data)) and parsed["md5"] == hashlib.md5(data).hexdigest()


def test_image_info_every_value_is_a_string() -> None:
    for data in (jpeg_with_exif(), save(rgb(), "PNG"), save(rgb(), "WEBP"), save(rgb(), "BMP"), heif()):
        parsed = info_of(data)
        assert list(parsed) == INFO_KEYS
        assert all(isinstance(value, str) for value in parsed.values()), parsed
        assert parsed["md5"] == hashlib.md5(data).hexdigest() and len(parsed["md5"]) == 32


def test_image_info_photo_rgb_switch() -> None:
    data = save(Image.new("RGB", (80, 80), (18, 52, 86)), "PNG")
    with_rgb = info.image_info(data, probe(data), photo_rgb=True)
    assert list(with_rgb) == [*INFO_KEYS, "photo_rgb"]
    assert with_rgb["photo_rgb"] == "0x123456"
    assert "photo_rgb" not in info.image_info(data, probe(data))


def test_image_info_after_a_pipeline_answers_about_the_output() -> None:
    data = (SAMPLES / "kleiber.jpg").read_bytes()
    thumb = ce.process(data, "imageMogr2/thumbnail/100x").data
    parsed = info_of_rule(data, "imageMogr2/thumbnail/100x|imageInfo")
    assert (parsed["width"], parsed["height"], parsed["format"]) == ("100", "56", "jpeg")
    assert parsed["size"] == str(len(thumb))
    assert parsed["md5"] == hashlib.md5(thumb).hexdigest()
    assert info_of_rule(data, "imageMogr2/format/png|imageInfo")["format"] == "png"


def info_of_rule(data: bytes, rule: str) -> dict[str, str]:
    parsed: dict[str, str] = json.loads(ce.process(data, rule).data)
    return parsed


# -- decode counting ----------------------------------------------------------------------------


class DecodeCounter:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.specs: list[DecodeSpec] = []
        backend_type = type(get_backend("auto"))
        original = backend_type.decode

        def counting(backend: Any, data: bytes, spec: DecodeSpec, header: Any) -> Any:
            self.specs.append(spec)
            return original(backend, data, spec, header)

        monkeypatch.setattr(backend_type, "decode", counting)


def _forbid_pixel_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    import pillow_heif
    import pyvips
    from PIL import Image as PILImage

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a pixel loader was called")

    for name in ("jpegload_buffer", "pngload_buffer", "gifload_buffer", "webpload_buffer", "new_from_buffer"):
        monkeypatch.setattr(pyvips.Image, name, forbidden)
    monkeypatch.setattr(PILImage, "open", forbidden)
    monkeypatch.setattr(pillow_heif, "open_heif", forbidden)


def test_image_info_and_exif_never_decode_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    images = [jpeg_with_exif(), save(rgb(), "PNG"), save(rgb(), "WEBP", exif=camera_exif()), heif()]
    counter = DecodeCounter(monkeypatch)
    _forbid_pixel_loaders(monkeypatch)
    for data in images:
        assert json.loads(ce.process(data, "imageInfo").data)["size"] == str(len(data))
        ce.process(data, "exif")
    assert counter.specs == []


def test_the_counter_does_count(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = DecodeCounter(monkeypatch)
    ce.process(save(rgb(), "PNG"), "imageMogr2/thumbnail/10x")
    assert len(counter.specs) == 1


def test_image_ave_decodes_once_with_shrink_on_load(monkeypatch: pytest.MonkeyPatch) -> None:
    data = save(rgb(2000, 1200), "JPEG", quality=85)
    counter = DecodeCounter(monkeypatch)
    ce.process(data, "imageAve")
    assert len(counter.specs) == 1
    (spec,) = counter.specs
    assert spec.shrink == 8 and spec.frames == 1
    assert info.ave_shrink(probe(data)) == 8


def test_ave_shrink_keeps_64_pixels_per_side() -> None:
    from ci_engine.types import ImageFormat, ImageHeader

    def shrink(width: int, height: int, fmt: ImageFormat = ImageFormat.JPEG, frames: int = 1) -> int:
        return info.ave_shrink(ImageHeader(fmt, width, height, frames=frames))

    assert shrink(512, 512) == 8
    assert shrink(511, 4000) == 4
    assert shrink(255, 4000) == 2
    assert shrink(127, 4000) == 1
    assert shrink(4000, 4000, ImageFormat.PNG) == 1
    assert shrink(4000, 4000, ImageFormat.WEBP) == 8
    assert shrink(4000, 4000, ImageFormat.WEBP, frames=3) == 1


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("name", ["kleiber.jpg", "ladybird.jpg"])
def test_dct_downscaled_mean_is_within_a_level_of_the_full_mean(name: str, backend_name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    header = probe(data)
    backend = get_backend(backend_name)
    means = {}
    for shrink in (1, 8):
        image = backend.decode(data, DecodeSpec(format=header.format, shrink=shrink), header)
        means[shrink] = backend.to_array(image)[0].reshape(-1, 3).astype(np.float64).mean(axis=0)
    difference = np.abs(means[1] - means[8])
    assert difference.max() < 0.5, difference  # measured: 0.29 (kleiber), 0.26 (ladybird)
    assert info.ave_shrink(header) == 8


# -- imageAve -----------------------------------------------------------------------------------


def rgba(pixels: list[list[tuple[int, int, int, int]]]) -> bytes:
    return save(Image.fromarray(np.array(pixels, dtype=np.uint8), "RGBA"), "PNG")


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_ave_uniform_colour_is_exact(backend: str) -> None:
    body = ce.process(save(Image.new("RGB", (100, 70), (18, 52, 86)), "PNG"), "imageAve", backend=backend).data
    assert body == b'{"RGB":"0x123456"}'
    assert ave_of(save(Image.new("RGB", (100, 70), (18, 52, 86)), "WEBP", lossless=True), backend=backend) == "0x123456"
    assert ave_of(save(Image.new("RGB", (100, 70), (255, 0, 171)), "BMP"), backend=backend) == "0xff00ab"


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_ave_grey_images(backend: str) -> None:
    assert ave_of(save(Image.new("L", (30, 30), 100), "PNG"), backend=backend) == "0x646464"
    assert ave_of(save(Image.new("LA", (30, 30), (7, 255)), "PNG"), backend=backend) == "0x070707"


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_ave_rounds_half_up(backend: str) -> None:
    assert ave_of(rgba([[(0, 0, 0, 255), (1, 3, 255, 255)]]), backend=backend) == "0x010280"  # 0.5, 1.5, 127.5


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_ave_weights_by_alpha(backend: str) -> None:
    assert ave_of(rgba([[(255, 0, 0, 255), (0, 0, 255, 0)]]), backend=backend) == "0xff0000"
    # R: 200 * 255 / (255 + 85) = 150
    assert ave_of(rgba([[(200, 0, 0, 255), (0, 0, 0, 85)]]), backend=backend) == "0x960000"


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_ave_fully_transparent_falls_back_to_plain_mean(backend: str) -> None:
    assert ave_of(rgba([[(10, 20, 30, 0), (30, 40, 50, 0)]]), backend=backend) == "0x141e28"


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_ave_uses_the_first_frame(backend: str) -> None:
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((18, 52, 86), (255, 255, 255))]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert ave_of(out.getvalue(), backend=backend) == "0x123456"


def test_image_ave_format_and_pipeline() -> None:
    data = (SAMPLES / "kleiber.jpg").read_bytes()
    value = ave_of(data)
    assert len(value) == 8 and value == value.lower() and value.startswith("0x")
    thumb = ce.process(data, "imageMogr2/thumbnail/100x").data
    assert ave_of(data, "imageMogr2/thumbnail/100x|imageAve") == ave_of(thumb)


def test_mean_rgb_on_arrays() -> None:
    pixels = np.zeros((600, 3, 4), dtype=np.uint8)  # more rows than one block
    pixels[..., :3] = (18, 52, 86)
    pixels[..., 3] = 255
    pixels[:300, :, 3] = 0
    pixels[:300, :, :3] = 255
    assert info.mean_rgb(pixels) == (18, 52, 86)


# -- exif -----------------------------------------------------------------------------------------


def test_exif_jpeg_field_by_field() -> None:
    result = ce.process(jpeg_with_exif(), "exif")
    assert result.format == "json"
    parsed = json.loads(result.data)
    assert parsed == {name: {"val": value} for name, value in CAMERA_TAGS.items()}
    assert list(parsed) == sorted(parsed)  # code point order
    assert result.data == json.dumps(parsed, separators=(",", ":")).encode()


def test_exif_big_endian_block_reads_the_same() -> None:
    assert exif_of(jpeg_with_exif(">")) == exif_of(jpeg_with_exif("<"))


def test_exif_skips_pointers_makernote_ifd1_and_private_tags() -> None:
    parsed = exif_of(jpeg_with_exif())
    for name in ("ExifOffset", "GPSInfo", "InteroperabilityOffset", "MakerNote", "Compression", "ImageDescription"):
        assert name not in parsed
    assert "JPEGInterchangeFormat" not in parsed and "PrintImageMatching" not in parsed


@pytest.mark.parametrize(
    ("value", "expected"), [(1, "sRGB"), (0xFFFF, "Uncalibrated"), (2, "2")], ids=["srgb", "uncal", "other"]
)
def test_exif_colour_space_is_symbolic(value: int, expected: str) -> None:
    t = Tiff()
    block = t.build(ifd0=[t.short(0x0112, 1)], exif=[t.short(0xA001, value), t.short(0x8822, 2)])
    data = save(rgb(), "JPEG", exif=b"Exif\x00\x00" + block)
    parsed = exif_of(data)
    assert parsed["ColorSpace"] == {"val": expected}
    assert parsed["ExposureProgram"] == {"val": "2"}  # other enumerations stay numeric


def test_exif_other_containers() -> None:
    block = camera_exif()
    expected = {name: {"val": value} for name, value in CAMERA_TAGS.items()}
    png = save(rgb(), "PNG", exif=b"Exif\x00\x00" + block)
    assert b"eXIf" in png_chunks(png)
    webp = save(rgb(), "WEBP", exif=b"Exif\x00\x00" + block)
    assert b"EXIF" in webp
    heic = heif(exif=b"Exif\x00\x00" + block)
    for data in (png, webp, heic):
        assert exif_of(data) == expected, probe(data).format


def test_exif_of_a_tiff_file_reads_its_first_directory() -> None:
    data = save(rgb(), "TIFF", compression="raw", dpi=(150, 150))
    parsed = exif_of(data)
    assert parsed["ImageWidth"] == {"val": "64"} and parsed["ImageLength"] == {"val": "48"}
    assert parsed["XResolution"]["val"].endswith("/1") or "/" in parsed["XResolution"]["val"]
    assert "StripOffsets" not in parsed and "StripByteCounts" not in parsed


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "WEBP", "HEIF"])
def test_exif_absent_gives_the_documented_body(fmt: str) -> None:
    data = heif() if fmt == "HEIF" else save(rgb(), fmt)
    result = ce.process(data, "exif")
    assert result.data == b'{"error" : "no exif data"}'
    assert result.format == "json"


def test_exif_with_only_unreported_tags_is_no_exif() -> None:
    t = Tiff()
    block = t.build(ifd0=[t.undefined(0xC4A5, b"x" * 10)], exif=[t.undefined(0x927C, b"maker")])
    data = save(rgb(), "JPEG", exif=b"Exif\x00\x00" + block)
    assert ce.process(data, "exif").data == info.NO_EXIF_BODY


def test_exif_types_and_rendering() -> None:
    t = Tiff(">")
    entries = [
        (0x0118, 6, 2, struct.pack(">2b", -5, 7)),  # SBYTE
        (0x0119, 8, 1, struct.pack(">h", -3) + b"\x00\x00"),  # SSHORT
        (0x0156, 9, 1, struct.pack(">i", -70000)),  # SLONG
        (0x9203, 11, 1, struct.pack(">f", 0.1)),  # FLOAT
        (0x9206, 12, 1, struct.pack(">d", 2.5)),  # DOUBLE
        (0x013E, 5, 2, struct.pack(">4I", 313, 1000, 329, 1000)),  # multi RATIONAL
        t.short(0x0102, 8, 8, 8),  # multi SHORT
        t.ascii(0x010E, "caf\u00e9 \u4e2d"),  # UTF-8 text
        (0x013B, 2, 4, b"\xe9t\xe9\x00"),  # Latin-1 text
        (0x0131, 2, 8, b"abc\x00def\x00"),  # text ends at the first NUL
        (0x0110, 99, 1, b"zzzz"),  # unknown type: skipped
        (0x010F, 2, 100, struct.pack(">I", 0xFFFF)),  # value past the end: skipped
    ]
    tags = info.parse_exif(t.build(ifd0=entries))
    assert tags is not None
    values = {name: value for name, (_, value) in tags.items()}
    assert values == {
        "MinSampleValue": "-5 7",
        "MaxSampleValue": "-3",
        "TransferRange": "-70000",
        "BrightnessValue": "0.1",
        "SubjectDistance": "2.5",
        "WhitePoint": "313/1000 329/1000",
        "BitsPerSample": "8 8 8",
        "ImageDescription": "caf\u00e9 \u4e2d",
        "Artist": "\u00e9t\u00e9",
        "Software": "abc",
    }
    assert tags["WhitePoint"][0] == 5 and tags["Software"][0] == 2


def test_exif_with_type_switch() -> None:
    data = jpeg_with_exif()
    typed = info.exif(data, probe(data), with_type=True)
    assert typed["ExposureTime"] == {"val": "1/250", "type": 5}
    assert typed["Make"] == {"val": "Canon", "type": 2}
    assert typed["ExifVersion"] == {"val": "48 50 51 49", "type": 7}


def test_exif_utf8_json_is_not_escaped() -> None:
    t = Tiff()
    data = save(rgb(), "JPEG", exif=b"Exif\x00\x00" + t.build(ifd0=[t.ascii(0x013B, "\u5f20\u4e09")]))
    body = ce.process(data, "exif").data
    assert body == '{"Artist":{"val":"\u5f20\u4e09"}}'.encode()


# -- malformed EXIF: lenient, never a foreign exception --------------------------------------------


def test_malformed_exif_blocks() -> None:
    t = Tiff()
    good = t.build(ifd0=[t.short(0x0112, 3)], exif=[t.rational(0x829A, (1, 60))])
    assert info.parse_exif(good) == {"ExposureTime": (5, "1/60"), "Orientation": (3, "3")}
    assert info.parse_exif(b"") is None
    assert info.parse_exif(b"XX*\x00\x08\x00\x00\x00") is None  # bad byte order
    assert info.parse_exif(b"II\x2b\x00\x08\x00\x00\x00") is None  # bad magic
    assert info.parse_exif(b"II*\x00\xff\xff\x00\x00") == {}  # IFD0 past the end
    assert info.parse_exif(good[:20]) == {}  # truncated directory: the entry that fits is gone
    # an Exif pointer back to IFD0 (a loop) and a GPS pointer past the end
    looped = t.build(ifd0=[t.short(0x0112, 3), t.long(0x8769, 8), t.long(0x8825, 1 << 30)])
    assert info.parse_exif(looped) == {"Orientation": (3, "3")}
    # an entry declaring 2^32-1 components
    huge = t.build(ifd0=[(0x010F, 2, 0xFFFFFFFF, struct.pack("<I", 8)), t.short(0x0112, 8)])
    assert info.parse_exif(huge) == {"Orientation": (3, "8")}


def test_malformed_exif_in_a_jpeg_reads_as_no_exif() -> None:
    data = save(rgb(), "JPEG", exif=b"Exif\x00\x00XXXX garbage")
    assert ce.process(data, "exif").data == info.NO_EXIF_BODY
    assert json.loads(ce.process(data, "imageInfo").data)["format"] == "jpeg"


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=8))
def test_parse_exif_never_raises(tail: bytes, at: int, patch: bytes) -> None:
    block = bytearray(camera_exif() + tail)
    at %= len(block)
    block[at : at + len(patch)] = patch
    result = info.parse_exif(bytes(block))
    assert result is None or all(isinstance(v, str) for _, v in result.values())
    for fmt in (ce.types.ImageFormat.JPEG, ce.types.ImageFormat.HEIF, ce.types.ImageFormat.WEBP):
        info.find_exif(bytes(block), fmt)


@given(st.binary(max_size=200))
def test_find_exif_on_garbage_never_raises(data: bytes) -> None:
    from ci_engine.types import ImageFormat

    for fmt in ImageFormat:
        found = info.find_exif(data, fmt)
        assert found is None or isinstance(found, bytes)


# -- persistent processing -------------------------------------------------------------------------


def test_original_image_info_values() -> None:
    data = jpeg_with_exif()
    values = info.original_image_info(data, probe(data))
    assert list(values) == ["Format", "Width", "Height", "Quality", "Ave", "Orientation", "FrameCount"]
    assert values["Format"] == "JPEG" and values["Quality"] == 90
    assert (values["Width"], values["Height"], values["Orientation"], values["FrameCount"]) == (64, 48, 6, 1)
    assert values["Ave"] == json.loads(ce.process(data, "imageAve").data)["RGB"]

    png = save(Image.new("RGB", (80, 80), (18, 52, 86)), "PNG")
    values = info.original_image_info(png, probe(png))
    assert values == {
        "Format": "PNG",
        "Width": 80,
        "Height": 80,
        "Quality": 100,
        "Ave": "0x123456",
        "Orientation": 0,
        "FrameCount": 1,
    }


# -- hygiene ----------------------------------------------------------------------------------------


def test_import_loads_no_imaging_library() -> None:
    code = (
        "import sys, ci_engine.info\n"
        "bad = [m for m in ('PIL', 'pyvips', 'numpy', 'pillow_heif') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_png_exif_after_idat_is_found() -> None:
    base = save(rgb(8, 8), "PNG")
    block = camera_exif()
    chunk = struct.pack(">I", len(block)) + b"eXIf" + block + struct.pack(">I", zlib.crc32(b"eXIf" + block))
    iend = base.rindex(b"IEND") - 4
    data = base[:iend] + chunk + base[iend:]
    assert exif_of(data)["Make"] == {"val": "Canon"}


def test_image_info_and_exif_load_no_imaging_library() -> None:
    code = (
        "import sys, pathlib, ci_engine\n"
        "data = pathlib.Path('docs/samples/kleiber.jpg').read_bytes()\n"
        "ci_engine.process(data, 'imageInfo'); ci_engine.process(data, 'exif')\n"
        "bad = [m for m in ('PIL', 'pyvips', 'numpy', 'pillow_heif') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_exif_of_avif_written_by_libvips() -> None:
    import pyvips

    image = pyvips.Image.black(64, 48, bands=3).cast("uchar").copy()
    image.set_type(pyvips.GValue.blob_type, "exif-data", b"Exif\x00\x00" + camera_exif())
    data = bytes(image.heifsave_buffer(compression="av1"))
    assert probe(data).format.value == "avif"
    parsed = exif_of(data)
    assert parsed["Make"] == {"val": "Canon"} and parsed["GPSLatitude"] == {"val": "22/1 33/1 1234/100"}


@pytest.mark.requires_vips  # the page shows libvips' bytes (size, md5) of the thumbnail
def test_docs_examples_match_the_code() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "info.md").read_text()
    data = (SAMPLES / "kleiber.jpg").read_bytes()
    for rule in ("imageInfo", "imageAve", "imageMogr2/thumbnail/100x|imageInfo"):
        body = ce.process(data, rule).data.decode()
        assert f"\n{body}\n" in page, rule
    assert "\n" + jpeg_exif_body() + "\n" in page


def jpeg_exif_body() -> str:
    return ce.process(jpeg_with_exif(), "exif").data.decode()
