"""Run a resolved plan on a backend: one decode, the primitives in order, one encode.

The only module that sees a plan and a backend together. It never computes geometry; it
checks that the backend produced exactly the geometry the plan promised, wraps backend
failures with the step they happened in, and runs the encoder-side searches that are the
same for every backend (``size-limit``).
"""

from __future__ import annotations

from typing import Any

from ci_engine._dc import dataclass
from ci_engine.backends.base import Backend
from ci_engine.errors import BackendError, CIError, InternalError, InvalidImageFormatError, UnsupportedOperationError
from ci_engine.plan import ResolvedPlan
from ci_engine.plan.steps import EncodeSpec
from ci_engine.types import ImageFormat

__all__ = ["Encoded", "execute", "decode", "run_steps", "encode", "check_capabilities"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """What the executor produced."""

    data: bytes
    width: int
    height: int
    frames: int
    quality: int | None
    original: bool = False
    """``True`` when ``size-limit/...!`` kept the original bytes (they were smaller)."""


def check_capabilities(plan: ResolvedPlan, backend: Backend[Any]) -> None:
    """Refuse, before any work, a plan that needs what ``backend`` lacks: nothing silently
    degrades to something else (``docs/backends.md``)."""
    caps = backend.capabilities
    if plan.decode.format not in caps.loads:
        raise UnsupportedOperationError(f"backend {backend.name}: cannot decode {plan.decode.format.value}")
    if plan.encode.format not in caps.saves:
        raise UnsupportedOperationError(f"backend {backend.name}: cannot encode {plan.encode.format.value}")
    for step in plan.steps:
        if step.method not in caps.methods:
            raise UnsupportedOperationError(
                f"backend {backend.name}: {step.origin or step.method} is not supported", span=step.span
            )


def decode(plan: ResolvedPlan, backend: Backend[Any], data: bytes) -> Any:
    """Decode ``data`` as ``plan`` says and check the size and frame count against the
    header (before any pixel work on libvips; a decoder that counts the frames of a damaged
    animation differently from the probe is the input's fault, not ours)."""
    image = backend.decode(data, plan.decode, plan.header)
    width, height, frames = backend.size(image)
    if frames != plan.decode.frames:
        raise InvalidImageFormatError(
            f"{plan.header.format.value}: the header has {plan.decode.frames} complete frame(s) "
            f"but the image decodes to {frames}",
        )
    expected = plan.decoded_size
    # Shrink-on-load rounds differently per decoder (libvips floors, libjpeg ceils); only
    # an unshrunk decode must match the header exactly.
    slack = 0 if plan.decode.shrink == 1 else 1
    if abs(width - expected[0]) > slack or abs(height - expected[1]) > slack:
        raise InvalidImageFormatError(
            f"{plan.header.format.value}: the header says {expected[0]}x{expected[1]} "
            f"but the image decodes to {width}x{height}",
        )
    return image


def run_steps(plan: ResolvedPlan, backend: Backend[Any], image: Any) -> Any:
    """Apply the plan's primitives in order."""
    for index, step in enumerate(plan.steps):
        try:
            image = backend.apply(image, step)
        except CIError as exc:
            if exc.span is None and step.span is not None:
                exc.span = step.span
            raise
        except Exception as exc:
            input_error = getattr(backend, "input_error", None)  # a lazy decoder's late failure
            found = input_error(exc) if input_error is not None else None
            if isinstance(found, CIError):
                found.span = found.span or step.span
                raise found from exc
            raise BackendError(
                f"{backend.name}: step {index} ({step.method}, from {step.origin or 'the plan'}) failed",
                backend=backend.name,
                step_index=index,
                step=step,
                detail=repr(exc),
                span=step.span,
            ) from exc
    width, height, frames = backend.size(image)
    if (width, height, frames) != (plan.width, plan.height, plan.frames):
        raise InternalError(
            f"{backend.name}: produced {width}x{height} x{frames} frames, "
            f"the plan says {plan.width}x{plan.height} x{plan.frames}",
        )
    return image


def encode(plan: ResolvedPlan, backend: Backend[Any], image: Any, original: bytes) -> Encoded:
    """Encode once, or search the JPEG quality for ``size-limit``."""
    spec = plan.encode
    quality = spec.quality
    if spec.size_limit is not None:
        image = backend.materialize(image)
    data = backend.encode(image, spec)
    if spec.size_limit is not None and len(data) > spec.size_limit and quality is not None:
        data, quality = _fit_size(backend, image, spec, quality, data)
    labelable = plan.header.format in (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.AVIF)
    if spec.keep_smaller and len(data) >= len(original) and (labelable or not spec.aigc):
        if spec.aigc:  # the original is returned, labelled
            original = _label(original, plan.header.format, spec)
        return Encoded(original, plan.header.width, plan.header.height, plan.header.frames, plan.header.quality, True)
    if spec.aigc:
        data = _label(data, spec.format, spec)
    frames = plan.frames
    if spec.format is ImageFormat.GIF and frames > 1:
        # Pillow's GIF writer merges a frame identical to the one before it into that one
        # (delays summed: the animation looks the same); report what the file holds.
        from ci_engine.io import probe

        frames = probe(data).frames
    return Encoded(data, plan.width, plan.height, frames, quality)


def _label(data: bytes, fmt: ImageFormat, spec: EncodeSpec) -> bytes:
    """Write the ``AIGCMetadata`` label after encoding (``ci_engine.aigc``): the same bytes
    for every backend, and ``strip`` cannot remove it."""
    from ci_engine.aigc import embed

    return embed(data, fmt, spec.aigc)


def _fit_size(backend: Backend[Any], image: Any, spec: EncodeSpec, quality: int, first: bytes) -> tuple[bytes, int]:
    """The highest quality in [1, quality) whose encoding fits ``spec.size_limit``; the
    quality-1 result when none does (``imagemogr2.md`` section 22)."""
    assert spec.size_limit is not None
    low, high = 1, quality - 1
    best: tuple[bytes, int] | None = None
    lowest: tuple[bytes, int] | None = None
    while low <= high:
        mid = (low + high) // 2
        data = backend.encode(image, spec, quality=mid)
        if mid == 1:
            lowest = (data, 1)
        if len(data) <= spec.size_limit:
            best = (data, mid)
            low = mid + 1
        else:
            high = mid - 1
    if best is not None:
        return best
    return lowest or (backend.encode(image, spec, quality=1), 1) if quality > 1 else (first, quality)


def execute(plan: ResolvedPlan, backend: Backend[Any], data: bytes) -> Encoded:
    """Decode, run and encode ``plan`` on ``backend``."""
    tune = getattr(backend, "tune", None)
    if tune is not None:
        tune(plan.width * plan.height * plan.frames, plan.encode.format)
    image = decode(plan, backend, data)
    image = run_steps(plan, backend, image)
    return encode(plan, backend, image, data)
