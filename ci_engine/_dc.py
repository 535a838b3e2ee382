"""``@dataclass`` for ci_engine's own classes, without the cost of :mod:`dataclasses` at start-up.

ci_engine defines about 170 dataclasses, most of them frozen and slotted. Processing them
with :mod:`dataclasses` was the largest part of what a one-shot ``ci-engine process`` spent
before it touched a pixel: importing ``dataclasses`` (which imports ``inspect``, ``ast``,
``dis`` ...), then, for every class, reading its annotations through regular expressions,
writing the source of each generated method and compiling it. This module is a drop-in
for the subset of the decorator ci_engine uses:

* :func:`dataclass` takes the flags of :func:`dataclasses.dataclass`. For ``init``,
  ``repr``, ``eq`` and ``match_args`` left on, ``order``, ``unsafe_hash`` and
  ``weakref_slot`` off, and fields without ``InitVar`` or ``KW_ONLY``, it builds the class
  itself, with the same methods and attributes ``dataclasses`` would give it
  (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, frozen ``__setattr__`` and
  ``__delattr__``, ``__match_args__``, ``__slots__`` and the pickling state of a frozen
  slotted class, ``__doc__`` when the class has none). Anything else goes to
  :func:`dataclasses.dataclass` unchanged.
* ``__init__`` is generated code, as :mod:`dataclasses` writes it (a real signature, the
  fields set one by one): it comes from ``ci_engine/_dataclass_code.py``, written ahead of
  time by ``python -m ci_engine._tables_build``, per class, keyed by everything the code
  depends on (module, qualified name, flags, every field's name, annotation and options,
  which dunders the class defines itself). A class missing from the table (edited since the
  table was written) has the same code compiled at run time: staleness costs time, never
  behaviour. ``tests/unit/test_tables_fresh.py`` fails when the table is stale.
  ``__repr__``, ``__eq__`` and ``__hash__`` are closures over ``operator.attrgetter`` of
  the fields (the same strings, comparisons and hashes as dataclasses' generated code, whose
  per-class code objects were two thirds of the table's size).
* ``__dataclass_fields__`` and ``__dataclass_params__`` are made on first access, with
  :mod:`dataclasses` imported then, so :func:`dataclasses.fields`, :func:`dataclasses.replace`,
  :func:`dataclasses.asdict` and :func:`dataclasses.is_dataclass` see real ``Field``
  objects, and a class processed by :mod:`dataclasses` may inherit from one made here.
* :func:`field` records a field's options (a real ``dataclasses.Field`` is made from them
  when ``__dataclass_fields__`` is first read). :func:`replace` and :func:`fields` take
  ci_engine's classes and any other dataclass; for a class made here, :func:`fields`
  answers without importing :mod:`dataclasses`, with this module's field records (the
  same ``name``, ``type``, ``default``, ``default_factory``, ``init``, ``repr``, ``hash``,
  ``compare``, ``metadata`` and ``kw_only`` attributes as a ``Field``).

Type checkers see :mod:`dataclasses` itself (``TYPE_CHECKING``). ``CI_ENGINE_NO_PRECOMPILED=1``
makes every class compile its methods at run time (the generator's mode);
``CI_ENGINE_STDLIB_DATACLASSES=1`` has :mod:`dataclasses` make every class (the reference).
``tests/unit/test_dc.py`` compares the classes made here with what :mod:`dataclasses` makes,
attribute by attribute and behaviour by behaviour.
"""

from __future__ import annotations

import os
import sys
import threading
from _thread import get_ident as _get_ident
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataclasses import dataclass as dataclass
    from dataclasses import field as field
    from dataclasses import fields as fields
    from dataclasses import replace as replace
else:
    __all__ = ["DataclassMeta", "dataclass", "field", "fields", "replace"]

