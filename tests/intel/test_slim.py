"""imageSlim: same format and size, smaller file, SSIM >= 0.98 against the input (measured
here with an independent implementation), never larger than the input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

import ci_engine as ce
from ci_engine.backends import available_backends
from ci_engine.intel.slim import COMPRESSED, NOT_COMPRESSED

SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"
FACES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "faces"
PHOTOS = [FACES / name for name in ("astronaut.jpg", "camera.jpg", "chelsea.jpg", "coffee.jpg", "grace_hopper.jpg")]
PHOTOS += [FACES / "rocket.jpg", SAMPLES / "kleiber.jpg", SAMPLES / "ladybird.jpg"]


def _ssim(a: np.ndarray, b: np.ndarray, window: int = 7) -> float:
    """SSIM with a uniform 7x7 window (scikit-image's default), numpy only."""
    x, y = a.astype(np.float64), b.astype(np.float64)

    def mean(v: np.ndarray) -> np.ndarray:
        c = np.cumsum(np.cumsum(np.pad(v, ((1, 0), (1, 0))), axis=0), axis=1)
        return (c[window:, window:] - c[:-window, window:] - c[window:, :-window] + c[:-window, :-window]) / window**2

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = mean(x), mean(y)
    vx, vy, cov = mean(x * x) - mx * mx, mean(y * y) - my * my, mean(x * y) - mx * my
    return float((((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))).mean())


def _luma(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def _save(image: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize(("name", "least"), [("kleiber.jpg", 0.30), ("ladybird.jpg", 0.25)])
def test_jpeg_photographs(name: str, least: float) -> None:
    data = (SAMPLES / name).read_bytes()
    result = ce.process(data, "imageSlim")
    assert (result.format, result.slim_flag) == ("jpeg", COMPRESSED)
    original = Image.open(io.BytesIO(data))
    assert (result.width, result.height) == original.size
    assert len(result.data) <= (1 - least) * len(data)
    assert _ssim(_luma(data), _luma(result.data)) >= 0.98


@pytest.mark.parametrize("backend", available_backends())
def test_every_output_keeps_ssim_on_the_whole_image(backend: str) -> None:
    """Real photographs (licensed fixtures, one grey): each output is smaller, the same size
    in pixels, and keeps SSIM >= 0.98 on the whole image (7 x 7 uniform window, measured
    here); the mean reduction is far above what Huffman optimisation alone gives (~5 %)."""
    cuts = []
    for path in PHOTOS:
        data = path.read_bytes()
        result = ce.process(data, "imageSlim", backend=backend)
        assert (result.format, result.slim_flag) == ("jpeg", COMPRESSED), path.name
        assert (result.width, result.height) == Image.open(io.BytesIO(data)).size
        assert len(result.data) < len(data)
        assert _ssim(_luma(data), _luma(result.data)) >= 0.98, path.name
        cuts.append(1 - len(result.data) / len(data))
    assert sum(cuts) / len(cuts) >= 0.25


@pytest.mark.parametrize("backend", available_backends())
def test_a_large_image_searched_on_a_mosaic_keeps_ssim_on_the_whole_image(backend: str) -> None:
    """Over 2 MP the search sees a 0.59 MP mosaic of tiles; the output is still checked on
    the whole image (and a lower quality tried when the mosaic judged harder)."""
    photo = Image.open(SAMPLES / "ladybird.jpg").convert("RGB").resize((2400, 1500), Image.Resampling.LANCZOS)
    data = _save(photo, "JPEG", quality=95)
    result = ce.process(data, "imageSlim", backend=backend)
    assert (result.format, result.slim_flag, result.width, result.height) == ("jpeg", COMPRESSED, 2400, 1500)
    assert len(result.data) <= 0.5 * len(data)
    assert _ssim(_luma(data), _luma(result.data)) >= 0.98


def test_png_graphics_get_a_palette_and_photographs_stay_lossless() -> None:
    chart = Image.new("RGB", (640, 400), "white")
    draw = ImageDraw.Draw(chart)
    for i in range(12):
        draw.rectangle((30 + i * 50, 380 - i * 25, 60 + i * 50, 380), fill=(40 + i * 15, 90, 200 - i * 10))
        draw.text((30 + i * 50, 385 - i * 25 - 20), str(i * 7), fill="black")
    data = _save(chart, "PNG", compress_level=1)
    result = ce.process(data, "imageSlim")
    assert (result.format, result.slim_flag, result.width, result.height) == ("png", COMPRESSED, 640, 400)
    assert len(result.data) <= 0.5 * len(data)
    assert _ssim(_luma(data), _luma(result.data)) >= 0.98
    photo = Image.open(SAMPLES / "ladybird.jpg").convert("RGB")
    png = _save(photo, "PNG", compress_level=1)
    for backend in available_backends():
        slimmed = ce.process(png, "imageSlim", backend=backend)
        assert (slimmed.format, slimmed.slim_flag) == ("png", COMPRESSED)
        assert len(slimmed.data) < len(png)
        # a photograph fails the palette's SSIM bound: only lossless recompression, same pixels
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(slimmed.data)).convert("RGB")), np.asarray(photo))


def test_webp_lossy_and_lossless() -> None:
    photo = Image.open(SAMPLES / "kleiber.jpg").convert("RGB")
    lossy = _save(photo, "WEBP", quality=95)
    result = ce.process(lossy, "imageSlim")
    assert (result.format, result.slim_flag) == ("webp", COMPRESSED)
    assert len(result.data) < 0.8 * len(lossy) and _ssim(_luma(lossy), _luma(result.data)) >= 0.98
    lossless = _save(photo.resize((300, 169)), "WEBP", lossless=True, method=0)
    again = ce.process(lossless, "imageSlim")
    assert again.format == "webp" and len(again.data) <= len(lossless)
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(again.data)).convert("RGB")),
        np.asarray(Image.open(io.BytesIO(lossless)).convert("RGB")),
    )


def test_never_larger_and_other_formats_come_back_unchanged() -> None:
    small = _save(
        Image.open(SAMPLES / "kleiber.jpg").convert("RGB").resize((240, 135)),
        "JPEG",
        quality=30,
        optimize=True,
        progressive=True,
    )
    result = ce.process(small, "imageSlim")
    assert (result.data, result.slim_flag) == (small, NOT_COMPRESSED)
    gif = _save(Image.new("P", (50, 40), 3), "GIF")
    result = ce.process(gif, "imageSlim")
    assert (result.data, result.format, result.slim_flag) == (gif, "gif", NOT_COMPRESSED)


def test_after_other_steps_and_errors() -> None:
    data = (SAMPLES / "kleiber.jpg").read_bytes()
    result = ce.process(data, "imageMogr2/thumbnail/600x|imageSlim")
    plain = ce.process(data, "imageMogr2/thumbnail/600x")
    assert (result.width, result.format) == (600, "jpeg") and len(result.data) < len(plain.data)
    with pytest.raises(ce.InvalidArgumentError):
        ce.process(data, "imageSlim|imageMogr2/thumbnail/600x")
    with pytest.raises(ce.InvalidImageFormatError):
        ce.process(b"no image here", "imageSlim")
