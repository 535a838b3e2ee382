"""Phase 1 of a watermark: the planner's side (pure; no imaging library).

``watermark/1`` and ``watermark/2`` are lowered to themselves (the AST node is the
symbolic operation) followed by the step's (empty) encoding marker, and resolved to a
:class:`~ci_engine.plan.steps.Watermark` primitive that records the base size at that point
of the pipeline. The overlay's own size (rendered text, decoded logo) is unknown here, so
phase 2, :func:`ci_engine.watermark.prepare.prepare`, turns it into a concrete
:class:`~ci_engine.plan.steps.Composite` just before execution.

``watermark/3`` and ``watermark/4`` (blind watermarks) get no lowerer: planning them raises
:class:`~ci_engine.errors.UnsupportedOperationError` naming them.

Importing this module registers the functions in ``LOWERERS`` and ``RESOLVERS``;
``ci_engine.plan`` imports it.
"""

from __future__ import annotations

from typing import Any

from ci_engine import ast as A
from ci_engine.plan import steps as P
from ci_engine.plan.lower import LOWERERS, StepEncode
from ci_engine.plan.resolve import RESOLVERS, State

__all__ = ["lower_watermark", "resolve_watermark"]


def lower_watermark(step: A.ImageWatermark | A.TextWatermark, index: int) -> list[Any]:
    """The symbolic operations of one watermark step: the step itself, then its encoding
    marker (a watermark step keeps the current format, ``watermark.md`` section 6)."""
    return [step, StepEncode(index, span=step.span)]


def resolve_watermark(node: A.ImageWatermark | A.TextWatermark, st: State) -> None:
    """Emit the pending watermark for the image as it is at this step."""
    st.push(P.Watermark(node, st.width, st.height, origin=f"watermark/{node.mode}", span=node.span))


for _cls in (A.ImageWatermark, A.TextWatermark):
    LOWERERS[_cls] = lower_watermark
    RESOLVERS[_cls] = resolve_watermark