_INFO = "__ci_dataclass__"
"""Class attribute of a class made here: ``(fields, frozen)``; ``fields`` is the tuple of
every :class:`_Field` in ``dataclasses``' order (inherited ones first, ClassVars included)."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class _Factory:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_HAS_DEFAULT_FACTORY: Any = _Factory()


class _Field:
    """What :func:`field` returns, and the description of one field of a class made here."""

    __slots__ = (
        "classvar",
        "compare",
        "default",
        "default_factory",
        "hash",
        "init",
        "kw_only",
        "metadata",
        "name",
        "repr",
        "sig",
        "type",
    )

    def __init__(
        self,
        default: Any,
        default_factory: Any,
        init: bool,
        repr: bool,
        hash: bool | None,
        compare: bool,
        metadata: Any,
        kw_only: Any,
    ) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.init = init
        self.repr = repr
        self.hash = hash
        self.compare = compare
        self.metadata = metadata
        self.kw_only = kw_only
        self.classvar = False
        self.sig: tuple[Any, ...] = ()

    def _named(self, name: str, type: Any, kw_only: bool, classvar: bool) -> _Field:
        made = _Field(
            self.default,
            self.default_factory,
            self.init,
            self.repr,
            self.hash,
            self.compare,
            self.metadata,
            self.kw_only,
        )
        made.name, made.type, made.classvar = name, type, classvar
        if not classvar and made.kw_only is MISSING:
            made.kw_only = kw_only
        made.sig = made.signature()
        return made

    def signature(self) -> tuple[Any, ...]:
        return (
            self.name,
            self.type,
            self.classvar,
            self.default is not MISSING,
            self.default_factory is not MISSING,
            self.init,
            self.repr,
            self.hash,
            self.compare,
            None if self.kw_only is MISSING else self.kw_only,
        )

    def __repr__(self) -> str:
        return f"_Field(name={self.name!r}, type={self.type!r})"


if not TYPE_CHECKING:

    def field(
        *,
        default: Any = MISSING,
        default_factory: Any = MISSING,
        init: bool = True,
        repr: bool = True,
        hash: bool | None = None,
        compare: bool = True,
        metadata: Any = None,
        kw_only: Any = MISSING,
    ) -> Any:
        if default is not MISSING and default_factory is not MISSING:
            raise ValueError("cannot specify both default and default_factory")
        return _Field(default, default_factory, init, repr, hash, compare, metadata, kw_only)

    def dataclass(
        cls: type | None = None,
        /,
        *,
        init: bool = True,
        repr: bool = True,
        eq: bool = True,
        order: bool = False,
        unsafe_hash: bool = False,
        frozen: bool = False,
        match_args: bool = True,
        kw_only: bool = False,
        slots: bool = False,
        weakref_slot: bool = False,
    ) -> Any:
        ours = _OURS and init and repr and eq and match_args and not (order or unsafe_hash or weakref_slot)

        def wrap(cls: type) -> type:
            pending = _PENDING.stack if hasattr(_PENDING, "stack") else None
            if pending and pending[-1][3] is wrap:
                pending.pop()
            if ours:
                made = _make(cls, frozen=frozen, kw_only=kw_only, slots=slots)
                if made is not None:
                    return made
            return _dataclasses_make(
                cls,
                init=init,
                repr=repr,
                eq=eq,
                order=order,
                unsafe_hash=unsafe_hash,
                frozen=frozen,
                match_args=match_args,
                kw_only=kw_only,
                slots=slots,
                weakref_slot=weakref_slot,
            )

        if cls is not None:
            return wrap(cls)
        if ours and slots:
            # The class statement that follows may be made a dataclass by DataclassMeta at
            # once (see there); the marker names the frame that runs that statement.
            caller = sys._getframe(1)
            stack = _PENDING.__dict__.setdefault("stack", [])
            stack.append((caller, caller.f_lineno, (frozen, kw_only, slots), wrap))
        return wrap

    def fields(class_or_instance: Any) -> tuple[Any, ...]:
        cls = class_or_instance if isinstance(class_or_instance, type) else type(class_or_instance)
        info = cls.__dict__.get(_INFO)
        if info is None:
            import dataclasses

            return dataclasses.fields(class_or_instance)
        return tuple(f for f in info[0] if not f.classvar)

    def replace(obj: Any, /, **changes: Any) -> Any:
        info = type(obj).__dict__.get(_INFO)
        if info is None:
            import dataclasses

            return dataclasses.replace(obj, **changes)
        for f in info[0]:
            if f.classvar:
                continue
            if not f.init:
                if f.name in changes:
                    raise ValueError(
                        f"field {f.name} is declared with init=False, it cannot be specified with replace()"
                    )
                continue
            if f.name not in changes:
                changes[f.name] = getattr(obj, f.name)
        return obj.__class__(**changes)


_DECORATOR_LINES = 20
"""How far below ``@dataclass(...)`` its class statement may start (other decorators
between them, a decorator call written over several lines)."""

_PENDING = threading.local()
"""Per thread, ``stack``: ``(frame, flags, decorator)`` of each ``@dataclass(...)`` evaluated
whose class statement has not been decorated yet."""


class DataclassMeta(type):
    """The metaclass of ci_engine's node hierarchies (``ast.Node``, ``plan.steps.Prim``): a
    class statement under ``@dataclass(..., slots=True)`` is made the slotted dataclass
    directly, instead of a plain class that the decorator then makes again with
    ``__slots__`` (making a type costs as much as the rest of the decorator).

    Decorator expressions are evaluated before the class body runs, so ``dataclass(...)``
    leaves a marker (its flags and the frame it was called from) that the metaclass, called
    for the class statement in that same frame, takes; the decorator then finds the class
    made with its flags and returns it. A class statement without the decorator finds no
    marker of its frame (or one more than ``_DECORATOR_LINES`` lines above it) and is made
    as usual. ``__classcell__`` is honoured, so zero-argument ``super()`` works in these
    classes (it does not in ``dataclasses``' slotted ones). The rule this relies on, kept
    in ci_engine: ``@dataclass(...)`` is the innermost decorator of its class (nothing
    between it and the class statement), and is not called without decorating."""

    def __new__(mcls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> Any:
        stack = getattr(_PENDING, "stack", None)
        if stack and not kwargs and len(bases) == 1:
            frame, line, (frozen, kw_only, slots), _wrap = stack[-1]
            caller = sys._getframe(1)
            # The statement the decorator stands on: same frame, a few lines below it.
            if frame is caller and 0 < caller.f_lineno - line <= _DECORATOR_LINES:
                made = _build(
                    mcls,
                    name,
                    bases,
                    namespace,
                    bases[0].__mro__,
                    existing=None,
                    frozen=frozen,
                    kw_only=kw_only,
                    slots=slots,
                )
                if made is not None:
                    return made
        return super().__new__(mcls, name, bases, namespace, **kwargs)


def _dataclasses_make(cls: type, **flags: Any) -> type:
    """The class as :func:`dataclasses.dataclass` makes it (our :func:`field` markers turned
    into real ``Field`` objects first)."""
    import dataclasses

    for name, value in list(cls.__dict__.items()):
        if isinstance(value, _Field):
            real = _real_field(value)
            setattr(cls, name, real)
    return dataclasses.dataclass(cls, **flags)  # type: ignore[no-any-return, call-overload]


def _real_field(f: _Field) -> Any:
    """A ``dataclasses.Field`` with ``f``'s options (its name, type and kind are set by
    whoever asks)."""
    import dataclasses

    def given(value: Any) -> Any:
        return dataclasses.MISSING if value is MISSING else value

    return dataclasses.field(
        default=given(f.default),
        default_factory=given(f.default_factory),
        init=f.init,
        repr=f.repr,
        hash=f.hash,
        compare=f.compare,
        metadata=f.metadata,
        kw_only=given(f.kw_only),
    )


# -- the class -----------------------------------------------------------------------------------

_OURS = not os.environ.get("CI_ENGINE_STDLIB_DATACLASSES")
"""``CI_ENGINE_STDLIB_DATACLASSES=1``: every class is made by :mod:`dataclasses` (the
reference ``tests/unit/test_dc.py`` compares with)."""

_TABLE: dict[tuple[Any, ...], tuple[Any, ...]] | None = None
_RECORD: dict[tuple[Any, ...], tuple[Any, ...]] | None = {} if os.environ.get("CI_ENGINE_DC_RECORD") else None
"""In record mode (the generator): key -> (sources, doc) of every class made here."""

_SPECIAL = (
    "__init__",
    "__repr__",
    "__eq__",
    "__hash__",
    "__setattr__",
    "__delattr__",
    "__match_args__",
    "__post_init__",
    "__getstate__",
    "__setstate__",
)


def _table() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    global _TABLE
    if _TABLE is None:
        _TABLE = {}
        if not os.environ.get("CI_ENGINE_NO_PRECOMPILED"):
            try:
                from ci_engine import _dataclass_code
            except ImportError:  # not generated yet
                pass
            else:
                _TABLE = _dataclass_code.CLASSES
    return _TABLE


def _classvar(annotation: str) -> bool:
    return annotation.startswith(("ClassVar", "typing.ClassVar"))


def _make(cls: type, *, frozen: bool, kw_only: bool, slots: bool) -> type | None:
    """``cls`` made a dataclass here, or None when :mod:`dataclasses` must make it."""
    if cls.__dict__.get(_INFO) is not None and cls.__dict__.get("__ci_premade__") == (frozen, kw_only, slots):
        return cls  # made so by DataclassMeta from the class statement itself
    return _build(
        type(cls),
        cls.__name__,
        cls.__bases__,
        cls.__dict__,
        cls.__mro__[1:],
        existing=cls,
        frozen=frozen,
        kw_only=kw_only,
        slots=slots,
    )


def _build(
    meta: type,
    name: str,
    bases: tuple[type, ...],
    own: Any,
    mro: tuple[type, ...],
    *,
    existing: type | None,
    frozen: bool,
    kw_only: bool,
    slots: bool,
) -> type | None:
    """The dataclass of a class statement's ``name``, ``bases`` and namespace ``own``
    (``mro``: the bases' linearisation, the class itself excluded; ``existing``: the class
    already made from them, modified in place when not slotted), or None when
    :mod:`dataclasses` must make it."""
    if existing is None and not slots:
        return None  # DataclassMeta makes slotted classes only: the decorator makes the rest
    module = own.get("__module__", "")
    qualname = own.get("__qualname__", name)
    collected: dict[str, _Field] = {}
    base_frozen: bool | None = None
    for base in mro[::-1]:
        info = base.__dict__.get(_INFO)
        if info is not None:
            for f in info[0]:
                collected[f.name] = f
            base_frozen = info[1] if base_frozen is None else (base_frozen or info[1])
        elif "__dataclass_fields__" in base.__dict__:
            return None  # a base made by dataclasses: let it do the whole class
    annotations = own.get("__annotations__", {})
    own_fields: list[_Field] = []
    for fname, annotation in annotations.items():
        if type(annotation) is not str or "InitVar" in annotation or "KW_ONLY" in annotation:
            return None
        classvar = _classvar(annotation)
        default = own.get(fname, MISSING)
        if isinstance(default, _Field):
            if classvar and default.default_factory is not MISSING:
                raise TypeError(f"field {fname} cannot have a default factory")
            f = default._named(fname, annotation, kw_only, classvar)
        else:
            if type(default).__module__ == "dataclasses":  # a dataclasses.field() here
                return None
            f = _Field(default, MISSING, True, True, None, True, None, MISSING if classvar else kw_only)
            f.name, f.type, f.classvar = fname, annotation, classvar
            f.sig = f.signature()
        if not classvar and f.default is not MISSING and type(f.default).__hash__ is None:
            raise ValueError(f"mutable default {type(f.default)} for field {fname} is not allowed: use default_factory")
        own_fields.append(f)
        collected[fname] = f
    for attr, value in own.items():
        if isinstance(value, _Field) and attr not in annotations:
            raise TypeError(f"{attr!r} is a field but has no type annotation")
    if base_frozen is not None:
        if base_frozen and not frozen:
            raise TypeError("cannot inherit non-frozen dataclass from a frozen one")
        if not base_frozen and frozen:
            raise TypeError("cannot inherit frozen dataclass from a non-frozen one")

    all_fields = tuple(collected.values())
    data = [f for f in all_fields if not f.classvar]
    class_hash = own.get("__hash__", MISSING)
    explicit_hash = not (class_hash is MISSING or (class_hash is None and "__eq__" in own))
    std = [f for f in data if f.init and not f.kw_only]
    seen_default = False
    for f in std:
        if f.default is not MISSING or f.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {f.name!r} follows default argument")
    defines = tuple(special for special in _SPECIAL if special in own)
    post_init = "__post_init__" in own or any(hasattr(base, "__post_init__") for base in bases)
    needs_doc = not own.get("__doc__")
    key: tuple[Any, ...] = (
        module,
        qualname,
        frozen,
        slots,
        explicit_hash,
        defines,
        post_init,
        tuple([f.sig for f in all_fields]),
        tuple(repr(f.default) for f in data) if needs_doc else None,
    )
    entry = _table().get(key)
    if entry is None:
        sources = _sources(all_fields, frozen=frozen, post_init=post_init)
        factories: tuple[Any, ...] = tuple(_compile(source) for source in sources)
        doc = None
    else:
        factories, doc = entry[:-1], entry[-1]
        sources = None

    methods: dict[str, Any] = {}
    (init_f,) = factories
    if "__init__" not in own:
        locals_: dict[str, Any] = {f"_type_{f.name}": f.type for f in data if f.init}
        locals_.update(
            {
                f"_dflt_{f.name}": f.default if f.default_factory is MISSING else f.default_factory
                for f in data
                if f.default is not MISSING or f.default_factory is not MISSING
            }
        )
        methods["__init__"] = init_f(
            _HAS_DEFAULT_FACTORY=_HAS_DEFAULT_FACTORY,
            __dataclass_builtins_object__=object,
            _return_type=None,
            **locals_,
        )
    compared = _getter(tuple(f.name for f in data if f.compare))
    if "__repr__" not in own:
        methods["__repr__"] = _repr_fn(tuple(f.name for f in data if f.repr))
    if "__eq__" not in own:
        methods["__eq__"] = _eq_fn(compared)
    if not explicit_hash:
        hashed = [f.name for f in data if (f.compare if f.hash is None else f.hash)]
        methods["__hash__"] = _hash_fn(_getter(tuple(hashed))) if frozen else None
    for fn in methods.values():
        if fn is not None:
            fn.__qualname__ = f"{qualname}.{fn.__name__}"
    if frozen and ("__setattr__" in own or "__delattr__" in own):
        which = "__setattr__" if "__setattr__" in own else "__delattr__"
        raise TypeError(f"Cannot overwrite attribute {which} in class {name}")
    if "__match_args__" not in own:
        methods["__match_args__"] = tuple(f.name for f in std)

    if needs_doc:
        if doc is None:
            import inspect

            probe = type(name, (), {"__init__": methods.get("__init__", own.get("__init__"))})
            doc = name + str(inspect.signature(probe)).replace(" -> None", "")
        methods["__doc__"] = doc
    if _RECORD is not None and module.startswith("ci_engine"):
        _RECORD[key] = (
            sources if sources is not None else _sources(all_fields, frozen=frozen, post_init=post_init),
            doc if needs_doc else None,
        )

    names = tuple(f.name for f in data)
    # The class itself, once made (the frozen methods' ``type(self) is cls`` test).
    made_cell: list[type] = []
    if frozen:
        fieldnames = frozenset(names)
        methods["__setattr__"] = _frozen_method(made_cell, qualname, fieldnames, "__setattr__")
        methods["__delattr__"] = _frozen_method(made_cell, qualname, fieldnames, "__delattr__")
    if slots:
        # Everything in the namespace before the type is made: setting a dunder on a type
        # afterwards re-derives its slots, which costs as much as making it.
        namespace = dict(own)
        inherited: set[str] = set()
        for base in mro[:-1]:
            inherited.update(_slots_of(base))
        namespace["__slots__"] = tuple(fname for fname in names if fname not in inherited)
        for fname in names:
            namespace.pop(fname, None)
        namespace.pop("__dict__", None)
        namespace.pop("__weakref__", None)
        namespace.update(methods)
        namespace[_INFO] = (all_fields, frozen)
        namespace["__dataclass_fields__"] = _LazyFields()
        namespace["__dataclass_params__"] = _LazyParams(frozen)
        namespace["__qualname__"] = qualname
        if frozen:
            namespace.setdefault("__getstate__", _dataclass_getstate)
            namespace.setdefault("__setstate__", _dataclass_setstate)
        made: type
        if existing is None:
            namespace["__ci_premade__"] = (frozen, kw_only, slots)
            made = type.__new__(meta, name, bases, namespace)
        else:
            made = meta(name, bases, namespace)
    else:
        assert existing is not None  # (returned above when it is None and not slotted)
        cls = made = existing
        for f in own_fields:
            if isinstance(own.get(f.name), _Field):
                if f.default is MISSING:
                    delattr(cls, f.name)
                else:
                    setattr(cls, f.name, f.default)
        for attr, value in methods.items():
            setattr(cls, attr, value)
        setattr(cls, _INFO, (all_fields, frozen))
        lazy_fields, lazy_params = _LazyFields(), _LazyParams(frozen)
        lazy_fields.owner = lazy_params.owner = cls
        cls.__dataclass_fields__ = lazy_fields  # type: ignore[attr-defined]
        cls.__dataclass_params__ = lazy_params  # type: ignore[attr-defined]
    made_cell.append(made)
    if hasattr(made, "__abstractmethods__"):  # (what abc.update_abstractmethods checks first)
        import abc

        abc.update_abstractmethods(made)
    return made


def _slots_of(cls: type) -> tuple[str, ...]:
    slots = cls.__dict__.get("__slots__")
    if slots is None:
        return ()
    if isinstance(slots, str):
        return (slots,)
    return tuple(slots)


# -- the generated methods ---------------------------------------------------------------------


def _sources(all_fields: tuple[_Field, ...], *, frozen: bool, post_init: bool) -> tuple[str, ...]:
    """The sources of the factories of ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__``
    (the shape of :mod:`dataclasses`' own: a function that takes the values the method
    closes over and returns the method)."""
    data = [f for f in all_fields if not f.classvar]
    init_fields = [f for f in data if f.init]
    std = [f for f in init_fields if not f.kw_only]
    kw = [f for f in init_fields if f.kw_only]

    def param(f: _Field) -> str:
        if f.default_factory is not MISSING:
            return f"{f.name}:_type_{f.name}=_HAS_DEFAULT_FACTORY"
        if f.default is not MISSING:
            return f"{f.name}:_type_{f.name}=_dflt_{f.name}"
        return f"{f.name}:_type_{f.name}"

    params = ["self", *(param(f) for f in std)]
    if kw:
        params += ["*", *(param(f) for f in kw)]
    body = []
    for f in data:
        if f.default_factory is not MISSING:
            if f.init:
                value = f"_dflt_{f.name}() if {f.name} is _HAS_DEFAULT_FACTORY else {f.name}"
            else:
                value = f"_dflt_{f.name}()"
        elif f.init:
            value = f.name
        elif f.default is not MISSING:
            value = f"_dflt_{f.name}"
        else:
            continue
        if frozen:
            body.append(f"__dataclass_builtins_object__.__setattr__(self,{f.name!r},{value})")
        else:
            body.append(f"self.{f.name}={value}")
    if post_init:
        body.append("self.__post_init__()")
    if not body:
        body = ["pass"]
    init_locals = ["_HAS_DEFAULT_FACTORY", "__dataclass_builtins_object__", "_return_type"]
    init_locals += [f"_type_{f.name}" for f in init_fields]
    init_locals += [f"_dflt_{f.name}" for f in data if f.default is not MISSING or f.default_factory is not MISSING]
    return (_factory("__init__", init_locals, ",".join(params), body, "->_return_type"),)


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """``obj`` -> the tuple of its ``names`` attributes (what dataclasses' generated
    ``__eq__`` and ``__hash__`` build inline: ``(self.a,self.b,)``)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)  # type: ignore[return-value]


