"""ci_engine._dc makes the classes :mod:`dataclasses` would make.

Two ways: a set of class definitions run once through :func:`dataclasses.dataclass` and once
through :func:`ci_engine._dc.dataclass`, compared attribute by attribute and behaviour by
behaviour; and every dataclass of ci_engine itself, described in a fresh interpreter made by
``_dc`` and in one where ``CI_ENGINE_STDLIB_DATACLASSES=1`` has :mod:`dataclasses` make them.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest

from ci_engine import _dc
from tests.support.subprocess_json import run_json_script

REPO = Path(__file__).resolve().parents[2]

# Each body is run with ``dataclass`` and ``field`` bound to one implementation; the classes
# it defines (names in CLASSES) are compared. Kept at module level of a fresh namespace so
# pickling works through a registered module.
BODIES = {
    "plain": """
        @dataclass
        class C:
            a: int
            b: str = "x"
            c: list = field(default_factory=list)
    """,
    "frozen_slots": """
        @dataclass(frozen=True, slots=True)
        class C:
            keyword: ClassVar[str] = "k"
            a: int
            b: tuple = ()
            span: object = field(default=None, compare=False, repr=False, kw_only=True)
    """,
    "inherit": """
        @dataclass(frozen=True, slots=True)
        class Base:
            span: object = field(default=None, compare=False, repr=False, kw_only=True)
        @dataclass(frozen=True, slots=True)
        class C(Base):
            '''Documented.'''
            a: int
            b: int = 2
            def __post_init__(self):
                if self.a < 0:
                    raise ValueError("negative")
        @dataclass(frozen=True, slots=True, kw_only=True)
        class D(C):
            c: str = "c"
    """,
    "options": """
        @dataclass(frozen=True)
        class C:
            a: int = field(default=1, hash=False)
            b: int = field(default=2, repr=False)
            c: int = field(default=3, init=False)
            d: list = field(default_factory=lambda: [1], compare=False, metadata={"m": 1})
            e: int = field(default=5, hash=True, compare=False)
    """,
    "explicit": """
        @dataclass(frozen=True, slots=True)
        class C:
            a: int
            def __repr__(self):
                return "mine"
            def __hash__(self):
                return 7
        @dataclass(slots=True)
        class D:
            a: int = 0
    """,
}
NAMES = {"plain": ["C"], "frozen_slots": ["C"], "inherit": ["Base", "C", "D"], "options": ["C"], "explicit": ["C", "D"]}


_COUNT = iter(range(10**6))


def _define(body: str, maker: str) -> dict[str, Any]:
    # A real module (dataclasses looks string annotations up in the class's module).
    module = types.ModuleType(f"_dc_case_{maker}_{next(_COUNT)}")
    sys.modules[module.__name__] = module
    namespace: dict[str, Any] = module.__dict__
    if maker == "stdlib":
        namespace.update(dataclass=dataclasses.dataclass, field=dataclasses.field)
    else:
        namespace.update(dataclass=_dc.dataclass, field=_dc.field)
    exec("from __future__ import annotations\nfrom typing import ClassVar\n" + textwrap.dedent(body), namespace)
    return namespace


def _describe_class(cls: type) -> dict[str, Any]:
    fields = {
        f.name: (
            f.type,
            repr(f.default),
            f.default_factory is not dataclasses.MISSING,
            f.init,
            f.repr,
            f.hash,
            f.compare,
            dict(f.metadata),
            f.kw_only,
            f._field_type.name,  # type: ignore[attr-defined]
        )
        for f in cls.__dataclass_fields__.values()  # type: ignore[attr-defined]
    }
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    return {
        "fields": fields,
        "public": [f.name for f in dataclasses.fields(cls)],
        "params": (params.init, params.repr, params.eq, params.order, params.unsafe_hash, params.frozen),
        "signature": str(inspect.signature(cls)),
        "doc": cls.__doc__,
        "match_args": cls.__match_args__,  # type: ignore[attr-defined]
        "slots": cls.__dict__.get("__slots__"),
        "hash_none": cls.__dict__.get("__hash__", "absent") is None,
        "has": sorted(
            k
            for k in (
                "__init__",
                "__repr__",
                "__eq__",
                "__hash__",
                "__setattr__",
                "__delattr__",
                "__getstate__",
                "__setstate__",
                "__match_args__",
            )
            if k in cls.__dict__
        ),
        "qualnames": sorted(
            getattr(v, "__qualname__", "") for k, v in cls.__dict__.items() if k.startswith("__") and callable(v)
        ),
        "is_dataclass": dataclasses.is_dataclass(cls),
    }


@pytest.mark.parametrize("case", sorted(BODIES))
def test_classes_match_dataclasses(case: str) -> None:
    ours, theirs = _define(BODIES[case], "ours"), _define(BODIES[case], "stdlib")
    for name in NAMES[case]:
        assert "__ci_dataclass__" in ours[name].__dict__  # made by _dc, not passed on
        assert _describe_class(ours[name]) == _describe_class(theirs[name]), name


def _behaviour(ns: dict[str, Any], case: str) -> list[Any]:
    out: list[Any] = []
    C = ns["C"]
    if case == "plain":
        x, y = C(1), C(1, "y", [2])
        x.a = 5
        out += [repr(x), repr(y), x == C(5), x == y, C.__hash__ is None, x.c is not C(1).c]
        out.append(repr(dataclasses.replace(y, a=9)))
        out.append(dataclasses.asdict(y))
        out.append(repr(_dc.replace(y, b="z")))
    elif case == "frozen_slots":
        x = C(1, (2,), span="s")
        out += [repr(x), x == C(1, (2,), span="other"), hash(x) == hash(C(1, (2,))), x.keyword, C.keyword]
        # (Setting an attribute that is not a field: dataclasses' own frozen __setattr__ of a
        # slotted class raises TypeError from super(); ours raises FrozenInstanceError.)
        for action in (lambda: setattr(x, "a", 2), lambda: delattr(x, "a")):
            with pytest.raises(AttributeError) as err:
                action()
            out.append(type(err.value).__name__)
        out.append(repr(copy.copy(x)) + repr(copy.deepcopy(x)) + repr(copy.deepcopy(x).span))
        out.append(x.__getstate__())
        out.append(repr(_dc.replace(x, a=3)) + repr(_dc.replace(x, a=3).span))
        out.append(not hasattr(x, "__dict__"))
    elif case == "inherit":
        D = ns["D"]
        x = D(1, c="z", span=4)
        out += [repr(x), x == D(1, 2, c="z"), hash(x) == hash(D(1, 2, c="z")), repr(C(3))]
        with pytest.raises(ValueError, match="negative"):
            C(-1)
        out.append([f.name for f in _dc.fields(D)])
        with pytest.raises(TypeError):
            D(1, 2, "c")  # c is keyword-only
        out.append(repr(dataclasses.replace(x, a=4)))
    elif case == "options":
        x = C()
        out += [repr(x), x.c, x.d, x == C(a=1, d=[9]), hash(x) == hash(C(a=9, d=[7])), hash(x) == hash(C(e=6))]
        with pytest.raises(ValueError):
            _dc.replace(x, c=1)
        with pytest.raises(ValueError):
            dataclasses.replace(x, c=1)
    elif case == "explicit":
        D = ns["D"]
        out += [repr(C(1)), hash(C(1)), C(1) == C(1), repr(D()), D.__hash__ is None, D() == D(0)]
        d = D()
        d.a = 3
        out.append(d.a)
    return out


@pytest.mark.parametrize("case", sorted(BODIES))
def test_behaviour_matches_dataclasses(case: str) -> None:
    assert _behaviour(_define(BODIES[case], "ours"), case) == _behaviour(_define(BODIES[case], "stdlib"), case)


def test_frozen_error_is_dataclasses_own() -> None:
    C = _define(BODIES["frozen_slots"], "ours")["C"]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'a'"):
        C(1).a = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'a'"):
        del C(1).a  # type: ignore[misc]


def test_recursive_repr_is_guarded() -> None:
    for maker in ("ours", "stdlib"):
        C = _define(BODIES["plain"], maker)["C"]
        x = C(1)
        x.c.append(x)
        assert repr(x) == "C(a=1, b='x', c=[...])"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("@dataclass\nclass C:\n    a: list = []\n", ValueError),
        ("@dataclass\nclass C:\n    a: int = 1\n    b: int\n", TypeError),
        ("@dataclass(frozen=True)\nclass B:\n    a: int = 1\n@dataclass\nclass C(B):\n    b: int = 2\n", TypeError),
        ("@dataclass\nclass B:\n    a: int = 1\n@dataclass(frozen=True)\nclass C(B):\n    b: int = 2\n", TypeError),
        ("@dataclass(frozen=True)\nclass C:\n    a: int = 1\n    def __setattr__(self, k, v): pass\n", TypeError),
        ("@dataclass\nclass C:\n    a = field(default=1)\n", TypeError),
    ],
)
def test_definition_errors_match_dataclasses(body: str, error: type[Exception]) -> None:
    messages = []
    for maker in ("ours", "stdlib"):
        with pytest.raises(error) as caught:
            _define(body, maker)
        messages.append(str(caught.value))
    assert messages[0] == messages[1]


def test_a_stdlib_dataclass_may_inherit_from_ours() -> None:
    ns = _define(BODIES["frozen_slots"], "ours")

    @dataclasses.dataclass(frozen=True, slots=True)
    class Sub(ns["C"]):  # type: ignore[misc, name-defined]
        extra: int = 0

    x = Sub(1, extra=2)
    assert repr(x) == "test_a_stdlib_dataclass_may_inherit_from_ours.<locals>.Sub(a=1, b=(), extra=2)"
    assert [f.name for f in dataclasses.fields(Sub)] == ["a", "b", "span", "extra"]


def test_pickle_round_trip_of_ci_engine_classes() -> None:
    from ci_engine import parse

    pipeline = parse("imageMogr2/thumbnail/400x/quality/80|watermark/2/text/Zm9v")
    again = pickle.loads(pickle.dumps(pipeline))
    assert again == pipeline
    assert repr(again) == repr(pipeline)
    assert again.steps[0].span == pipeline.steps[0].span


_DESCRIBE = """\
import dataclasses, importlib, inspect, json, pkgutil, sys
import ci_engine
for info in pkgutil.walk_packages(ci_engine.__path__, "ci_engine."):
    if info.name != "ci_engine.__main__":
        importlib.import_module(info.name)
