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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Loaded on first use: the planner imports ci_engine.watermark.lowering, and a request
# without a watermark never needs fonts or resolvers (docs/architecture.md, "Start-up").
_FONTS = ("FONT_DIR_ENV", "FontFace", "FontLibrary", "FontNotFoundError", "default_library")

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


def __getattr__(name: str) -> Any:
    if name in _FONTS:
        from ci_engine.watermark import fonts as module
    elif name in __all__:
        from ci_engine.watermark import resources as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'ci_engine.watermark' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value