def _eq_fn(get: Callable[[Any], tuple[Any, ...]]) -> Any:
    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return get(self) == get(other)
        return NotImplemented

    return __eq__


def _hash_fn(get: Callable[[Any], tuple[Any, ...]]) -> Any:
    def __hash__(self: Any) -> int:
        return hash(get(self))

    return __hash__


def _repr_fn(names: tuple[str, ...]) -> Any:
    """``Name(a=..., b=...)``, and ``...`` when called again for the same object in the same
    thread (dataclasses' recursion guard)."""
    shown = tuple((f"{name}=", attrgetter(name)) for name in names)
    running: set[tuple[int, int]] = set()

    def __repr__(self: Any) -> str:
        key = id(self), _get_ident()
        if key in running:
            return "..."
        running.add(key)
        try:
            inner = ", ".join([label + repr(get(self)) for label, get in shown])
        finally:
            running.discard(key)
        return f"{self.__class__.__qualname__}({inner})"

    return __repr__


def _factory(name: str, closure: list[str], args: str, body: list[str], returns: str = "") -> str:
    lines = [f"def __create_fn__({', '.join(closure)}):", f" def {name}({args}){returns}:"]
    lines += [f"  {line}" for line in body]
    lines.append(f" return {name}")
    return "\n".join(lines)


