"""Golden images keyed by the processing string (cases.toml), on every backend here.

Expected outputs were produced by the vips backend and are stored decoded, as RGBA PNG.
A missing expected file fails with how to create it; ``CI_ENGINE_UPDATE_GOLDEN=1``
(re)writes them from the vips backend. Comparisons leave actual/expected/diff PNGs in
tests/_artifacts/ on failure.
"""

from __future__ import annotations

import io
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.backends import available_backends
from tests.support.images import assert_similar, frames_of

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures" / "images"
CASES = tomllib.loads((HERE / "cases.toml").read_text("utf-8"))["case"]
UPDATE = os.environ.get("CI_ENGINE_UPDATE_GOLDEN") == "1"

# Bounds per case family, on RGBA (colour under fully transparent pixels zeroed). The vips
# backend reproduces its own goldens exactly up to encoder determinism; the Pillow backend
# is held to the differential bounds of the same families (tests/support/tolerances.py).
TOLERANCES: dict[str, dict[str, dict[str, float]]] = {
    # crops, flips, quarter turns: the same pixels, moved
    "exact": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 0.0}},
    # Lanczos resampling: libvips' reduce and Pillow's resize differ in kernel details
    "resample": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 2.5, "min_psnr": 32.0}},
    # anti-aliased masks: same coverage formula, rounding of the blend may differ by 1
    "shape": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 1.0, "min_psnr": 38.0}},
    # bicubic rotation onto a transparent canvas: interpolators differ at every pixel
    "rotate": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 6.0, "min_psnr": 24.0, "max_dhash": 6}},
    # Gaussian blur / unsharp mask: libvips' integer mask vs a float kernel
    "filter": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 2.0, "min_psnr": 34.0}},
    # point operations: rounding only
    "point": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 0.6, "min_psnr": 45.0}},
    # the window is the backend's to find: only the perceptual structure is compared
    "smartcrop": {"vips": {"max_mean": 0.0}, "pillow": {"max_dhash": 20}},
    # lossy encoders at quality 90-95
    "lossy": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 3.0, "min_psnr": 30.0}},
    # 256-colour quantisation of a photo (same codec on both backends, different input)
    "palette": {"vips": {"max_mean": 0.0}, "pillow": {"max_mean": 4.0, "min_psnr": 28.0}},
}


def _rgba(data: bytes) -> np.ndarray:
    pixels = np.asarray(frames_of(data)[0].convert("RGBA")).copy()
    pixels[pixels[..., 3] == 0, :3] = 0  # colour under transparency is not observable
    return pixels


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_golden(case: dict[str, str], backend: str) -> None:
    source = (FIXTURES / case["source"]).read_bytes()
    result = ce.process(source, case["rule"], backend=backend)
    actual = _rgba(result.data)
    expected_path = HERE / "expected" / f"{case['id']}.png"
    if UPDATE and backend == "vips":
        Image.fromarray(actual).save(expected_path, optimize=True)
    if not expected_path.exists():
        pytest.fail(f"no golden image {expected_path.name}: run CI_ENGINE_UPDATE_GOLDEN=1 pytest {__file__}")
    expected = np.asarray(Image.open(expected_path).convert("RGBA"))
    assert (result.width, result.height) == (expected.shape[1], expected.shape[0])
    bounds = TOLERANCES[case["tolerance"]][backend]
    assert_similar(actual, expected, name=f"golden-{case['id']}-{backend}", **bounds)


def test_every_case_names_a_known_tolerance_and_an_existing_source() -> None:
    for case in CASES:
        assert case["tolerance"] in TOLERANCES, case["id"]
        assert (FIXTURES / case["source"]).exists(), case["id"]
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_golden_files_are_small() -> None:
    total = sum(p.stat().st_size for p in (HERE / "expected").glob("*.png"))
    assert total < 3_000_000, total


def test_io_roundtrip_of_rgba_helper() -> None:
    image = Image.new("RGBA", (2, 1), (10, 20, 30, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    assert _rgba(out.getvalue()).tolist() == [[[0, 0, 0, 0], [0, 0, 0, 0]]]