MISSING = dataclasses.MISSING
out = {}
for name, module in sorted(sys.modules.items()):
    if not name.startswith("ci_engine"):
        continue
    for cls in list(vars(module).values()):
        if isinstance(cls, type) and cls.__module__ == name and dataclasses.is_dataclass(cls):
            fields = [
                [f.name, str(f.type), "MISSING" if f.default is MISSING else repr(f.default),
                 f.default_factory is not MISSING, f.init, f.repr, f.hash, f.compare,
                 None if f.kw_only is MISSING else f.kw_only, f._field_type.name]
                for f in cls.__dataclass_fields__.values()
            ]
            p = cls.__dataclass_params__
            out[f"{name}.{cls.__qualname__}"] = {
                "fields": fields,
                "params": [p.init, p.repr, p.eq, p.order, p.unsafe_hash, p.frozen],
                "signature": str(inspect.signature(cls)),
                "doc": cls.__doc__,
                "match_args": list(getattr(cls, "__match_args__", ())),
                "slots": list(cls.__dict__.get("__slots__", ())),
                "hash": repr(cls.__dict__.get("__hash__", "inherited")).split(" at ")[0],
                "setattr": "__setattr__" in cls.__dict__,
                "state": "__getstate__" in cls.__dict__,
                "ours": "__ci_dataclass__" in cls.__dict__,
            }
