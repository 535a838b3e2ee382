"""ci_engine.types: the token enums made through the standard library's quick path are the
enums the full path makes."""

from __future__ import annotations

import ast
import enum
from pathlib import Path

from ci_engine import types as quick


def test_token_enums_made_the_quick_way_match_the_full_way() -> None:
    # ci_engine.types makes its enums through enum._simple_enum (_TokenEnumType). Each
    # enum's class statement, taken from the module's source and run again in a copy of
    # its namespace with that turned off, makes it the full way; the standard library's
    # own checker compares each pair (members, values, names, order, aliases, methods and
    # attributes).
    source = Path(quick.__file__).read_text("utf-8")
    statements = {
        # (at its own line of its own file: the methods' code objects then compare equal)
        node.name: compile("\n" * (node.lineno - 1) + str(ast.get_source_segment(source, node)), quick.__file__, "exec")
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and any(getattr(b, "id", "") == "_TokenEnum" for b in node.bases)
    }
    assert len(statements) >= 10
    namespace = dict(vars(quick))
    quick._QUICK = False
    try:
        for name, statement in statements.items():
            exec(statement, namespace)
            full, made = namespace[name], getattr(quick, name)
            assert full is not made
            # The statement ran again, so its methods are new function objects: the same
            # code is the same method (the checker compares them by identity).
            for attr, value in list(full.__dict__.items()):
                mine = made.__dict__.get(attr)
                if mine is not None and mine is not value and _code(mine) is not None and _code(mine) == _code(value):
                    type.__setattr__(full, attr, mine)
            enum._test_simple_enum(full, made)  # type: ignore[attr-defined]
    finally:
        quick._QUICK = True


def _code(value: object) -> object:
    """The code of a function, classmethod, staticmethod or property's getter."""
    inner = getattr(value, "__func__", None) or getattr(value, "fget", None) or value
    return getattr(inner, "__code__", None)


def test_token_enums_behave() -> None:
    assert quick.Gravity.from_token("NorthWest") is quick.Gravity.NORTH_WEST
    assert str(quick.OutputFormat.WEBP) == "webp"
    assert quick.ImageFormat("jpeg") is quick.ImageFormat.JPEG and quick.ImageFormat.JPEG.lossy
    assert list(quick.FlipAxis) == [quick.FlipAxis.VERTICAL, quick.FlipAxis.HORIZONTAL]
    assert quick.Font.from_name("simhei黑体.ttf") is quick.Font.SIMHEI
    assert isinstance(quick.Gravity.CENTER, enum.Enum) and type(quick.Gravity) is quick._TokenEnumType
