"""Decode once, look at the pixels, add patches, encode: the pixel path of ``ci_engine.intel``.

An operation that must see the pixels before it knows what to draw (the mosaic over a QR
code, a blind watermark) runs as: the ordinary plan of the steps before it (an identity
plan when it stands alone: the input's format, its quality ``q0``), executed on the chosen
backend up to the last primitive; the first frame's pixels as a numpy array; then the
patches the operation computed, drawn with the backends' own ``composite`` primitive
(opaque RGBA overlays); then the plan's one encode. One decode, both backends, the same
limits and geometry checks as every other pipeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ci_engine import ast as A
from ci_engine._dc import dataclass, replace
from ci_engine.limits import Limits, check_input_bytes, current_budget, plan_work
from ci_engine.plan import RULES, ResolvedPlan, Rule, plan, resolve
from ci_engine.plan.steps import Composite

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ci_engine.api import Result
    from ci_engine.backends.base import Backend
    from ci_engine.watermark import FontLibrary, Resources

__all__ = ["Decoded", "decode", "finish", "patch", "IDENTITY"]

IDENTITY = A.Pipeline((A.ImageMogr2(ops=()),))
"""A pipeline that changes nothing: decode, encode in the input's format and quality."""


@dataclass
class Decoded:
    """A pipeline run up to its encode: the plan, the backend, its image handle, the input
    bytes, the first frame as ``(height, width, channels)`` uint8 (1-4 channels) and the
    request's limits."""

    resolved: ResolvedPlan
    backend: Backend[Any]
    image: Any
    data: bytes
    pixels: NDArray[np.uint8]
    limits: Limits


def decode(
    data: bytes,
    pipeline: A.Pipeline | None = None,
    *,
    backend: str = "auto",
    limits: Limits | None = None,
    rules: Sequence[Rule] = RULES,
    resources: Resources | None = None,
    fonts: FontLibrary | None = None,
    passes: int = 0,
    encode: bool = False,
    what: str = "the analysis",
) -> Decoded:
    """Run ``pipeline`` (default: :data:`IDENTITY`) on ``data`` up to its encode.

    The work is charged to the request's budget (:func:`ci_engine.limits.current_budget`)
    before the backend is loaded: the decode, every step's output, and ``passes`` passes of
    the caller's analysis over the first frame of the result (``what`` names it in the error),
    and with ``encode`` what :func:`finish` will do: the patches (at most one frame's pixels)
    and the encode of every frame.
    """
    from ci_engine.backends import get_backend
    from ci_engine.execute import check_capabilities, run_steps
    from ci_engine.execute import decode as _decode
    from ci_engine.io import probe

    limits = limits or Limits()
    check_input_bytes(len(data), limits)
    header = probe(data, limits=limits)  # the limits, on what decoders allocate (io.probe)
    symbolic = plan(pipeline or IDENTITY, rules=rules, limits=limits)
    resolved = resolve(symbolic, header)
    out_w, out_h = resolved.sizes()[-1]
    frames = max(1, resolved.decode.frames)
    work = plan_work(resolved.sizes(), frames, 1 if encode else 0) + (max(0, passes) + encode) * out_w * out_h
    current_budget(limits).charge_pixels(work, what)
    engine = get_backend(backend)
    if any(step.method == "watermark" for step in resolved.steps):
        from ci_engine.watermark.prepare import prepare

        resolved = prepare(resolved, engine, resources=resources, fonts=fonts, limits=symbolic.limits)
    check_capabilities(resolved, engine)
    if resolved.decode.sequential:
        resolved = replace(resolved, decode=replace(resolved.decode, sequential=False))
    image = engine.materialize(run_steps(resolved, engine, _decode(resolved, engine, data)))
    pixels = engine.to_array(image)[0]
    return Decoded(resolved, engine, image, data, pixels, limits)


def patch(left: int, top: int, rgb: NDArray[np.uint8], *, alpha: NDArray[np.uint8] | None = None) -> Composite:
    """An opaque ``composite`` step that writes ``rgb`` (``(h, w, 3)`` or ``(h, w, 1)``)
    with its top-left corner at ``(left, top)``; where ``alpha`` (``(h, w)``, 0 or 255) is
    0 the image is left as it is."""
    import numpy as np

    height, width = rgb.shape[:2]
    colour = rgb if rgb.shape[2] == 3 else np.repeat(rgb[..., :1], 3, axis=2)
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[..., :3] = colour[..., :3]
    rgba[..., 3] = 255 if alpha is None else alpha
    key = hashlib.blake2b(rgba.tobytes(), digest_size=8).hexdigest()
    grey = bool(rgb.shape[2] == 1)
    return Composite(rgba, (width, height), ((left, top),), 1.0, grey=grey, key=key, origin="intel")


def finish(decoded: Decoded, patches: Sequence[Composite] = ()) -> Result:
    """Draw ``patches`` on the decoded image and encode it as its plan says (the work was
    charged by :func:`decode` with ``encode=True``)."""
    from ci_engine.api import Result
    from ci_engine.execute import encode

    resolved = decoded.resolved
    image = decoded.image
    for step in patches:
        image = decoded.backend.apply(image, step)
    out = encode(resolved, decoded.backend, image, decoded.data)
    fmt = resolved.header.format.value if out.original else resolved.encode.format.value
    return Result(out.data, fmt, out.width, out.height, out.frames, out.quality, resolved)
