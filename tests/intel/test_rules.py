"""The intel operations in a Pic-Operations rule (persist(), upload and in-cloud): QRcode in
both its forms (``QRcode/...`` and ``ci-process=QRcode&...``), blind watermark extraction,
and the operations CI documents only as a request of their own (501, nothing written)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.intel.qrcode import recognize
from ci_engine.persistent import persist
from ci_engine.store import LocalStore
from tests.intel.test_qrcode import _place

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"
BUCKET = "demo-1250000000"
REGION = "ap-guangzhou"
OBJECT_TAGS = ["Key", "Location", "Format", "Width", "Height", "Size", "Quality", "ETag", "FrameCount"]
URL = "https://example.org/p/9"


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _header(*rules: tuple[str, str]) -> str:
    return json.dumps({"rules": [{"fileid": fileid, "rule": rule} for fileid, rule in rules]})


def _points(info: ET.Element) -> list[tuple[int, int]]:
    location = info.find("CodeLocation")
    assert location is not None and [p.tag for p in location] == ["Point"] * 4
    return [(int(x), int(y)) for x, y in (p.text.split(",") for p in location)]  # type: ignore[union-attr]


def _check_object(obj: ET.Element, store_root: Path, key: str, fmt: str, size: tuple[int, int]) -> bytes:
    """The fixed part of an Object, checked against the stored bytes; returns them."""
    stored = (store_root / key).read_bytes()
    assert obj.findtext("Key") == key
    assert obj.findtext("Location") == f"{BUCKET}.cos.{REGION}.myqcloud.com/{key}"
    assert (obj.findtext("Format"), obj.findtext("Width"), obj.findtext("Height")) == (fmt, str(size[0]), str(size[1]))
    assert obj.findtext("Size") == str(len(stored))
    assert obj.findtext("ETag") == f'"{hashlib.md5(stored).hexdigest()}"'
    assert obj.findtext("FrameCount") == "1"
    return stored


@pytest.fixture(scope="module")
def two_codes() -> tuple[bytes, list, list]:
    """kleiber.jpg (1200 x 675) with two codes: URL upright at the left, "second" turned 20 degrees."""
    data, first = _place((SAMPLES / "kleiber.jpg").read_bytes(), URL, 6, 0, (0.1, 0.2))
    data, second = _place(data, "second code", 6, 20, (0.8, 0.7))
    return data, first, second


@pytest.mark.parametrize("in_cloud", [False, True])
def test_qrcode_rules_report_every_code_and_store_the_image(
    tmp_path: Path, two_codes: tuple[bytes, list, list], in_cloud: bool
) -> None:
    data, first, second = two_codes
    store = LocalStore(tmp_path)
    header = _header(
        ("covered.jpg", "QRcode/cover/1"),
        ("plain.png", "ci-process=QRcode&cover=0&bar-type=1"),
        ("small.jpg", "imageMogr2/thumbnail/600x|QRcode/cover/0"),
    )
    if in_cloud:
        store.put("in/qr.jpg", data)
        upload = persist("in/qr.jpg", None, header, store, bucket=BUCKET, region=REGION, in_cloud=True)
    else:
        upload = persist("in/qr.jpg", data, header, store, bucket=BUCKET, region=REGION)
    assert (tmp_path / "in" / "qr.jpg").read_bytes() == data
    root = ET.fromstring(upload.to_xml().encode())
    results = root.find("ProcessResults")
    assert results is not None and [c.tag for c in results] == ["Object"] * 3
    covered, plain, small = results
    for obj, scale in ((covered, 1.0), (plain, 1.0), (small, 0.5)):
        assert [c.tag for c in obj] == [*OBJECT_TAGS, "CodeStatus", "QRcodeInfo", "QRcodeInfo"]
        assert obj.findtext("CodeStatus") == "1"
        infos = obj.findall("QRcodeInfo")
        assert [[c.tag for c in info] for info in infos] == [["CodeUrl", "CodeLocation"]] * 2
        assert [info.findtext("CodeUrl") for info in infos] == [URL, "second code"]  # top to bottom
        for info, corners in zip(infos, (first, second)):
            want = [(x * scale, y * scale) for x, y in corners]
            tolerance = 3 + 0.02 * math.dist(want[0], want[1])
            assert all(math.dist(g, w) <= tolerance for g, w in zip(_points(info), want)), (_points(info), want)
    # cover/1 stores the mosaic: the codes are gone, the rest is the photograph
    stored = _check_object(covered, tmp_path, "in/covered.jpg", "jpeg", (1200, 675))
    assert covered.findtext("Quality") == plain.findtext("Quality") == str(ce.process(data, "imageMogr2").quality)
    assert recognize(stored).codes == ()
    # the same image as ci-process=QRcode&cover=1 answers on download
    download = ET.fromstring(ce.process(data, "ci-process=QRcode&cover=1").data)
    assert base64.b64decode(download.findtext("ResultImage") or "") == stored
    # cover/0: the image as the steps before made it (here: the source re-encoded), codes intact
    stored = _check_object(plain, tmp_path, "in/plain.png", "jpeg", (1200, 675))
    assert stored == ce.process(data, "imageMogr2").data
    assert [c.text for c in recognize(stored).codes] == [URL, "second code"]
    stored = _check_object(small, tmp_path, "in/small.jpg", "jpeg", (600, 338))
    assert stored == ce.process(data, "imageMogr2/thumbnail/600x").data


def test_qrcode_rule_without_a_code(tmp_path: Path) -> None:
    data = (SAMPLES / "ladybird.jpg").read_bytes()
    upload = persist("a.jpg", data, _header(("b.jpg", "ci-process=QRcode")), LocalStore(tmp_path), bucket=BUCKET)
    (obj,) = ET.fromstring(upload.to_xml().encode()).find("ProcessResults")  # type: ignore[misc]
    assert [c.tag for c in obj] == [*OBJECT_TAGS, "CodeStatus"]
    assert obj.findtext("CodeStatus") == "0"
    _check_object(obj, tmp_path, "b.jpg", "jpeg", (960, 600))


def test_blind_watermark_extraction_rules(tmp_path: Path) -> None:
    mark = np.zeros((64, 96), np.uint8)
    mark[16:48, 20:76] = 255
    buf = io.BytesIO()
    Image.fromarray(mark).save(buf, "PNG")
    source = (SAMPLES / "kleiber.jpg").read_bytes()
    resources = {"http://b.cos/mark.png": buf.getvalue(), "http://b.cos/orig.jpg": source}
    store = LocalStore(tmp_path)
    image = b64("http://b.cos/mark.png")
    header = _header(
        ("t3.txt", f"watermark/3/type/3/text/{b64('Order1007')}|watermark/4/type/3"),  # embed, then read
        ("t2.png", f"watermark/3/type/2/image/{image}|watermark/4/type/2/image/{image}"),
        ("none.png", f"watermark/4/type/2/image/{image}"),  # the unmarked source
        ("t1.png", f"watermark/3/type/1/image/{image}|watermark/4/type/1/image/{b64('http://b.cos/orig.jpg')}"),
    )
    upload = persist("in/k.jpg", source, header, store, bucket=BUCKET, region=REGION, resources=resources)
    results = ET.fromstring(upload.to_xml().encode()).find("ProcessResults")
    assert results is not None
    # Objects first (rule order), then type 3's Text and WatermarkStatusCode; t3 stores nothing
    assert [c.tag for c in results] == ["Object", "Object", "Object", "Text", "WatermarkStatusCode"]
    marked, unmarked, semi = results.findall("Object")
    assert [c.tag for c in semi] == OBJECT_TAGS  # type 1: the recovered mark, no status
    recovered = _check_object(semi, tmp_path, "in/t1.png", "png", (192, 128))
    assert [c.tag for c in marked] == [*OBJECT_TAGS, "WatermarkStatus"]
    assert int(marked.findtext("WatermarkStatus") or 0) > 75
    assert int(unmarked.findtext("WatermarkStatus") or 100) < 60
    stored = _check_object(marked, tmp_path, "in/t2.png", "png", (192, 128))
    assert Image.open(io.BytesIO(stored)).format == "PNG"
    assert recovered == stored  # types 1 and 2 recover the same fingerprint of the same mark
    _check_object(unmarked, tmp_path, "in/none.png", "png", (192, 128))
    assert (results.findtext("Text"), results.findtext("WatermarkStatusCode")) == ("Order1007", "0")
    assert not (tmp_path / "in" / "t3.txt").exists()


@pytest.mark.parametrize(
    ("rule", "page"),
    [
        ("imageInspect", "1045/53715"),
        ("ci-process=ImageInspect", "1045/53715"),
        ("ci-process=AssessQuality", "1045/73050"),
        ("ci-process=qrcode-generate&qrcode-content=a", "1045/73047"),
    ],
)
def test_operations_without_a_rule_form_are_refused_before_anything_is_written(
    tmp_path: Path, rule: str, page: str
) -> None:
    data = (SAMPLES / "kleiber.jpg").read_bytes()
    store = LocalStore(tmp_path)
    header = _header(("ok.jpg", "imageMogr2/thumbnail/100x"), ("x.json", rule))
    with pytest.raises(ce.UnsupportedOperationError) as info:
        persist("in/k.jpg", data, header, store, bucket=BUCKET)
    assert (info.value.code, info.value.status) == ("NotImplemented", 501)
    assert "rules[1]" in info.value.message and page in info.value.message
    assert not (tmp_path / "in").exists()  # refused while the rules are read: not even the upload


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("QRcode/cover/1|imageMogr2/thumbnail/100x", ce.InvalidArgumentError),
        ("watermark/4/type/3|imageMogr2/thumbnail/100x", ce.InvalidArgumentError),
        ("ci-process=QRcode&cover=3", ce.ValueRangeError),
        ("ci-process=QRcode&bar-type=x", ce.InvalidArgumentError),
        ("ci-process=OCR", ce.UnsupportedOperationError),
    ],
)
def test_bad_rules_are_typed_errors(tmp_path: Path, rule: str, error: type) -> None:
    data = (SAMPLES / "kleiber.jpg").read_bytes()
    with pytest.raises(error):
        persist("in/k.jpg", data, _header(("x.jpg", rule)), LocalStore(tmp_path), bucket=BUCKET)
    assert not (tmp_path / "in").exists()
