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

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from ci_engine.plan.steps import Composite
from ci_engine.watermark.place import clip

__all__ = ["composite_frames", "over", "regions", "tiled_part", "STRIP_PIXELS"]


STRIP_PIXELS = 1 << 20
"""Pixels of a tiled overlay expanded at once: a tile grid over a 9,999 x 9,999 canvas is
composited strip by strip, so its temporaries (the repeated tile, the float32 arithmetic of
:func:`over`) stay a few tens of MB whatever the canvas."""


def regions(step: Composite, width: int, height: int) -> Iterator[tuple[int, int, int, int, NDArray[np.uint8]]]:
    """``(left, top, w, h, overlay_part)`` for every piece of ``step`` that lands on a
    ``width`` x ``height`` canvas (a tile grid expanded one strip of rows at a time, each
    strip at most :data:`STRIP_PIXELS`)."""
    overlay: NDArray[np.uint8] = step.overlay
    oh, ow = overlay.shape[:2]
    for x, y in step.placements:
        if step.tile:
            box = clip(x, y, width - x, height - y, width, height)
            if box is None:
                continue
            left, top, w, h = box
            rows = max(1, STRIP_PIXELS // max(1, w))
            for strip_top in range(top, top + h, rows):
                sh = min(rows, top + h - strip_top)
                yield left, strip_top, w, sh, tiled_part(overlay, left - x, strip_top - y, w, sh)
        else:
            box = clip(x, y, ow, oh, width, height)
            if box is None:
                continue
            left, top, w, h = box
            yield left, top, w, h, overlay[top - y : top - y + h, left - x : left - x + w]


def tiled_part(overlay: NDArray[np.uint8], x: int, y: int, w: int, h: int) -> NDArray[np.uint8]:
    """The ``w`` x ``h`` window at ``(x, y)`` of the plane tiled with ``overlay`` from the origin."""
    oh, ow = overlay.shape[:2]
    rows = (np.arange(h) + y) % oh
    cols = (np.arange(w) + x) % ow
    part: NDArray[np.uint8] = np.take(np.take(overlay, rows, axis=0), cols, axis=1)
    return part


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
