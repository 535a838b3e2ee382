"""Blind watermarks: invisible (PSNR >= 40 dB), found after the issue's attacks, and an
unmarked image reports no watermark."""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.backends import available_backends
from ci_engine.intel.blindmark import PAYLOAD_BYTES, extract_pixels, fingerprint, payload_for_text
from tests.support.images import encode, psnr, to_array

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"
FACES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "faces"
SMALL = ["grace_hopper.jpg", "astronaut.jpg", "coffee.jpg", "chelsea.jpg"]
"""Photographs under 0.5 MP (512x600, 512x512, 600x400, 451x300): after a 50 % downscale
a 256 px side holds two tiles."""
TEXT = "Order1007"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _extract(data: bytes, rule: str = "watermark/4/type/3") -> dict[str, str]:
    result = ce.process(data, rule)
    assert result.format == "xml"
    root = ET.fromstring(result.data)
    return {child.tag: child.text or "" for child in root}


@pytest.fixture(scope="module")
def marked() -> tuple[np.ndarray, bytes]:
    source = to_array((SAMPLES / "kleiber.jpg").read_bytes())
    result = ce.process(encode(source, "PNG"), f"watermark/3/type/3/text/{b64(TEXT)}")
    assert (result.format, result.width, result.height) == ("png", 1200, 675)
    return source, result.data


def test_the_mark_is_invisible(marked: tuple[np.ndarray, bytes]) -> None:
    source, data = marked
    assert psnr(source, to_array(data)) >= 40.0


