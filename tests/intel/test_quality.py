"""AssessQuality: geometry flags exact, grey and pure-colour detection, a clarity score that
falls with blur and noise; the XML field by field."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

import ci_engine as ce
from ci_engine.intel.quality import assess

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"
FIELDS = ["LongImage", "BlackAndWhite", "SmallImage", "BigImage", "PureImage", "ClarityScore", "RequestId"]


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _fields(data: bytes) -> dict[str, str]:
    result = ce.process(data, "ci-process=AssessQuality")
    assert (result.format, result.mime_type) == ("xml", "application/xml")
    root = ET.fromstring(result.data)
    assert root.tag == "Response"
    assert [child.tag for child in root] == FIELDS  # AestheticScore / LowQualityScore: not computed
    return {child.tag: child.text or "" for child in root}


def test_a_sharp_colour_photograph() -> None:
    fields = _fields((FACES / "grace_hopper.jpg").read_bytes())
    assert {k: v for k, v in fields.items() if k != "ClarityScore"} == {
        "LongImage": "FALSE",
        "BlackAndWhite": "FALSE",
        "SmallImage": "FALSE",
        "BigImage": "FALSE",
        "PureImage": "FALSE",
        "RequestId": "",
    }
    assert int(fields["ClarityScore"]) > 50


@pytest.mark.parametrize("name", ["astronaut.jpg", "grace_hopper.jpg", "chelsea.jpg", "rocket.jpg"])
def test_clarity_falls_with_blur_noise_and_compression(name: str) -> None:
    image = Image.open(FACES / name).convert("RGB")
    sharp = assess(_jpeg(image)).clarity_score
    soft = assess(_jpeg(image.filter(ImageFilter.GaussianBlur(1)))).clarity_score
    blurred = assess(_jpeg(image.filter(ImageFilter.GaussianBlur(2.5)))).clarity_score
    noise = np.random.default_rng(1).normal(0, 15, (image.height, image.width, 3))
    noisy = assess(_jpeg(Image.fromarray(np.clip(np.asarray(image) + noise, 0, 255).astype(np.uint8))))
    crushed = assess(_jpeg(image, quality=10)).clarity_score
    assert sharp > 50 and sharp > soft > blurred and blurred < 25
    assert noisy.clarity_score < sharp - 25 and crushed < sharp - 25


def test_geometry_flags() -> None:
    photo = Image.open(FACES / "coffee.jpg").convert("RGB")
    small = _fields(_jpeg(photo.resize((178, 119))))
    assert small == {
        "LongImage": "FALSE",
        "BlackAndWhite": "FALSE",
        "SmallImage": "TRUE",
        "BigImage": "FALSE",
        "PureImage": "FALSE",
        "ClarityScore": "0",
        "RequestId": "",
    }
    assert _fields(_jpeg(photo.resize((179, 119))))["SmallImage"] == "FALSE"
    assert _fields(_jpeg(photo.resize((900, 300))))["LongImage"] == "TRUE"
    assert _fields(_jpeg(photo.resize((899, 300))))["LongImage"] == "FALSE"
    assert _fields(_jpeg(photo.resize((1001, 1001))))["BigImage"] == "TRUE"
    assert _fields(_jpeg(photo.resize((1500, 1000))))["BigImage"] == "FALSE"


def test_grey_images_are_black_and_white_colour_ones_are_not() -> None:
    assert _fields((FACES / "camera.jpg").read_bytes())["BlackAndWhite"] == "TRUE"  # a grey JPEG
    grey_in_rgb = Image.open(FACES / "astronaut.jpg").convert("L").convert("RGB")
    assert _fields(_jpeg(grey_in_rgb))["BlackAndWhite"] == "TRUE"  # three equal channels, JPEG chroma
    sepia = Image.merge("RGB", [grey_in_rgb.getchannel(0).point(lambda v: min(255, v + 12)), *grey_in_rgb.split()[1:]])
    assert _fields(_jpeg(sepia))["BlackAndWhite"] == "FALSE"


def test_pure_colour_and_plain_text_images() -> None:
    solid = _fields(_jpeg(Image.new("RGB", (400, 300), (200, 30, 40))))
    assert (solid["PureImage"], solid["ClarityScore"]) == ("TRUE", "0")
    page = Image.new("RGB", (800, 600), "white")
    draw = ImageDraw.Draw(page)
    for line in range(20):
        draw.text((20, 20 + line * 28), f"The quick brown fox jumps over the lazy dog {line}", fill="black")
    assert _fields(_jpeg(page))["PureImage"] == "TRUE"
    for name in ("astronaut.jpg", "coffee.jpg", "chelsea.jpg"):
        assert _fields((FACES / name).read_bytes())["PureImage"] == "FALSE", name


def test_not_an_image() -> None:
    with pytest.raises(ce.InvalidImageFormatError):
        ce.process(b"not an image at all", "ci-process=AssessQuality")
