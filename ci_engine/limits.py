"""The documented size limits (``limits-and-errors.md`` section 2) and their checks.

Every check is a pure function of numbers: input limits run on the header (before any
pixel is decoded), output limits on the resolved geometry (before any work begins).
"""

from __future__ import annotations

from dataclasses import dataclass

from ci_engine.errors import ImageResolutionExceedError, ImageTooLargeError
from ci_engine.types import ImageFormat, ImageHeader

__all__ = ["Limits", "check_input_bytes", "check_header", "check_output"]

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
    """

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


def check_output(width: int, height: int, frames: int, limits: Limits) -> None:
    """Output side and animated-pixel limits, checked on the resolved geometry."""
    side = max(width, height)
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
