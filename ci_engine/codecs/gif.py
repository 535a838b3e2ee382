"""GIF writing through Pillow (see ``ci_engine.codecs``)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from ci_engine.codecs import Frames

__all__ = ["encode"]

DEFAULT_DELAY = 100


def _rgb(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    channels = pixels.shape[2]
    alpha = pixels[..., -1] if channels in (2, 4) else None
    colour = pixels[..., :3] if channels >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    return np.ascontiguousarray(colour), alpha


def encode(frames: Frames, *, interlace: bool = False) -> bytes:
    """Encode ``frames`` as a GIF: each frame quantised to its own palette with Pillow's
    fast octree (no dithering); pixels with alpha below 128 become the transparent index.
    Delays are kept (GIF stores centiseconds), as is the loop count. Pillow's writer merges
    a frame identical to the one before it into that one, summing their delays, so the file
    may hold fewer frames than it was given (the executor reports the count it holds)."""
    images: list[Image.Image] = []
    transparent = False
    for pixels in frames.pixels:
        colour, alpha = _rgb(pixels)
        image = Image.fromarray(colour, "RGB")
        if alpha is not None and bool((alpha < 128).any()):
            transparent = True
            quant = image.quantize(255, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
            index = np.asarray(quant).copy()
            index[alpha < 128] = 255
            palette = quant.getpalette() or []
            quant = Image.fromarray(index, "P")
            quant.putpalette([*palette[: 255 * 3], 0, 0, 0])
            quant.info["transparency"] = 255
        else:
            quant = image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        images.append(quant)
    delays = list(frames.delays) or [DEFAULT_DELAY] * len(images)
    delays = [d if d > 0 else DEFAULT_DELAY for d in delays[: len(images)]]
    delays += [DEFAULT_DELAY] * (len(images) - len(delays))
    out = io.BytesIO()
    options: dict[str, Any] = {"format": "GIF", "interlace": interlace, "optimize": False}
    if len(images) > 1:
        options.update(save_all=True, append_images=images[1:], duration=delays)
        if frames.loop != 1:  # plays -> NETSCAPE repeats; one play needs no extension
            options["loop"] = max(0, frames.loop - 1)
        options["disposal"] = 2 if transparent else 1
    if transparent:
        options["transparency"] = 255
    images[0].save(out, **options)
    return out.getvalue()
