"""Rule: two consecutive resizes become one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ci_engine._dc import replace
from ci_engine.plan.steps import Prim, Resize

if TYPE_CHECKING:
    from ci_engine.plan import ResolvedPlan


def merge_resizes(plan: ResolvedPlan) -> ResolvedPlan:
    """Merge ``Resize(a)`` directly followed by ``Resize(b)`` into ``Resize(b)``.

    Why it preserves the result: the output size is ``b`` either way, exactly. Resampling
    once from the larger source instead of twice loses no information the two-step path
    kept, so the pixels agree within the resampling tolerance.

    Preconditions:
      - the two resizes are adjacent (nothing reads the intermediate image);
      - the intermediate size is at least the final size on both axes: a downscale
        followed by an upscale is not merged, since the merged result would be sharper
        than what CI returns.

    >>> from ci_engine.plan import ResolvedPlan
    >>> merge_resizes.__name__
    'merge_resizes'
    """
    out: list[Prim] = []
    for step in plan.steps:
        prev = out[-1] if out else None
        if (
            isinstance(step, Resize)
            and isinstance(prev, Resize)
            and prev.width >= step.width
            and prev.height >= step.height
        ):
            out[-1] = replace(step, origin=f"{prev.origin}+{step.origin}")
            continue
        out.append(step)
    return plan.with_steps(out)
