"""AST -> symbolic plan: CI's order-of-operations semantics, no image needed.

``imagemogr2.md`` section 1.2 (normative for ci_engine):

1. pixel operations run in the order written, each on the previous one's output;
2. modifiers are already bound to their operation by the parser;
3. encoding parameters (``format``, ``cgif``, ``egif``, ``interlace``, the quality family,
   ``strip``, ``size-limit``) apply once, at the end of their step, wherever they were
   written; within a step the last one wins;
4. ``ignore-error`` is request-wide.

A ``|`` pipeline is the concatenation of its steps: each step ends with a
:class:`StepEncode`. The request still decodes once and encodes once: a step's format
matters to the next step only through what it changes in the pixels (alpha flattened for
JPEG/BMP, frames dropped for static formats), which the resolver keeps; the compression
artefacts of an intermediate encode are not reproduced (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ci_engine import ast as A
from ci_engine._dc import dataclass, field
from ci_engine.errors import (
    InvalidArgumentError,
    NoSuchStyleError,
    Span,
    TooManyStepsError,
    UnsupportedOperationError,
)
from ci_engine.types import OutputFormat

__all__ = ["StepEncode", "ViewScale", "lower", "LOWERERS", "INFO_STEPS", "PIXEL_OPS"]


@dataclass(frozen=True, slots=True)
class StepEncode:
    """The encoding parameters of one ``|`` step (``None`` = not written in the step)."""

    step: int
    format: OutputFormat | None = None
    quality: A.Quality | None = None
    rquality: int | None = None
    lquality: int | None = None
    interlace: bool | None = None
    strip: bool = False
    size_limit: A.SizeLimit | None = None
    cgif: int | None = None
    egif: int | None = None
    aigc: A.AIGCMetadata | None = None
    span: Span | None = field(default=None, compare=False, repr=False)
    format_span: Span | None = field(default=None, compare=False, repr=False)
    """Where the format's value was written (errors about the format point at it)."""

    @property
    def empty(self) -> bool:
        return self == StepEncode(self.step)


@dataclass(frozen=True, slots=True)
class ViewScale:
    """The geometry of an ``imageView2`` step (mode and the clamped-later ``w``/``h``)."""

    mode: int
    width: int | None
    height: int | None
    span: Span | None = field(default=None, compare=False, repr=False)


INFO_STEPS: tuple[type[A.Step], ...] = (A.ImageInfo, A.Exif, A.ImageAve)
"""Steps that answer JSON about the image; allowed only as the last step."""

PIXEL_OPS: tuple[type, ...] = tuple(op for op in A.MOGR_OPS if op not in A.ENCODE_OPS and op is not A.IgnoreError)

Lowerer = Callable[[Any, int], list[Any]]
LOWERERS: dict[type, Lowerer] = {}
"""One lowering function per step class; a step class without one is not supported yet
(:class:`~ci_engine.errors.UnsupportedOperationError` names it)."""


def _lowers(cls: type) -> Callable[[Lowerer], Lowerer]:
    def register(fn: Lowerer) -> Lowerer:
        LOWERERS[cls] = fn
        return fn

    return register


@_lowers(A.ImageMogr2)
def _image_mogr2(step: A.ImageMogr2, index: int) -> list[Any]:
    ops: list[Any] = []
    encode: dict[str, Any] = {}
    for op in step.ops:
        if isinstance(op, A.Format):
            encode["format"] = op.format
            if op.span is not None:
                encode["format_span"] = Span(op.span.start + len("format/"), op.span.end)
        elif isinstance(op, A.Quality):
            encode["quality"] = op
        elif isinstance(op, A.RQuality):
            encode["rquality"] = op.value
        elif isinstance(op, A.LQuality):
            encode["lquality"] = op.value
        elif isinstance(op, A.Interlace):
            encode["interlace"] = op.enabled
        elif isinstance(op, A.Strip):
            encode["strip"] = True
        elif isinstance(op, A.SizeLimit):
            encode["size_limit"] = op
        elif isinstance(op, A.CGif):
            encode["cgif"] = op.frames
        elif isinstance(op, A.EGif):
            encode["egif"] = op.interval
        elif isinstance(op, A.AIGCMetadata):
            encode["aigc"] = op
        elif isinstance(op, A.IgnoreError):
            continue
        else:
            ops.append(op)
    ops.append(StepEncode(index, **encode, span=step.span))
    return ops


@_lowers(A.ImageView2)
def _image_view2(step: A.ImageView2, index: int) -> list[Any]:
    ops: list[Any] = []
    if step.mode is not None and (step.width is not None or step.height is not None):
        ops.append(ViewScale(step.mode, step.width, step.height, span=step.span))
    quality = None if step.quality is None else A.Quality(step.quality, step.quality_forced)
    ops.append(
        StepEncode(
            index,
            format=step.format,
            quality=quality,
            rquality=step.rquality,
            lquality=step.lquality,
            interlace=step.interlace,
            span=step.span,
        )
    )
    return ops


def lower(pipeline: A.Pipeline, *, max_steps: int, max_image_watermarks: int) -> tuple[list[Any], A.Step | None]:
    """The flat list of symbolic operations of ``pipeline`` and its final info step.

    Raises:
        TooManyStepsError: more than ``max_steps`` steps or ``max_image_watermarks`` image
            watermarks.
        NoSuchStyleError: a ``style/<name>`` step that was not expanded.
        InvalidArgumentError: an information step (``imageInfo`` ...) that is not last.
        UnsupportedOperationError: a step ci_engine does not implement.
    """
    steps = pipeline.steps
    if len(steps) > max_steps:
        raise TooManyStepsError(
            f"pipeline: at most {max_steps} steps are allowed, got {len(steps)}",
            limit=max_steps,
            actual=len(steps),
            op="pipeline",
            field="steps",
            span=steps[max_steps].span,
        )
    marks = [s for s in steps if isinstance(s, A.ImageWatermark)]
    if len(marks) > max_image_watermarks:
        raise TooManyStepsError(
            f"watermark/1: at most {max_image_watermarks} image watermarks are allowed, got {len(marks)}",
            limit=max_image_watermarks,
            actual=len(marks),
            op="watermark/1",
            field="count",
            span=marks[max_image_watermarks].span,
        )
    ops: list[Any] = []
    info: A.Step | None = None
    for index, step in enumerate(steps):
        if isinstance(step, INFO_STEPS):
            if index != len(steps) - 1:
                raise InvalidArgumentError(
                    f"{step.keyword}: an information step must be the last step of the pipeline",
                    op=step.keyword,
                    span=step.span,
                )
            info = step
            continue
        if isinstance(step, A.StyleRef):
            raise NoSuchStyleError(
                f"style: {step.name!r} is not defined (pass a style registry to expand it)",
                span=step.span,
            )
        lowerer = LOWERERS.get(type(step))
        if lowerer is None:
            what = step.keyword if not hasattr(step, "mode") else f"watermark/{step.mode}"
            if isinstance(step, A.CiProcess):
                what = f"ci-process={step.name.value}"
            raise UnsupportedOperationError(f"{what}: not implemented by ci_engine", span=step.span)
        ops.extend(lowerer(step, index))
    return ops, info
