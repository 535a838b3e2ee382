"""ci_engine/_tables.py: the LALR tables generated ahead of time are those of grammar/ci.lark;
ci_engine/_dataclass_code.py: the precompiled dataclass methods are current and identical.

``parse()`` runs the generated tables (no lark, no compilation at run time). This test
rebuilds them from the grammar with lark and compares the text of the module; when it
fails, regenerate with the command in its message. Until then ``parse()`` notices the
mismatch (CRC-32 of the grammar) and compiles the grammar at run time with a warning.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ci_engine import _dataclass_code, _tables
from ci_engine._lalr import Driver, Tables, tables_from_lark
from ci_engine._tables_build import (
    COMMAND,
    TARGET,
    build,
    grammar_bytes,
    record_dataclass_sources,
    render_module,
)
from ci_engine.parse import _Builder, generated_tables, load_lark, load_tables
from tests.support.subprocess_json import run_json_script

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
    assert Driver(tables, _Builder()).parse(text) == Driver(generated_tables(), _Builder()).parse(text)


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


# -- the precompiled dataclass methods (ci_engine/_dataclass_code.py, see ci_engine/_dc.py) ---------------

_METHODS = """\
import hashlib, importlib, json, pkgutil, sys, types
import ci_engine
FIELDS = ("co_argcount", "co_posonlyargcount", "co_kwonlyargcount", "co_stacksize", "co_flags", "co_code",
          "co_names", "co_varnames", "co_freevars", "co_cellvars", "co_name", "co_qualname",
          "co_linetable", "co_exceptiontable")
