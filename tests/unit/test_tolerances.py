"""The tolerance table (tests/support/tolerances.py) is complete, every relaxation says why,
the differential test reads it, and a difference over budget does fail."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.io import probe
from ci_engine.plan import plan, resolve
from ci_engine.plan import steps as P
from ci_engine.types import ImageFormat
from tests.support import tolerances as T


def test_every_primitive_and_format_has_an_entry() -> None:
    # composite is compared across the backends by test_watermark.py (test_backends_agree,
    # at most one level), not by the differential test, so it has no entry here.
    assert P.BACKEND_METHODS - {"composite"} <= set(T.STEPS)
    formats = {f.value for f in ImageFormat}
    assert formats <= set(T.DECODERS) and formats <= set(T.ENCODERS)


def test_every_relaxation_says_why() -> None:
    default_why = T.Tolerance().why
    for table in (T.STEPS, T.DECODERS, T.ENCODERS):
        for key, tol in table.items():
            if tol != T.EXACT:
                assert tol.why and tol.why != default_why, key


def test_exact_primitives_stay_exact() -> None:
    """Start strict: the primitives that copy pixels or reproduce libvips' integer arithmetic
    have no budget at all."""
    for key in ("crop", "embed", "rotate90", "flip", "select_frames", "linear", "grayscale", "mask", "flatten"):
        assert T.STEPS[key] == T.EXACT, key
    for key in ("png", "bmp", "tiff"):
        assert T.ENCODERS[key] == T.EXACT, key
    for key in ("jpeg", "webp", "gif", "heif"):  # exact for equal pixels
        assert (T.ENCODERS[key].max_abs, T.ENCODERS[key].mean_abs) == (0, 0.0), key


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def test_budget_composes_along_the_plan() -> None:
    data = _png(np.zeros((40, 60, 3), np.uint8))
    header = probe(data)
    exact = T.budget(resolve(plan(ce.parse("imageMogr2/cut/20x20x3x4/flip/vertical/format/png")), header))
    assert (exact.max_abs, exact.mean_abs, exact.compare) == (0, 0.0, True)
    resized = T.budget(resolve(plan(ce.parse("imageMogr2/thumbnail/30x/sharpen/100/format/png")), header))
    # the resize's own budget, amplified by the sharpen's kernel (1 + 2 * 1.0)
    assert resized.mean_abs == pytest.approx(T.STEPS["resize"].mean_abs * 3)
    tiny = T.budget(resolve(plan(ce.parse("imageMogr2/thumbnail/2x")), header))
    assert not tiny.compare
    assert {"decode:png", "step:resize", "step:sharpen", "encode:png"} <= T.used()


def test_the_differential_test_reads_the_table() -> None:
    source = (Path(__file__).resolve().parents[1] / "property" / "test_differential.py").read_text("utf-8")
    assert "from tests.support import tolerances as T" in source and "T.budget(" in source


def test_a_difference_over_budget_fails_the_differential_comparison() -> None:
    """The comparison must be able to fail: a two-level shift on an exact pipeline."""
    from tests.property import test_differential as D

    pixels = np.full((8, 8, 3), 100, np.uint8)
    data = _png(pixels)
    resolved = resolve(plan(ce.parse("imageMogr2/flip/vertical/format/png")), probe(data))
    vips = ce.Result(data, "png", 8, 8, 1, None, resolved)
    same = dataclasses.replace(vips)
    assert D.compare(vips, same)[:2] == (0.0, 0.0)
    shifted = dataclasses.replace(vips, data=_png(pixels + 2))
    with pytest.raises(AssertionError, match="over"):
        D.compare(vips, shifted)
