"""Image and text watermarks (``watermark/1`` and ``watermark/2``; ``docs/watermarks.md``).

Two phases, because an overlay's size is only known once the text is rendered or the logo
decoded:

1. planning (:mod:`ci_engine.watermark.lowering`, pure, registered into
   ``ci_engine.plan``): a watermark step becomes a pending
   :class:`~ci_engine.plan.steps.Watermark` primitive that records the base size;
2. preparation (:mod:`ci_engine.watermark.prepare`, just before execution, with the
   executing backend): fonts (:mod:`~ci_engine.watermark.fonts`), text
   (:mod:`~ci_engine.watermark.text`), logo fetching (:mod:`~ci_engine.watermark.resources`)
   and the pure geometry (:mod:`~ci_engine.watermark.place`) turn it into a
   :class:`~ci_engine.plan.steps.Composite` that backends execute.

Importing this package loads no imaging library (the planner imports it).
"""

from __future__ import annotations

from ci_engine.watermark.fonts import FONT_DIR_ENV, FontFace, FontLibrary, FontNotFoundError, default_library
from ci_engine.watermark.resources import (
    CallableResolver,
    LocalDirectoryResolver,
    MappingResolver,
    NetworkResolver,
    Resolver,
    Resources,
    as_resolver,
)

__all__ = [
    "FONT_DIR_ENV",
    "FontFace",
    "FontLibrary",
    "FontNotFoundError",
    "default_library",
    "Resolver",
    "Resources",
    "MappingResolver",
    "CallableResolver",
    "LocalDirectoryResolver",
    "NetworkResolver",
    "as_resolver",
]
