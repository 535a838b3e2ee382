"""Import rules of the core (design note section 2.4), checked in fresh interpreters."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import ci_engine

PACKAGE = Path(ci_engine.__file__).resolve().parent
IMAGING = ("pyvips", "PIL", "numpy", "pillow_heif")


def _loaded_after(statement: str) -> set[str]:
    """The modules in sys.modules after running ``statement`` in a fresh interpreter."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _top_level(modules: set[str]) -> set[str]:
    return {name.split(".", 1)[0] for name in modules}


def test_the_core_imports_no_imaging_library() -> None:
    loaded = _loaded_after("import ci_engine.parse, ci_engine.render, ci_engine.ast")
    assert "ci_engine.parse" in loaded
    assert _top_level(loaded) & set(IMAGING) == set()


def test_parsing_and_rendering_import_no_imaging_library() -> None:
    statement = (
        "from ci_engine.parse import parse\n"
        "from ci_engine.render import render\n"
        "render(parse('imageMogr2/thumbnail/400x|imageInfo'))"
    )
    assert _top_level(_loaded_after(statement)) & set(IMAGING) == set()


def _without_package_init(statement: str) -> str:
    """``statement`` with ``ci_engine`` registered as a bare package, so that its
    ``__init__`` (which imports parse and render both) does not run: what is loaded is
    what the imported module itself pulls in."""
    return (
        "import types\n"
        f"package = types.ModuleType('ci_engine'); package.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['ci_engine'] = package\n"
        f"{statement}"
    )


def test_render_does_not_import_parse() -> None:
    loaded = _loaded_after(_without_package_init("import ci_engine.render"))
    assert "ci_engine.render" in loaded
    assert "ci_engine.parse" not in loaded
    assert "lark" not in _top_level(loaded)


def test_ast_does_not_import_lark_parse_or_render() -> None:
    loaded = _loaded_after(_without_package_init("import ci_engine.ast"))
    assert {"ci_engine.parse", "ci_engine.render"} & loaded == set()
    assert "lark" not in _top_level(loaded)


def _imports(module: Path) -> set[str]:
    """Every module named by an import statement of ``module`` (also inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_render_source_never_names_parse() -> None:
    # Also catches a lazy import inside a function, which the subprocess test cannot see.
    imports = _imports(PACKAGE / "render.py")
    assert not {name for name in imports if name == "ci_engine.parse" or name.startswith("ci_engine.parse.")}


@pytest.mark.parametrize(
    "module",
    [
        "errors.py",
        "types.py",
        "_check.py",
        "_colors.py",
        "parse.py",
        "render.py",
        "_lalr.py",
        *[f"ast/{p.name}" for p in sorted((PACKAGE / "ast").glob("*.py"))],
    ],
)
def test_core_sources_never_name_an_imaging_library(module: str) -> None:
    imports = _top_level(_imports(PACKAGE / module))
    assert imports & set(IMAGING) == set()


def test_errors_imports_nothing_from_ci_engine() -> None:
    assert not {name for name in _imports(PACKAGE / "errors.py") if name.startswith("ci_engine")}
