"""``ci-process=AssessQuality``: the fields that can be computed honestly without a trained
aesthetic model (``extras.md`` section 8; CI's page https://cloud.tencent.com/document/api/460/63228).

Geometry, from the header (no decoding): ``LongImage`` (aspect ratio >= 3 or <= 1/3),
``SmallImage`` (longest side < 179 px; then every other field is FALSE / 0, as CI says),
``BigImage`` (shortest side > 1000 px).

From the pixels (the first frame, reduced to at most :data:`ANALYSIS_SIDE` px on its longer
side with shrink-on-load where the format allows):

* ``BlackAndWhite``: a grey-level image in CI's sense (R = G = B), not a "visually black and
  white" one: a grey decode, or at least 99.5 % of pixels whose channels differ by at most 3
  levels (JPEG chroma rounding of a grey photograph stays below that).
* ``PureImage`` (solid colour or plain text: little content): at least 97 % of pixels within
  12 levels (every channel) of the median colour; or at least 75 % within 24 levels while
  at most 4 colours of a 3-bit-per-channel palette hold 0.5 % of the pixels or more each
  and together at least 90 % (a page of text: its background and the ink).
* ``ClarityScore`` 0-100, "noise, exposure, blur and compression combined" (CI's words),
  documented and deterministic: ``100 * sharpness * (1 - noise) * (1 - exposure) *
  (1 - compression)``, rounded, where on the grey image

  - ``sharpness = clamp((0.55 - blur) / 0.35, 0, 1)`` with ``blur`` the no-reference blur
    measure of Crete-Roffet et al. (2007, "The blur effect: perception and estimation with
    a new no-reference perceptual blur metric"): how much of the image's neighbour-to-
    neighbour variation survives a 9-tap box blur, 0 sharp .. 1 blurred, the worse of the
    two directions; taken on the sharpest part of the image (:func:`subject_blur`: the
    two sharpest textured tiles of an 8 x 8 grid), so a soft background does not count;
  - ``noise = clamp((sigma - 3) / 10, 0, 0.8)`` with ``sigma`` Immerkaer's (1996) fast noise
    estimate (the Laplacian-difference mask), in grey levels;
  - ``exposure = clamp(2 * clipped, 0, 0.5)``, ``clipped`` the share of pixels at <= 3 or
    >= 252;
  - ``compression = clamp((50 - q) / 100, 0, 0.4)`` for a JPEG whose estimated quality ``q``
    is below 50, else 0.

``AestheticScore`` and ``LowQualityScore`` are subjective or unspecified scores that need a
trained model: ci_engine leaves them **out** of the response rather than invent them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ci_engine import ast as A
from ci_engine._dc import dataclass
from ci_engine.intel._xml import response

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ci_engine.types import ImageHeader

__all__ = ["Assessment", "assess", "assess_pixels", "assessment_xml", "clarity", "ANALYSIS_SIDE", "SMALL_SIDE"]

ANALYSIS_SIDE = 1024
ANALYSIS_PASSES = 10
"""Pixels of work charged per pixel of the reduced image for the analysis (grey, blur and
noise measures, box filters)."""
SMALL_SIDE = 179
"""A longest side below this is a "small image" (CI)."""


@dataclass(frozen=True, slots=True)
class Assessment:
    """The computed fields of ``AssessQuality``."""

    long_image: bool
    black_and_white: bool
    small_image: bool
    big_image: bool
    pure_image: bool
    clarity_score: int


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def _grey(pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
    import numpy as np

    if pixels.shape[2] in (1, 2):
        return pixels[..., 0].astype(np.float64)
    rgb = pixels[..., :3].astype(np.float64)
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _box9(grey: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """A 9-tap moving average along ``axis``, edges repeated (numpy only)."""
    import numpy as np

    pad = [(0, 0), (0, 0)]
    pad[axis] = (4, 4)
    padded = np.pad(grey, pad, mode="edge")
    sums = np.cumsum(padded, axis=axis, dtype=np.float64)
    zero_shape = list(sums.shape)
    zero_shape[axis] = 1
    sums = np.concatenate([np.zeros(zero_shape), sums], axis=axis)
    n = grey.shape[axis]
    upper = np.take(sums, np.arange(9, n + 9), axis=axis)
    lower = np.take(sums, np.arange(0, n), axis=axis)
    out: NDArray[np.float64] = (upper - lower) / 9.0
    return out


def blur_metric(grey: NDArray[np.float64]) -> float:
    """Crete-Roffet's no-reference blur (0 sharp .. 1 blurred) of a grey image."""
    import numpy as np

    worst = 0.0
    for axis in (0, 1):
        if grey.shape[axis] < 3:
            continue
        blurred = _box9(grey, axis)
        d_image = np.abs(np.diff(grey, axis=axis))
        d_blurred = np.abs(np.diff(blurred, axis=axis))
        variation = np.maximum(0.0, d_image - d_blurred)
        total = float(d_image.sum())
        if total <= 0:
            return 1.0
        worst = max(worst, (total - float(variation.sum())) / total)
    return worst