FILES = set()
def shape(code):
    FILES.add(code.co_filename.rsplit("/", 1)[-1])
    consts = tuple(shape(c) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return repr((tuple(getattr(code, f) for f in FIELDS), consts))
for info in pkgutil.walk_packages(ci_engine.__path__, "ci_engine."):
    if info.name != "ci_engine.__main__":
        importlib.import_module(info.name)
digests = {}
for name, module in sorted(sys.modules.items()):
    if not name.startswith("ci_engine"):
        continue
    for cls in vars(module).values():
        if isinstance(cls, type) and "__ci_dataclass__" in cls.__dict__ and cls.__module__ == name:
            for method in ("__init__",):  # (__repr__, __eq__, __hash__: closures of _dc.py)
                fn = cls.__dict__.get(method)
                if hasattr(fn, "__code__"):
                    code = shape(fn.__code__).encode()
                    digests[f"{cls.__qualname__}.{method}"] = [
                        hashlib.sha256(code).hexdigest(), fn.__qualname__, fn.__code__.co_filename.rsplit("/", 1)[-1]
                    ]
print(json.dumps({"digests": digests, "files": sorted(FILES)}))
"""


def _methods(**env: str) -> dict[str, object]:
    return run_json_script(_METHODS, **env)  # type: ignore[no-any-return]


def test_precompiled_dataclass_methods_are_identical_to_compiled_ones() -> None:
    # Field by field: bytecode, constants, names, qualname, line table; only the file (and
    # so the first line) differs: the generated module instead of exec's "<string>".
    on = _methods()
    off = _methods(CI_ENGINE_NO_PRECOMPILED="1")
    # A class changed since the table was generated compiles at run time ("<string>"): that
    # costs time, never behaviour, and test_precompiled_dataclass_methods_are_nearly_current
    # bounds it. Most methods must come from the table.
    assert "_dataclass_code.py" in on["files"]
    assert set(on["files"]) <= {"_dataclass_code.py", "<string>"}
    assert off["files"] == ["<string>"]
    from_table = {k for k, v in on["digests"].items() if v[2] == "_dataclass_code.py"}  # type: ignore[attr-defined]
    assert len(from_table) > 130
    assert set(on["digests"]) == set(off["digests"])  # type: ignore[arg-type]
    for key in sorted(from_table):
        assert on["digests"][key][:2] == off["digests"][key][:2], key  # type: ignore[index]


def test_precompiled_dataclass_methods_are_nearly_current() -> None:
    # The table is a cache keyed by everything a class's methods depend on: a class changed
    # since it was generated compiles at run time (slower, never different). So this fails
    # only when more than a tenth of the classes are missing, not at every new field;
    # `--check` of the command reports exact staleness.
    recorded = record_dataclass_sources()
    keys = {key for key, _sources, _doc in recorded}
    missing = [key for key in keys if ast.literal_eval(key) not in _dataclass_code.CLASSES]
    assert len(recorded) > 140
    assert len(missing) <= len(keys) // 10, (
        f"ci_engine/_dataclass_code.py lacks {len(missing)} of {len(keys)} dataclasses: run `{COMMAND}`"
    )


def test_a_class_the_table_lacks_is_compiled() -> None:
    code = (
        "from __future__ import annotations\n"
        "from ci_engine._dc import dataclass\n"
        "@dataclass(frozen=True, slots=True)\n"
        "class Fresh:\n"
        "    never_seen_before: int = 3\n"
        "assert '__ci_dataclass__' in Fresh.__dict__\n"
        "assert Fresh.__init__.__code__.co_filename == '<string>'\n"
        "assert repr(Fresh()) == 'Fresh(never_seen_before=3)' and Fresh(1) == Fresh(1) and hash(Fresh(2))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "ok"


def test_first_character_dispatch_finds_what_the_whole_regex_finds() -> None:
    # A scanner compiles, per first character, only the alternatives that can start with
    # it: at every position of texts made from the grammar's own tokens, every string the
    # test suite parses and random characters, the (terminal, end) is the whole regex's.
    import random
    import re

    from ci_engine._lalr import Driver

    tables = load_tables()
    assert tables.alternatives is not None
    driver = Driver(tables, _Builder())
    rng = random.Random(7)
    alphabet = "".join(sorted(set("".join(tables.literals.values())))) + "0123456789xX!<>-_=&%.,:#@ \u00e9\u212a"
    samples = [
        "imageMogr2/thumbnail/400x/format/webp/quality/80",
        "watermark/2/text/Zm9v/fill/IzAwMDAwMA/dissolve/50|imageView2/1/w/200/h/100",
        "imageMogr2/crop/300x400/gravity/center/rotate/-90/AIGCMetadata/Label/1",
        "ci-process=QRcode&cover=1",
        "imageInfo|exif|imageAve|imageSlim|style/abc",
    ]
    dispatched = 0
    checked = 0
    for index, alternatives in enumerate(tables.alternatives):
        if alternatives is None:
            continue
        pattern, flags = tables.patterns[index]
        whole = re.compile(pattern, flags)
        scan = driver._dispatcher(index)
        texts = [*samples, *tables.literals.values()]
        texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(300)]
        for text in texts:
            for pos in range(len(text)):
                want = whole.match(text, pos)
                got = scan(text, pos)
                expected = None if want is None else (want.lastgroup, want.end())
                actual = None if got is None else (got.lastgroup, got.end())
                assert actual == expected, (index, text, pos)
                checked += 1
        dispatched += 1
    assert dispatched > 20
    assert checked > 50_000


def test_first_characters_of_patterns() -> None:
    from ci_engine._lalr import _first_chars, alternatives

    assert _first_chars("(?P<A>(?i:ab))", 0) == "Aa"
    assert _first_chars("(?P<A>[0-9]+x?)", 0) == "0123456789"
    assert _first_chars("(?P<A>x?y)", 0) == "xy"
    assert _first_chars("(?P<A>x*)", 0) is None  # may match the empty string
    assert _first_chars("(?P<A>[^/]+)", 0) is None
    assert _first_chars("(?P<A>.)", 0) is None
    assert _first_chars("(?P<A>(?i:k))", 0) == "Kk"
    assert _first_chars("(?P<A>(?i:\u212a))", 0) is None  # the Kelvin sign folds to k
    assert alternatives("(?P<A>a)|(?P<B>[|)(])|(?P<C>\\|)", 0) == (
        ("(?P<A>a)", "a"),
        ("(?P<B>[|)(])", "()|"),
        ("(?P<C>\\|)", "|"),
    )
    assert alternatives("(?P<A>a)", 0) is None
    assert alternatives("a|b", 0) is None


def test_word_scanners_find_what_the_state_regex_finds() -> None:
    # States whose terminals are all plain literals scan with str.startswith in the order
    # of the regex alternation; at every position of texts made of those literals, the
    # result is the regex's (terminal, end).
    import re

    from ci_engine._lalr import _word_scanner

    tables = load_tables()
    checked = 0
    for state, words in enumerate(tables.words):
        if words is None:
            continue
        (index,) = tables.scanners[state]
        regex = re.compile(*tables.patterns[index])
        scan = _word_scanner(words)
        literals = [word for word, _ in words]
        texts = [*literals, "".join(literals), "".join(reversed(literals)), "x" + literals[0], literals[0][:-1]]
        for text in texts:
            for pos in range(len(text)):
                want = regex.match(text, pos)
                got = scan(text, pos)
                expected = None if want is None else (want.lastgroup, want.end())
                actual = None if got is None else (got.lastgroup, got.end())
                assert actual == expected, (state, text, pos)
                checked += 1
    assert checked > 1000
