"""Pure size formulas of ``imagemogr2.md`` and ``imageview2.md``, in exact arithmetic.

Every scale factor is a :class:`~fractions.Fraction`, so ``round(w0 * s)`` is computed
exactly: the project rounding is *half up, at least 1* (``imagemogr2.md``, notation),
centring offsets are floored. No function here knows about pixels or backends. A size
that is one ratio of integers is rounded in integers (:func:`round_ratio`), so the common
operations (``thumbnail``, ``crop``, ...) never import :mod:`fractions` (with
:mod:`decimal`, a fiftieth of a one-shot command's start-up).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ci_engine import ast as A
from ci_engine.types import Gravity

if TYPE_CHECKING:
    from fractions import Fraction

__all__ = [
    "round_half_up",
    "round_ratio",
    "scaled",
    "thumbnail_size",
    "anchor",
    "cover_size",
    "rotated_size",
    "view_scale",
    "shrink_box",
    "ORIENTATIONS",
]

def round_half_up(x: Fraction | int) -> int:
    """``floor(x + 1/2)``, at least 1."""
    try:
        num, den = x.numerator, x.denominator
    except AttributeError:  # a float: its exact value
        from fractions import Fraction

        exact = Fraction(x)
        num, den = exact.numerator, exact.denominator
    return round_ratio(num, den)


def round_ratio(num: int, den: int) -> int:
    """``round_half_up(num / den)`` for ``den > 0``, in integers:
    ``floor(num/den + 1/2) = floor((2 num + den) / (2 den))``."""
    return max(1, (2 * num + den) // (2 * den))


def scaled(w: int, h: int, s: Fraction) -> tuple[int, int]:
    """``round(w*s) x round(h*s)``."""
    return round_half_up(w * s), round_half_up(h * s)


def _fit(w: int, h: int, bw: int, bh: int) -> tuple[int, int]:
    """Largest aspect-kept size inside ``bw`` x ``bh`` (``s = min(bw/w, bh/h)``); the
    limiting side gets exactly its box value."""
    if bw * h <= bh * w:
        return bw, round_ratio(h * bw, w)
    return round_ratio(w * bh, h), bh


def cover_size(w: int, h: int, bw: int, bh: int) -> tuple[int, int]:
    """Smallest aspect-kept size covering ``bw`` x ``bh`` (``s = max(bw/w, bh/h)``)."""
    if bw * h >= bh * w:
        return bw, round_ratio(h * bw, w)
    return round_ratio(w * bh, h), bh


def thumbnail_size(geometry: A.ThumbnailGeometry, w: int, h: int, clamp: int) -> tuple[int, int]:
    """Output size of ``thumbnail/<geometry>`` on a static ``w`` x ``h`` image
    (``imagemogr2.md`` section 2). Width/height parameters above ``clamp`` count as
    ``clamp``. Animated inputs are clamped per axis by the caller."""
    g = geometry
    if isinstance(g, A.ScalePercent):
        return round_ratio(w * g.percent, 100), round_ratio(h * g.percent, 100)
    if isinstance(g, A.WidthPercent):
        return round_ratio(w * g.percent, 100), h
    if isinstance(g, A.HeightPercent):
        return w, round_ratio(h * g.percent, 100)
    if isinstance(g, A.FitWidth):
        bw = min(g.width, clamp)
        return bw, round_ratio(h * bw, w)
    if isinstance(g, A.FitHeight):
        bh = min(g.height, clamp)
        return round_ratio(w * bh, h), bh
    if isinstance(g, A.MaxArea):
        if w * h <= g.area:
            return w, h
        # s = sqrt(area / (w*h)); floor(w*s) = isqrt(floor(area*w/h)) exactly.
        return max(1, math.isqrt(g.area * w // h)), max(1, math.isqrt(g.area * h // w))
    if isinstance(g, (A.ShrinkBox, A.EnlargeBox)) and (g.width is None or g.height is None):
        # One side given (450x>, x300<): scale to it, only down (>) or only up (<).
        if g.width is not None:
            side, given = w, min(g.width, clamp)
        else:
            assert g.height is not None
            side, given = h, min(g.height, clamp)
        if given == side or (given > side) == isinstance(g, A.ShrinkBox):
            return w, h
        if g.width is not None:
            return given, round_ratio(h * given, w)
        return round_ratio(w * given, h), given
    assert g.width is not None and g.height is not None
    bw, bh = min(g.width, clamp), min(g.height, clamp)
    if isinstance(g, A.ExactSize):
        return bw, bh
    if isinstance(g, A.CoverBox):
        return cover_size(w, h, bw, bh)
    if isinstance(g, A.ShrinkBox) and bw >= w and bh >= h:
        return w, h
    if isinstance(g, A.EnlargeBox) and (bw <= w or bh <= h):
        return w, h
    return _fit(w, h, bw, bh)


def anchor(gravity: Gravity, outer_w: int, outer_h: int, inner_w: int, inner_h: int) -> tuple[int, int]:
    """Top-left corner of an ``inner`` box placed at ``gravity`` inside ``outer``
    (``imagemogr2.md`` section 5): edges flush, centres floored."""
    x = (0, (outer_w - inner_w) // 2, outer_w - inner_w)[gravity.column]
    y = (0, (outer_h - inner_h) // 2, outer_h - inner_h)[gravity.row]
    return x, y


def rotated_size(w: int, h: int, degrees: int) -> tuple[int, int]:
    """Bounding box of a ``w`` x ``h`` image rotated by ``degrees``:
    ``ceil(|w cos| + |h sin|) x ceil(|w sin| + |h cos|)`` (``imagemogr2.md`` section 10)."""
    t = math.radians(degrees)
    c, s = abs(math.cos(t)), abs(math.sin(t))
    # Shave float noise so that exact integers (e.g. 90-degree-like cases) do not round up.
    return max(1, math.ceil(w * c + h * s - 1e-9)), max(1, math.ceil(w * s + h * c - 1e-9))


def view_scale(mode: int, w: int, h: int, bw: int | None, bh: int | None) -> Fraction:
    """The scale factor of ``imageView2/<mode>`` (before the cap at 1)
    (``imageview2.md`` sections 2 and 3). ``bw``/``bh`` are the ``w``/``h`` values,
    already clamped; at least one is set."""
    from fractions import Fraction

    if mode == 0:  # long edge <= w, short edge <= h; a missing value is unbounded
        long0, short0 = max(w, h), min(w, h)
        factors = [Fraction(v, e) for v, e in ((bw, long0), (bh, short0)) if v is not None]
        return min(factors)
    if mode == 2:  # inside the box; a missing side is free
        factors = [Fraction(v, e) for v, e in ((bw, w), (bh, h)) if v is not None]
        return min(factors)
    # modes 1, 3 (box) and 4, 5 (long/short edges): a missing value equals the given one
    bw = bw if bw is not None else bh
    bh = bh if bh is not None else bw
    assert bw is not None and bh is not None
    if mode in (1, 3):
        return max(Fraction(bw, w), Fraction(bh, h))
    return max(Fraction(bw, max(w, h)), Fraction(bh, min(w, h)))


def shrink_box(w: int, h: int, box_w: int, box_h: int) -> tuple[int, int]:
    """The centred crop of ``imageView2`` modes 1 and 5 on a ``w`` x ``h`` image: the box
    itself when it fits, else the largest box of the same aspect ratio that fits
    (``imageview2.md`` section 2.3)."""
    from fractions import Fraction

    k = min(Fraction(1), Fraction(w, box_w), Fraction(h, box_h))
    if k == 1:
        return box_w, box_h
    return min(w, round_half_up(box_w * k)), min(h, round_half_up(box_h * k))


ORIENTATIONS: dict[int, tuple[tuple[str, int], ...]] = {
    1: (),
    2: (("flip", 1),),
    3: (("rotate90", 2),),
    4: (("flip", 0),),
    5: (("rotate90", 1), ("flip", 1)),
    6: (("rotate90", 1),),
    7: (("rotate90", 1), ("flip", 0)),
    8: (("rotate90", 3),),
}
"""EXIF orientation -> the quarter turns (clockwise) and flips (1 = left/right,
0 = top/bottom) that make the stored image upright."""
