"""docs/gallery.md: every operation of the grammar is there, and the page is true.

The operations are derived from ``grammar/ci.lark`` (the alternatives of ``start``, ``step``
and ``mogr_op``, and the aliases of the thumbnail and crop geometries) and from
``ci_engine.ast.ALL_NODE_CLASSES``; each gallery entry names what it shows on its
``AST: ... · grammar: ...`` line. ``docs/make_gallery.py`` regenerates the page.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from PIL import Image

import ci_engine
from ci_engine.ast import ALL_NODE_CLASSES

ROOT = Path(__file__).resolve().parents[2]
GRAMMAR = ROOT / "grammar" / "ci.lark"
PAGE = ROOT / "docs" / "gallery.md"
PICTURES = ROOT / "docs" / "gallery"
MAX_BYTES = 3_000_000
REGENERATE = "run `python docs/make_gallery.py` and commit docs/gallery.md and docs/gallery/"


def _rules() -> dict[str, str]:
    """Rule name -> body (alternatives joined), from the grammar text."""
    rules: dict[str, str] = {}
    current = None
    for raw in GRAMMAR.read_text("utf-8").splitlines():
        line = raw.split("//", 1)[0].rstrip()
        match = re.match(r"^\??([a-z_][a-z0-9_]*)\s*:(.*)$", line)
        if match:
            current = match.group(1)
            rules[current] = match.group(2)
        elif current and line.strip().startswith("|"):
            rules[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return rules


def grammar_operations() -> set[str]:
    rules = _rules()
    ops: set[str] = set()
    for name in ("start", "step", "mogr_op"):
        ops.update(alt.strip() for alt in rules[name].split("|"))
    for name in ("thumbnail_geometry", "crop_geometry"):
        ops.update(re.findall(r"->\s*([a-z_]+)", rules[name]))
    return ops


def _entries() -> dict[str, str]:
    """Gallery entry slug -> its block of Markdown."""
    text = PAGE.read_text("utf-8")
    blocks = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    out = {}
    for block in blocks:
        match = re.search(r'<a id="([^"]+)"></a>', block.splitlines()[0])
        assert match, block.splitlines()[0]
        out[match.group(1)] = block
    return out


def _covered() -> tuple[set[str], set[str]]:
    ast: set[str] = set()
    grammar: set[str] = set()
    for block in _entries().values():
        line = next(line for line in block.splitlines() if line.startswith("AST: "))
        left, right = line.split(" · grammar: ")
        ast.update(re.findall(r"`([^`]+)`", left))
        grammar.update(re.findall(r"`([^`]+)`", right))
    return ast, grammar


def test_the_grammar_is_read() -> None:
    ops = grammar_operations()
    assert {"image_mogr2", "thumbnail", "fit_width", "crop_region_height", "pad", "gravity", "ci_process"} <= ops
    assert "mogr_op" not in ops and "" not in ops


def test_every_grammar_operation_is_in_the_gallery() -> None:
    _, grammar = _covered()
    missing = sorted(grammar_operations() - grammar)
    assert not missing, f"grammar operations missing from docs/gallery.md: {missing}; {REGENERATE}"


def test_every_ast_class_is_in_the_gallery() -> None:
    ast, _ = _covered()
    missing = sorted({cls.__name__ for cls in ALL_NODE_CLASSES} - ast)
    assert not missing, f"AST classes missing from docs/gallery.md: {missing}; {REGENERATE}"
    unknown = sorted(ast - {cls.__name__ for cls in ALL_NODE_CLASSES})
    assert not unknown, f"docs/gallery.md names classes that do not exist: {unknown}"


def test_every_rule_shown_parses() -> None:
    for slug, block in _entries().items():
        rule = re.search(r"^`([^`]+)`$", block, flags=re.MULTILINE)
        assert rule, slug
        try:
            ci_engine.parse(rule.group(1))
        except ci_engine.CIError as exc:  # the ignore-error entry: an out-of-range value, masked
            assert exc.masked, f"{slug}: {exc}"


def test_pictures_exist_are_small_and_match_their_caption() -> None:
    text = PAGE.read_text("utf-8")
    referenced = set(re.findall(r"\]\(gallery/([^)]+)\)", text))
    on_disk = {p.name for p in PICTURES.iterdir() if p.is_file()}
    assert referenced == on_disk, f"pictures and page disagree; {REGENERATE}"
    assert sum((PICTURES / name).stat().st_size for name in on_disk) < MAX_BYTES
    for slug, block in _entries().items():
        picture = re.search(r"!\[[^\]]*\]\(gallery/((?!input)[^)]+)\)", block)
        caption = re.search(r"^Output: [A-Z0-9]+ (\d+)x(\d+)", block, flags=re.MULTILINE)
        if picture is None or caption is None:
            continue
        with Image.open(PICTURES / picture.group(1)) as img:
            assert img.size == (int(caption.group(1)), int(caption.group(2))), slug


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_gallery", ROOT / "docs" / "make_gallery.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.requires_vips
def test_the_page_is_what_the_engine_makes_now() -> None:
    """Every output the page shows is still what the engine produces (format, geometry,
    frames). An operation the page lists as refused that works now only makes the page
    incomplete, not wrong: regenerate it to add the picture."""
    gallery = _generator()
    _, outcomes = gallery.run_all()
    entries = _entries()
    assert set(entries) == {o.entry.slug for o in outcomes}, REGENERATE
    wrong = []
    for o in outcomes:
        block = entries[o.entry.slug]
        shown = re.search(r"^Output: ([^,]+),", block, flags=re.MULTILINE)
        if shown is None:
            assert "Refused here" in block, o.entry.slug
            continue
        fresh = o.error or o.summary.split(",")[0]
        if fresh != shown.group(1):
            wrong.append(f"{o.entry.slug}: page says {shown.group(1)!r}, the engine now gives {fresh!r}")
    assert not wrong, "\n".join(wrong) + f"\n{REGENERATE}"
