"""imageInspect: data appended after the image, per container, per kind of hidden data."""

from __future__ import annotations

import gzip
import io
import json
import struct
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.intel.inspect import image_end, inspect

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "kleiber.jpg"
FIELDS = [
    "picSize",
    "picType",
    "suspicious",
    "suspiciousBeginByte",
    "suspiciousEndByte",
    "suspiciousSize",
    "suspiciousType",
]


def _image(fmt: str, **kw: object) -> bytes:
    img = Image.new("RGB", (64, 48), (30, 120, 200))
    for x in range(64):
        img.putpixel((x, x % 48), (255, x * 4, 0))
    buf = io.BytesIO()
    if fmt == "GIF":
        frames = [img, img.rotate(90)]
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    else:
        img.save(buf, fmt, **kw)
    return buf.getvalue()


def _ts(packets: int) -> bytes:
    out = bytearray()
    for i in range(packets):  # PID 0x100, payload only, continuity counter i
        out += bytes([0x47, 0x41 if i == 0 else 0x01, 0x00, 0x10 | (i & 15)]) + bytes([i & 0xFF]) * 184
    return bytes(out)


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("secret.txt", "hidden " * 50)
    return buf.getvalue()


def _pe() -> bytes:
    dos = bytearray(b"MZ" + bytes(0x3A) + struct.pack("<I", 0x80))
    dos += bytes(0x80 - len(dos))
    return bytes(dos) + b"PE\x00\x00" + struct.pack("<HH", 0x8664, 1) + bytes(200)


TRAILERS = {
    "MPEG-TS": _ts(12),
    "ZIP": _zip(),
    "GZIP": gzip.compress(b"payload" * 100),
    "ELF": Path("/bin/true").read_bytes()[:4096],
    "PE": _pe(),
    "PDF": b"%PDF-1.4\n" + b"1 0 obj <<>> endobj\n" * 20,
    "MP4": struct.pack(">I", 24) + b"ftypisom" + bytes(12) + b"\x00\x00\x00\x08free",
    "7Z": b"7z\xbc\xaf\x27\x1c" + bytes(100),
    "RAR": b"Rar!\x1a\x07\x01\x00" + bytes(100),
}

CONTAINERS = {
    "jpeg": lambda: _image("JPEG", quality=90),
    "jpeg-progressive": lambda: _image("JPEG", quality=90, progressive=True),
    "png": lambda: _image("PNG"),
    "gif": lambda: _image("GIF"),
    "bmp": lambda: _image("BMP"),
    "webp": lambda: _image("WEBP", quality=80),
}


@pytest.mark.parametrize("container", sorted(CONTAINERS))
def test_clean_images_are_not_suspicious(container: str) -> None:
    data = CONTAINERS[container]()
    assert image_end(data)[1] == len(data)
    body = json.loads(ce.process(data, "imageInspect").data)
    assert body == {"picSize": len(data), "picType": container.split("-")[0], "suspicious": False}


@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("kind", sorted(TRAILERS))
def test_appended_data_is_found_with_its_type(container: str, kind: str) -> None:
    image = CONTAINERS[container]()
    data = image + TRAILERS[kind]
    result = ce.process(data, "imageInspect")
    assert result.format == "json"
    body = json.loads(result.data)
    assert list(body) == FIELDS
    assert body == {
        "picSize": len(data),
        "picType": container.split("-")[0],
        "suspicious": True,
        "suspiciousBeginByte": len(image),
        "suspiciousEndByte": len(data) - 1,
        "suspiciousSize": len(TRAILERS[kind]),
        "suspiciousType": kind,
    }


def test_ffd9_inside_an_exif_segment_or_the_payload_does_not_end_the_jpeg() -> None:
    jpeg = SAMPLE.read_bytes()
    app1 = b"Exif\x00\x00" + b"\xff\xd8thumbnail\xff\xd9" * 3
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]
    assert inspect(data)["suspicious"] is False
    hidden = b"\x00\x01\xff\xd9" + _zip()  # an FFD9 early in the trailer: still one trailer
    body = inspect(data + hidden)
    assert body["suspiciousBeginByte"] == len(data) and body["suspiciousSize"] == len(hidden)


def test_padding_after_the_image_is_not_suspicious_but_a_large_unknown_tail_is() -> None:
    png = _image("PNG")
    assert inspect(png + bytes(100))["suspicious"] is False
    body = inspect(png + b"\x00" * 16 + b"random tail " * 200)
    assert (body["suspicious"], body["suspiciousType"], body["suspiciousBeginByte"]) == (True, "UNKNOWN", len(png))
    padded = inspect(png + bytes(8) + _ts(4))
    assert padded["suspiciousType"] == "MPEG-TS" and padded["suspiciousBeginByte"] == len(png)


def test_a_renamed_ts_stream_is_suspicious_from_byte_zero() -> None:
    data = _ts(30)
    for rule in ("imageInspect", "ci-process=ImageInspect"):
        body = json.loads(ce.process(data, rule).data)
        assert body == {
            "picSize": len(data),
            "picType": "ts",
            "suspicious": True,
            "suspiciousBeginByte": 0,
            "suspiciousEndByte": len(data) - 1,
            "suspiciousSize": len(data),
            "suspiciousType": "MPEG-TS",
        }


def test_inspect_after_processing_answers_about_the_output() -> None:
    data = SAMPLE.read_bytes() + _zip()
    assert json.loads(ce.process(data, "imageInspect").data)["suspicious"] is True
    body = json.loads(ce.process(data, "imageMogr2/thumbnail/100x|imageInspect").data)
    assert body["suspicious"] is False and body["picType"] == "jpeg"


def test_errors_are_typed() -> None:
    with pytest.raises(ce.InvalidImageFormatError):
        ce.process(b"just some text, not an image", "imageInspect")
    with pytest.raises(ce.InvalidArgumentError):
        ce.process(SAMPLE.read_bytes(), "imageInspect|imageMogr2/thumbnail/10x")
    with pytest.raises(TypeError):
        inspect("text")  # type: ignore[arg-type]