print(json.dumps(out))
"""


def _describe_all(**env: str) -> dict[str, Any]:
    return run_json_script(_DESCRIBE, **env)  # type: ignore[no-any-return]


def test_every_ci_engine_dataclass_matches_dataclasses() -> None:
    ours = _describe_all()
    theirs = _describe_all(CI_ENGINE_STDLIB_DATACLASSES="1")
    assert len(ours) > 140
    assert set(ours) == set(theirs)
    made_here = [name for name, d in ours.items() if d.pop("ours")]
    assert len(made_here) > 130  # nearly all of them are made by _dc
    assert not any(d.pop("ours") for d in theirs.values())
    for name in sorted(ours):
        assert ours[name] == theirs[name], name


META_BODY = """
class Root(metaclass=DataclassMeta):
    pass

@dataclass(frozen=True, slots=True)
class A(Root):
    '''A node.'''
    x: int
    y: str = "y"

    def double(self):
        return super().__repr__()  # zero-argument super: the class cell is the final class

class Plain(A):  # no decorator: an ordinary subclass
    pass

@dataclass(frozen=True, slots=True)
class B(A):
    @dataclass(frozen=True, slots=True)
    class Inner(Root):
        z: int = 0
    w: int = 3
"""


def _define_meta() -> dict[str, Any]:
    module = types.ModuleType(f"_dc_meta_{next(_COUNT)}")
    sys.modules[module.__name__] = module
    module.__dict__.update(dataclass=_dc.dataclass, DataclassMeta=_dc.DataclassMeta)
    exec("from __future__ import annotations\n" + META_BODY, module.__dict__)
    return module.__dict__


def test_the_metaclass_makes_the_dataclass_from_the_class_statement() -> None:
    ns = _define_meta()
    A, B, Plain = ns["A"], ns["B"], ns["Plain"]
    assert A.__dict__.get("__ci_premade__") == (True, False, True)
    assert B.__dict__.get("__ci_premade__") == (True, False, True)
    assert B.Inner.__dict__.get("__ci_premade__") == (True, False, True)
    assert "__ci_premade__" not in Plain.__dict__ and "__ci_dataclass__" not in Plain.__dict__
    assert A.__slots__ == ("x", "y") and B.__slots__ == ("w",)
    a, b = A(1), B(1, "z", 4)
    assert repr(b) == "B(x=1, y='z', w=4)" and b == B(1, "z", 4) and hash(b) == hash(B(1, "z", 4))
    assert a.double().startswith("<") and ".A object at " in a.double()  # object's, through super()
    assert repr(Plain(2)) == "Plain(x=2, y='y')"
    assert [f.name for f in dataclasses.fields(B)] == ["x", "y", "w"]
    assert B.Inner(5).z == 5
    assert not getattr(_dc._PENDING, "stack", [])  # every marker taken


def test_the_metaclass_matches_the_decorator_made_class() -> None:
    # The same statements with the metaclass's short cut and without it (the decorator
    # then makes the class again from a plain one): the same class, attribute by attribute.
    premade = _define_meta()

    class NoMarkers(list):  # type: ignore[type-arg]
        def append(self, item: Any) -> None:
            pass

    _dc._PENDING.stack = NoMarkers()
    try:
        plain = _define_meta()
    finally:
        _dc._PENDING.stack = []
    assert "__ci_premade__" not in plain["A"].__dict__
    for name in ("A", "B"):
        assert _describe_class(premade[name]) == _describe_class(plain[name]), name


def test_an_unused_marker_makes_nothing_of_a_class_in_another_frame() -> None:
    _dc.dataclass(frozen=True, slots=True)  # evaluated here, never applied

    def elsewhere() -> type:
        class Later(metaclass=_dc.DataclassMeta):
            a: int = 1

        return Later

    assert "__ci_dataclass__" not in elsewhere().__dict__
    _dc._PENDING.stack.clear()
