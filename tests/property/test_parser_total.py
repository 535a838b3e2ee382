"""Parser totality: every input gives a Pipeline or a CIError that is not an InternalError,
never any other exception (design note section 2.9)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from ci_engine import ast as A
from ci_engine.errors import CIError, InternalError
from ci_engine.parse import load_lark, parse, parse_url
from tests.support.strategies import grammar_strings, raw_grammar_strings

LARK = load_lark()


def check_total(text: str | bytes) -> None:
    try:
        result = parse(text)
    except InternalError as exc:  # a bug of ours, reported as such
        raise AssertionError(f"InternalError for {text!r}: {exc.detail}") from exc
    except CIError as exc:
        assert exc.code == "InvalidArgument"
        assert exc.status == 400
        assert exc.text is not None or isinstance(text, bytes)
        if exc.span is not None and exc.text is not None:
            assert 0 <= exc.span.start <= exc.span.end <= len(exc.text)
        if exc.masked:
            # only a grammatical string can be masked: syntax errors never are
            assert exc.maskable
            assert exc.text is not None
            LARK.parse(exc.text)
    else:
        assert isinstance(result, A.Pipeline)
        assert 1 <= len(result.steps) <= 10


@given(grammar_strings())
def test_grammar_strings_with_realistic_terminals(text: str) -> None:
    check_total(text)


@given(raw_grammar_strings())
@example("watermark/4/type/1/image/YQ/level/1")  # once a TypeError inside the builder
def test_grammar_strings_with_raw_terminals(text: str) -> None:
    check_total(text)


@given(st.text())
@example("")
@example("%")
@example("%25%")
@example("\x00")
@example("ci-process=QRcode&a=%ZZ")
@example("imageMogr2/thumbnail/" + "9" * 5000 + "x")
@example("imageMogr2/rcrop/" + "0." + "0" * 5000 + "1x1")
def test_arbitrary_text(text: str) -> None:
    check_total(text)


@given(st.text(st.sampled_from("imageMogr2/thumbnail!x@<>p|%7C257crop-a0gravity&=")))
@example("imageMogr2/blur/80x5/ignore-error/1/x")  # once masked though not grammatical
def test_text_from_the_grammar_alphabet(text: str) -> None:
    check_total(text)


@given(st.binary(max_size=64))
def test_arbitrary_bytes(data: bytes) -> None:
    check_total(data)


@given(st.one_of(st.text(), grammar_strings().map(lambda s: "https://b/k.jpg?q-sign-algorithm=sha1&" + s)))
def test_parse_url_is_total(text: str) -> None:
    try:
        result = parse_url(text)
    except InternalError as exc:
        raise AssertionError(f"InternalError for {text!r}: {exc.detail}") from exc
    except CIError as exc:
        assert exc.code == "InvalidArgument"
    else:
        assert isinstance(result, A.Pipeline)
