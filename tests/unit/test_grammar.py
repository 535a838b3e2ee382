"""grammar/ci.lark: it compiles to conflict-free LALR(1) tables, its examples parse and
round-trip, the shipped copy matches, and every rule has a builder method."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from lark import Lark

import ci_engine
from ci_engine._lalr import Driver
from ci_engine.parse import _Builder, _driver, grammar_text, load_lark, parse
from ci_engine.render import render

REPO = Path(__file__).resolve().parents[2]
GRAMMAR = REPO / "grammar" / "ci.lark"
WHEEL_COPY = Path(ci_engine.__file__).resolve().parent / "_grammar" / "ci.lark"

_EXAMPLE = re.compile(r"^\s*//\s*e\.g\.\s+(\S.*?)\s*$")
_RULE = re.compile(r"^(\??)([a-z][a-z0-9_]*)\s*:")


def _examples() -> list[tuple[int, str]]:
    return [
        (number, match.group(1))
        for number, line in enumerate(GRAMMAR.read_text("utf-8").splitlines(), start=1)
        if (match := _EXAMPLE.match(line))
    ]


EXAMPLES = _examples()


def test_grammar_compiles_to_lalr_with_contextual_lexer() -> None:
    lark = load_lark()
    assert lark.options.parser == "lalr"
    assert lark.options.lexer == "contextual"
    assert lark.options.maybe_placeholders is False


def test_grammar_has_no_conflicts(caplog: pytest.LogCaptureFixture) -> None:
    # lark resolves shift/reduce conflicts silently (as shift) and logs them; reduce/reduce
    # conflicts raise. Compile afresh with debug logging and require silence.
    caplog.set_level(logging.DEBUG, logger="lark")
    Lark(grammar_text(), parser="lalr", lexer="contextual", maybe_placeholders=False, debug=True, cache=False)
    conflicts = [r.getMessage() for r in caplog.records if "conflict" in r.getMessage().lower()]
    assert conflicts == []


def test_grammar_text_is_the_repository_grammar() -> None:
    assert grammar_text() == GRAMMAR.read_text("utf-8")


@pytest.mark.skipif(not WHEEL_COPY.exists(), reason="no built wheel copy of the grammar here")
def test_wheel_copy_of_the_grammar_is_identical() -> None:
    assert WHEEL_COPY.read_text("utf-8") == GRAMMAR.read_text("utf-8")


def test_every_rule_has_an_example_comment() -> None:
    lines = GRAMMAR.read_text("utf-8").splitlines()
    missing = []
    for number, line in enumerate(lines):
        match = _RULE.match(line)
        if not match:
            continue
        block = []
        above = number - 1
        while above >= 0 and lines[above].lstrip().startswith("//"):
            block.append(lines[above])
            above -= 1
        if not any(_EXAMPLE.match(comment) for comment in block):
            missing.append(match.group(2))
    assert missing == []


def test_grammar_keeps_the_driver_conventions() -> None:
    rules = [m.group(2) for line in GRAMMAR.read_text("utf-8").splitlines() if (m := _RULE.match(line))]
    assert len(rules) == len(set(rules)) > 40
    assert not [name for name in rules if name.startswith("_")]
    # Rule bodies (not terminal definitions, whose regexes use [...]) use no [optional] brackets.
    rule_lines = [
        line.split("//", 1)[0]
        for line in GRAMMAR.read_text("utf-8").splitlines()
        if not re.match(r"^[A-Z][A-Z0-9_]*\s*:", line)
    ]
    assert [line for line in rule_lines if "[" in line] == []


def test_there_are_many_examples() -> None:
    assert len(EXAMPLES) >= 50


@pytest.mark.parametrize(("line", "example"), EXAMPLES, ids=[f"line{n}" for n, _ in EXAMPLES])
def test_example_parses_and_round_trips(line: int, example: str) -> None:
    pipeline = parse(example)
    canonical = render(pipeline)
    assert parse(canonical) == pipeline
    assert render(parse(canonical)) == canonical


def _builder_names(lark: Lark) -> set[str]:
    """The reductions that reach a builder method: every rule or alias except lark's
    generated helpers and the ?-rules that only pass their single child on."""
    names = set()
    for rule in lark.rules:
        origin = str(rule.origin.name)
        if origin.startswith("_"):
            continue
        if rule.options.expand1 and not rule.alias and len(rule.expansion) == 1:
            continue
        names.add(str(rule.alias) if rule.alias else origin)
    return names


def test_every_rule_and_alias_has_a_builder_method() -> None:
    names = _builder_names(load_lark())
    assert {"start", "pipeline", "image_mogr2", "fit_width", "crop_region", "wm_text", "ci_param"} <= names
    assert sorted(name for name in names if not callable(getattr(_Builder, name, None))) == []


def test_driver_builds_with_the_real_builder() -> None:
    driver = Driver(load_lark(), _Builder())
    assert driver.parse("imageInfo") == parse("imageInfo")
    assert _driver() is _driver()


def test_driver_refuses_a_builder_without_a_method_for_a_rule() -> None:
    incomplete = type("Incomplete", (_Builder,), {"crop_box": None})
    with pytest.raises(TypeError, match="builder has no method for grammar rule 'crop_box'"):
        Driver(load_lark(), incomplete())


def test_driver_refuses_an_empty_builder() -> None:
    with pytest.raises(TypeError, match="builder has no method for grammar rule"):
        Driver(load_lark(), object())