def _attacks(pixels: np.ndarray) -> dict[str, bytes]:
    h, w = pixels.shape[:2]
    half = np.asarray(Image.fromarray(pixels).resize((w // 2, h // 2), Image.Resampling.LANCZOS))
    return {
        "jpeg75": encode(pixels, "JPEG", quality=75),
        "half": encode(half, "PNG"),
        "crop-left": encode(pixels[:, w // 10 :], "PNG"),
        "crop-bottom": encode(pixels[: h - h // 10], "PNG"),
        "bright": encode(np.clip(pixels.astype(np.int16) + 20, 0, 255).astype(np.uint8), "PNG"),
        "webp": encode(pixels, "WEBP", quality=75),
    }


@pytest.mark.parametrize("attack", ["none", "jpeg75", "half", "crop-left", "crop-bottom", "bright", "webp"])
def test_the_text_survives(marked: tuple[np.ndarray, bytes], attack: str) -> None:
    _, data = marked
    suspect = data if attack == "none" else _attacks(to_array(data))[attack]
    fields = _extract(suspect)
    assert list(fields) == ["Text", "WatermarkStatus"]
    assert fields["Text"] == TEXT
    assert int(fields["WatermarkStatus"]) > 75


@pytest.fixture(scope="module")
def small_marked() -> dict[str, tuple[np.ndarray, bytes]]:
    out = {}
    for name in SMALL:
        source = to_array((FACES / name).read_bytes())
        result = ce.process(encode(source, "PNG"), f"watermark/3/type/3/text/{b64(TEXT)}")
        assert (result.format, result.width, result.height) == ("png", source.shape[1], source.shape[0])
        out[name] = source, result.data
    return out


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("attack", ["half", "webp", "jpeg75", "crop-left"])
def test_small_photographs_survive(small_marked: dict[str, tuple[np.ndarray, bytes]], name: str, attack: str) -> None:
    source, data = small_marked[name]
    assert psnr(source, to_array(data)) >= 40.0
    fields = _extract(_attacks(to_array(data))[attack])
    assert fields == {"Text": TEXT, "WatermarkStatus": fields["WatermarkStatus"]}
    assert int(fields["WatermarkStatus"]) > 75
    unmarked = _extract(_attacks(source)[attack])
    assert unmarked["Text"] == "" and int(unmarked["WatermarkStatus"]) < 60


def test_the_smallest_image_reads_back() -> None:
    """256 x 256, the least a mark needs: two tiles a side, whose period the
    autocorrelation's lags must reach (half the side)."""
    source = np.asarray(Image.open(FACES / "astronaut.jpg").convert("RGB").resize((256, 256), Image.Resampling.LANCZOS))
    result = ce.process(encode(source, "PNG"), f"watermark/3/type/3/text/{b64(TEXT)}")
    assert psnr(source, to_array(result.data)) >= 40.0
    assert _extract(result.data)["Text"] == TEXT
    assert _extract(encode(source, "PNG"))["Text"] == ""


@pytest.mark.parametrize("name", ["kleiber.jpg", "ladybird.jpg"])
def test_unmarked_images_report_no_watermark(name: str) -> None:
    data = (SAMPLES / name).read_bytes()
    for suspect in (data, _attacks(to_array(data))["half"]):
        fields = _extract(suspect)
        assert fields == {"Text": "", "WatermarkStatus": fields["WatermarkStatus"]}
        assert int(fields["WatermarkStatus"]) < 60


def test_jpeg_in_jpeg_out_on_both_backends() -> None:
    data = (SAMPLES / "ladybird.jpg").read_bytes()
    for backend in available_backends():
        result = ce.process(data, f"imageMogr2/thumbnail/800x|watermark/3/type/3/text/{b64('abc123')}", backend=backend)
        assert (result.format, result.width) == ("jpeg", 800)
        assert _extract(result.data)["Text"] == "abc123"
        assert _extract(result.data, "imageMogr2/thumbnail/400x|watermark/4/type/3")["Text"] == "abc123"


def test_image_marks_types_1_and_2() -> None:
    mark = np.zeros((64, 96), np.uint8)
    mark[16:48, 20:76] = 255  # white on black, as CI advises
    mark_png = encode(mark[..., None], "PNG")
    other = encode((255 - mark)[..., None], "PNG")
    source = (SAMPLES / "kleiber.jpg").read_bytes()
    resources = {"http://b.cos/mark.png": mark_png, "http://b.cos/other.png": other, "http://b.cos/orig.jpg": source}
    marked = ce.process(source, f"watermark/3/type/2/image/{b64('http://b.cos/mark.png')}", resources=resources)
    attacked = encode(to_array(marked.data), "JPEG", quality=75)
    found = ET.fromstring(
        ce.process(attacked, f"watermark/4/type/2/image/{b64('http://b.cos/mark.png')}", resources=resources).data
    )
    assert [c.tag for c in found] == ["WatermarkStatus", "ResultImage"]
    assert int(found.findtext("WatermarkStatus")) > 75
    recovered = Image.open(io.BytesIO(base64.b64decode(found.findtext("ResultImage"))))
    assert recovered.size == (192, 128)
    assert fingerprint(encode(np.asarray(recovered.convert("L"))[..., None], "PNG")) == fingerprint(mark_png)
    wrong = ET.fromstring(
        ce.process(attacked, f"watermark/4/type/2/image/{b64('http://b.cos/other.png')}", resources=resources).data
    )
    assert int(wrong.findtext("WatermarkStatus")) < 60
    semi = ce.process(source, f"watermark/3/type/1/image/{b64('http://b.cos/mark.png')}", resources=resources)
    back = ET.fromstring(
        ce.process(semi.data, f"watermark/4/type/1/image/{b64('http://b.cos/orig.jpg')}", resources=resources).data
    )
    assert int(back.findtext("WatermarkStatus")) > 75 and back.findtext("ResultImage")


def test_limits_are_typed_errors() -> None:
    small = encode(np.full((200, 300, 3), 128, np.uint8), "PNG")
    with pytest.raises(ce.UnsupportedForInputError):
        ce.process(small, f"watermark/3/type/3/text/{b64('abc')}")
    with pytest.raises(ce.UnsupportedOperationError):
        ce.process((SAMPLES / "kleiber.jpg").read_bytes(), f"watermark/3/type/3/text/{b64('a' * 13)}")
    assert len(payload_for_text("x" * PAYLOAD_BYTES)) == PAYLOAD_BYTES


def test_extraction_scores_are_low_on_noise() -> None:
    rng = np.random.default_rng(7)
    for _ in range(3):
        noise = rng.integers(0, 256, (400, 500, 3), dtype=np.uint8)
        found, _ = extract_pixels(noise)
        assert found.status < 60 and found.payload is None


def test_pic_operations_embed_rules_and_refused_ones(tmp_path: Path) -> None:
    from ci_engine.persistent import persist
    from ci_engine.store import LocalStore

    store = LocalStore(tmp_path)
    data = (SAMPLES / "kleiber.jpg").read_bytes()
    header = (
        '{"rules":[{"fileid":"marked.jpg","rule":"watermark/3/type/3/text/' + b64(TEXT) + '"},'
        '{"fileid":"slim.jpg","rule":"imageSlim"}]}'
    )
    marked, slim = persist("in/k.jpg", data, header, store, bucket="demo-1250000000").process_results
    assert (marked.format, marked.width, marked.height) == ("jpeg", 1200, 675)
    assert _extract((tmp_path / "in" / "marked.jpg").read_bytes())["Text"] == TEXT
    assert slim.format == "jpeg" and slim.size < len(data) == (tmp_path / "in" / "k.jpg").stat().st_size
    with pytest.raises(ce.UnsupportedOperationError):
        persist("in/k.jpg", data, '{"rules":[{"fileid":"q.json","rule":"imageInspect"}]}', store)
    # extraction: type 3 stores nothing and answers Text / WatermarkStatusCode under ProcessResults
    marked_bytes = (tmp_path / "in" / "marked.jpg").read_bytes()
    header = '{"rules":[{"fileid":"x.txt","rule":"watermark/4/type/3"}]}'
    for source, text, code in ((marked_bytes, TEXT, "0"), (data, "", "1")):
        upload = persist("in/suspect.jpg", source, header, store, bucket="demo-1250000000")
        root = ET.fromstring(upload.to_xml().encode())
        results = root.find("ProcessResults")
        assert [c.tag for c in results] == ["Text", "WatermarkStatusCode"]
        assert (results.findtext("Text") or "", results.findtext("WatermarkStatusCode")) == (text, code)
        assert not (tmp_path / "in" / "x.txt").exists()
