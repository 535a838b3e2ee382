"""The planner: AST -> symbolic plan -> resolved plan of primitive steps. Pure: it imports
no imaging library.

- :func:`plan` lowers a pipeline to symbolic operations (CI's order-of-operations rules,
  ``ci_engine.plan.lower``); it needs no image.
- :func:`resolve` turns a plan into integer geometry for one image header
  (``ci_engine.plan.resolve``), checks the output limits, then runs the plan's rewrite
  rules: ``RULES`` by default, none with ``rules=()`` (the unoptimised reference plan).

One decode and one encode per request hold by construction: the resolved plan has exactly
one :class:`~ci_engine.plan.steps.DecodeSpec` and one
:class:`~ci_engine.plan.steps.EncodeSpec`, into which ``format``, the quality family,
``interlace``, ``strip`` and ``size-limit`` are folded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ci_engine import ast as A
from ci_engine._dc import dataclass, field, replace
from ci_engine.errors import UnsupportedForInputError
from ci_engine.limits import Limits, check_output
from ci_engine.plan import resolve as R
from ci_engine.plan.lower import StepEncode, ViewScale, lower
from ci_engine.plan.rules.crop_before_resize import crop_before_resize
from ci_engine.plan.rules.drop_identity_steps import drop_identity_steps
from ci_engine.plan.rules.fold_shrink_on_load import fold_shrink_on_load
from ci_engine.plan.rules.merge_resizes import merge_resizes
from ci_engine.plan.steps import DecodeSpec, EncodeSpec, Prim
from ci_engine.types import ImageFormat, ImageHeader

__all__ = [
    "Plan",
    "ResolvedPlan",
    "Rule",
    "RULES",
    "plan",
    "resolve",
    "StepEncode",
    "ViewScale",
]

log = logging.getLogger(__name__)

Rule = Callable[["ResolvedPlan"], "ResolvedPlan"]

MAX_RULE_PASSES = 4
"""Rules run until the plan is stable, at most this many times over."""

RULES: tuple[Rule, ...] = (
    merge_resizes,
    crop_before_resize,
    drop_identity_steps,
    fold_shrink_on_load,
)
"""The rewrite rules, in the order they run. ``merge_resizes`` first so that
``crop_before_resize`` sees one resize; ``drop_identity_steps`` cleans up what both leave;
``fold_shrink_on_load`` last, so that it sees the final first resize (and a crop moved
before it)."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A symbolic plan: the operations of a pipeline in execution order.

    Attributes:
        ops: AST operations, :class:`ViewScale` and :class:`StepEncode` markers.
        info: the final information step (``imageInfo``, ``exif``, ``imageAve``), if any.
        ignore_error: the request carries ``ignore-error/1``.
        rules: the rewrite rules :func:`resolve` will apply.
        pipeline: the source pipeline.
        limits: the limits the plan is checked against.
    """

    ops: tuple[Any, ...]
    info: A.Step | None
    ignore_error: bool
    rules: tuple[Rule, ...]
    pipeline: A.Pipeline
    limits: Limits = field(default_factory=Limits)

    @property
    def pixel_ops(self) -> tuple[Any, ...]:
        """The operations that change pixels (everything but empty step encodings)."""
        return tuple(op for op in self.ops if not (isinstance(op, StepEncode) and op.empty))

    def describe(self, show: Callable[[Any], str] = repr) -> str:
        """One line per operation; ``show`` formats AST operations (``explain`` passes
        ``ci_engine.render``: the planner itself never imports the renderer)."""
        lines = [f"plan ({len(self.ops)} operations, rules: {', '.join(r.__name__ for r in self.rules) or 'none'})"]
        for op in self.ops:
            lines.append(f"  {_describe_op(op, show)}")
        if self.info is not None:
            lines.append(f"  then {self.info.keyword}")
        return "\n".join(lines)


def _describe_op(op: Any, show: Callable[[Any], str]) -> str:
    if isinstance(op, StepEncode):
        parts = [f"{k}={v}" for k, v in _nonempty(op).items()]
        return f"end of step {op.step}: " + (" ".join(parts) or "(nothing to encode)")
    if isinstance(op, ViewScale):
        return f"imageView2 mode={op.mode} w={op.width} h={op.height}"
    return show(op)


def _nonempty(enc: StepEncode) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("format", "quality", "rquality", "lquality", "interlace", "size_limit", "cgif", "egif"):
        value = getattr(enc, key)
        if value is not None:
            out[key] = value.value if hasattr(value, "value") and not isinstance(value, A.Node) else value
    if enc.strip:
        out["strip"] = True
    return out


@dataclass(frozen=True, slots=True)
class ResolvedPlan:
    """A plan resolved for one image: one decode, primitive steps, one encode.

    Attributes:
        header: the header the plan was resolved for.
        decode: how to decode (shrink-on-load factor, frames, sequential access).
        decoded_size: the size the decoder gives (after shrink-on-load).
        steps: the primitives, in order.
        encode: how to encode.
        width, height, frames: the output geometry.
        info: the final information step, if any.
        applied: names of the rules that changed the plan.
    """

    header: ImageHeader
    decode: DecodeSpec
    decoded_size: tuple[int, int]
    steps: tuple[Prim, ...]
    encode: EncodeSpec
    width: int
    height: int
    frames: int
    info: A.Step | None = None
    applied: tuple[str, ...] = ()

    def with_steps(self, steps: Sequence[Prim]) -> ResolvedPlan:
        return replace(self, steps=tuple(steps))

    def sizes(self) -> list[tuple[int, int]]:
        """The image size entering each step (``len(steps) + 1`` entries: the last is the
        output size)."""
        w, h = self.decoded_size
        out = [(w, h)]
        for step in self.steps:
            w, h = step.out_size(w, h)
            out.append((w, h))
        return out

    def describe(self) -> str:
        d, e = self.decode, self.encode
        lines = [
            f"decode {d.format.value} {self.header.width}x{self.header.height}"
            + (f" shrink-on-load 1/{d.shrink} -> {self.decoded_size[0]}x{self.decoded_size[1]}" if d.shrink > 1 else "")
            + (f" frames={d.frames}" if d.frames > 1 else "")
            + (" sequential" if d.sequential else ""),
        ]
        for (w, h), step in zip(self.sizes(), self.steps):
            lines.append(f"  {w}x{h} -> {step.describe()}")
        opts = [f"quality={e.quality}" if e.quality is not None else ""]
        opts += ["progressive" if e.progressive else "", "strip" if e.strip else ""]
        opts += [f"size-limit={e.size_limit}" + ("!" if e.keep_smaller else "") if e.size_limit else ""]
        lines.append(
            f"encode {e.format.value} {self.width}x{self.height}"
            + (f" x{self.frames} frames" if self.frames > 1 else "")
            + " "
            + " ".join(o for o in opts if o)
        )
        if self.applied:
            lines.append(f"rules applied: {', '.join(self.applied)}")
        return "\n".join(line.rstrip() for line in lines)


def plan(pipeline: A.Pipeline, *, rules: Sequence[Rule] = RULES, limits: Limits | None = None) -> Plan:
    """Lower ``pipeline`` to a symbolic plan.

    Args:
        pipeline: the parsed (and style-expanded) pipeline.
        rules: rewrite rules for :func:`resolve`; ``()`` for the unoptimised plan.
        limits: step and watermark counts are checked against these.

    Raises:
        TooManyStepsError, NoSuchStyleError, InvalidArgumentError, UnsupportedOperationError.
    """
    limits = limits or Limits()
    ops, info = lower(pipeline, max_steps=limits.max_steps, max_image_watermarks=limits.max_image_watermarks)
    return Plan(tuple(ops), info, pipeline.ignore_error, tuple(rules), pipeline, limits)


def resolve(symbolic: Plan, header: ImageHeader) -> ResolvedPlan:
    """Resolve ``symbolic`` for an image with ``header``: integer geometry, one decode, one
    encode, output limits checked, then the plan's rules applied.

    Raises:
        ImageResolutionExceedError: an output over the limits.
        ValueRangeError, UnsupportedForInputError: a value or an operation that does not
            fit this image (a crop outside it, ``iradius`` on GIF ...).
    """
    final = _final_format(symbolic, header)
    # Frames survive only from an animated container to an animated one (APNG and AVIF
    # sequences are read as their first frame).
    frames = header.frames if final.animated_capable and header.format.animated_capable else 1
    if header.format.animated_capable and any(isinstance(op, A.Frame) for op in symbolic.ops):
        frames = header.frames  # frame/<N> picks one frame of all, whatever the output
    state = R.State(
        header=header,
        limits=symbolic.limits,
        final_format=final,
        width=header.width,
        height=header.height,
        frames=frames,
        format=header.format,
        has_alpha=header.has_alpha,
        orientation=header.orientation,
        quality=R.input_quality(header),
    )
    R.resolve_ops(list(symbolic.ops), state)
    if not final.alpha_capable and state.has_alpha:
        from ci_engine.plan.steps import WHITE, Flatten

        state.push(Flatten(WHITE, origin="format"))
    check_output(state.width, state.height, state.frames, symbolic.limits, final)
    size_limit = state.size_limit if final is ImageFormat.JPEG else None
    if state.aigc is not None and final not in AIGC_FORMATS:
        raise UnsupportedForInputError(
            f"AIGCMetadata: the label can be written into JPG, PNG or AVIF output only, not {final.value}; "
            "add format/png, format/jpg or format/avif to the step",
            op="AIGCMetadata",
            field="format",
            expected="jpg, png or avif",
            actual=final.value,
            span=state.aigc.span,
        )
    encode = EncodeSpec(
        format=final,
        quality=state.quality if final.lossy else None,
        progressive=bool(state.progressive),
        strip=state.strip,
        reset_orientation=state.reset_orientation,
        size_limit=size_limit.bytes if size_limit else None,
        keep_smaller=bool(size_limit and size_limit.keep_smaller),
        aigc=state.aigc.items() if state.aigc is not None else (),
    )
    resolved = ResolvedPlan(
        header=header,
        decode=DecodeSpec(format=header.format, frames=frames),
        decoded_size=(header.width, header.height),
        steps=tuple(state.prims),
        encode=encode,
        width=state.width,
        height=state.height,
        frames=state.frames,
        info=symbolic.info,
    )
    applied: list[str] = []
    # Rules can enable each other (crop_before_resize may leave two adjacent resizes):
    # run the list until the plan stops changing, so that planning is idempotent.
    for _ in range(MAX_RULE_PASSES):
        before = resolved
        for rule in symbolic.rules:
            rewritten = rule(resolved)
            if rewritten != resolved:
                if rule.__name__ not in applied:
                    applied.append(rule.__name__)
                log.debug("rule %s rewrote the plan", rule.__name__)
            resolved = rewritten
        if resolved == before:
            break
    # A size-limit search encodes several times: the decoded image must be re-readable.
    sequential = _sequential(resolved.steps) and resolved.encode.size_limit is None
    return replace(resolved, decode=replace(resolved.decode, sequential=sequential), applied=tuple(applied))


def _final_format(symbolic: Plan, header: ImageHeader) -> ImageFormat:
    """The output container: the last ``format`` of the request, else the input's."""
    last = None
    for op in symbolic.ops:
        if isinstance(op, StepEncode) and op.format is not None:
            last = op
    if last is None or last.format is None:
        return header.format
    dummy = R.State(
        header=header,
        limits=symbolic.limits,
        final_format=header.format,
        width=header.width,
        height=header.height,
        frames=header.frames,
        format=header.format,
        has_alpha=header.has_alpha,
        orientation=header.orientation,
        quality=R.DEFAULT_QUALITY,
    )
    return R.output_container(last.format, dummy, last)


AIGC_FORMATS = (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.AVIF)
"""The outputs ``AIGCMetadata`` can label (CI's pages: JPG/JPEG, PNG, AVIF)."""

_STREAMABLE = {"resize", "crop", "embed", "linear", "grayscale", "flatten", "mask", "blur", "sharpen"}


def _sequential(steps: Sequence[Prim]) -> bool:
    """libvips may stream (read the input top to bottom once) when every step does."""
    from ci_engine.plan.steps import Flip

    return all(s.method in _STREAMABLE or (isinstance(s, Flip) and s.horizontal) for s in steps)


from ci_engine.watermark import lowering as _watermark_lowering  # noqa: E402, F401  (registers watermark/1 and /2)
