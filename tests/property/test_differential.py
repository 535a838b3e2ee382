"""Differential test: the Pillow backend against the libvips backend.

Hypothesis draws small smooth synthetic images (1-96 px a side; RGB, RGBA, L or palette;
1-5 frames in GIF/WebP, stills in PNG, JPEG, GIF, WebP, BMP, TIFF) and imageMogr2 pipelines
built from the AST classes, runs both through ``ci_engine.process`` and requires:

- the same outcome: both fail with the same error class, or both succeed;
- equal format, width, height and frame count (geometry is resolved once by the planner:
  any difference is a bug, there is no tolerance for it);
- pixels within the budget :func:`tests.support.tolerances.budget` builds for the plan from
  the one tolerance table (compared premultiplied, so colour under full transparency does not
  count).

The default ("ci") profile runs ``MAX_EXAMPLES`` (120) derandomised examples, about 25 s
here. A long random run (3000 examples: about 6 minutes)::

    CI_ENGINE_HYPOTHESIS_PROFILE=dev CI_ENGINE_DIFF_EXAMPLES=3000 \
        python -m pytest tests/property/test_differential.py -x

``CI_ENGINE_DIFF_CALIBRATE=<file>`` appends every measured difference (max, mean, size, the
table entries, the case) to ``<file>`` instead of asserting: that is how the table's numbers
were measured.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from numpy.typing import NDArray
from PIL import Image

import ci_engine as ce
from ci_engine import ast as A
from ci_engine.backends import available_backends
from ci_engine.types import Color, FlipAxis, Gravity, OffsetMode, OutputFormat
from tests.support import tolerances as T

pytestmark = pytest.mark.skipif(
    not {"vips", "pillow"} <= set(available_backends()),
    reason="the differential test needs both backends (pyvips is not importable here)",
)

MAX_EXAMPLES = int(os.environ.get("CI_ENGINE_DIFF_EXAMPLES", "120"))
CALIBRATE = os.environ.get("CI_ENGINE_DIFF_CALIBRATE", "")
"""A file to append measured differences to instead of asserting them (calibration runs)."""


# -- images ---------------------------------------------------------------------------------------


def smooth(height: int, width: int, channels: int, params: Sequence[float]) -> NDArray[np.uint8]:
    """Sinusoids with periods of 9 px or more: ``params`` holds 3 values per channel
    (x frequency, y frequency, phase), each in 0..1."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((height, width, channels))
    for k in range(channels):
        fx, fy, phase = params[3 * k : 3 * k + 3]
        out[..., k] = 127.5 + 120 * np.sin(0.7 * (fx - 0.5) * x + 0.7 * (fy - 0.5) * y + 6.28 * phase)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_image(pixels: NDArray[np.uint8], mode: str, container: str) -> Image.Image:
    rgb = np.ascontiguousarray(pixels[..., :3])
    if mode == "L":
        return Image.fromarray(np.ascontiguousarray(pixels[..., 0]), "L")
    if mode == "RGB" or (mode == "RGBA" and container in ("jpeg", "bmp")):
        return Image.fromarray(rgb, "RGB")
    if mode == "RGBA" and container != "gif":
        return Image.fromarray(np.ascontiguousarray(pixels), "RGBA")
    quant = Image.fromarray(rgb, "RGB").quantize(48, dither=Image.Dither.NONE)
    if mode == "RGBA" or (mode == "P" and container != "jpeg"):
        index = np.asarray(quant).copy()
        index[pixels[..., 3] < 128] = 255  # hard transparency: the palette's last entry
        palette = (quant.getpalette() or [])[: 48 * 3]
        quant = Image.fromarray(index, "P")
        quant.putpalette(palette + [0] * (256 * 3 - len(palette)))
        quant.info["transparency"] = 255
    return quant.convert("RGB") if container == "jpeg" else quant


def encode_input(frames: list[NDArray[np.uint8]], mode: str, container: str, delays: list[int]) -> bytes:
    images = [to_image(f, mode, container) for f in frames]
    out = io.BytesIO()
    options: dict[str, Any] = {"jpeg": {"quality": 92}, "webp": {"lossless": True}}.get(container, {})
    if "transparency" in images[0].info and container in ("gif", "png"):
        options["transparency"] = images[0].info["transparency"]
    if len(images) > 1:
        options.update(save_all=True, append_images=images[1:], duration=delays, loop=0)
        if container == "gif":
            options["disposal"] = 2
    images[0].save(out, format=container.upper(), **options)
    return out.getvalue()


