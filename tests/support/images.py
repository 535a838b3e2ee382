"""Image helpers for tests: synthetic content, decoding to arrays, and tolerant comparisons
that leave evidence.

Comparisons report the measured value in the assertion message, and on failure write the
actual and expected images (and their difference) to ``tests/_artifacts/`` (git-ignored),
as Pillow's test helpers do.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
from PIL import Image

ARTIFACTS = Path(__file__).resolve().parent.parent / "_artifacts"
SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"


def sample(name: str = "kleiber.jpg") -> bytes:
    return (SAMPLES / name).read_bytes()


# -- synthetic content -------------------------------------------------------------------------------


def gradient(width: int, height: int, *, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth content (sums of low-frequency waves): resampling kernels differ little on it,
    so differential tolerances stay meaningful."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((height, width, channels), np.float64)
    for c in range(channels):
        fx, fy, phase = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 6.28)
        out[..., c] = 127.5 + 120 * np.sin(2 * np.pi * (fx * x / max(width, 1) + fy * y / max(height, 1)) + phase)
    if channels in (2, 4):
        out[..., -1] = 255 * np.clip(x / max(width - 1, 1), 0.2, 1.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    """Encode an (h, w, c) array with Pillow."""
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    image = Image.fromarray(pixels[..., 0] if mode == "L" else pixels, mode)
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def animated(frames: list[np.ndarray], fmt: str = "GIF", *, duration: int | list[int] = 80, loop: int = 0) -> bytes:
    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    images[0].save(out, format=fmt, save_all=True, append_images=images[1:], duration=duration, loop=loop)
    return out.getvalue()


# -- decoding -------------------------------------------------------------------------------------------


def frames_of(data: bytes) -> list[Image.Image]:
    """Every frame of an encoded image, as Pillow images (HEIF through pillow-heif)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    image = Image.open(io.BytesIO(data))
    out = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        out.append(image.copy())
    return out


def to_array(data: bytes, mode: str = "RGB") -> np.ndarray:
    """The first frame as an (h, w, c) uint8 array in ``mode``."""
    return np.asarray(frames_of(data)[0].convert(mode))


# -- comparisons ----------------------------------------------------------------------------------------


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def dhash(pixels: np.ndarray) -> int:
    """64-bit difference hash (greyscale, 9x8, neighbours compared), as sharp's tests use."""
    grey = Image.fromarray(pixels).convert("L").resize((9, 8), Image.Resampling.LANCZOS)
    g = np.asarray(grey, dtype=np.int16)
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def dhash_distance(a: np.ndarray, b: np.ndarray) -> int:
    return bin(dhash(a) ^ dhash(b)).count("1")


def _save_evidence(name: str, actual: np.ndarray, expected: np.ndarray) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120]
    Image.fromarray(actual).save(ARTIFACTS / f"{stem}.actual.png")
    Image.fromarray(expected).save(ARTIFACTS / f"{stem}.expected.png")
    if actual.shape == expected.shape:
        diff = np.abs(actual.astype(np.int16) - expected.astype(np.int16)).clip(0, 255).astype(np.uint8)
        Image.fromarray(diff).save(ARTIFACTS / f"{stem}.diff.png")
    return ARTIFACTS / stem


def assert_similar(
    actual: np.ndarray,
    expected: np.ndarray,
    *,
    name: str,
    max_mean: float | None = None,
    min_psnr: float | None = None,
    max_dhash: int | None = None,
) -> None:
    """Same shape, and within every bound given; the message carries the measured values."""
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    measured = {
        "mean": mean_abs_diff(actual, expected),
        "psnr": psnr(actual, expected),
        "dhash": dhash_distance(actual, expected) if max_dhash is not None else 0,
    }
    failures = []
    if max_mean is not None and measured["mean"] > max_mean:
        failures.append(f"mean abs diff {measured['mean']:.3f} > {max_mean}")
    if min_psnr is not None and measured["psnr"] < min_psnr:
        failures.append(f"PSNR {measured['psnr']:.2f} dB < {min_psnr}")
    if max_dhash is not None and measured["dhash"] > max_dhash:
        failures.append(f"dHash distance {measured['dhash']} > {max_dhash}")
    if failures:
        where = _save_evidence(name, actual, expected)
        raise AssertionError(f"{name}: " + "; ".join(failures) + f" (images: {where}.*.png)")
