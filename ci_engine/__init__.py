"""ci_engine: run Tencent Cloud Infinite (CI) image-processing strings locally.

The verbs: :func:`process` (image + processing string -> :class:`Result`), :func:`parse`
(string -> typed AST), :func:`parse_url` (find the processing string in a URL),
:func:`render` (AST -> canonical string), :func:`explain` (AST, plan and resolved plan).
Everything a caller can get wrong raises a :class:`CIError` with a CI error code and an
HTTP status. ``import ci_engine`` loads no imaging library; the backend loads on first use.
"""

from __future__ import annotations

import logging

from ci_engine.api import Result, explain, process
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


def read_aigc_metadata(data: bytes | bytearray | memoryview) -> dict[str, object]:
    """The AIGC label of an image as ``ci-process=ImageAIGCMetadata`` answers it:
    ``{"AIGC": {"Label": ..., ...}}``, or ``{}`` without one (:mod:`ci_engine.aigc`)."""
    from ci_engine.aigc import read_aigc_metadata as read

    return read(data)


__version__ = "0.1.0"

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
    "read_aigc_metadata",
    "render",
    "resolve_request",
]
