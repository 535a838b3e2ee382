"""ci_engine: run Tencent Cloud Infinite (CI) image-processing strings locally.

The verbs: :func:`process` (image + processing string -> :class:`Result`), :func:`parse`
(string -> typed AST), :func:`parse_url` (find the processing string in a URL),
:func:`render` (AST -> canonical string), :func:`explain` (AST, plan and resolved plan).
Everything a caller can get wrong raises a :class:`CIError` with a CI error code and an
HTTP status. ``import ci_engine`` loads no imaging library; the backend loads on first use.

The names below are loaded on first use (PEP 562 module ``__getattr__``), so that
``import ci_engine`` costs a few milliseconds and a one-shot command loads only what it
runs (``docs/architecture.md``, "Start-up").
"""

from __future__ import annotations

import logging
import sys
import types as _types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ci_engine.aigc import read_aigc_metadata
    from ci_engine.api import Result, explain, process, process_url
    from ci_engine.ast import Pipeline
    from ci_engine.errors import (
        AccessDeniedError,
        BackendError,
        BackendUnavailableError,
        CIError,
        ImageResolutionExceedError,
        ImageTooLargeError,
        InternalError,
        InvalidArgumentError,
        InvalidImageFormatError,
        InvalidPicOperationsError,
        LimitExceededError,
        NoSuchKeyError,
        NoSuchStyleError,
        ParseError,
        TooManyStepsError,
        UnsupportedForInputError,
        UnsupportedOperationError,
        ValueRangeError,
    )
    from ci_engine.limits import Limits
    from ci_engine.parse import parse, parse_url
    from ci_engine.persistent import UploadResult, persist
    from ci_engine.render import render
    from ci_engine.store import LocalStore, Store
    from ci_engine.styles import StyleRegistry, resolve_request

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

_ERRORS = (
    "AccessDeniedError",
    "BackendError",
    "BackendUnavailableError",
    "CIError",
    "ImageResolutionExceedError",
    "ImageTooLargeError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidImageFormatError",
    "InvalidPicOperationsError",
    "LimitExceededError",
    "NoSuchKeyError",
    "NoSuchStyleError",
    "ParseError",
    "TooManyStepsError",
    "UnsupportedForInputError",
    "UnsupportedOperationError",
    "ValueRangeError",
)

_LAZY: dict[str, str] = {
    **dict.fromkeys(_ERRORS, "ci_engine.errors"),
    "Result": "ci_engine.api",
    "explain": "ci_engine.api",
    "process": "ci_engine.api",
    "process_url": "ci_engine.api",
    "Pipeline": "ci_engine.ast",
    "Limits": "ci_engine.limits",
    "parse": "ci_engine.parse",
    "parse_url": "ci_engine.parse",
    "UploadResult": "ci_engine.persistent",
    "persist": "ci_engine.persistent",
    "render": "ci_engine.render",
    "read_aigc_metadata": "ci_engine.aigc",
    "LocalStore": "ci_engine.store",
    "Store": "ci_engine.store",
    "StyleRegistry": "ci_engine.styles",
    "resolve_request": "ci_engine.styles",
}
"""Public name -> the module that defines it."""

__all__ = [
    "AccessDeniedError",
    "BackendError",
    "BackendUnavailableError",
    "CIError",
    "ImageResolutionExceedError",
    "ImageTooLargeError",
    "InternalError",
    "InvalidArgumentError",
    "InvalidImageFormatError",
    "InvalidPicOperationsError",
    "Limits",
    "LimitExceededError",
    "LocalStore",
    "NoSuchKeyError",
    "NoSuchStyleError",
    "ParseError",
    "Pipeline",
    "Result",
    "Store",
    "StyleRegistry",
    "TooManyStepsError",
    "UnsupportedForInputError",
    "UnsupportedOperationError",
    "UploadResult",
    "ValueRangeError",
    "__version__",
    "explain",
    "parse",
    "parse_url",
    "persist",
    "process",
    "process_url",
    "read_aigc_metadata",
    "render",
    "resolve_request",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ci_engine' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(_types.ModuleType):
    """``ci_engine.parse`` and ``ci_engine.render`` name the functions, as they always
    have, although modules of the same names exist: the import system's binding of a
    loaded submodule onto the package is not let to replace them. (``types`` is imported
    as ``_types``: the submodule ``ci_engine.types`` is bound to the package's ``types``.)"""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("parse", "render") and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