def noise_sigma(grey: NDArray[np.float64]) -> float:
    """Immerkaer's fast noise standard deviation estimate, in grey levels: the absolute
    response to the mask ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]``, summed."""
    import numpy as np

    height, width = grey.shape
    if height < 3 or width < 3:
        return 0.0
    weights = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))
    response = np.zeros((height - 2, width - 2))
    for dy in range(3):
        for dx in range(3):
            response += weights[dy][dx] * grey[dy : dy + height - 2, dx : dx + width - 2]
    total = float(np.abs(response).sum())
    sigma: float = total * (math.pi / 2) ** 0.5 / (6.0 * (width - 2) * (height - 2))
    return sigma


def subject_blur(grey: NDArray[np.float64]) -> float:
    """The blur of the image's sharpest part: :func:`blur_metric` on an 8 x 8 grid of tiles,
    the mean of the two sharpest tiles among those with texture (mean absolute
    neighbour difference >= 1.5 levels); the whole image's when no tile has texture. A
    portrait with a soft background is as clear as its subject."""
    import numpy as np

    height, width = grey.shape
    values = []
    if min(height, width) >= 256:
        for row in range(8):
            for col in range(8):
                tile = grey[row * height // 8 : (row + 1) * height // 8, col * width // 8 : (col + 1) * width // 8]
                if float(np.abs(np.diff(tile, axis=1)).mean()) >= 1.5:
                    values.append(blur_metric(tile))
    if not values:
        return blur_metric(grey)
    return float(np.mean(sorted(values)[:2]))


def clarity(pixels: NDArray[np.uint8], jpeg_quality: int | None = None) -> int:
    """``ClarityScore`` of ``(height, width, channels)`` uint8 pixels (module docstring)."""
    import numpy as np

    grey = _grey(pixels)
    sharpness = _clamp((0.55 - subject_blur(grey)) / 0.35, 0.0, 1.0)
    noise = _clamp((noise_sigma(grey) - 3.0) / 10.0, 0.0, 0.8)
    clipped = float(np.mean((grey <= 3) | (grey >= 252)))
    exposure = _clamp(2 * clipped, 0.0, 0.5)
    compression = 0.0 if jpeg_quality is None else _clamp((50 - jpeg_quality) / 100, 0.0, 0.4)
    return round(100 * sharpness * (1 - noise) * (1 - exposure) * (1 - compression))


def _black_and_white(pixels: NDArray[np.uint8]) -> bool:
    import numpy as np

    if pixels.shape[2] in (1, 2):
        return True
    rgb = pixels[..., :3].astype(np.int16)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    return bool(np.mean(spread <= 3) >= 0.995)


def _pure(pixels: NDArray[np.uint8]) -> bool:
    import numpy as np

    colours = pixels[..., :3] if pixels.shape[2] >= 3 else pixels[..., :1]
    flat = colours.reshape(-1, colours.shape[-1]).astype(np.int16)
    median = np.median(flat, axis=0)
    distance = np.abs(flat - median).max(axis=1)
    if np.mean(distance <= 12) >= 0.97:
        return True
    if np.mean(distance <= 24) < 0.75:
        return False
    bins = (flat >> 5).astype(np.int64)
    keys = bins[:, 0] * 64 + (bins[:, 1] * 8 + bins[:, 2] if bins.shape[1] == 3 else 0)
    counts = np.bincount(keys)
    major = counts[counts >= 0.005 * len(keys)]
    return len(major) <= 4 and int(major.sum()) >= 0.9 * len(keys)


def assess_pixels(width: int, height: int, pixels: NDArray[np.uint8], *, jpeg_quality: int | None = None) -> Assessment:
    """The assessment of a ``width`` x ``height`` image whose (possibly reduced) first frame
    is ``pixels``."""
    long_image = max(width, height) >= 3 * min(width, height)
    if max(width, height) < SMALL_SIDE:
        return Assessment(False, False, True, False, False, 0)
    return Assessment(
        long_image,
        _black_and_white(pixels),
        False,
        min(width, height) > 1000,
        _pure(pixels),
        clarity(pixels, jpeg_quality),
    )


def assess(data: bytes, *, backend: str = "auto", **run: Any) -> Assessment:
    """Assess the image ``data``; ``run`` takes :func:`ci_engine.intel.pixels.decode`'s
    keywords (``limits``, ``rules``).

    Raises:
        CIError: not a supported image, or over a limit.
    """
    from ci_engine.intel.pixels import decode
    from ci_engine.io import probe

    header: ImageHeader = probe(data, limits=run.get("limits"))
    reduce = A.Pipeline((A.ImageMogr2(ops=(A.Thumbnail(A.ShrinkBox(ANALYSIS_SIDE, ANALYSIS_SIDE)),)),))
    decoded = decode(data, reduce, backend=backend, passes=ANALYSIS_PASSES, what="AssessQuality: the analysis", **run)
    quality = header.quality if header.format.value == "jpeg" else None
    return assess_pixels(header.width, header.height, decoded.pixels, jpeg_quality=quality)


def assessment_xml(found: Assessment, request_id: str = "") -> bytes:
    """The ``<Response>`` body, in CI's element order, booleans ``TRUE``/``FALSE``;
    ``AestheticScore`` and ``LowQualityScore`` are not computed and not written."""
    return response(
        [
            ("LongImage", found.long_image),
            ("BlackAndWhite", found.black_and_white),
            ("SmallImage", found.small_image),
            ("BigImage", found.big_image),
            ("PureImage", found.pure_image),
            ("ClarityScore", found.clarity_score),
            ("RequestId", request_id),
        ]
    )
