"""The documented size limits (``limits-and-errors.md`` section 2) and their checks.

Every check is a pure function of numbers: input limits run on the header (before any
pixel is decoded), output limits on the resolved geometry (before any work begins).
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from ci_engine._dc import dataclass
from ci_engine.errors import ImageResolutionExceedError, ImageTooLargeError
from ci_engine.types import ImageFormat, ImageHeader

__all__ = [
    "Limits",
    "WorkBudget",
    "check_input_bytes",
    "check_header",
    "check_output",
    "request_budget",
    "current_budget",
]

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits enforced by :func:`ci_engine.process`. Defaults are CI's documented limits.

    Attributes:
        max_input_bytes: input file size (32 MB).
        max_input_side: input width or height (30,000 px).
        max_input_pixels: input width x height (250 MP).
        max_animated_pixels: width x height x frames of an animated input or output (250 MP).
        max_gif_frames: frames of a GIF input (300).
        max_frames: frames of any input (1,000; not a CI limit). CI's animated-pixel limit
            lets a 1 x 1 animated WebP hold 640,000 frames in 32 MB, and decoders spend about
            0.1 ms per frame, however small: a minute of CPU.
        max_output_side: output width or height (9,999 px).
        max_steps: ``|``-separated steps after style expansion (10).
        max_image_watermarks: image watermarks on one image (10).
        max_param_value: width/height-type parameters above this are treated as this (10,000).
        max_work_pixels: the per-request work budget, in pixels (1,000,000,000; not a CI
            limit). Everything one request will compute counts against it *before* it is
            computed, its whole tree included (nested processing of watermark URLs): the
            decoded input and every decoded logo (width x height x frames), the output of
            every step, the text bitmaps and rotated tiles drawn, the pixels composited and
            the output encoded (times the encodes of a ``size-limit`` search). It admits
            a 250 MP decode followed by several steps at 9,999 x 9,999, and refuses a
            request that multiplies work: logos inside logos, ten full-size steps on a
            100 MP output, a ``size-limit`` search (9 encodes) of a 100 MP output.
            ``docs/security.md`` has the figures.
        max_request_images: watermark images fetched by one request, nested processing
            included (20; not a CI limit). ``max_image_watermarks`` counts per pipeline: a
            logo URL whose processing query carries ten logos, each carrying ten more, would
            otherwise fetch and decode hundreds.
        max_request_bytes: bytes one request reads and probes, the input, every watermark
            image and every nested result included (96 MiB; not a CI limit): the probe's
            work is linear in the bytes it is given, so this bounds it per request.
        max_webp_output_side: WebP output width or height (16,383 px: the format's own
            ceiling, on both of CI's pages).

    Two presets name CI's two sets of pages (``docs/compatibility.md``, "Output sides"):
    :attr:`INTERNATIONAL` (the default: 30,000 px in, 9,999 px out) and :attr:`MAINLAND`
    (50,000 px in and out, WebP 16,383, and a work budget of 6 G pixels: one step at those
    sides, a 250 MP decode and a 2.5 GP output encoded once, fits it).
    """

    INTERNATIONAL: ClassVar[Limits]
    """The international pages' limits: 30,000 px per input side, 9,999 per output side.
    The default, because it bounds one output at 100 MP (0.3 GB of RGB) where the mainland
    ceiling admits 2.5 GP (7.5 GB), and a request that fits it runs on both kinds of CI."""
    MAINLAND: ClassVar[Limits]
    """The mainland pages' limits: 50,000 px per input and output side (WebP 16,383); the
    pixel, byte and frame limits are the same."""

    max_input_bytes: int = 32 * MB
    max_input_side: int = 30_000
    max_input_pixels: int = 250_000_000
    max_animated_pixels: int = 250_000_000
    max_gif_frames: int = 300
    max_frames: int = 1_000
    max_output_side: int = 9_999
    max_steps: int = 10
    max_image_watermarks: int = 10
    max_param_value: int = 10_000
    max_work_pixels: int = 1_000_000_000
    max_request_images: int = 20
    max_request_bytes: int = 96 * MB
    max_webp_output_side: int = 16_383


