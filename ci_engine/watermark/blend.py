"""The :class:`~ci_engine.plan.steps.Composite` primitive on numpy frames.

The reference implementation of "over" compositing (the Pillow backend runs it; the libvips
backend computes the same formula with libvips operations): with ``a`` the overlay's alpha
times ``opacity`` (0..1) and ``a_b`` the image's alpha (1 without an alpha channel),

    out_a = a + a_b (1 - a)
    out_c = (c a + c_b a_b (1 - a)) / out_a

rounded to the nearest integer. Only the pixels under the overlay are touched; what falls
outside the canvas is clipped. A grey image receiving a coloured overlay becomes RGB first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ci_engine.plan.steps import Composite
from ci_engine.watermark.place import clip

__all__ = ["composite_frames", "over", "regions"]


def regions(step: Composite, width: int, height: int) -> list[tuple[int, int, int, int, NDArray[np.uint8]]]:
    """``(left, top, w, h, overlay_part)`` for every piece of ``step`` that lands on a
    ``width`` x ``height`` canvas (tiles expanded to one region per placement)."""
    overlay: NDArray[np.uint8] = step.overlay
    oh, ow = overlay.shape[:2]
    out = []
    for x, y in step.placements:
        if step.tile:
            box = clip(x, y, width - x, height - y, width, height)
            if box is None:
                continue
            left, top, w, h = box
            # the tile phase at (left, top), then enough repeats to cover the box
            phase_x, phase_y = (left - x) % ow, (top - y) % oh
            reps_y, reps_x = -(-(phase_y + h) // oh), -(-(phase_x + w) // ow)
            part = np.tile(overlay, (reps_y, reps_x, 1))[phase_y : phase_y + h, phase_x : phase_x + w]
        else:
            box = clip(x, y, ow, oh, width, height)
            if box is None:
                continue
            left, top, w, h = box
            part = overlay[top - y : top - y + h, left - x : left - x + w]
        out.append((left, top, w, h, part))
    return out


def over(base: NDArray[np.uint8], overlay: NDArray[np.uint8], opacity: float) -> NDArray[np.uint8]:
    """``overlay`` (``(h, w, 4)`` RGBA, or ``(h, w, 2)`` grey + alpha) over ``base``
    (``(..., h, w, c)``, c = 1..4, with the same colour channel count as the overlay)."""
    colours = overlay.shape[-1] - 1
    a = overlay[..., colours:].astype(np.float32) * np.float32(opacity / 255)
    oc = overlay[..., :colours].astype(np.float32)
    has_alpha = base.shape[-1] in (2, 4)
    bc = base[..., :colours].astype(np.float32)
    if not has_alpha:
        out = bc + (oc - bc) * a
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    ab = base[..., colours:].astype(np.float32) * np.float32(1 / 255)
    out_a = a + ab * (1 - a)
    num = oc * a + bc * ab * (1 - a)
    col = np.divide(num, out_a, out=np.zeros_like(num), where=out_a > 0)
    merged = np.concatenate([col, out_a * 255], axis=-1)
    result: NDArray[np.uint8] = np.clip(np.rint(merged), 0, 255).astype(np.uint8)
    return result


def composite_frames(frames: NDArray[np.uint8], step: Composite) -> NDArray[np.uint8]:
    """Apply ``step`` to ``(n, h, w, c)`` frames; returns new frames (the input is not
    modified). Grey frames become RGB when the overlay is coloured."""
    _, height, width, channels = frames.shape
    if channels in (1, 2) and not step.grey:
        colour = np.repeat(frames[..., :1], 3, axis=-1)
        frames = np.concatenate([colour, frames[..., 1:]], axis=-1) if channels == 2 else colour
        channels += 2
    out = frames.copy()
    for left, top, w, h, part in regions(step, width, height):
        if channels in (1, 2):
            part = part[..., [0, 3]]
        region = out[:, top : top + h, left : left + w]
        out[:, top : top + h, left : left + w] = over(region, part, step.opacity)
    return out
