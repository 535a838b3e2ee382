"""ci_engine/_tables.py: the LALR tables generated ahead of time are those of grammar/ci.lark.

``parse()`` runs the generated tables (no lark, no compilation at run time). This test
rebuilds them from the grammar with lark and compares the text of the module; when it
fails, regenerate with the command in its message. Until then ``parse()`` notices the
mismatch (CRC-32 of the grammar) and compiles the grammar at run time with a warning.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ci_engine import _tables
from ci_engine._lalr import Driver, Tables, tables_from_lark
from ci_engine._tables_build import COMMAND, TARGET, build, grammar_bytes, render_module
from ci_engine.parse import _Builder, load_lark, load_tables

REPO = Path(__file__).resolve().parents[2]


def test_generated_tables_are_current() -> None:
    grammar = grammar_bytes()
    expected = render_module(build(grammar), grammar)
    assert TARGET.read_text("utf-8") == expected, f"ci_engine/_tables.py is stale: run `{COMMAND}`"


def test_generation_is_deterministic_across_hash_seeds() -> None:
    # lark numbers its states in an order that depends on str hashing; the generator
    # renumbers them canonically, so every process writes the same text.
    code = "from ci_engine._tables_build import *; g = grammar_bytes(); print(render_module(build(g), g), end='')"
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs == {TARGET.read_text("utf-8")}


def test_parse_uses_the_generated_tables() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tables = load_tables()
    assert tables.factories is _tables.FACTORIES
    assert tables.states is _tables.STATES
    assert len(tables.rules) == len(tables.factories)


def test_generated_tables_equal_the_ones_lark_compiles() -> None:
    assert load_tables().data() | {"sources": []} == tables_from_lark(load_lark()).data() | {"sources": []}


def test_generated_and_compiled_reduce_functions_agree() -> None:
    # The same strings through a driver on the generated factories and one on factories
    # compiled from source now give the same AST.
    fresh = tables_from_lark(load_lark())
    generated = Driver(load_tables(), _Builder())
    compiled = Driver(fresh, _Builder())
    for text in ("imageMogr2/thumbnail/400x/quality/80", "imageView2/1/w/200|imageInfo", "watermark/2/text/YQ"):
        assert generated.parse(text) == compiled.parse(text)


def test_a_stale_grammar_falls_back_to_lark_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tables, "GRAMMAR_CRC32", _tables.GRAMMAR_CRC32 ^ 1)
    with pytest.warns(RuntimeWarning, match=r"python -m ci_engine._tables_build"):
        tables = load_tables()
    assert isinstance(tables, Tables)
    assert tables.factories is None
    text = "imageMogr2/crop/300x300/gravity/center|watermark/2/text/YQ"
    assert Driver(tables, _Builder()).parse(text) == Driver(_generated(), _Builder()).parse(text)


def _generated() -> Tables:
    return Tables(
        start_states=_tables.START_STATES,
        end_states=_tables.END_STATES,
        states=_tables.STATES,
        rules=_tables.RULES,
        sources=(),
        patterns=_tables.PATTERNS,
        scanners=_tables.SCANNERS,
        chars=_tables.CHARS,
        literals=_tables.LITERALS,
        factories=_tables.FACTORIES,
    )


def test_first_parse_in_a_new_process_imports_no_lark() -> None:
    code = (
        "import sys\n"
        "from ci_engine import parse\n"
        "assert str(parse('imageMogr2/thumbnail/400x').steps[0].ops[0].geometry) == 'FitWidth(width=400)'\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lark', 'regex')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"