Limits.INTERNATIONAL = Limits()
Limits.MAINLAND = Limits(max_input_side=50_000, max_output_side=50_000, max_work_pixels=6_000_000_000)


def check_input_bytes(size: int, limits: Limits, *, persistent: bool = False) -> None:
    """The byte limit, checked before anything else is read."""
    if size > limits.max_input_bytes:
        raise ImageTooLargeError(
            f"input: file is {size} bytes, more than the limit of {limits.max_input_bytes}",
            kind="input_bytes",
            limit=limits.max_input_bytes,
            actual=size,
            x_errno=-60996 if persistent else -167,
        )


def check_header(header: ImageHeader, limits: Limits) -> None:
    """Input dimension, pixel and frame limits, checked on the header before decoding."""
    w, h, frames = header.width, header.height, header.frames
    side = max(w, h)
    if side > limits.max_input_side:
        raise ImageResolutionExceedError(
            f"input: {w}x{h} has a side over the limit of {limits.max_input_side} px",
            kind="input_side",
            limit=limits.max_input_side,
            actual=side,
        )
    if w * h > limits.max_input_pixels:
        raise ImageResolutionExceedError(
            f"input: {w}x{h} is {w * h} pixels, more than the limit of {limits.max_input_pixels}",
            kind="input_pixels",
            limit=limits.max_input_pixels,
            actual=w * h,
        )
    if header.format is ImageFormat.GIF and frames > limits.max_gif_frames:
        raise ImageResolutionExceedError(
            f"input: GIF has {frames} frames, more than the limit of {limits.max_gif_frames}",
            kind="frames",
            limit=limits.max_gif_frames,
            actual=frames,
        )
    if frames > limits.max_frames:
        raise ImageResolutionExceedError(
            f"input: {frames} frames, more than the limit of {limits.max_frames}",
            kind="frames",
            limit=limits.max_frames,
            actual=frames,
        )
    if frames > 1 and w * h * frames > limits.max_animated_pixels:
        raise ImageResolutionExceedError(
            f"input: {w}x{h} x {frames} frames is {w * h * frames} pixels, "
            f"more than the limit of {limits.max_animated_pixels}",
            kind="animated_pixels",
            limit=limits.max_animated_pixels,
            actual=w * h * frames,
        )


def check_output(width: int, height: int, frames: int, limits: Limits, fmt: ImageFormat | None = None) -> None:
    """Output side and animated-pixel limits, checked on the resolved geometry (and the
    WebP ceiling when the output format ``fmt`` is known)."""
    side = max(width, height)
    if fmt is ImageFormat.WEBP and side > limits.max_webp_output_side:
        raise ImageResolutionExceedError(
            f"output: {width}x{height} has a side over the WebP limit of {limits.max_webp_output_side} px",
            kind="output_side",
            limit=limits.max_webp_output_side,
            actual=side,
            x_errno=-442,
        )
    if side > limits.max_output_side:
        raise ImageResolutionExceedError(
            f"output: {width}x{height} has a side over the limit of {limits.max_output_side} px",
            kind="output_side",
            limit=limits.max_output_side,
            actual=side,
            x_errno=-442,
        )
    if frames > 1 and width * height * frames > limits.max_animated_pixels:
        raise ImageResolutionExceedError(
            f"output: {width}x{height} x {frames} frames is more than {limits.max_animated_pixels} pixels",
            kind="animated_pixels",
            limit=limits.max_animated_pixels,
            actual=width * height * frames,
            x_errno=-442,
        )


# -- the per-request work budget ---------------------------------------------------------------


