"""Issue 15 over HTTP, through the official COS SDK (``CosS3Client(cfg, retry=0)``) against a
live ``ci-engine serve`` (the ``server`` fixture), proxy and IP mode: ``ci_qrcode_generate``
on the bucket (no object) and imageSlim's ``X-Slimflag`` header."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from qcloud_cos.cos_exception import CosServiceError

import ci_engine
from tests.server.conftest import PHOTOS

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
