"""Rule: drop steps that do nothing, and fold quarter turns."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ci_engine.plan.steps import Crop, Embed, Linear, Prim, Resize, Rotate90, SelectFrames

if TYPE_CHECKING:
    from ci_engine.plan import ResolvedPlan


def drop_identity_steps(plan: ResolvedPlan) -> ResolvedPlan:
    """Remove steps whose output equals their input, and merge adjacent quarter turns.

    Why it preserves the result: a resize or crop to the current size, an embed at (0, 0)
    on a canvas of the current size, ``Linear(1, 0)``, a full-turn rotation and a frame
    selection that keeps every frame with its own delay are identities, pixel for pixel.
    ``Rotate90(a)`` then ``Rotate90(b)`` is ``Rotate90(a + b)`` exactly (no resampling).

    Preconditions: none beyond the step being one of these shapes at its current size.
    """
    out: list[Prim] = []
    width, height = plan.decoded_size
    frames = plan.decode.frames
    for step in plan.steps:
        if _identity(step, width, height, frames):
            continue
        if isinstance(step, Rotate90) and out and isinstance(out[-1], Rotate90):
            turns = (out[-1].turns + step.turns) % 4
            prev = out.pop()
            assert isinstance(prev, Rotate90)
            width, height = _undo(prev, width, height)
            if turns:
                merged = Rotate90(turns, origin=prev.origin, span=prev.span)
                out.append(merged)
                width, height = merged.out_size(width, height)
            continue
        out.append(step)
        width, height = step.out_size(width, height)
        if isinstance(step, SelectFrames):
            frames = len(step.groups)
    return plan.with_steps(out)


def _undo(step: Rotate90, width: int, height: int) -> tuple[int, int]:
    return (height, width) if step.turns % 2 else (width, height)


def _identity(step: Prim, width: int, height: int, frames: int) -> bool:
    if isinstance(step, (Resize, Crop, Embed)) and step.out_size(width, height) == (width, height):
        return not isinstance(step, (Crop, Embed)) or (step.left, step.top) == (0, 0)
    if isinstance(step, Linear):
        return step.slope == 1 and step.offset == 0
    if isinstance(step, Rotate90):
        return step.turns % 4 == 0
    if isinstance(step, SelectFrames):
        return step.groups == tuple((i,) for i in range(frames))
    return False
