"""ci_engine._lalr: the lean driver against lark's own LALR parser (differential test).

The driver and lark share the compiled tables; they must agree on which strings are in the
language, on the shape of every reduction (children kept, ?-inlining, aliases, spliced
``*``/``+`` helpers, positions) and, through the real builder, on the AST or the error.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from ci_engine._lalr import Driver, SyntaxFailure
from ci_engine.errors import CIError
from ci_engine.parse import _Builder, _driver, grammar_text, load_lark
from tests.support.strategies import grammar_strings, raw_grammar_strings
from tests.unit.test_grammar import EXAMPLES

LARK = Lark(grammar_text(), parser="lalr", lexer="contextual", maybe_placeholders=False, propagate_positions=True)


class ShapeBuilder:
    """A builder with a method for every rule: records what the driver passes to it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def method(children: list[Any], starts: list[int], start: int, end: int) -> tuple[Any, ...]:
            return (name, tuple(children), tuple(starts), start, end)

        return method


SHAPE_DRIVER = Driver(load_lark(), ShapeBuilder())


def _starts(tree: Tree) -> list[int]:
    return [child.start_pos if isinstance(child, Token) else child.meta.start_pos for child in tree.children]


def lark_shape(node: Tree | Token) -> Any:
    """What ShapeBuilder would return for lark's tree (lark already inlines ?-rules)."""
    if isinstance(node, Token):
        return str(node)
    children = tuple(lark_shape(child) for child in node.children)
    return (str(node.data), children, tuple(_starts(node)), node.meta.start_pos, node.meta.end_pos)


def lark_build(node: Tree | Token, builder: Any) -> Any:
    """Feed lark's tree bottom-up (the order of the driver's reductions) to the builder."""
    if isinstance(node, Token):
        return str(node)
    children = [lark_build(child, builder) for child in node.children]
    return getattr(builder, str(node.data))(children, _starts(node), node.meta.start_pos, node.meta.end_pos)


def deep(value: Any) -> Any:
    """A comparable form of an AST that includes the spans equality ignores."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = tuple((f.name, deep(getattr(value, f.name))) for f in dataclasses.fields(value))
        return (type(value).__name__, fields)
    if isinstance(value, tuple):
        return tuple(deep(item) for item in value)
    return value


def outcome(run: Any) -> Any:
    try:
        return ("ok", deep(run()))
    except CIError as exc:
        return ("error", type(exc).__name__, exc.message, exc.span)


def lark_accepts(text: str) -> Tree | None:
    try:
        return LARK.parse(text)
    except UnexpectedInput:
        return None


def shape_driver_accepts(text: str) -> Any:
    try:
        return SHAPE_DRIVER.parse(text)
    except SyntaxFailure:
        return None


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A grammar string with one character deleted, replaced or inserted (mostly rejected)."""
    text = draw(base)
    at = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from("/|&!x@<>=-_.0a9Z "))
    edit = draw(st.sampled_from(["delete", "replace", "insert"]))
    if edit == "insert" or at == len(text):
        return text[:at] + char + text[at:]
    if edit == "delete":
        return text[:at] + text[at + 1 :]
    return text[:at] + char + text[at + 1 :]


strings = st.one_of(
    grammar_strings(),
    raw_grammar_strings(),
    mutated(grammar_strings()),
    st.text(st.sampled_from("imageMogr2/thumbnail400x|!p@<>crop"), max_size=30),
)


@given(strings)
def test_driver_accepts_exactly_what_lark_accepts_with_the_same_reductions(text: str) -> None:
    tree = lark_accepts(text)
    shape = shape_driver_accepts(text)
    assert (tree is None) == (shape is None)
    if tree is not None:
        assert shape == lark_shape(tree)


@given(st.one_of(grammar_strings(), raw_grammar_strings()))
def test_driver_and_lark_build_the_same_ast_or_error(text: str) -> None:
    tree = lark_accepts(text)
    if tree is None:
        with pytest.raises(SyntaxFailure):
            _driver().parse(text)
        return
    assert outcome(lambda: _driver().parse(text)) == outcome(lambda: lark_build(tree, _Builder()))


@pytest.mark.parametrize(("line", "example"), EXAMPLES, ids=[f"line{n}" for n, _ in EXAMPLES])
def test_grammar_examples_agree(line: int, example: str) -> None:
    tree = LARK.parse(example)
    assert SHAPE_DRIVER.parse(example) == lark_shape(tree)
    assert outcome(lambda: _driver().parse(example)) == outcome(lambda: lark_build(tree, _Builder()))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "imageMogr2//",
        "imageMogr2/thumbnail/400",
        "imageInfo|",
        "ci-process=",
        "ci-process=QRcode|exif",
        "watermark/2",
        "\u00e9",
    ],
)
def test_both_reject(text: str) -> None:
    assert lark_accepts(text) is None
    with pytest.raises(SyntaxFailure) as info:
        SHAPE_DRIVER.parse(text)
    assert 0 <= info.value.pos <= len(text)
    assert info.value.expected


def test_syntax_failure_reports_position_token_and_expected_terminals() -> None:
    with pytest.raises(SyntaxFailure) as info:
        SHAPE_DRIVER.parse("imageMogr2/thumbnail/400y")
    failure = info.value
    assert (failure.pos, failure.token, failure.term) == (24, "y", None)
    assert failure.expected == frozenset({"AT", "X"})


def test_syntax_failure_at_the_end() -> None:
    with pytest.raises(SyntaxFailure) as info:
        SHAPE_DRIVER.parse("imageMogr2/thumbnail")
    assert (info.value.pos, info.value.token, info.value.term) == (20, "", "$END")
    assert info.value.expected == frozenset({"SLASH"})
