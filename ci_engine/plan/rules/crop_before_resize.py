"""Rule: crop the source before downscaling it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ci_engine.plan.steps import Crop, Resize

if TYPE_CHECKING:
    from fractions import Fraction

    from ci_engine.plan import ResolvedPlan


def crop_before_resize(plan: ResolvedPlan) -> ResolvedPlan:
    """Rewrite ``Resize(W1xH1)`` then ``Crop(box)`` as ``Crop(box')`` then ``Resize``,
    where ``box'`` is ``box`` mapped back to the coordinates before the resize.

    Why it preserves the result: the output size is the crop size, exactly, either way.
    The kept pixels come from the same source region; mapping the box back rounds its
    edges to whole source pixels, a shift of less than half a source pixel, i.e. less than
    half an output pixel times the downscale ratio, which the resampling tolerance covers.
    Cropping first means the (expensive) resize, and after ``fold_shrink_on_load`` the
    decode, only touch the kept region.

    Preconditions:
      - the resize is a downscale on both axes (an upscale would magnify the shift);
      - the crop is the very next step and discards something.
    """
    steps = list(plan.steps)
    sizes = plan.sizes()
    for i in range(len(steps) - 1):
        resize, crop = steps[i], steps[i + 1]
        if not (isinstance(resize, Resize) and isinstance(crop, Crop)):
            continue
        w0, h0 = sizes[i]
        if resize.width > w0 or resize.height > h0:
            continue
        if (crop.width, crop.height) == (resize.width, resize.height):
            continue
        from fractions import Fraction  # (only when the rule applies)

        sx, sy = Fraction(w0, resize.width), Fraction(h0, resize.height)
        x0, x1 = _edge(crop.left * sx), _edge((crop.left + crop.width) * sx)
        y0, y1 = _edge(crop.top * sy), _edge((crop.top + crop.height) * sy)
        x1, y1 = min(max(x1, x0 + 1), w0), min(max(y1, y0 + 1), h0)
        steps[i] = Crop(x0, y0, x1 - x0, y1 - y0, origin=crop.origin, span=crop.span)
        steps[i + 1] = Resize(crop.width, crop.height, origin=resize.origin, span=resize.span)
        return crop_before_resize(plan.with_steps(steps))
    return plan.with_steps(steps)


def _edge(x: Fraction) -> int:
    """``floor(x + 1/2)``, at least 0."""
    return max(0, (2 * x.numerator + x.denominator) // (2 * x.denominator))
