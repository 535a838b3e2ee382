"""The one table of how far the Pillow backend may be from the libvips backend.

Geometry (width, height, frame count, format) is resolved once by the planner and must be
*equal*: there is no tolerance for it anywhere. Pixels are compared on premultiplied RGBA
(colour under a transparent pixel is not an observable difference), per channel, 0..255:

- ``max_abs``: the largest difference allowed anywhere (``None``: not bounded, said why);
- ``mean_abs``: the mean absolute difference allowed.

Every entry starts exact. A relaxation carries ``why``: what differs between the two
implementations and the measurement behind the number. A pipeline's budget is built by
:func:`budget`: the decoder's entry, then each step's (a step also *amplifies* a difference
that reaches it by its ``gain``: a sharpen by its kernel's L1 norm, a linear map by its slope),
then the encoder's. ``tests/unit/test_tolerances.py`` checks that every primitive and format
has an entry and that the differential test reads this table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ci_engine.plan import ResolvedPlan
from ci_engine.plan import steps as P

__all__ = ["Tolerance", "Budget", "STEPS", "DECODERS", "ENCODERS", "EXACT", "budget", "used"]


@dataclass(frozen=True, slots=True)
class Tolerance:
    """What one step adds to the difference between the backends, and how it carries on a
    difference that reaches it (``max_gain``, ``mean_gain``)."""

    max_abs: float | None = 0
    mean_abs: float = 0.0
    max_gain: float | None = 1.0
    mean_gain: float = 1.0
    changed_mean: float = 0.0
    """Added to the mean when a difference reaches the step (lossy encoders: a changed pixel
    can change a whole block's coding decisions)."""
    compare: bool = True
    why: str = "exact: the Pillow backend reproduces the libvips arithmetic"


EXACT = Tolerance()

_RESAMPLING_GAIN = 1.3
"""Lanczos3 and Catmull-Rom kernels have an L1 norm below 1.3: a difference entering a
resampling step leaves it at most 1.3 times larger."""

STEPS: dict[str, Tolerance] = {
    # Exact by construction: integer copies of pixels.
    "crop": EXACT,
    "embed": EXACT,
    "rotate90": EXACT,
    "flip": EXACT,
    "select_frames": EXACT,
    # Exact: the same formulas, rounding and truncation as libvips (measured 0 over the
    # differential runs and the contract suite's sweeps).
    "linear": EXACT,
    "grayscale": EXACT,
    "mask": EXACT,
    "flatten": EXACT,
    "sharpen": EXACT,
    # blur, rotate: exact on opaque images (integer paths). With alpha both run in float,
    # premultiplied, and truncate when converting back: libvips' float accumulation can land
    # a value on the other side of an integer in rare pixels (measured: one level, in a few
    # pixels per thousand examples).
    "blur": Tolerance(max_abs=1, mean_abs=0.01, why="float premultiplied path, truncation of rare pixels"),
    "rotate": Tolerance(
        max_abs=1,
        mean_abs=0.01,
        max_gain=_RESAMPLING_GAIN,
        mean_gain=_RESAMPLING_GAIN,
        why="float premultiplied path, truncation of rare pixels; carries differences like any interpolation",
    ),
    # resize: upsampling reproduces libvips' affine exactly; *downsampling* runs Pillow's
    # Lanczos (reducing_gap=2.0) where libvips runs shrink + reduce with its own fixed-point
    # tables and window placement. Measured on 1-96 px smooth images (3500 examples): outputs
    # of 8 px or more a side: mean <= 1.0, max <= 13 (at hard palette-transparency edges).
    "resize": Tolerance(
        max_abs=16,
        mean_abs=1.5,
        max_gain=_RESAMPLING_GAIN,
        mean_gain=_RESAMPLING_GAIN,
        why="downscaling: Pillow Lanczos vs libvips shrink+reduce (different tables and rounding)",
    ),
    # Outputs of 4-7 px a side: each pixel averages a large part of the image, and the two
    # place the partial edge block of the integer shrink differently. Measured mean <= 4.1
    # (25x28 RGBA to 4x4), max <= 11.
    "resize:small": Tolerance(
        max_abs=20,
        mean_abs=5.0,
        max_gain=_RESAMPLING_GAIN,
        mean_gain=_RESAMPLING_GAIN,
        why="a few output pixels each averaging a large region: edge-block placement differs",
    ),
    # Outputs of 1-3 px a side are averages of whole image regions (measured mean up to 7.5
    # from 17x1 to 1x1): a statistic of them says nothing about the implementation. Geometry
    # stays exact; pixels are not compared (as tests/property/test_plan_sound.py does).
    "resize:tiny": Tolerance(compare=False, why="1-3 px outputs average whole regions"),
    # smartcrop: the window is the backend's to find (steps.SmartCrop); the two backends use
    # different attention methods and may choose different windows. Geometry stays exact;
    # pixels are not comparable. The contract suite checks that both find the salient patch.
    "smartcrop": Tolerance(compare=False, why="the window position is each backend's own choice"),
}
"""By :attr:`ci_engine.plan.steps.Prim.method`."""

DECODERS: dict[str, Tolerance] = {
    "jpeg": EXACT,  # both read through libjpeg-turbo
    "png": EXACT,
    "gif": EXACT,
    "webp": EXACT,
    "bmp": EXACT,  # the shared codec
    "heif": EXACT,  # the shared codec
    "tiff": EXACT,
    # Both decode AV1 with libaom/dav1d but convert YUV to RGB differently (libheif vs
    # libavif).
    "avif": Tolerance(max_abs=4, mean_abs=1.0, why="libheif vs libavif YUV to RGB conversion"),
    # JPEG DCT scaling: the same libjpeg scaled IDCT on both sides.
    "jpeg-shrink": EXACT,
    # WebP: libvips asks libwebp for a scaled decode (its fixed-point rescaler, on the YUV
    # planes for lossy files); Pillow has none, so the image is decoded whole and
    # area-averaged (BOX) to the planned size. The rescaler is not an exact area average at
    # fractional ratios: measured over 300 smooth 8-96 px images (lossless and quality-90)
    # at 1/2-1/8, outputs of 8 px or more a side: mean p50 4.1, p95 9.6, max 11.7; max 63.
    "webp-shrink": Tolerance(
        max_abs=64, mean_abs=12.0, why="libwebp's scaled-decode rescaler vs full decode + area average"
    ),
}
"""By input format (``<format>-shrink`` when the plan decodes with shrink-on-load)."""

ENCODERS: dict[str, Tolerance] = {
    "png": EXACT,
    "bmp": EXACT,  # the shared codec
    "tiff": EXACT,
    # HEIF: the shared codec, deterministic: equal pixels give equal files; but lossy, so a
    # difference that reaches it is requantised (measured max 4, mean 0.34 from a one-level
    # rotate difference).
    "heif": Tolerance(
        max_gain=None, mean_gain=2.0, changed_mean=1.0, why="lossy: an incoming difference is requantised"
    ),
    # JPEG: the same libjpeg-turbo, settings matched to libvips (measured byte-identical
    # pixels for equal input). An incoming one-level difference can flip a quantised DCT
    # coefficient and move a whole 8x8 block: the max is not bounded then, the mean grows.
    "jpeg": Tolerance(
        max_gain=None,
        mean_gain=2.0,
        changed_mean=1.0,
        why="requantisation spreads an incoming difference over a block",
    ),
    # WebP still: the same libwebp and settings (identical pixels measured). An incoming
    # difference of a level in a few pixels can change macroblock decisions (measured mean
    # 1.75 from a 0.01 input difference). Animated WebP: libvips' animation encoder path
    # gives different lossy frames than its own still path, which Pillow's animation writer
    # matches (measured mean 3-4.5, max 64 on quality 80-90).
    "webp": Tolerance(
        max_gain=None, mean_gain=2.0, changed_mean=2.5, why="lossy: an incoming difference is requantised"
    ),
    "webp-animated": Tolerance(
        max_abs=None,
        mean_abs=6.0,
        max_gain=None,
        mean_gain=2.0,
        changed_mean=2.5,
        why="libvips' WebP animation encoder path differs from Pillow's (libwebp settings)",
    ),
    # GIF: the shared quantiser; equal pixels give equal files. A small incoming difference
    # can change the octree palette: max unbounded, mean grows.
    "gif": Tolerance(
        max_gain=None, mean_gain=4.0, changed_mean=1.0, why="palette quantisation of slightly different pixels"
    ),
    # AVIF: libvips writes through libheif + aom, Pillow through libavif + aom, with matched
    # quality, speed and chroma subsampling; measured mean 1-3.7, max 41 on sharp edges.
    "avif": Tolerance(
        max_abs=None,
        mean_abs=5.0,
        max_gain=None,
        mean_gain=2.0,
        why="different AV1 encoder front ends (libheif vs libavif)",
    ),
    # A lossy (or palette) encoder writing an image under 8 px a side from slightly different
    # pixels, or one of the two that differ in themselves (animated WebP, AVIF): one 8x8 block
    # or a few palette entries decide everything (measured mean 27 on a 4x6 WebP after a
    # 1.5-mean input difference, 32 on a 1x4 animated WebP). Not compared; exact inputs to
    # the same encoder stay exact.
    "lossy:small": Tolerance(compare=False, why="block and palette decisions dominate a < 8 px lossy image"),
}
"""By output container (``webp-animated`` for a WebP of more than one frame; ``lossy:small``
for a lossy or palette container under 8 px a side that receives a difference)."""

LOSSY = frozenset({"jpeg", "webp", "webp-animated", "avif", "gif", "heif"})


@dataclass(frozen=True, slots=True)
class Budget:
    """The difference allowed for one pipeline, and the entries it was built from."""

    max_abs: float | None
    mean_abs: float
    compare: bool
    entries: tuple[str, ...]

    def describe(self) -> str:
        bound = "unbounded" if self.max_abs is None else f"{self.max_abs:.1f}"
        return f"max {bound}, mean {self.mean_abs:.2f} from {' + '.join(self.entries)}"


_USED: set[str] = set()


def used() -> frozenset[str]:
    """Table keys that :func:`budget` has read in this process (for the table's own test)."""
    return frozenset(_USED)


def _gains(step: P.Prim, tol: Tolerance) -> tuple[float | None, float]:
    if isinstance(step, P.Sharpen):  # L1 norm of in + k (in - gauss(in))
        g = 1 + 2 * step.amount / 100
        return g, g
    if isinstance(step, P.Linear):
        return abs(step.slope), abs(step.slope)
    return tol.max_gain, tol.mean_gain


def _apply(
    max_abs: float | None, mean_abs: float, tol: Tolerance, gains: tuple[float | None, float]
) -> tuple[float | None, float]:
    max_gain, mean_gain = gains
    changed = max_abs is None or max_abs > 0 or mean_abs > 0
    if max_abs is None or tol.max_abs is None:
        new_max = None
    elif max_gain is None:
        new_max = None if changed else tol.max_abs
    else:
        new_max = max_abs * max_gain + tol.max_abs
    new_mean = mean_abs * mean_gain + tol.mean_abs + (tol.changed_mean if changed else 0.0)
    return (min(new_max, 255.0) if new_max is not None else None), min(new_mean, 255.0)


def budget(plan: ResolvedPlan, *, decoder: str | None = None, encoder: str | None = None) -> Budget:
    """The allowed difference for ``plan``: decoder, steps, encoder, in that order."""
    fmt_in = plan.decode.format.value
    dec_key = decoder or (f"{fmt_in}-shrink" if plan.decode.shrink > 1 else fmt_in)
    fmt_out = plan.encode.format.value
    enc_key = encoder or ("webp-animated" if fmt_out == "webp" and plan.frames > 1 else fmt_out)
    max_abs: float | None = 0.0
    mean_abs = 0.0
    compare = True
    entries: list[str] = []

    def take(key: str, tol: Tolerance, gains: tuple[float | None, float]) -> None:
        nonlocal max_abs, mean_abs, compare
        _USED.add(key)
        entries.append(key)
        compare = compare and tol.compare
        max_abs, mean_abs = _apply(max_abs, mean_abs, tol, gains)

    dec = DECODERS[dec_key]
    take(f"decode:{dec_key}", dec, (dec.max_gain, dec.mean_gain))
    if plan.decode.shrink > 1 and min(plan.decoded_size) < 8:  # the decoder resampled to a few pixels
        # (libwebp's scaled decode of a few pixels and a Lanczos reduce agree on nothing much:
        # measured mean 9 at 4x6 from 32x50; JPEG's DCT scaling is the same on both sides)
        tiny = min(plan.decoded_size) < 4 or plan.decode.format.value == "webp"
        key = "resize:tiny" if tiny else "resize:small"
        take(f"step:{key}", STEPS[key], (STEPS[key].max_gain, STEPS[key].mean_gain))
    for step, (width, height) in zip(plan.steps, plan.sizes()[1:]):
        key = step.method
        if isinstance(step, P.Resize) and min(width, height) < 8:
            key = "resize:tiny" if min(width, height) < 4 else "resize:small"
        tol = STEPS[key]
        take(f"step:{key}", tol, _gains(step, tol))
    changed = max_abs is None or max_abs > 0 or mean_abs > 0
    inherent = enc_key in ("webp-animated", "avif")  # the encoders themselves differ
    if enc_key in LOSSY and (changed or inherent) and min(plan.width, plan.height) < 8:
        enc_key = "lossy:small"
    enc = ENCODERS[enc_key]
    take(f"encode:{enc_key}", enc, (enc.max_gain, enc.mean_gain))
    return Budget(max_abs, mean_abs, compare, tuple(entries))


def keys() -> Iterable[str]:
    """Every key of the table, as :func:`budget` records it."""
    yield from (f"decode:{k}" for k in DECODERS)
    yield from (f"step:{k}" for k in STEPS)
    yield from (f"encode:{k}" for k in ENCODERS)
