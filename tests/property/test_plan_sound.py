"""Plan soundness: the rewrite rules change how, never what.

For generated imageMogr2 pipelines on photographic JPEG inputs (so that shrink-on-load,
crop-before-resize and resize merging actually fire), running with ``RULES`` and with
``rules=()`` on the same backend gives the same outcome: both fail with the same error code,
or both succeed with identical width, height, format and frame count and pixels within the
resampling tolerance. Planning is also idempotent and the rules are deterministic.
"""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import ci_engine as ce
import ci_engine.io
from ci_engine import ast as A
from ci_engine.backends import available_backends
from ci_engine.plan import RULES, plan, resolve
from ci_engine.types import Gravity
from tests.support.images import assert_similar, sample, to_array

# Bounds of this module; they move into tests/support/tolerances.py (the one table) when it
# lands. The rules only change resampling: shrink-on-load decodes through the DCT scaler
# (a box average of 8x8 blocks at 1/8), crop_before_resize and a folded crop shift a crop
# edge by at most half an output pixel, merge_resizes resamples once instead of twice.
# Measured over 384 generated plans on these photos (/tmp calibration run, 2026-11-22):
# worst PSNR 27.9 dB; outputs of at least 64 px: mean <= 6.0, PSNR >= 29.2, dHash <= 3.
# The worst cases are tiny outputs (5-36 px from 1200 px), where each output pixel
# averages hundreds of source pixels and two legitimate downscaling paths differ most.
SOUNDNESS = {"max_mean": 7.5, "min_psnr": 27.0}
SOUNDNESS_DHASH = 6  # dHash needs at least 16 px on the short side to mean anything

_SOURCES: dict[tuple[int, int], bytes] = {}


def source(width: int, height: int) -> bytes:
    if (width, height) not in _SOURCES:
        photo = Image.open(io.BytesIO(sample())).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        photo.save(out, "JPEG", quality=90)
        _SOURCES[(width, height)] = out.getvalue()
    return _SOURCES[(width, height)]


sides = st.integers(min_value=8, max_value=320)
gravities = st.sampled_from(list(Gravity))

geometries = st.one_of(
    st.builds(A.FitWidth, sides),
    st.builds(A.FitHeight, sides),
    st.builds(A.FitBox, sides, sides),
    st.builds(A.ShrinkBox, sides, sides),
    st.builds(A.CoverBox, sides, sides),
    st.builds(A.ExactSize, sides, sides),
    st.builds(A.ScalePercent, st.integers(5, 150)),
    st.builds(A.MaxArea, st.integers(64, 200_000)),
)
ops = st.one_of(
    st.builds(A.Thumbnail, geometries),
    st.builds(A.Crop, st.builds(A.CropBox, sides, sides), gravity=st.none() | gravities),
    st.builds(A.Crop, st.builds(A.CropWidth, sides), gravity=st.none() | gravities),
    st.builds(A.Cut, sides, sides, st.integers(0, 100), st.integers(0, 100), gravity=st.none() | gravities),
    st.builds(A.Rotate, st.sampled_from([90, 180, 270])),
    st.builds(A.Flip, st.sampled_from(list(ce.types.FlipAxis))),
    st.builds(A.ScalePercent, st.integers(5, 150)).map(A.Thumbnail),
    st.builds(A.SmartCrop, sides, sides),
    st.just(A.AutoOrient()),
    st.builds(A.Grayscale, st.just(True)),
)
pipelines = st.lists(ops, min_size=1, max_size=4).map(lambda o: A.Pipeline(steps=(A.ImageMogr2(ops=tuple(o)),)))
inputs = st.sampled_from([(1200, 675), (960, 720), (640, 480), (333, 500)])


def _outcome(data: bytes, pipeline: A.Pipeline, backend: str, rules: tuple) -> ce.Result | str:
    try:
        return ce.process(data, pipeline, backend=backend, rules=rules)
    except ce.CIError as exc:
        return exc.code


@settings(max_examples=60)
@given(pipeline=pipelines, size=inputs, backend=st.sampled_from(available_backends()))
def test_rules_preserve_the_result(pipeline: A.Pipeline, size: tuple[int, int], backend: str) -> None:
    data = source(*size)
    optimised = _outcome(data, pipeline, backend, RULES)
    reference = _outcome(data, pipeline, backend, ())
    if isinstance(optimised, str) or isinstance(reference, str):
        assert optimised == reference
        return
    geometry = ("format", "width", "height", "frames")
    assert [getattr(optimised, k) for k in geometry] == [getattr(reference, k) for k in geometry]
    if any(isinstance(op, A.SmartCrop) for step in pipeline.steps for op in step.ops):  # type: ignore[attr-defined]
        # scrop places its window where the content is most interesting; a rule that
        # changes the pixels it looks at by a level can move the window. Geometry only.
        return
    short = min(optimised.width, optimised.height)
    if short < 8:
        # A 13x1 output is one row of averages of whole source regions: pixel statistics
        # on it measure nothing about the rules. Geometry (above) is still exact.
        return
    assert_similar(
        to_array(optimised.data),
        to_array(reference.data),
        name=f"sound-{backend}-{ce.render(pipeline)}",
        max_dhash=SOUNDNESS_DHASH if short >= 16 else None,
        **SOUNDNESS,
    )


def test_the_rules_do_fire_on_these_inputs() -> None:
    """The property above would be vacuous if no rule ever rewrote a plan."""
    seen: set[str] = set()
    header = ci_engine.io.probe(source(1200, 675))
    for text in (
        "imageMogr2/thumbnail/100x",
        "imageMogr2/thumbnail/!300x300r/gravity/center/crop/300x300",
        "imageMogr2/thumbnail/600x/thumbnail/200x",
        "imageMogr2/rotate/90/rotate/90",
    ):
        seen.update(resolve(plan(ce.parse(text)), header).applied)
    assert seen == {"fold_shrink_on_load", "crop_before_resize", "merge_resizes", "drop_identity_steps"}


@given(pipeline=pipelines, size=inputs)
def test_planning_is_deterministic_and_idempotent(pipeline: A.Pipeline, size: tuple[int, int]) -> None:
    header = ci_engine.io.probe(source(*size))
    try:
        first = resolve(plan(pipeline), header)
    except ce.CIError:
        return
    assert resolve(plan(pipeline), header) == first
    again = first
    for rule in RULES:
        again = rule(again)
    assert again.steps == first.steps and again.decode == first.decode
    sizes = first.sizes()
    assert sizes[-1] == (first.width, first.height)
    assert np.all(np.array(sizes) >= 1)
