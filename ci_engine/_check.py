"""Argument predicates with one message template, used by every AST constructor.

Every check raises with the same shape of message, ``"<op>: <field> must be <expected>,
got <actual>"``, so that a hand-built AST gets exactly the checks (and the words) of a
parsed one. A value of the wrong *type* is an :class:`InvalidArgumentError` (never masked);
a well-typed value outside its documented range is a :class:`ValueRangeError` (masked by
``ignore-error/1``, ``limits-and-errors.md`` section 5.4).
"""

from __future__ import annotations

import binascii
import math
import re
from typing import TypeVar

from ci_engine.errors import InvalidArgumentError, ValueRangeError

T = TypeVar("T")

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
"""Control characters other than newline."""

MAX_VALUE = 2**31 - 1
"""Upper bound of every integer parameter CI leaves open (sizes, offsets, areas): far above
any meaningful value, and it keeps every AST renderable and re-parsable."""

__all__ = [
    "MAX_VALUE",
    "fail",
    "integer",
    "number",
    "flag",
    "instance",
    "optional",
    "text",
    "b64_decode",
    "b64_encode",
    "format_decimal",
]


def fail(op: str, field: str, expected: str, actual: object, *, masked: bool = True) -> None:
    cls = ValueRangeError if masked else InvalidArgumentError
    raise cls(
        f"{op}: {field} must be {expected}, got {actual!r}",
        op=op,
        field=field,
        expected=expected,
        actual=actual,
    )


def _expected_range(lo: float | None, hi: float | None, kind: str) -> str:
    if lo is not None and hi is not None:
        return f"{kind} between {_num(lo)} and {_num(hi)}"
    if lo is not None:
        return f"{kind} >= {_num(lo)}"
    if hi is not None:
        return f"{kind} <= {_num(hi)}"
    return kind


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def integer(op: str, field: str, value: object, lo: int | None = None, hi: int | None = MAX_VALUE) -> int:
    """An ``int`` (not ``bool``) within ``[lo, hi]`` (``hi`` defaults to ``MAX_VALUE``)."""
    if type(value) is not int:
        fail(op, field, "an integer", value, masked=False)
    assert isinstance(value, int)
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        fail(op, field, _expected_range(lo, hi, "an integer"), value)
    if lo is None and value < -MAX_VALUE:
        fail(op, field, f"an integer >= {-MAX_VALUE}", value)
    return value


def number(
    op: str,
    field: str,
    value: object,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
) -> float:
    """A finite ``float`` (or ``int``) within ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``)."""
    if type(value) not in (int, float):
        fail(op, field, "a number", value, masked=False)
    assert isinstance(value, (int, float))
    bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
    bad_hi = hi is not None and value > hi
    if not math.isfinite(value) or bad_lo or bad_hi:
        kind = "a number"
        if lo_open and lo is not None and hi is not None:
            expected = f"{kind} greater than {_num(lo)} and at most {_num(hi)}"
        else:
            expected = _expected_range(lo, hi, kind)
        fail(op, field, expected, value)
    return float(value)


def flag(op: str, field: str, value: int) -> bool:
    """A ``0``/``1`` token as ``bool``."""
    if value not in (0, 1):
        fail(op, field, "0 or 1", value)
    return value == 1


def instance(op: str, field: str, value: object, cls: type[T] | tuple[type, ...]) -> T:
    """``value`` is an instance of ``cls`` (a wrong type is never masked)."""
    if not isinstance(value, cls):
        names = cls.__name__ if isinstance(cls, type) else " or ".join(c.__name__ for c in cls)
        fail(op, field, f"a {names}", value, masked=False)
    return value  # type: ignore[return-value]


def optional(op: str, field: str, value: object, cls: type[T] | tuple[type, ...]) -> T | None:
    """``None`` or an instance of ``cls``."""
    if value is None:
        return None
    return instance(op, field, value, cls)


def text(op: str, field: str, value: object, *, max_length: int | None = None) -> str:
    """A non-empty string without control characters other than newline."""
    if not isinstance(value, str):
        fail(op, field, "a string", value, masked=False)
    assert isinstance(value, str)
    if not value:
        fail(op, field, "a non-empty string", value, masked=False)
    if _CONTROL.search(value):
        fail(op, field, "text without control characters", value, masked=False)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        fail(op, field, "valid Unicode text", value, masked=False)
    if max_length is not None and len(value) > max_length:
        fail(op, field, f"at most {max_length} characters long", f"{len(value)} characters")
    return value


# -- codecs -----------------------------------------------------------------------------------


_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def b64_decode(value: str) -> bytes:
    """Decode URL-safe Base64 with or without ``=`` padding (``watermark.md`` section 2).

    Raises ``ValueError`` when the text is not URL-safe Base64.
    """
    stripped = value.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError("truncated base64")
    padded = stripped + "=" * (-len(stripped) % 4)
    try:
        # base64.b64decode(padded, altchars=b"-_", validate=True) without its per-call
        # conversions: the same ASCII check and message, the same translation ("+" and
        # "/" stay valid), the same strict check.
        try:
            data = padded.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("string argument should contain only ASCII characters")  # noqa: B904
        return binascii.a2b_base64(data.translate(_URLSAFE), strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc


def b64_encode(data: bytes) -> str:
    """URL-safe Base64 without padding, the form ci_engine writes."""
    return binascii.b2a_base64(data, newline=False).translate(_TO_URLSAFE).decode("ascii").rstrip("=")


def format_decimal(value: float) -> str:
    """Shortest positional decimal that reads back as ``value`` (no exponent, no ``.0``)."""
    import decimal  # (only formatting needs it: not loaded at start-up)

    out = format(decimal.Decimal(repr(float(value))), "f")
    if "." in out:
        out = out.rstrip("0").rstrip(".")
    return out