@st.composite
def inputs(draw: st.DrawFn) -> tuple[bytes, str]:
    width = draw(st.integers(1, 96))
    height = draw(st.integers(1, 96))
    mode = draw(st.sampled_from(["RGB", "RGBA", "L", "P"]))
    frames = draw(st.integers(1, 5) | st.just(1))
    if frames > 1:
        container = draw(st.sampled_from(["gif", "webp"]))
    else:
        container = draw(st.sampled_from(["png", "png", "jpeg", "gif", "webp", "bmp", "tiff"]))
    params = st.lists(st.floats(0, 1, allow_nan=False), min_size=12, max_size=12)
    pixels = []
    for _ in range(frames):
        p = draw(params)
        rgba = smooth(height, width, 4, p)
        pixels.append(rgba)
    delays = [draw(st.sampled_from([40, 80, 100, 250])) for _ in range(frames)]
    label = f"{container} {mode} {width}x{height} x{frames}"
    return encode_input(pixels, mode, container, delays), label


# -- pipelines ----------------------------------------------------------------------------------------

sides = st.integers(1, 200)
small = st.integers(0, 60)
gravities = st.sampled_from(list(Gravity))
colors = st.sampled_from(["#FF0000", "#00FF00", "#0000FF", "#FFFFFF", "#000000", "#336699"]).map(Color.parse)

geometries = st.one_of(
    st.builds(A.ScalePercent, st.integers(1, 300)),
    st.builds(A.WidthPercent, st.integers(1, 300)),
    st.builds(A.HeightPercent, st.integers(1, 300)),
    st.builds(A.FitWidth, sides),
    st.builds(A.FitHeight, sides),
    st.builds(A.FitBox, sides, sides),
    st.builds(A.ShrinkBox, sides, sides),
    st.builds(A.EnlargeBox, sides, sides),
    st.builds(A.CoverBox, sides, sides),
    st.builds(A.ExactSize, sides, sides),
    st.builds(A.MaxArea, st.integers(1, 40_000)),
)


@st.composite
def thumbnails(draw: st.DrawFn) -> A.Thumbnail:
    geometry = draw(geometries)
    if isinstance(geometry, (A.FitBox, A.ShrinkBox, A.EnlargeBox)) and draw(st.booleans()):
        return A.Thumbnail(geometry, pad=True, color=draw(st.none() | colors))
    return A.Thumbnail(geometry)


crop_geometries = st.one_of(
    st.builds(A.CropWidth, sides),
    st.builds(A.CropHeight, sides),
    st.builds(A.CropBox, sides, sides),
    st.tuples(st.none() | sides, st.none() | sides)
    .filter(lambda wh: wh != (None, None))
    .flatmap(
        lambda wh: st.builds(
            A.CropRegion,
            st.just(wh[0]),
            st.just(wh[1]),
            small,
            small,
            dx_mode=st.sampled_from(list(OffsetMode)),
            dy_mode=st.sampled_from(list(OffsetMode)),
        )
    ),
)

pixel_ops = st.one_of(
    thumbnails(),
    st.builds(A.Cut, sides, sides, small, small, gravity=st.none() | gravities),
    st.builds(A.Crop, crop_geometries, gravity=st.none() | gravities),
    st.builds(A.IRadius, st.integers(1, 50)),
    st.builds(A.RRadius, st.integers(1, 50)),
    st.builds(A.SmartCrop, sides, sides),
    st.tuples(st.integers(1, 4), st.integers(1, 4)).map(lambda r: A.RatioCrop(min(r) / 2, max(r) / 2)),
    st.builds(A.Rotate, st.integers(0, 360)),
    st.just(A.AutoOrient()),
    st.builds(A.Flip, st.sampled_from(list(FlipAxis))),
    st.builds(A.Blur, st.integers(1, 20), st.floats(0.1, 8, allow_nan=False).map(lambda v: round(v, 2))),
    st.builds(A.Sharpen, st.integers(10, 300)),
    st.builds(A.Bright, st.integers(-100, 100)),
    st.builds(A.Contrast, st.integers(-100, 100)),
    st.just(A.Grayscale(True)),
)

formats = st.sampled_from(
    [OutputFormat.PNG] * 6
    + [OutputFormat.JPG, OutputFormat.WEBP, OutputFormat.GIF, OutputFormat.BMP, OutputFormat.TIFF]
    + [OutputFormat.HEIF, OutputFormat.AVIF]
)


