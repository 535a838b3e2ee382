"""Precompiled code for the methods ``dataclasses`` generates for ci_engine's classes.

Most of what ``import ci_engine.api`` costs is ``@dataclass`` itself: about 170 frozen,
slotted classes, and for each of them ``dataclasses`` writes the source of ``__init__``,
``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and ``__delattr__`` and compiles it
with ``exec``, one ``compile`` per method (CPython 3.11). Compiling is about 80 % of the
cost of a class.

``ci_engine/_dataclass_code.py`` holds those exact sources, generated ahead of time by
``python -m ci_engine._tables_build`` (which also writes the parser tables), each also as
a function, so that its code comes from the module's ``.pyc``. :func:`install` puts a
small ``exec`` into the namespace of the ``dataclasses`` module (shadowing the builtin
there only): a source that is in the table is not compiled again, its code object is taken
from the table; any other source (another library's dataclass, a class changed since the table was generated) goes to
the builtin ``exec`` unchanged. The table is keyed by the complete source text, so a stale
or foreign entry can never be used for a different source: staleness costs time, never
behaviour. The one visible difference: a traceback through one of these methods names
``_dataclass_code.py`` and the line of the method there, where ``exec`` would have said
``<string>`` (relocating the code objects cost more than the rest of the hook).
``tests/unit/test_tables_fresh.py`` checks that the code is otherwise identical, field by
field, to what ``exec`` compiles, and fails, naming the command, when more than a tenth of
the sources are missing (``python -m ci_engine._tables_build --check`` reports any miss).

The table is used only on the Python minor version it was generated with (the generated
sources differ between versions); the hook is installed only when ``dataclasses`` still
compiles through ``exec`` in ``_create_fn`` and nothing else has put an ``exec`` there.
``CI_ENGINE_NO_PRECOMPILED=1`` disables it.
"""

from __future__ import annotations

import builtins
import os
import sys
from types import CodeType, FunctionType
from typing import Any

__all__ = ["install", "uninstall", "installed", "misses"]

_CODE: dict[str, CodeType] | None = None
_MISSES: list[str] | None = None
"""When a list (``record`` mode, used by the generator and the freshness test): the
sources from ci_engine modules that the table did not have."""


def _table() -> dict[str, CodeType]:
    global _CODE
    if _CODE is None:
        try:
            from ci_engine import _dataclass_code
        except ImportError:  # not generated yet
            _CODE = {}
        else:
            # The sources dataclasses writes differ between Python versions.
            same = _dataclass_code.PYTHON == f"{sys.version_info[0]}.{sys.version_info[1]}"
            _CODE = _dataclass_code.CODE if same else {}
    return _CODE


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    """``exec`` for ``dataclasses._create_fn``: the precompiled ``__create_fn__`` when the
    source is in the table, else the builtin."""
    if type(source) is str and type(locals) is dict and type(globals) is dict and "__builtins__" in globals:
        table = _CODE if _CODE is not None else _table()
        code = table.get(source)
        if code is not None:
            locals[code.co_name] = FunctionType(code, globals)
            return
        if _MISSES is not None and str(globals.get("__name__", "")).startswith("ci_engine"):
            _MISSES.append(source)
    builtins.exec(source, globals, locals)  # noqa: S102 - what dataclasses would have run


def install(*, record: bool = False) -> bool:
    """Install the hook (see the module docstring); returns whether it is installed."""
    global _MISSES
    import dataclasses

    if record:
        _MISSES = []
    if vars(dataclasses).get("exec") is _exec:
        return True
    if os.environ.get("CI_ENGINE_NO_PRECOMPILED") or "exec" in vars(dataclasses):
        return False
    if not hasattr(dataclasses, "_create_fn"):  # not the dataclasses this was written for
        return False
    dataclasses.exec = _exec  # type: ignore[attr-defined]
    return True


def uninstall() -> None:
    import dataclasses

    if vars(dataclasses).get("exec") is _exec:
        del dataclasses.exec  # type: ignore[attr-defined]


def installed() -> bool:
    import dataclasses

    return vars(dataclasses).get("exec") is _exec


def misses() -> list[str]:
    """In record mode: the ci_engine sources compiled because the table lacked them."""
    return list(_MISSES or ())