class WorkBudget:
    """What one request may still do: pixels of work, watermark images, bytes read.

    Every piece of work is charged *before* it is done; going over raises
    :class:`~ci_engine.errors.ImageResolutionExceedError` (``kind`` ``work_pixels``,
    ``request_images`` or ``request_bytes``), so a refused request has computed nothing
    beyond what was already charged. One budget covers a request's whole tree: a nested
    :func:`ci_engine.process` (a watermark URL's processing query) finds the budget of the
    request that started it (:func:`request_budget`). Thread-safe (``persist()`` prepares
    rules in one thread, but a caller may share a budget).
    """

    __slots__ = ("_lock", "bytes", "images", "limits", "pixels")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.pixels = 0
        self.images = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def charge_pixels(self, amount: int, what: str) -> None:
        """Count ``amount`` pixels of work for ``what`` (named in the error)."""
        limit = self.limits.max_work_pixels
        with self._lock:
            total = self.pixels + max(0, int(amount))
            if total > limit:
                raise ImageResolutionExceedError(
                    f"request: {what} would bring the work to {total:,} pixels, "
                    f"more than the per-request budget of {limit:,} (Limits.max_work_pixels)",
                    kind="work_pixels",
                    limit=limit,
                    actual=total,
                )
            self.pixels = total

    def charge_plan(self, resolved: Any, what: str = "the pipeline") -> None:
        """Count the work of a resolved plan (``ci_engine.plan.ResolvedPlan``) before it
        runs: the decode, every step's output and the encodes of the output (9 for a
        ``size-limit`` quality search: the first encode and at most 8 halvings)."""
        encodes = 1 + (8 if resolved.encode.size_limit is not None else 0)
        self.charge_pixels(plan_work(resolved.sizes(), resolved.decode.frames, encodes), what)

    def charge_bytes(self, amount: int, what: str) -> None:
        """Count ``amount`` bytes read and probed for ``what``."""
        limit = self.limits.max_request_bytes
        with self._lock:
            total = self.bytes + max(0, int(amount))
            if total > limit:
                raise ImageTooLargeError(
                    f"request: {what} would bring the bytes read to {total:,}, "
                    f"more than the per-request limit of {limit:,} (Limits.max_request_bytes)",
                    kind="request_bytes",
                    limit=limit,
                    actual=total,
                )
            self.bytes = total

    def count_image(self, what: str) -> None:
        """Count one watermark image about to be fetched."""
        limit = self.limits.max_request_images
        with self._lock:
            total = self.images + 1
            if total > limit:
                raise ImageResolutionExceedError(
                    f"request: {what} would be watermark image number {total}, more than the "
                    f"{limit} one request may fetch, nested processing included (Limits.max_request_images)",
                    kind="request_images",
                    limit=limit,
                    actual=total,
                )
            self.images = total


_CURRENT: contextvars.ContextVar[WorkBudget | None] = contextvars.ContextVar("ci_engine_work_budget", default=None)


@contextmanager
def request_budget(limits: Limits) -> Iterator[WorkBudget]:
    """The budget of the request being run: a new one for a top-level call, the enclosing
    request's for a nested one (a watermark URL's processing query)."""
    current = _CURRENT.get()
    if current is not None:
        yield current
        return
    budget = WorkBudget(limits)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def current_budget(limits: Limits) -> WorkBudget:
    """The running request's budget, or a fresh one (a direct call outside any request)."""
    current = _CURRENT.get()
    return current if current is not None else WorkBudget(limits)


def plan_work(steps_sizes: list[tuple[int, int]], frames: int, encodes: int) -> int:
    """Pixels of work of a resolved plan: the decode (the first size), the output of every
    step, and ``encodes`` encodes of the output (all ``frames`` frames)."""
    decoded = steps_sizes[0][0] * steps_sizes[0][1]
    steps = sum(w * h for w, h in steps_sizes[1:])
    out_w, out_h = steps_sizes[-1]
    return (decoded + steps + encodes * out_w * out_h) * max(1, frames)
