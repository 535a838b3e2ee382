"""ci_engine.errors: codes, statuses, X-ErrNo values and renderings of every error class."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

import ci_engine
from ci_engine import errors as E
from ci_engine.errors import CIError, Span


def _limit(cls: type[E.LimitExceededError], **kw: Any) -> E.LimitExceededError:
    return cls("m", kind="input_pixels", limit=250_000_000, actual=300_000_000, **kw)


# class, a factory, code, HTTP status, X-ErrNo, maskable: limits-and-errors.md section 5.4
TABLE = [
    pytest.param(
        E.InvalidArgumentError,
        lambda: E.InvalidArgumentError("m"),
        "InvalidArgument",
        400,
        -60998,
        False,
        id="InvalidArgument",
    ),
    pytest.param(E.ParseError, lambda: E.ParseError("m"), "InvalidArgument", 400, -60998, False, id="ParseError"),
    pytest.param(
        E.ValueRangeError, lambda: E.ValueRangeError("m"), "InvalidArgument", 400, -60998, True, id="ValueRange"
    ),
    pytest.param(
        E.TooManyStepsError,
        lambda: E.TooManyStepsError("m", limit=10, actual=11),
        "InvalidArgument",
        400,
        -60998,
        True,
        id="TooManySteps",
    ),
    pytest.param(
        E.UnsupportedForInputError,
        lambda: E.UnsupportedForInputError("m"),
        "InvalidArgument",
        400,
        -60998,
        True,
        id="UnsupportedForInput",
    ),
    pytest.param(
        E.InvalidImageFormatError,
        lambda: E.InvalidImageFormatError("m"),
        "InvalidImageFormat",
        400,
        -443,
        False,
        id="InvalidImageFormat",
    ),
    pytest.param(
        E.ImageTooLargeError, lambda: _limit(E.ImageTooLargeError), "ImageTooLarge", 400, -167, True, id="ImageTooLarge"
    ),
    pytest.param(
        E.ImageResolutionExceedError,
        lambda: _limit(E.ImageResolutionExceedError),
        "ImageResolutionExceed",
        400,
        -447,
        True,
        id="ImageResolutionExceed",
    ),
    pytest.param(
        E.InvalidPicOperationsError,
        lambda: E.InvalidPicOperationsError("m"),
        "InvalidPicOperations",
        400,
        -60998,
        False,
        id="InvalidPicOperations",
    ),
    pytest.param(
        E.NoSuchStyleError, lambda: E.NoSuchStyleError("m"), "NoSuchStyle", 404, -60967, False, id="NoSuchStyle"
    ),
    pytest.param(E.NoSuchKeyError, lambda: E.NoSuchKeyError("m"), "NoSuchKey", 404, -46628, False, id="NoSuchKey"),
    pytest.param(
        E.AccessDeniedError, lambda: E.AccessDeniedError("m"), "AccessDenied", 403, None, False, id="AccessDenied"
    ),
    pytest.param(
        E.UnsupportedOperationError,
        lambda: E.UnsupportedOperationError("m"),
        "NotImplemented",
        501,
        None,
        False,
        id="NotImplemented",
    ),
    pytest.param(E.InternalError, lambda: E.InternalError("m"), "InternalError", 500, None, False, id="InternalError"),
    pytest.param(
        E.BackendError,
        lambda: E.BackendError("m", backend="vips", step_index=2, step="Resize"),
        "InternalError",
        500,
        None,
        False,
        id="BackendError",
    ),
    pytest.param(
        E.BackendUnavailableError,
        lambda: E.BackendUnavailableError("m"),
        "ServiceUnavailable",
        503,
        None,
        False,
        id="BackendUnavailable",
    ),
    pytest.param(CIError, lambda: CIError("m"), "InternalError", 500, None, False, id="CIError"),
]


@pytest.mark.parametrize(("cls", "factory", "code", "status", "x_errno", "maskable"), TABLE)
def test_code_status_x_errno_maskable(
    cls: type[CIError], factory: Any, code: str, status: int, x_errno: int | None, maskable: bool
) -> None:
    error = factory()
    assert type(error) is cls
    assert isinstance(error, CIError)
    assert isinstance(error, Exception)
    assert (error.code, error.status, error.x_errno, error.maskable) == (code, status, x_errno, maskable)
    assert error.message == "m"
    assert error.masked is False


def test_the_table_names_every_error_class() -> None:
    tested = {param.values[0] for param in TABLE}  # type: ignore[attr-defined]
    exported = {getattr(E, name) for name in E.__all__ if name != "Span"}
    assert exported - tested == {E.LimitExceededError}  # an abstract base: raised only as its subclasses
    assert {getattr(ci_engine, name) for name in ci_engine.__all__ if name.endswith("Error")} <= exported


def test_class_hierarchy() -> None:
    assert issubclass(E.ParseError, E.InvalidArgumentError)
    assert issubclass(E.ValueRangeError, E.InvalidArgumentError)
    assert issubclass(E.TooManyStepsError, E.InvalidArgumentError)
    assert issubclass(E.UnsupportedForInputError, E.InvalidArgumentError)
    assert issubclass(E.ImageTooLargeError, E.LimitExceededError)
    assert issubclass(E.ImageResolutionExceedError, E.LimitExceededError)
    assert issubclass(E.BackendError, E.InternalError)
    assert issubclass(E.BackendUnavailableError, E.InternalError)


def test_x_errno_can_be_overridden() -> None:
    error = _limit(E.ImageResolutionExceedError, x_errno=-442)
    assert error.x_errno == -442
    assert E.ImageResolutionExceedError.default_x_errno == -447
    assert E.ImageTooLargeError("m", kind="input_bytes", limit=1, actual=2, x_errno=-60996).x_errno == -60996


def test_masked_needs_a_maskable_error_and_an_ignore_error_request() -> None:
    maskable = E.ValueRangeError("m")
    fatal = E.ParseError("m")
    assert (maskable.masked, fatal.masked) == (False, False)
    maskable.ignore_error_requested = True
    fatal.ignore_error_requested = True
    assert (maskable.masked, fatal.masked) == (True, False)


# -- position and rendering ---------------------------------------------------------------------------

TEXT = "imageMogr2/blur/80x5"


def test_str_has_code_message_column_and_caret() -> None:
    error = E.ValueRangeError("blur: radius must be between 1 and 50", text=TEXT, span=Span(16, 18))
    assert str(error) == (
        "InvalidArgument: blur: radius must be between 1 and 50 (column 17)\nimageMogr2/blur/80x5\n                ^^"
    )


def test_str_without_position_is_one_line() -> None:
    assert str(E.NoSuchStyleError("style card does not exist")) == "NoSuchStyle: style card does not exist"


def test_str_with_a_span_but_no_text_has_the_column_only() -> None:
    assert str(E.ParseError("bad", span=Span(3, 4))) == "InvalidArgument: bad (column 4)"


@pytest.mark.parametrize(
    ("span", "caret"),
    [
        pytest.param(Span(0, 10), "^^^^^^^^^^", id="first-word"),
        pytest.param(Span(16, 18), " " * 16 + "^^", id="middle"),
        pytest.param(Span(19, 20), " " * 19 + "^", id="last-character"),
        pytest.param(Span(20, 20), " " * 20 + "^", id="end-of-string"),
        pytest.param(Span(16, 99), " " * 16 + "^^^^", id="clamped-to-the-text"),
        pytest.param(Span(5, 5), " " * 5 + "^", id="empty-span-one-caret"),
    ],
)
def test_caret_underlines_exactly_the_span(span: Span, caret: str) -> None:
    error = E.ParseError("m", text=TEXT, span=span)
    assert error.caret == f"{TEXT}\n{caret}"
    assert error.column == span.start + 1


def test_caret_is_empty_without_text_or_span() -> None:
    assert E.ParseError("m").caret == ""
    assert E.ParseError("m", text=TEXT).caret == ""
    assert E.ParseError("m", span=Span(1, 2)).caret == ""
    assert E.ParseError("m").column is None


def test_locate_sets_text_and_span_once() -> None:
    error = E.ValueRangeError("m")
    assert error.locate(TEXT, (16, 18)) is error
    assert (error.text, error.span) == (TEXT, Span(16, 18))
    assert isinstance(error.span, Span)
    error.locate("other", Span(0, 1))
    assert (error.text, error.span) == (TEXT, Span(16, 18))


def test_repr() -> None:
    assert repr(E.NoSuchKeyError("no such key")) == "NoSuchKeyError('no such key', code='NoSuchKey')"


def test_detail_stays_out_of_the_client_renderings() -> None:
    error = E.InternalError("processing failed", detail="libvips: secret path /srv/x")
    assert error.detail == "libvips: secret path /srv/x"
    assert "secret" not in str(error)
    assert "secret" not in repr(error.to_dict())
    assert "secret" not in error.to_xml()


# -- to_dict ------------------------------------------------------------------------------------------


def test_to_dict_of_a_base_error() -> None:
    assert E.NoSuchStyleError("no style card").to_dict() == {
        "code": "NoSuchStyle",
        "status": 404,
        "message": "no style card",
        "x_errno": -60967,
        "maskable": False,
    }


def test_to_dict_of_an_invalid_argument() -> None:
    error = E.ValueRangeError(
        "blur: radius must be between 1 and 50, got 80",
        op="blur",
        field="radius",
        expected="an integer between 1 and 50",
        actual=80,
        text=TEXT,
        span=Span(16, 18),
    )
    assert error.to_dict() == {
        "code": "InvalidArgument",
        "status": 400,
        "message": "blur: radius must be between 1 and 50, got 80",
        "x_errno": -60998,
        "maskable": True,
        "column": 17,
        "op": "blur",
        "field": "radius",
        "expected": "an integer between 1 and 50",
        "actual": "80",
    }


def test_to_dict_of_a_parse_error() -> None:
    error = E.ParseError("unexpected 'x'", token="x", expected_tokens=("'@'", "'x'"), span=Span(3, 4))
    data = error.to_dict()
    assert list(data) == ["code", "status", "message", "x_errno", "maskable", "column", "token", "expected_tokens"]
    assert data["token"] == "x"
    assert data["expected_tokens"] == ["'@'", "'x'"]


def test_to_dict_of_a_parse_error_without_expectations() -> None:
    data = E.ParseError("processing string is not UTF-8").to_dict()
    assert data["token"] == ""
    assert "expected_tokens" not in data
    assert "column" not in data


def test_to_dict_of_a_limit_error() -> None:
    data = _limit(E.ImageResolutionExceedError).to_dict()
    assert data == {
        "code": "ImageResolutionExceed",
        "status": 400,
        "message": "m",
        "x_errno": -447,
        "maskable": True,
        "kind": "input_pixels",
        "limit": 250_000_000,
        "actual": 300_000_000,
    }


def test_too_many_steps_fields() -> None:
    error = E.TooManyStepsError("m", limit=10, actual=11, op="pipeline", field="steps")
    assert (error.limit, error.actual, error.expected) == (10, 11, "at most 10")
    assert error.to_dict()["expected"] == "at most 10"
    assert error.to_dict()["actual"] == "11"


def test_backend_error_fields() -> None:
    cause = RuntimeError("vips_resize failed")
    try:
        try:
            raise cause
        except RuntimeError as exc:
            raise E.BackendError("resize failed", backend="vips", step_index=3, step="Resize(10, 10)") from exc
    except E.BackendError as error:
        assert (error.backend, error.step_index, error.step) == ("vips", 3, "Resize(10, 10)")
        assert error.__cause__ is cause


# -- to_xml -------------------------------------------------------------------------------------------


def test_to_xml_is_the_cos_error_body() -> None:
    error = E.ValueRangeError("blur: radius must be between 1 and 50")
    body = error.to_xml(resource="bucket/cat.jpg", request_id="NjVm", trace_id="OGVm==")
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<Error>')
    root = ET.fromstring(body.encode("utf-8"))
    assert root.tag == "Error"
    assert [child.tag for child in root] == ["Code", "Message", "Resource", "RequestId", "TraceId"]
    assert [child.text for child in root] == [
        "InvalidArgument",
        "blur: radius must be between 1 and 50",
        "bucket/cat.jpg",
        "NjVm",
        "OGVm==",
    ]


def test_to_xml_escapes_markup() -> None:
    error = E.ParseError("unexpected '<' & '>' in <thumbnail>")
    root = ET.fromstring(error.to_xml(resource="a&b<c>").encode("utf-8"))
    assert root.findtext("Message") == "unexpected '<' & '>' in <thumbnail>"
    assert root.findtext("Resource") == "a&b<c>"


def test_to_xml_defaults_to_empty_elements() -> None:
    root = ET.fromstring(E.NoSuchKeyError("no such key").to_xml().encode("utf-8"))
    assert [(child.tag, child.text) for child in root] == [
        ("Code", "NoSuchKey"),
        ("Message", "no such key"),
        ("Resource", None),
        ("RequestId", None),
        ("TraceId", None),
    ]
