"""Issue 15 over HTTP, through the official COS SDK (``CosS3Client(cfg, retry=0)``) against a
live ``ci-engine serve`` (the ``server`` fixture), proxy and IP mode: ``ci_qrcode_generate``
on the bucket (no object), imageSlim's ``X-Slimflag`` header, QR recognition on download,
upload and in-cloud (``Pic-Operations``), blind watermark extraction in a rule, AssessQuality
and imageInspect on download and refused in a rule."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zxingcpp
from PIL import Image
from qcloud_cos.cos_exception import CosServiceError

import ci_engine
from ci_engine.intel.qrcode import recognize
from tests.intel.test_qrcode import _place
from tests.server.conftest import PHOTOS, REGION

CONTENT = "https://example.org/item/15?k=a&b=c d"


def test_qrcode_generate_on_the_bucket(client: Any, mode: str) -> None:
    answer = client.ci_qrcode_generate(Bucket=PHOTOS, QrcodeContent=CONTENT, Width=200, Mode=0)
    png = base64.b64decode(answer["ResultImage"])
    expected = ci_engine.process(b"", "ci-process=qrcode-generate&qrcode-content=x&width=200&mode=0")
    assert expected.format == "xml"
    image = Image.open(io.BytesIO(png))
    assert (image.format, image.size) == ("PNG", (200, 200))
    found = zxingcpp.read_barcodes(image.convert("L"))
    assert [code.text for code in found] == [CONTENT]
    # the same bytes as the library makes for the same parameters
    from ci_engine.intel.qrcode import generate

    assert png == generate(CONTENT, mode=0, width=200)


def test_qrcode_generate_refuses_a_bad_width(client: Any, mode: str) -> None:
    with pytest.raises(CosServiceError) as info:
        client.ci_qrcode_generate(Bucket=PHOTOS, QrcodeContent="x", Width="wide", Mode=0)
    assert info.value.get_status_code() == 400
    assert info.value.get_error_code() == "InvalidArgument"


def test_image_slim_sends_x_slimflag(client: Any, mode: str, photo: bytes, tmp_path: Path) -> None:
    key = f"{mode}/slim/kleiber.jpg"
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    dest = tmp_path / "slim.jpg"
    headers = client.ci_get_object(Bucket=PHOTOS, Key=key, DestImagePath=str(dest), Rule="imageSlim")
    expected = ci_engine.process(photo, "imageSlim")
    assert expected.slim_flag == 1
    assert dest.read_bytes() == expected.data and len(expected.data) < len(photo)
    assert headers["X-Slimflag"] == "1"
    again = client.ci_get_object(Bucket=PHOTOS, Key=key, DestImagePath=str(dest), Rule="imageSlim")
    assert again["X-Slimflag"] == "1"  # a cached output keeps its flag
    gif = io.BytesIO()
    Image.new("P", (50, 40), 3).save(gif, "GIF")
    client.put_object(Bucket=PHOTOS, Body=gif.getvalue(), Key=f"{mode}/slim/flat.gif")
    headers = client.ci_get_object(
        Bucket=PHOTOS, Key=f"{mode}/slim/flat.gif", DestImagePath=str(dest), Rule="imageSlim"
    )
    assert headers["X-Slimflag"] == "2" and dest.read_bytes() == gif.getvalue()
    plain = client.ci_get_object(Bucket=PHOTOS, Key=key, DestImagePath=str(dest), Rule="imageMogr2/thumbnail/100x")
    assert "X-Slimflag" not in plain


URL = "https://example.org/p/9"


def _rules(*rules: tuple[str, str]) -> str:
    return json.dumps({"is_pic_info": 1, "rules": [{"fileid": f, "rule": r} for f, r in rules]})


def _close(points: list[str], corners: list[tuple[float, float]]) -> bool:
    got = [tuple(int(v) for v in p.split(",")) for p in points]
    tolerance = 3 + 0.02 * math.dist(corners[0], corners[1])
    return len(got) == 4 and all(math.dist(g, w) <= tolerance for g, w in zip(got, corners))


def test_qrcode_on_upload_in_cloud_and_download(client: Any, mode: str, photo: bytes) -> None:
    data, corners = _place(photo, URL, 6, 0, (0.1, 0.2))
    key = f"{mode}/qr/photo.jpg"
    # upload: QRcode/cover/1 stores the covered image and reports the code in its Object
    _, answer = client.ci_put_object(
        Bucket=PHOTOS, Body=data, Key=key, PicOperations=_rules(("covered.jpg", "QRcode/cover/1"))
    )
    assert answer["OriginalInfo"]["Key"] == key
    assert answer["OriginalInfo"]["ImageInfo"]["Width"] == "1200"
    obj = answer["ProcessResults"]["Object"]
    covered_key = f"{mode}/qr/covered.jpg"
    assert (obj["Key"], obj["Location"]) == (covered_key, f"{PHOTOS}.cos.{REGION}.myqcloud.com/{covered_key}")
    assert (obj["Format"], obj["Width"], obj["Height"], obj["FrameCount"]) == ("jpeg", "1200", "675", "1")
    assert obj["CodeStatus"] == "1"
    assert obj["QRcodeInfo"]["CodeUrl"] == URL
    assert _close(obj["QRcodeInfo"]["CodeLocation"]["Point"], corners)
    stored = client.get_object(Bucket=PHOTOS, Key=covered_key)["Body"].get_raw_stream().read()
    assert obj["Size"] == str(len(stored)) and obj["ETag"] == f'"{hashlib.md5(stored).hexdigest()}"'
    expected = recognize(data, cover=True)
    assert stored == expected.image and recognize(stored).codes == ()
    # in-cloud (POST ?image_process) on the stored source: the ci-process form of the rule
    _, answer = client.ci_image_process(
        Bucket=PHOTOS, Key=key, PicOperations=_rules(("plain.jpg", "ci-process=QRcode&cover=0"))
    )
    obj = answer["ProcessResults"]["Object"]
    assert (obj["Key"], obj["CodeStatus"], obj["QRcodeInfo"]["CodeUrl"]) == (f"{mode}/qr/plain.jpg", "1", URL)
    assert _close(obj["QRcodeInfo"]["CodeLocation"]["Point"], corners)
    plain = client.get_object(Bucket=PHOTOS, Key=f"{mode}/qr/plain.jpg")["Body"].get_raw_stream().read()
    assert plain == ci_engine.process(data, "imageMogr2").data
    # download: ci-process=QRcode&cover=1
    _, answer = client.ci_get_object_qrcode(Bucket=PHOTOS, Key=key, Cover=1)
    assert answer["CodeStatus"] == "1" and answer["QRcodeInfo"]["CodeUrl"] == URL
    assert _close(answer["QRcodeInfo"]["CodeLocation"]["Point"], corners)
    assert base64.b64decode(answer["ResultImage"]) == expected.image


def test_watermark_extraction_in_a_rule(client: Any, mode: str, photo: bytes) -> None:
    text = base64.urlsafe_b64encode(b"Order1007").decode().rstrip("=")
    key = f"{mode}/mark/photo.jpg"
    _, answer = client.ci_put_object(
        Bucket=PHOTOS, Body=photo, Key=key, PicOperations=_rules(("marked.jpg", f"watermark/3/type/3/text/{text}"))
    )
    assert answer["ProcessResults"]["Object"]["Format"] == "jpeg"
    for source, found, code in ((f"{mode}/mark/marked.jpg", "Order1007", "0"), (key, None, "1")):
        _, answer = client.ci_image_process(
            Bucket=PHOTOS, Key=source, PicOperations=_rules(("text.txt", "watermark/4/type/3"))
        )
        results = answer["ProcessResults"]
        assert "Object" not in results  # type 3 stores nothing
        assert (results["Text"], results["WatermarkStatusCode"]) == (found, code)
    with pytest.raises(CosServiceError) as info:
        client.head_object(Bucket=PHOTOS, Key=f"{mode}/mark/text.txt")
    assert info.value.get_status_code() == 404


def test_image_watermark_extraction_reports_its_status(client: Any, mode: str, photo: bytes) -> None:
    """watermark/3 and /4 type 2 name the mark by its URL in the same bucket (the server reads it there)."""
    mark = np.zeros((64, 96), np.uint8)
    mark[16:48, 20:76] = 255
    buf = io.BytesIO()
    Image.fromarray(mark).save(buf, "PNG")
    client.put_object(Bucket=PHOTOS, Body=buf.getvalue(), Key=f"{mode}/blind/mark.png")
    url = f"http://{PHOTOS}.cos.{REGION}.myqcloud.com/{mode}/blind/mark.png"
    image = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    key = f"{mode}/blind/photo.jpg"
    _, answer = client.ci_put_object(
        Bucket=PHOTOS, Body=photo, Key=key, PicOperations=_rules(("marked.jpg", f"watermark/3/type/2/image/{image}"))
    )
    assert answer["ProcessResults"]["Object"]["Key"] == f"{mode}/blind/marked.jpg"
    for source, present in ((f"{mode}/blind/marked.jpg", True), (key, False)):
        _, answer = client.ci_image_process(
            Bucket=PHOTOS, Key=source, PicOperations=_rules(("found.png", f"watermark/4/type/2/image/{image}"))
        )
        obj = answer["ProcessResults"]["Object"]
        assert list(obj) == ["Key", "Location", "Format", "Width", "Height", "Size", "Quality", "ETag", "FrameCount",
                             "WatermarkStatus"]  # fmt: skip
        assert (obj["Key"], obj["Format"]) == (f"{mode}/blind/found.png", "png")
        assert (obj["Width"], obj["Height"]) == ("192", "128")
        assert (int(obj["WatermarkStatus"]) > 75) is present and (int(obj["WatermarkStatus"]) < 60) is not present
    # a mark outside the request's bucket is refused
    other = base64.urlsafe_b64encode(b"http://other-1250000000.cos.ap-guangzhou.myqcloud.com/m.png").decode()
    with pytest.raises(CosServiceError) as info:
        client.ci_image_process(
            Bucket=PHOTOS, Key=key, PicOperations=_rules(("x.png", f"watermark/4/type/2/image/{other.rstrip('=')}"))
        )
    assert info.value.get_status_code() in (400, 403)


def test_quality_and_inspect_on_download_and_refused_in_a_rule(client: Any, mode: str, photo: bytes) -> None:
    key = f"{mode}/assess/photo.jpg"
    client.put_object(Bucket=PHOTOS, Body=photo, Key=key)
    answer = client.ci_image_assess_quality(Bucket=PHOTOS, Key=key)
    from ci_engine.intel.quality import assess

    found = assess(photo)
    assert list(answer) == ["LongImage", "BlackAndWhite", "SmallImage", "BigImage", "PureImage", "ClarityScore",
                            "RequestId"]  # fmt: skip
    assert [answer[k] for k in ("LongImage", "BlackAndWhite", "SmallImage", "BigImage", "PureImage")] == ["FALSE"] * 5
    assert answer["ClarityScore"] == str(found.clarity_score)
    _, body = client.ci_image_inspect(Bucket=PHOTOS, Key=key)
    assert json.loads(body) == {"picSize": len(photo), "picType": "jpeg", "suspicious": False}
    # the older spelling, on an image with a ZIP archive appended
    archive = b"PK\x03\x04" + bytes(range(256)) * 8
    client.put_object(Bucket=PHOTOS, Body=photo + archive, Key=f"{mode}/assess/hidden.jpg")
    found = client.ci_process(Bucket=PHOTOS, Key=f"{mode}/assess/hidden.jpg", CiProcess="ImageInspect")
    assert found == {
        "picSize": len(photo) + len(archive),
        "picType": "jpeg",
        "suspicious": True,
        "suspiciousBeginByte": len(photo),
        "suspiciousEndByte": len(photo) + len(archive) - 1,
        "suspiciousSize": len(archive),
        "suspiciousType": "ZIP",
    }
    for rule in ("ci-process=AssessQuality", "imageInspect"):
        with pytest.raises(CosServiceError) as info:
            client.ci_put_object(
                Bucket=PHOTOS, Body=photo, Key=f"{mode}/assess/refused.jpg", PicOperations=_rules(("q.xml", rule))
            )
        assert (info.value.get_status_code(), info.value.get_error_code()) == (501, "NotImplemented")
        with pytest.raises(CosServiceError):
            client.head_object(Bucket=PHOTOS, Key=f"{mode}/assess/refused.jpg")  # nothing written
