"""Integer rounding in ci_engine.plan.geometry is the exact rounding of fractions.

``round_ratio(num, den)`` (and ``round_half_up`` reading a value's numerator and
denominator) replaced ``round_half_up(Fraction(num, den))`` so that a one-shot command does
not import :mod:`fractions`; the result must be the same for every ratio.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ci_engine.plan import geometry as G
from ci_engine.plan.rules import crop_before_resize as R

REPO = Path(__file__).resolve().parents[2]


def _reference(x: Fraction) -> int:
    return max(1, math.floor(x + Fraction(1, 2)))


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**9))
def test_round_ratio_is_the_rounding_of_the_fraction(num: int, den: int) -> None:
    assert G.round_ratio(num, den) == _reference(Fraction(num, den))
    assert G.round_half_up(Fraction(num, den)) == _reference(Fraction(num, den))
    assert R._edge(Fraction(num, den)) == max(0, math.floor(Fraction(num, den) + Fraction(1, 2)))


@given(st.integers(-(10**9), 10**9))
def test_round_half_up_of_an_int_and_of_a_float(n: int) -> None:
    assert G.round_half_up(n) == max(1, n)
    assert G.round_half_up(n + 0.5) == _reference(Fraction(n + 0.5))


def test_exact_halves_round_up() -> None:
    assert [G.round_ratio(k, 2) for k in (1, 3, 5, 7)] == [1, 2, 3, 4]
    assert G.round_ratio(2999, 1000) == 3 and G.round_ratio(2499, 1000) == 2


@pytest.mark.skipif(
    bool(os.environ.get("CI_ENGINE_BLOCK_PYVIPS")), reason="libvips is blocked (Pillow loads fractions)"
)
def test_a_thumbnail_on_libvips_loads_no_fractions() -> None:
    code = (
        "import sys\n"
        "from ci_engine import process\n"
        f"data = open({str(REPO / 'docs/samples/kleiber.jpg')!r}, 'rb').read()\n"
        "assert process(data, 'imageMogr2/thumbnail/200x/quality/80', backend='vips').width == 200\n"
        "print(sorted(m for m in ('fractions', 'decimal') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"