@st.composite
def pipelines(draw: st.DrawFn) -> A.Pipeline:
    ops: list[A.MogrOp] = draw(st.lists(pixel_ops, min_size=1, max_size=3))
    if draw(st.integers(0, 9)) > 0:
        ops.append(A.Format(draw(formats)))
    if draw(st.booleans()):
        ops.append(A.Quality(draw(st.integers(30, 95)), draw(st.booleans())))
    if draw(st.integers(0, 4)) == 0:
        ops.append(A.Interlace(True))
    if draw(st.integers(0, 4)) == 0:
        ops.append(A.Strip())
    if draw(st.integers(0, 5)) == 0:
        ops.append(A.CGif(draw(st.integers(1, 4))))
    return A.Pipeline(steps=(A.ImageMogr2(ops=tuple(ops)),))


# -- the property ------------------------------------------------------------------------------------


def _run(data: bytes, pipeline: A.Pipeline, backend: str) -> ce.Result | ce.CIError:
    try:
        return ce.process(data, pipeline, backend=backend)
    except ce.CIError as exc:
        return exc


def decode_all(data: bytes) -> NDArray[np.uint8]:
    """Every frame as ``(n, h, w, 4)`` RGBA (HEIF through pillow-heif)."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    with Image.open(io.BytesIO(data)) as image:
        frames = []
        for index in range(getattr(image, "n_frames", 1)):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGBA")))
    return np.stack(frames)


def premultiplied(rgba: NDArray[np.uint8]) -> NDArray[np.float64]:
    out = rgba.astype(np.float64)
    out[..., :3] *= out[..., 3:4] / 255
    return out


def _note(text: str) -> None:
    try:
        note(text)
    except InvalidArgument:  # called outside a Hypothesis test (tests/unit/test_tolerances.py)
        pass


def compare(vips: ce.Result, pillow: ce.Result, label: str = "") -> tuple[float, float, T.Budget]:
    """(max, mean) premultiplied difference, and the budget; asserts the budget holds."""
    assert vips.plan is not None
    allowed = T.budget(vips.plan)
    if not allowed.compare:
        _note(f"pixels not compared: {allowed.describe()}")
        return 0.0, 0.0, allowed
    a = premultiplied(decode_all(vips.data))
    b = premultiplied(decode_all(pillow.data))
    assert a.shape == b.shape, f"decoded shapes differ: {a.shape} vs {b.shape}"
    diff = np.abs(a - b)
    worst, mean = float(diff.max(initial=0)), float(diff.mean()) if diff.size else 0.0
    _note(f"difference max {worst:.1f} mean {mean:.3f}; allowed {allowed.describe()}")
    if CALIBRATE:  # measuring for the table, not testing
        with open(CALIBRATE, "a", encoding="utf-8") as log:
            shape = f"{vips.width}x{vips.height}x{vips.frames}"
            log.write(f"{worst:.1f}\t{mean:.4f}\t{shape}\t{' + '.join(allowed.entries)}\t{label}\n")
        return worst, mean, allowed
    if allowed.compare:
        # Rounding of the premultiplication itself: one level.
        assert mean <= allowed.mean_abs + 0.5, f"mean difference {mean:.3f} over {allowed.describe()}"
        if allowed.max_abs is not None:
            assert worst <= allowed.max_abs + 1, f"max difference {worst:.1f} over {allowed.describe()}"
    return worst, mean, allowed


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(image=inputs(), pipeline=pipelines())
def test_pillow_backend_matches_vips(image: tuple[bytes, str], pipeline: A.Pipeline) -> None:
    data, label = image
    note(f"input {label}; rule {ce.render(pipeline)}")
    vips = _run(data, pipeline, "vips")
    pillow = _run(data, pipeline, "pillow")
    if isinstance(vips, ce.CIError) or isinstance(pillow, ce.CIError):
        assert type(vips) is type(pillow), f"outcomes differ: vips {vips!r}, pillow {pillow!r}"
        return
    geometry = ("format", "width", "height", "frames")
    assert [getattr(pillow, k) for k in geometry] == [getattr(vips, k) for k in geometry]
    assert pillow.quality == vips.quality
    if vips.plan is None:
        # No plan ran: scrop found no face and nothing else was asked (docs/intel.md), so
        # both backends give back the input itself.
        assert vips.data == pillow.data == data
        return
    compare(vips, pillow, f"{label}; {ce.render(pipeline)}")
