"""The exception hierarchy of ci_engine.

Every failure a caller can cause is a :class:`CIError` carrying the CI error ``code``
(``InvalidArgument``, ``ImageTooLarge`` ...), the HTTP ``status`` a service should answer,
the ``x_errno`` CI reports in its ``X-ErrNo`` header, whether ``ignore-error/1`` masks it
(``maskable``), a client-safe ``message`` and, for logs only, a ``detail``. The mapping is
the table of ``limits-and-errors.md`` section 5.4; ``docs/errors.md`` has one anchor per
code.

When the failure is tied to a place in a processing string, ``text`` and ``span`` say where;
``column`` is 1-based and ``caret`` renders the string with the offending token underlined.

This module imports nothing from ci_engine.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple


def _xml_escape(text: str) -> str:
    """``xml.sax.saxutils.escape`` (``&``, ``<``, ``>``), without importing it: that module
    pulls in ``urllib.request``, ``ssl``, ``http.client`` and ``email`` (tens of ms at start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


__all__ = [
    "CIError",
    "InvalidArgumentError",
    "ParseError",
    "ValueRangeError",
    "TooManyStepsError",
    "UnsupportedForInputError",
    "InvalidImageFormatError",
    "LimitExceededError",
    "ImageTooLargeError",
    "ImageResolutionExceedError",
    "InvalidPicOperationsError",
    "NoSuchStyleError",
    "NoSuchKeyError",
    "AccessDeniedError",
    "UnsupportedOperationError",
    "InternalError",
    "BackendError",
    "BackendUnavailableError",
    "Span",
]


class Span(NamedTuple):
    """A half-open character range ``[start, end)`` in a processing string (0-based).

    A named tuple rather than a dataclass: the parser makes one per node, and a tuple costs
    about half of what a frozen slotted dataclass costs to build."""

    start: int
    end: int


class CIError(Exception):
    """Base class of every error ci_engine raises on purpose.

    Attributes:
        code: the CI error code, e.g. ``InvalidArgument``.
        status: the HTTP status a service should answer.
        x_errno: CI's numeric ``X-ErrNo`` (negative), or ``None``.
        maskable: ``True`` when ``ignore-error/1`` turns this failure into "return the
            original image" (``limits-and-errors.md`` section 5.4).
        message: a short text that is safe to show to a client.
        detail: diagnostics for logs (backend messages); never shown by default.
        text: the processing string the error refers to, when there is one.
        span: where in ``text``.
    """

    code: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500
    default_x_errno: ClassVar[int | None] = None
    maskable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        detail: str | None = None,
        x_errno: int | None = None,
        text: str | None = None,
        span: Span | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.x_errno = x_errno if x_errno is not None else self.default_x_errno
        self.text = text
        self.span = span
        self.ignore_error_requested = False
        """Set by the parser when the string carries ``ignore-error/1`` (see ``masked``)."""

    # -- position -------------------------------------------------------------------------
    @property
    def column(self) -> int | None:
        """1-based column of the offending token in ``text``, or ``None``."""
        return None if self.span is None else self.span.start + 1

    @property
    def caret(self) -> str:
        """``text`` with a caret line under the offending token ('' without a position)."""
        if self.text is None or self.span is None:
            return ""
        start = min(self.span.start, len(self.text))
        width = max(1, min(self.span.end, len(self.text)) - start)
        return f"{self.text}\n{' ' * start}{'^' * width}"

    def locate(self, text: str, span: Span | tuple[int, int] | None) -> CIError:
        """Attach a position unless one is already set; returns ``self`` for ``raise``."""
        if self.text is None:
            self.text = text
        if self.span is None and span is not None:
            self.span = span if isinstance(span, Span) else Span(*span)
        return self

    @property
    def masked(self) -> bool:
        """``True`` when this failure should give the original image back: the error is
        maskable and the request carried ``ignore-error/1``."""
        return self.maskable and self.ignore_error_requested

    # -- rendering ------------------------------------------------------------------------
    def __str__(self) -> str:
        where = f" (column {self.column})" if self.column is not None else ""
        head = f"{self.code}: {self.message}{where}"
        caret = self.caret
        return f"{head}\n{caret}" if caret else head

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (no ``detail``: it is for logs)."""
        out: dict[str, Any] = {
            "code": self.code,
            "status": self.status,
            "message": self.message,
            "x_errno": self.x_errno,
            "maskable": self.maskable,
        }
        if self.column is not None:
            out["column"] = self.column
        return out

    def to_xml(
        self,
        *,
        resource: str = "",
        request_id: str | None = "",
        trace_id: str = "",
    ) -> str:
        """The COS ``<Error>`` body (``limits-and-errors.md`` section 5.1). Pass
        ``request_id=None`` to have a fresh one generated (:func:`new_request_id`); send the
        same value in the ``x-cos-request-id`` header."""
        if request_id is None:
            request_id = new_request_id()
        parts = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            "<Error>",
            f"<Code>{_xml_escape(self.code)}</Code>",
            f"<Message>{_xml_escape(self.message)}</Message>",
            f"<Resource>{_xml_escape(resource)}</Resource>",
            f"<RequestId>{_xml_escape(request_id)}</RequestId>",
            f"<TraceId>{_xml_escape(trace_id)}</TraceId>",
            "</Error>",
        ]
        return "\n".join(parts)


def new_request_id() -> str:
    """A COS-style request id: Base64 of ``<time hex>_<hex>_<hex>_<hex>`` (the shape of the
    ids in COS responses, e.g. ``NjVmYzE5ZDJfMmI1YTY0MGFfMWVhOF8zYTBi``), random per call."""
    import base64
    import secrets
    import time

    raw = f"{int(time.time()):08x}_{secrets.token_hex(4)}_{secrets.token_hex(2)}_{secrets.token_hex(3)}"
    return base64.b64encode(raw.encode("ascii")).decode("ascii")


# -- 400 InvalidArgument ----------------------------------------------------------------------


class InvalidArgumentError(CIError):
    """A parameter of the processing string is invalid (``400 InvalidArgument``).

    ``op`` names the operation (``thumbnail``), ``field`` the parameter (``width``),
    ``expected`` what would have been accepted and ``actual`` what was given.
    """

    code = "InvalidArgument"
    status = 400
    default_x_errno = -60998

    def __init__(
        self,
        message: str,
        *,
        op: str | None = None,
        field: str | None = None,
        expected: str | None = None,
        actual: object = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.op = op
        self.field = field
        self.expected = expected
        self.actual = actual

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        for key in ("op", "field", "expected"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.actual is not None:
            out["actual"] = str(self.actual)
        return out


class ParseError(InvalidArgumentError):
    """The string does not follow the grammar: an unknown operation, a missing or
    malformed value, bad Base64. Never masked by ``ignore-error/1``.

    ``token`` is the offending text ('' at the end of the string); ``expected`` lists what
    the grammar would have accepted there, in words.
    """

    def __init__(
        self,
        message: str,
        *,
        token: str = "",
        expected_tokens: tuple[str, ...] = (),
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.token = token
        self.expected_tokens = expected_tokens

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["token"] = self.token
        if self.expected_tokens:
            out["expected_tokens"] = list(self.expected_tokens)
        return out


class ValueRangeError(InvalidArgumentError):
    """A well-formed value outside its documented range (``blur/80x5``). Masked by
    ``ignore-error/1``."""

    maskable = True


class TooManyStepsError(InvalidArgumentError):
    """More than the allowed number of ``|`` steps (10) or of image watermarks on one image
    (10). Masked by ``ignore-error/1``."""

    maskable = True

    def __init__(self, message: str, *, limit: int, actual: int, **kw: Any) -> None:
        super().__init__(message, expected=f"at most {limit}", actual=actual, **kw)
        self.limit = limit


class UnsupportedForInputError(InvalidArgumentError):
    """A valid operation that CI does not support for this input or output (GIF with
    ``iradius``, GIF to HEIF, an output format with no encoder here). Masked by
    ``ignore-error/1``."""

    maskable = True


# -- the image ----------------------------------------------------------------------------------


class InvalidImageFormatError(CIError):
    """The input cannot be decoded, or its format is not one CI processes."""

    code = "InvalidImageFormat"
    status = 400
    default_x_errno = -443


class LimitExceededError(CIError):
    """A documented size limit was exceeded. ``kind`` names the limit
    (``input_bytes``, ``input_side``, ``input_pixels``, ``frames``, ``animated_pixels``,
    ``output_side``), ``limit`` its value and ``actual`` what the image has."""

    maskable = True
    status = 400

    def __init__(self, message: str, *, kind: str, limit: int, actual: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.kind = kind
        self.limit = limit
        self.actual = actual

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.update(kind=self.kind, limit=self.limit, actual=self.actual)
        return out


class ImageTooLargeError(LimitExceededError):
    """The input file is larger than the byte limit (32 MB by default)."""

    code = "ImageTooLarge"
    default_x_errno = -167


class ImageResolutionExceedError(LimitExceededError):
    """Input or output dimensions, pixels or frames over the limit. ``x_errno`` is -447 for
    input limits and -442 for the output-side ceiling."""

    code = "ImageResolutionExceed"
    default_x_errno = -447


# -- persistent processing, styles, storage ----------------------------------------------------


class InvalidPicOperationsError(CIError):
    """The ``Pic-Operations`` header is malformed (bad JSON, bad ``fileid``, > 5 rules)."""

    code = "InvalidPicOperations"
    status = 400
    default_x_errno = -60998


class NoSuchStyleError(CIError):
    """A style named by ``style/<name>`` (or a bare ``?<name>``) does not exist."""

    code = "NoSuchStyle"
    status = 404
    default_x_errno = -60967


class NoSuchKeyError(CIError):
    """An object (source, watermark image) does not exist."""

    code = "NoSuchKey"
    status = 404
    default_x_errno = -46628


class AccessDeniedError(CIError):
    """Refused: original-image protection, a resource outside its root, a switch that is
    off."""

    code = "AccessDenied"
    status = 403
    default_x_errno = None


# -- not here / our fault -----------------------------------------------------------------------


class UnsupportedOperationError(CIError):
    """A valid CI feature that ci_engine does not implement (or not on this backend).
    The message names the feature."""

    code = "NotImplemented"
    status = 501


class InternalError(CIError):
    """Something failed that the caller could not have caused. Reported as a bug."""

    code = "InternalError"
    status = 500


class BackendError(InternalError):
    """A backend failed while running a step of the plan. ``step_index`` and ``step`` say
    which; ``backend`` names the backend. The original exception is chained."""

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        step_index: int | None = None,
        step: object = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.backend = backend
        self.step_index = step_index
        self.step = step


class BackendUnavailableError(InternalError):
    """The requested backend cannot be used here (for example pyvips cannot load
    libvips). The message lists the remedies."""

    code = "ServiceUnavailable"
    status = 503
