"""The intel paths' pixel work is charged to the request's work budget (issue 15 / issue 12):
analysis decodes, QR scans, face detection, blind-watermark embed and extraction, imageSlim's
search, qrcode-generate's drawing. Each is charged *before* the work: a budget one pixel short
of the charge refuses the request with ``work_pixels`` before any pixel is decoded (a spy on
the decoder proves it), and the charge itself is exact, so a budget equal to it admits it.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

import ci_engine as ce
import ci_engine.execute
import ci_engine.intel.slim as slim_module
from ci_engine.errors import ImageResolutionExceedError
from ci_engine.intel.blindmark import EMBED_PASSES, EXTRACT_PASSES
from ci_engine.intel.faces import DETECT_PASSES
from ci_engine.intel.qrcode import SCAN_PASSES
from ci_engine.intel.quality import ANALYSIS_PASSES
from ci_engine.intel.slim import work as slim_work
from ci_engine.limits import Limits

W, H = 600, 400
PIXELS = W * H


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _image(fmt: str = "PNG", size: tuple[int, int] = (W, H)) -> bytes:
    rng = np.random.default_rng(15)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every decode the engine starts (a spy around the real decoder)."""
    seen: list[int] = []
    real = ci_engine.execute.decode

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(ci_engine.execute, "decode", spy)
    return seen


def _refused(data: bytes, query: str, charge: int, decodes: list[int], **kw: Any) -> None:
    """``charge - 1`` refuses before any decode, naming the exact total; ``charge`` admits."""
    with pytest.raises(ImageResolutionExceedError) as info:
        ce.process(data, query, limits=Limits(max_work_pixels=charge - 1), **kw)
    assert info.value.kind == "work_pixels"
    assert info.value.actual == charge
    assert info.value.limit == charge - 1
    assert decodes == [], "the work was started before it was charged"
    ce.process(data, query, limits=Limits(max_work_pixels=charge), **kw)
    assert decodes, "the admitted request decoded nothing"


def test_qrcode_scan_is_charged_before_the_decode(decodes: list[int]) -> None:
    _refused(_image(), "QRcode/cover/0", PIXELS * (1 + SCAN_PASSES), decodes)


def test_qrcode_cover_charges_the_encode_too(decodes: list[int]) -> None:
    # decode, scan, the patches (at most the frame) and the encode of the one frame
    _refused(_image(), "QRcode/cover/1", PIXELS * (3 + SCAN_PASSES), decodes)


def test_ci_process_qrcode_and_steps_before_count_in_one_budget(decodes: list[int]) -> None:
    _refused(_image(), "ci-process=QRcode", PIXELS * (1 + SCAN_PASSES), decodes)
    decodes.clear()
    # a thumbnail before the scan: decode, the halved output, the scan of it
    half = (W // 2) * (H // 2)
    _refused(_image(), "imageMogr2/thumbnail/!50p|QRcode/cover/0", PIXELS + half + SCAN_PASSES * half, decodes)


def test_assess_quality_is_charged(decodes: list[int]) -> None:
    _refused(_image(), "ci-process=AssessQuality", PIXELS * (1 + ANALYSIS_PASSES), decodes)


def test_face_detection_is_charged(decodes: list[int]) -> None:
    # the reduced decode (longest side 640: 600 x 400 stays), detection passes over it; then
    # no face is found in noise, and the rewritten pipeline is the input unchanged
    _refused(_image(), "imageMogr2/scrop/100x100", PIXELS * (1 + DETECT_PASSES), decodes)


def test_blind_watermark_embed_and_extract_are_charged(decodes: list[int]) -> None:
    data = _image()
    embed = PIXELS * (1 + EMBED_PASSES) + PIXELS * 2  # decode, passes; the encode of one frame and one patch
    _refused(data, f"watermark/3/type/3/text/{_b64('abc')}", embed, decodes)
    decodes.clear()
    _refused(data, f"watermark/4/type/3/text/{_b64('abc')}", PIXELS * (1 + EXTRACT_PASSES), decodes)


def test_image_slim_is_charged_before_its_first_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _image("JPEG")
    planes: list[int] = []
    real = slim_module._planes_of

    def spy(*args: Any, **kw: Any) -> Any:
        planes.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(slim_module, "_planes_of", spy)
    with pytest.raises(ImageResolutionExceedError) as info:
        ce.process(data, "imageSlim", limits=Limits(max_work_pixels=slim_work(W, H) - 1))
    assert info.value.kind == "work_pixels"
    assert info.value.actual == slim_work(W, H) == PIXELS * 82  # a small image: searched whole
    assert planes == []
    result = ce.process(data, "imageSlim", limits=Limits(max_work_pixels=slim_work(W, H)))
    assert result.format == "jpeg" and len(result.data) <= len(data)
    assert planes


def test_qrcode_generate_is_charged() -> None:
    query = "ci-process=qrcode-generate&qrcode-content=hello&width=1000"
    with pytest.raises(ImageResolutionExceedError) as info:
        ce.process(b"", query, limits=Limits(max_work_pixels=999_999))
    assert info.value.actual == 1_000_000
    ce.process(b"", query, limits=Limits(max_work_pixels=1_000_000))


def test_intel_probes_use_the_request_limits() -> None:
    data = _image()
    small = Limits(max_input_side=500)
    for query in ("imageMogr2/scrop/100x100", "ci-process=AssessQuality", "imageSlim", "QRcode/cover/0"):
        with pytest.raises(ImageResolutionExceedError) as info:
            ce.process(data, query, limits=small)
        assert info.value.kind != "work_pixels", query
