"""Rule: let the decoder shrink (JPEG DCT scaling, WebP scaled decode)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ci_engine._dc import replace
from ci_engine.plan.steps import Crop, Flip, Prim, Resize, Rotate90
from ci_engine.types import ImageFormat

if TYPE_CHECKING:
    from ci_engine.plan import ResolvedPlan

SHRINKABLE = (ImageFormat.JPEG, ImageFormat.WEBP)
FACTORS = (8, 4, 2)


def fold_shrink_on_load(plan: ResolvedPlan) -> ResolvedPlan:
    """Decode at 1/2, 1/4 or 1/8 of the size when a downscale follows anyway.

    Why it preserves the result: the Lanczos resize that follows still produces exactly
    its target size; it starts from a decoder-downscaled image (DCT scaling for JPEG,
    libwebp's scaled decode) instead of the full one. We pick the largest factor that keeps
    the decoded image at least as large as the resize target on both axes (as Pillow's
    ``draft()`` and sharp's fast shrink-on-load do), so the final pass is still a Lanczos
    downscale and the pixels agree within the resampling tolerance.

    Preconditions (sharp's list, adapted):
      - the input is JPEG or a still WebP and the decoder has not shrunk already;
      - before the first resize there are only quarter turns and flips (they commute with
        scaling), or a single crop as the very first step: its box is mapped to the shrunk
        image with each edge rounded to the nearest pixel, a shift of at most half a
        decoded pixel, i.e. at most half an output pixel since the factor keeps the region
        at least as large as the resize target;
      - the factor is at least 2.
    """
    if plan.decode.format not in SHRINKABLE or plan.decode.shrink != 1:
        return plan
    if plan.decode.format is ImageFormat.WEBP and plan.decode.frames > 1:
        return plan
    steps = list(plan.steps)
    crop_at: int | None = None
    index = None
    for i, step in enumerate(steps):
        if isinstance(step, Resize):
            index = i
            break
        if isinstance(step, Crop) and i == 0:
            crop_at = i
            continue
        if not isinstance(step, (Rotate90, Flip)):
            return plan
    if index is None:
        return plan
    sizes = plan.sizes()
    in_w, in_h = sizes[index]  # what the resize receives, in oriented space
    target = steps[index]
    assert isinstance(target, Resize)
    # Work in stored (decoded) orientation: count quarter turns before the resize.
    turns = sum(s.turns for s in steps[:index] if isinstance(s, Rotate90)) % 2
    need_w, need_h = (target.height, target.width) if turns else (target.width, target.height)
    have_w, have_h = (in_h, in_w) if turns else (in_w, in_h)
    dec_w, dec_h = plan.decoded_size
    factor = next(
        (f for f in FACTORS if have_w // f >= need_w and have_h // f >= need_h and dec_w // f >= 1 and dec_h // f >= 1),
        1,
    )
    if factor == 1:
        return plan
    if crop_at is not None:
        crop = steps[crop_at]
        assert isinstance(crop, Crop)
        small_w, small_h = dec_w // factor, dec_h // factor
        x0 = min(_nearest(crop.left, factor), small_w - 1)
        y0 = min(_nearest(crop.top, factor), small_h - 1)
        x1 = max(x0 + 1, min(_nearest(crop.left + crop.width, factor), small_w))
        y1 = max(y0 + 1, min(_nearest(crop.top + crop.height, factor), small_h))
        steps[crop_at] = replace(crop, left=x0, top=y0, width=x1 - x0, height=y1 - y0)
    shrunk: list[Prim] = steps
    return replace(
        plan,
        decode=replace(plan.decode, shrink=factor),
        decoded_size=(dec_w // factor, dec_h // factor),
        steps=tuple(shrunk),
    )


def _nearest(coordinate: int, factor: int) -> int:
    """``coordinate / factor`` rounded half up."""
    return (2 * coordinate + factor) // (2 * factor)