def _compile(source: str) -> Any:
    namespace: dict[str, Any] = {}
    # dont_inherit: not this module's ``from __future__ import annotations`` (the annotations
    # of ``__init__`` are the fields' types, as dataclasses makes them).
    code = compile(source, "<string>", "exec", dont_inherit=True)
    exec(code, {"__builtins__": __builtins__}, namespace)  # noqa: S102 - code generated above from field names
    return namespace["__create_fn__"]


def _frozen_method(cell: list[type], qualname: str, fieldnames: frozenset[str], which: str) -> Any:
    if which == "__setattr__":

        def __setattr__(self: Any, name: str, value: Any) -> None:
            cls: Any = cell[0]
            if type(self) is cls or name in fieldnames:
                raise _frozen_error(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        method: Any = __setattr__
    else:

        def __delattr__(self: Any, name: str) -> None:
            cls: Any = cell[0]
            if type(self) is cls or name in fieldnames:
                raise _frozen_error(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)

        method = __delattr__
    method.__qualname__ = f"{qualname}.{which}"
    return method


def _frozen_error(message: str) -> Exception:
    from dataclasses import FrozenInstanceError

    return FrozenInstanceError(message)


def _dataclass_getstate(self: Any) -> list[Any]:
    return [getattr(self, f.name) for f in type(self).__ci_dataclass__[0] if not f.classvar]


def _dataclass_setstate(self: Any, state: list[Any]) -> None:
    data = [f for f in type(self).__ci_dataclass__[0] if not f.classvar]
    for f, value in zip(data, state):
        object.__setattr__(self, f.name, value)


class _LazyFields:
    """``__dataclass_fields__`` of a class made here: real ``dataclasses.Field`` objects,
    made on first access (and then stored on the class in place of this)."""

    owner: type

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner = owner

    def __get__(self, instance: Any, owner: type | None = None) -> dict[str, Any]:
        import dataclasses

        cls = self.owner
        made: dict[str, Any] = {}
        for f in cls.__dict__[_INFO][0]:
            real = _real_field(f)
            real.name = f.name
            real.type = f.type
            real._field_type = dataclasses._FIELD_CLASSVAR if f.classvar else dataclasses._FIELD  # type: ignore[attr-defined]
            made[f.name] = real
        type.__setattr__(cls, "__dataclass_fields__", made)
        return made


class _LazyParams:
    owner: type

    def __init__(self, frozen: bool) -> None:
        self.frozen = frozen

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner = owner

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        import dataclasses

        params = dataclasses._DataclassParams(True, True, True, False, False, self.frozen)  # type: ignore[attr-defined]
        type.__setattr__(self.owner, "__dataclass_params__", params)
        return params


def record() -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Start record mode (the generator): every ci_engine class made from now on is noted."""
    global _RECORD
    if _RECORD is None:
        _RECORD = {}
    return _RECORD
