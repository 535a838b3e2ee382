"""Round trips: parse(render(p)) == p for every AST class; render(parse(s)) is a fixed
point for grammar strings that parse (sqlglot's validate_identity)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_engine import ast as A
from ci_engine.errors import CIError
from ci_engine.parse import parse
from ci_engine.render import render
from tests.support.strategies import STRATEGIES, as_pipeline, grammar_strings, pipelines, raw_grammar_strings

# Every class is round-tripped; the classes share the example budget of one test.
PER_CLASS = settings(max_examples=max(10, settings.default.max_examples // 4))


def test_every_node_class_has_a_strategy() -> None:
    assert set(A.ALL_NODE_CLASSES) - set(STRATEGIES) == set()
    assert set(STRATEGIES) - set(A.ALL_NODE_CLASSES) == set()


@pytest.mark.parametrize("cls", A.ALL_NODE_CLASSES, ids=lambda cls: cls.__name__)
def test_parse_render_round_trip_per_class(cls: type) -> None:
    @PER_CLASS
    @given(STRATEGIES[cls])
    def check(node: A.Node) -> None:
        assert type(node) is cls
        pipeline = as_pipeline(node)
        text = render(pipeline)
        assert parse(text) == pipeline
        assert render(parse(text)) == text

    check()


@given(pipelines(max_steps=10))
def test_parse_render_round_trip_of_pipelines(pipeline: A.Pipeline) -> None:
    text = render(pipeline)
    assert parse(text) == pipeline


@given(st.one_of(grammar_strings(), raw_grammar_strings()))
def test_render_of_parse_is_a_fixed_point(text: str) -> None:
    try:
        pipeline = parse(text)
    except CIError:
        return
    canonical = render(pipeline)
    again = parse(canonical)
    assert again == pipeline
    assert render(again) == canonical
