"""The Pillow backend convolves (blur, sharpen) band by band to bound its memory; the bands
must not show: the result equals the one-piece computation exactly."""

from __future__ import annotations

import numpy as np
import pytest

from ci_engine.backends import pillow as pillow_backend
from ci_engine.plan import steps as P

STEPS = [
    P.Blur(sigma=2.0, radius=4),
    P.Blur(sigma=8.0, radius=20),
    P.Blur(sigma=0.5, radius=2),
    P.Sharpen(amount=70, sigma=1.0),
    P.Sharpen(amount=200, sigma=3.0),
]


def _image(height: int, width: int, channels: int, frames: int) -> np.ndarray:
    rng = np.random.default_rng(height * 1000 + width + channels)
    y = np.linspace(0, 1, height)[:, None, None]
    x = np.linspace(0, 1, width)[None, :, None]
    smooth = 255 * (0.5 + 0.5 * np.sin(6 * x + 9 * y + np.arange(channels)))
    pixels = np.clip(smooth[None] + rng.integers(0, 40, (frames, height, width, channels)), 0, 255).astype(np.uint8)
    if channels in (2, 4):
        pixels[..., -1] = rng.integers(0, 256, (frames, height, width))
        pixels[:, :5, :, -1] = 0
    return pixels


@pytest.mark.parametrize("shape", [(37, 23, 3, 1), (200, 61, 4, 2), (513, 40, 1, 1), (90, 7, 2, 1)])
@pytest.mark.parametrize("step", STEPS, ids=repr)
def test_bands_give_the_one_piece_result(
    shape: tuple[int, int, int, int], step: P.Prim, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = pillow_backend.PillowBackend()
    pixels = _image(*shape)
    method = getattr(backend, step.method)
    monkeypatch.setattr(pillow_backend, "BAND_PIXELS", 1 << 40)
    whole = method(pillow_backend.PillowImage(pixels.copy()), step).pixels
    width = shape[1]
    for band_pixels in (1, 7 * width, 3 * width + 1):
        monkeypatch.setattr(pillow_backend, "BAND_PIXELS", band_pixels)
        banded = method(pillow_backend.PillowImage(pixels.copy()), step).pixels
        assert banded.shape == whole.shape
        assert np.array_equal(banded, whole), band_pixels


def test_a_tall_image_is_really_cut_into_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = pillow_backend._convsep_uchar

    def spy(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
        seen.append(frame.shape[0])
        return original(frame, mask)

    monkeypatch.setattr(pillow_backend, "_convsep_uchar", spy)
    monkeypatch.setattr(pillow_backend, "BAND_PIXELS", 40 * 10)
    pillow_backend.PillowBackend().blur(pillow_backend.PillowImage(_image(300, 10, 3, 1)), STEPS[0])
    assert len(seen) > 1 and max(seen) < 300
