"""Processing string -> typed AST.

``parse(text)`` percent-decodes the string (``%7C``, double-encoded ``%257C`` ...), runs the
grammar of ``grammar/ci.lark`` and builds :mod:`ci_engine.ast` nodes directly, one builder
method per grammar rule or alias. ``parse_url(url_or_query)`` finds the processing string
among the ``&``-joined components of a URL's query (``limits-and-errors.md`` section 4.1).

Every failure is a :class:`~ci_engine.errors.CIError`: syntax errors are
:class:`~ci_engine.errors.ParseError` with the column, the offending token and what was
expected; range errors from the AST constructors are located on the offending token. No
lark, ``ValueError`` or ``KeyError`` escapes.

This module imports no imaging library.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ci_engine import _check, _dc
from ci_engine import ast as A
from ci_engine._lalr import SyntaxFailure
from ci_engine.errors import (
    CIError,
    InternalError,
    InvalidArgumentError,
    ParseError,
    Span,
    TooManyStepsError,
    ValueRangeError,
)
from ci_engine.types import (
    MAINLAND_FONT_NAMES,
    BlindType,
    BlogoMode,
    CiProcessName,
    Color,
    FlipAxis,
    Font,
    Gravity,
    OffsetMode,
    OutputFormat,
    ScaleType,
    SizeUnit,
)

__all__ = ["parse", "parse_url", "grammar_text", "load_lark", "load_tables", "MAX_STEPS", "KEYWORDS", "decode_text"]

MAX_STEPS = 10
"""Most ``|``-separated steps in one string (``limits-and-errors.md`` section 4)."""

KEYWORDS = (
    "imageMogr2",
    "imageView2",
    "watermark",
    "imageInfo",
    "exif",
    "imageAve",
    "imageSlim",
    "imageInspect",
    "style",
    "QRcode",
)
"""The API keywords that start a processing step (matched case-insensitively)."""

_MAX_DIGITS = 100
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_IGNORE_ERROR = re.compile(r"(?:^|[/&])ignore-error[/=]1(?=$|[/|&])")

# -- grammar loading ---------------------------------------------------------------------------


_HERE = os.path.dirname(os.path.abspath(__file__))
_GRAMMAR_PATHS = (
    os.path.join(_HERE, "_grammar", "ci.lark"),  # the copy shipped in the wheel
    os.path.join(os.path.dirname(_HERE), "grammar", "ci.lark"),  # the repository's
)


def grammar_text() -> str:
    """The text of ``ci.lark``: the copy shipped in the wheel, else the repository's."""
    for path in _GRAMMAR_PATHS:
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return f.read()
    import importlib.resources  # a zipped install

    return importlib.resources.files("ci_engine").joinpath("_grammar/ci.lark").read_text("utf-8")


def load_lark() -> Any:
    """Compile the grammar with lark (LALR, contextual lexer, no placeholders)."""
    from lark import Lark

    return Lark(grammar_text(), parser="lalr", lexer="contextual", maybe_placeholders=False)


def load_tables() -> Any:
    """The grammar's LALR tables (:class:`ci_engine._lalr.Tables`): the ones generated ahead
    of time in ``ci_engine/_tables.py``, unless the grammar no longer matches them (then
    compiled with lark now, with a ``RuntimeWarning``: run ``python -m ci_engine._tables_build``)."""
    import zlib

    from ci_engine import _tables as T
    from ci_engine._lalr import tables_from_lark

    grammar = None
    for path in _GRAMMAR_PATHS:
        if os.path.exists(path):
            with open(path, "rb") as f:
                grammar = f.read()
            break
    if grammar is not None and (zlib.crc32(grammar), len(grammar)) != (T.GRAMMAR_CRC32, T.GRAMMAR_LENGTH):
        import warnings

        warnings.warn(
            "ci_engine/_tables.py was generated from another grammar/ci.lark; compiling the grammar "
            "with lark instead (slow). Regenerate the tables: python -m ci_engine._tables_build",
            RuntimeWarning,
            stacklevel=3,
        )
        return tables_from_lark(load_lark())
    return generated_tables()


def generated_tables() -> Any:
    """The tables of ``ci_engine/_tables.py`` as they are, without checking the grammar."""
    from ci_engine import _tables as T
    from ci_engine._lalr import Tables

    return Tables(
        start_states=T.START_STATES,
        end_states=T.END_STATES,
        states=T.STATES,
        rules=T.RULES,
        sources=(),
        patterns=T.PATTERNS,
        scanners=T.SCANNERS,
        chars=T.CHARS,
        words=T.WORDS,
        literals=T.LITERALS,
        factories=T.FACTORIES,
        alternatives=getattr(T, "ALTERNATIVES", None),
    )


_TABLES: Any = None
_DRIVER: Any = None
_DRIVER_LOCK = threading.Lock()


def _tables() -> Any:
    global _TABLES
    if _TABLES is None:
        _TABLES = load_tables()
    return _TABLES


def _driver() -> Any:
    global _DRIVER
    if _DRIVER is None:
        with _DRIVER_LOCK:
            if _DRIVER is None:
                from ci_engine._lalr import Driver

                _DRIVER = Driver(_tables(), _Builder())
    return _DRIVER


class _Recognizer:
    """A builder that builds nothing: the driver then only checks the syntax."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("__"):
            raise AttributeError(name)
        return _nothing


def _nothing(c: list[Any], p: list[int], start: int, end: int) -> None:
    return None


_RECOGNIZER: Any = None


def _recognizer() -> Any:
    global _RECOGNIZER
    if _RECOGNIZER is None:
        with _DRIVER_LOCK:
            if _RECOGNIZER is None:
                from ci_engine._lalr import Driver

                _RECOGNIZER = Driver(_tables(), _Recognizer())
    return _RECOGNIZER


# -- helpers for the builder -------------------------------------------------------------------


_new_span = tuple.__new__
"""``_new_span(Span, (start, end))`` is ``Span(start, end)`` without the Python-level
``__new__`` of the named tuple (the builder makes one span per node)."""


def _tok_span(token: str, start: int) -> Span:
    return Span(start, start + len(token))


def _int(token: str, op: str, field: str) -> int:
    if len(token) > _MAX_DIGITS:
        _check.fail(op, field, f"a number of at most {_MAX_DIGITS} digits", f"{len(token)} digits")
    return int(token)


def _float(token: str, op: str, field: str) -> float:
    # Long enough for the positional form of any float (the smallest is 5e-324).
    if len(token) > 4 * _MAX_DIGITS:
        _check.fail(op, field, f"a number of at most {4 * _MAX_DIGITS} characters", f"{len(token)} characters")
    return float(token)


def _flag(token: str, op: str, field: str) -> bool:
    return _check.flag(op, field, _int(token, op, field))


def _b64_text(token: str, op: str, field: str) -> str:
    try:
        return _check.b64_decode(token).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgumentError(
            f"{op}: {field} must be URL-safe Base64 of UTF-8 text, got {token!r}",
            op=op,
            field=field,
            expected="URL-safe Base64 of UTF-8 text",
            actual=token,
        ) from None


def _color(token: str, op: str, field: str) -> Color:
    value = _b64_text(token, op, field)
    try:
        return Color.parse(value)
    except ValueError:
        raise InvalidArgumentError(
            f"{op}: {field} must encode #RRGGBB, #RGB or a CSS colour name, got {value!r}",
            op=op,
            field=field,
            expected="#RRGGBB, #RGB or a CSS colour name",
            actual=value,
        ) from None


def _font(token: str, op: str) -> Font:
    value = _b64_text(token, op, "font")
    try:
        return Font.from_name(value)
    except ValueError:
        names = ", ".join(f.value for f in Font)
        mainland = ", ".join(n for n, v in MAINLAND_FONT_NAMES.items() if n != v)
        raise ValueRangeError(
            f"{op}: font must be one of the documented fonts ({names}; or as the mainland list "
            f"spells them: {mainland}), got {value!r}",
            op=op,
            field="font",
            expected="a documented font",
            actual=value,
        ) from None


def _enum(cls: Any, token: str, op: str, field: str) -> Any:
    try:
        return cls.from_token(token)
    except ValueError:
        values = ", ".join(str(m.value) for m in cls)
        _check.fail(op, field, f"one of {values}", token)


def _at(exc: CIError, span: Span) -> CIError:
    if exc.span is None:
        exc.span = span
    return exc


@_dc.dataclass(slots=True)
class _Modifier:
    """``gravity``, ``pad`` or ``color`` before it is bound to its operation."""

    field: str
    value: Any
    targets: tuple[type, ...]


_GRAVITY_TARGETS = (A.Cut, A.Crop)
_PAD_TARGETS = (A.Thumbnail,)


def _bind_modifiers(items: list[Any]) -> tuple[A.MogrOp, ...]:
    """Bind modifiers to the nearest following target of their kind, else to the nearest
    preceding one (``imagemogr2.md`` section 1.2); later bindings override earlier ones.
    A modifier with no target in its step has nothing to modify and is dropped."""
    for item in items:
        if type(item) is _Modifier:
            break
    else:
        return tuple(items)
    count = len(items)
    updates: dict[int, dict[str, Any]] = {}
    for i, item in enumerate(items):
        if type(item) is not _Modifier:
            continue
        targets = item.targets
        target = None
        for j in range(i + 1, count):
            if isinstance(items[j], targets):
                target = j
                break
        else:
            for j in range(i - 1, -1, -1):
                if isinstance(items[j], targets):
                    target = j
                    break
        if target is not None:
            updates.setdefault(target, {})[item.field] = item.value
    ops: list[Any] = list(items)
    for j, fields in updates.items():
        ops[j] = _replace(ops[j], fields)
    return tuple(op for op in ops if type(op) is not _Modifier)


_INIT_FIELDS: dict[type, tuple[str, ...]] = {}


def _replace(node: Any, changes: dict[str, Any]) -> Any:
    """``dataclasses.replace(node, **changes)`` for the AST's dataclasses (every field is
    an init field), without its per-call field walk."""
    cls = type(node)
    names = _INIT_FIELDS.get(cls)
    if names is None:
        names = _INIT_FIELDS[cls] = tuple(f.name for f in _dc.fields(cls) if f.init)
    kwargs = {name: getattr(node, name) for name in names}
    kwargs.update(changes)
    return cls(**kwargs)


def _simple(cls: type, *convs: Callable[[str, str, str], Any]) -> Callable[..., Any]:
    """A builder method for an operation (or geometry) whose values map one to one onto its
    fields, in order. Specialised by arity: this runs once per operation parsed."""
    fields = tuple(f.name for f in _dc.fields(cls) if f.name != "span")[: len(convs)]
    op = cls.keyword or "thumbnail"  # type: ignore[attr-defined]
    if issubclass(cls, A.CropGeometry.__args__):  # type: ignore[attr-defined]
        op = "crop"

    def located(exc: CIError, c: list[str], p: list[int], start: int, end: int) -> CIError:
        spans = {name: _tok_span(tok, at) for name, tok, at in zip(fields, c, p)}
        return _at(exc, spans.get(getattr(exc, "field", None) or "", Span(start, end)))

    if len(convs) == 1:
        (conv0,) = convs
        (f0,) = fields

        def method1(self: _Builder, c: list[str], p: list[int], start: int, end: int) -> Any:
            try:
                return cls(conv0(c[0], op, f0), span=_new_span(Span, (start, end)))
            except CIError as exc:
                raise located(exc, c, p, start, end) from None

        return method1
    if len(convs) == 2:
        conv0, conv1 = convs
        f0, f1 = fields

        def method2(self: _Builder, c: list[str], p: list[int], start: int, end: int) -> Any:
            try:
                return cls(conv0(c[0], op, f0), conv1(c[1], op, f1), span=_new_span(Span, (start, end)))
            except CIError as exc:
                raise located(exc, c, p, start, end) from None

        return method2

    def method(self: _Builder, c: list[str], p: list[int], start: int, end: int) -> Any:
        try:
            return cls(
                *[conv(tok, op, name) for conv, tok, name in zip(convs, c, fields)], span=_new_span(Span, (start, end))
            )
        except CIError as exc:
            raise located(exc, c, p, start, end) from None

    return method


def _geometry(cls: type, op: str) -> Callable[..., Any]:
    count = len([f for f in _dc.fields(cls) if f.name != "span"])
    return _simple(cls, *([_int] * count))


def _param(key: str, convert: Callable[[str], Any] | None = None) -> Callable[..., Any]:
    """A builder method for a ``key/value`` parameter: returns ``(key, value, span)``."""

    def method(self: _Builder, c: list[str], p: list[int], start: int, end: int) -> Any:
        span = _new_span(Span, (start, end))
        try:
            value = convert(c[0]) if convert else c[0]
        except CIError as exc:
            raise _at(exc, span) from None
        return (key, value, span)

    return method


def _param_int(key: str, op: str, field: str) -> Callable[..., Any]:
    """A builder method for a ``key/<integer>`` parameter: ``(key, int, span)``, the
    number checked as ``_int`` checks it."""

    def method(self: _Builder, c: list[str], p: list[int], start: int, end: int) -> Any:
        span = _new_span(Span, (start, end))
        token = c[0]
        if len(token) > _MAX_DIGITS:
            try:
                _int(token, op, field)
            except CIError as exc:
                raise _at(exc, span) from None
        return (key, int(token), span)

    return method


def _fold(op: str, params: list[tuple[str, Any, Span]], span: Span) -> tuple[dict[str, Any], dict[str, Span]]:
    values: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    for key, value, at in params:  # a repeated key: the last one wins
        values[key] = value
        spans[key] = at
    return values, spans


def _construct(cls: type, kwargs: dict[str, Any], spans: dict[str, Span], span: Span) -> Any:
    try:
        return cls(**kwargs, span=span)
    except CIError as exc:
        field = getattr(exc, "field", None) or ""  # as written ("bar-type") or as named ("bar_type")
        raise _at(exc, spans.get(field) or spans.get(field.replace("-", "_"), span)) from None


# -- the builder: one method per grammar rule or alias -----------------------------------------

_AIGC_FIELDS = dict(A.AIGC_KEYS)

_WATERMARK_OPS: dict[type, str] = {
    cls: f"watermark/{cls.mode}"
    for cls in (A.ImageWatermark, A.TextWatermark, A.BlindWatermark, A.ExtractBlindWatermark)
}


class _Builder:
    """Builds AST nodes from the reductions of ``ci.lark`` (method name = rule name)."""

    # ---- top level
    def start(self, c: list[Any], p: list[int], start: int, end: int) -> Any:
        return c[0]

    start.passthrough = True  # type: ignore[attr-defined]  # the driver skips the call

    def pipeline(self, c: list[Any], p: list[int], start: int, end: int) -> A.Pipeline:
        return A.Pipeline(steps=tuple(c), span=_new_span(Span, (start, end)))

    # ---- imageMogr2
    def image_mogr2(self, c: list[Any], p: list[int], start: int, end: int) -> A.ImageMogr2:
        return A.ImageMogr2(ops=_bind_modifiers(c[1:]), span=_new_span(Span, (start, end)))

    def thumbnail(self, c: list[Any], p: list[int], start: int, end: int) -> A.Thumbnail:
        return A.Thumbnail(c[0], span=_new_span(Span, (start, end)))

    scale_percent = _geometry(A.ScalePercent, "thumbnail")
    width_percent = _geometry(A.WidthPercent, "thumbnail")
    height_percent = _geometry(A.HeightPercent, "thumbnail")
    fit_width = _geometry(A.FitWidth, "thumbnail")
    fit_height = _geometry(A.FitHeight, "thumbnail")
    fit_box = _geometry(A.FitBox, "thumbnail")
    shrink_box = _geometry(A.ShrinkBox, "thumbnail")
    enlarge_box = _geometry(A.EnlargeBox, "thumbnail")
    cover_box = _geometry(A.CoverBox, "thumbnail")

    def _one_way(
        self, cls: type, width: str | None, height: str | None, c: list[str], p: list[int], start: int, end: int
    ) -> Any:
        try:
            return cls(
                None if width is None else _int(width, "thumbnail", "width"),
                None if height is None else _int(height, "thumbnail", "height"),
                span=_new_span(Span, (start, end)),
            )
        except CIError as exc:
            raise _at(exc, _tok_span(c[0], p[0])) from None

    def shrink_width(self, c: list[str], p: list[int], start: int, end: int) -> A.ShrinkBox:
        return self._one_way(A.ShrinkBox, c[0], None, c, p, start, end)  # type: ignore[no-any-return]

    def shrink_height(self, c: list[str], p: list[int], start: int, end: int) -> A.ShrinkBox:
        return self._one_way(A.ShrinkBox, None, c[0], c, p, start, end)  # type: ignore[no-any-return]

    def enlarge_width(self, c: list[str], p: list[int], start: int, end: int) -> A.EnlargeBox:
        return self._one_way(A.EnlargeBox, c[0], None, c, p, start, end)  # type: ignore[no-any-return]

    def enlarge_height(self, c: list[str], p: list[int], start: int, end: int) -> A.EnlargeBox:
        return self._one_way(A.EnlargeBox, None, c[0], c, p, start, end)  # type: ignore[no-any-return]

    exact_size = _geometry(A.ExactSize, "thumbnail")
    max_area = _geometry(A.MaxArea, "thumbnail")

    def pad(self, c: list[str], p: list[int], start: int, end: int) -> _Modifier:
        try:
            return _Modifier("pad", _flag(c[0], "pad", "pad"), _PAD_TARGETS)
        except CIError as exc:
            raise _at(exc, _new_span(Span, (start, end))) from None

    def color(self, c: list[str], p: list[int], start: int, end: int) -> _Modifier:
        try:
            return _Modifier("color", _color(c[0], "color", "color"), _PAD_TARGETS)
        except CIError as exc:
            raise _at(exc, _new_span(Span, (start, end))) from None

    def gravity(self, c: list[str], p: list[int], start: int, end: int) -> _Modifier:
        return _Modifier("gravity", Gravity.from_token(c[0]), _GRAVITY_TARGETS)

    _cut4 = _simple(A.Cut, _int, _int, _int, _int)

    def cut(self, c: list[str], p: list[int], start: int, end: int) -> A.Cut:
        if len(c) == 2:  # cut/<w>x<h>: both offsets 0 (docs/compatibility.md)
            return self._cut4([c[0], c[1], "0", "0"], [p[0], p[1], end, end], start, end)  # type: ignore[no-any-return]
        return self._cut4(c, p, start, end)  # type: ignore[no-any-return]

    def crop(self, c: list[Any], p: list[int], start: int, end: int) -> A.Crop:
        return A.Crop(c[0], span=_new_span(Span, (start, end)))

    crop_width = _geometry(A.CropWidth, "crop")
    crop_height = _geometry(A.CropHeight, "crop")
    crop_box = _geometry(A.CropBox, "crop")

    def _region(self, width: str | None, height: str | None, ox: str, oy: str, start: int, end: int) -> A.CropRegion:
        span = _new_span(Span, (start, end))
        try:
            return A.CropRegion(
                None if width is None else _int(width, "crop", "width"),
                None if height is None else _int(height, "crop", "height"),
                _int(ox[1:], "crop", "dx"),
                _int(oy[1:], "crop", "dy"),
                OffsetMode.from_token(ox[0]),  # type: ignore[arg-type]
                OffsetMode.from_token(oy[0]),  # type: ignore[arg-type]
                span=span,
            )
        except CIError as exc:
            raise _at(exc, span) from None

    def crop_region(self, c: list[str], p: list[int], start: int, end: int) -> A.CropRegion:
        return self._region(c[0], c[1], c[2], c[3], start, end)

    def crop_region_width(self, c: list[str], p: list[int], start: int, end: int) -> A.CropRegion:
        return self._region(c[0], None, c[1], c[2], start, end)

    def crop_region_height(self, c: list[str], p: list[int], start: int, end: int) -> A.CropRegion:
        return self._region(None, c[0], c[1], c[2], start, end)

    iradius = _simple(A.IRadius, _int)
    rradius = _simple(A.RRadius, _int)
    scrop = _simple(A.SmartCrop, _int, _int)
    rcrop = _simple(A.RatioCrop, _float, _float)
    rotate = _simple(A.Rotate, _int)

    def auto_orient(self, c: list[Any], p: list[int], start: int, end: int) -> A.AutoOrient:
        return A.AutoOrient(span=_new_span(Span, (start, end)))

    def flip(self, c: list[str], p: list[int], start: int, end: int) -> A.Flip:
        return A.Flip(FlipAxis.from_token(c[0]), span=_new_span(Span, (start, end)))  # type: ignore[arg-type]

    def format(self, c: list[str], p: list[int], start: int, end: int) -> A.Format:
        return A.Format(OutputFormat.from_token(c[0]), span=_new_span(Span, (start, end)))  # type: ignore[arg-type]

    cgif = _simple(A.CGif, _int)
    egif = _simple(A.EGif, _int)
    interlace = _simple(A.Interlace, _flag)

    def quality(self, c: list[str], p: list[int], start: int, end: int) -> A.Quality:
        span = _new_span(Span, (start, end))
        try:
            return A.Quality(_int(c[0], "quality", "value"), len(c) > 1, span=span)
        except CIError as exc:
            raise _at(exc, _tok_span(c[0], p[0])) from None

    rquality = _simple(A.RQuality, _int)
    lquality = _simple(A.LQuality, _int)
    blur = _simple(A.Blur, _int, _float)
    sharpen = _simple(A.Sharpen, _int)

    def strip(self, c: list[Any], p: list[int], start: int, end: int) -> A.Strip:
        return A.Strip(span=_new_span(Span, (start, end)))

    bright = _simple(A.Bright, _int)
    contrast = _simple(A.Contrast, _int)
    grayscale = _simple(A.Grayscale, _flag)

    def size_limit(self, c: list[str], p: list[int], start: int, end: int) -> A.SizeLimit:
        span = _new_span(Span, (start, end))
        try:
            unit = SizeUnit.from_token(c[1])
            return A.SizeLimit(_int(c[0], "size-limit", "size"), unit, len(c) > 2, span=span)  # type: ignore[arg-type]
        except CIError as exc:
            raise _at(exc, _tok_span(c[0], p[0])) from None

    def ignore_error(self, c: list[str], p: list[int], start: int, end: int) -> A.IgnoreError | _Modifier:
        if c[0] == "0":
            # "Do not mask": the default, so nothing to keep. A modifier with no target is
            # dropped by _bind_modifiers; it does not cancel an ignore-error/1 elsewhere,
            # which is request-wide (docs/compatibility.md).
            return _Modifier("ignore-error", False, ())
        if c[0] != "1":
            raise InvalidArgumentError(
                f"ignore-error: value must be 1 (mask) or 0 (do not mask), got {c[0]!r}",
                op="ignore-error",
                field="value",
                expected="1 or 0",
                actual=c[0],
                span=_tok_span(c[0], p[0]),
            )
        return A.IgnoreError(span=_new_span(Span, (start, end)))

    def aigc_metadata(self, c: list[str], p: list[int], start: int, end: int) -> A.AIGCMetadata:
        span = _new_span(Span, (start, end))
        parts = c[0].split("/")  # AIGCMetadata, key, value, key, value ...
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        at = p[0] + len(parts[0]) + 1
        for i in range(1, len(parts) - 1, 2):
            key, token = parts[i], parts[i + 1]
            token_span = _new_span(Span, (at + len(key) + 1, at + len(key) + 1 + len(token)))
            name = _AIGC_FIELDS[key]
            try:
                values[name] = _b64_text(token, "AIGCMetadata", key)
            except CIError as exc:
                raise _at(exc, token_span) from None
            spans[name] = spans[key] = token_span  # a repeated key: the last one wins
            at = token_span.end + 1
        if "label" not in values:
            raise InvalidArgumentError(
                "AIGCMetadata: the Label parameter is required; write AIGCMetadata/Label/<Base64 of the label>/...",
                op="AIGCMetadata",
                field="Label",
                expected="a Label/<value> pair",
                actual=None,
                span=span,
            )
        return _construct(A.AIGCMetadata, values, spans, span)  # type: ignore[no-any-return]

    def index_crop(self, c: list[str], p: list[int], start: int, end: int) -> A.IndexCrop:
        span = _new_span(Span, (start, end))
        axis, size = c[0], c[1]
        try:
            length = _int(size, "indexcrop", axis)
        except CIError as exc:
            raise _at(exc, _tok_span(size, p[1])) from None
        index_token = c[2] if len(c) > 2 else "0"
        spans = {axis: _tok_span(size, p[1]), "index": _tok_span(index_token, p[2] if len(c) > 2 else end)}
        try:
            index = _int(index_token, "indexcrop", "index")
        except CIError as exc:
            raise _at(exc, spans["index"]) from None
        kwargs = {"width": length if axis == "width" else None, "height": length if axis == "height" else None}
        return _construct(A.IndexCrop, {**kwargs, "index": index}, spans, span)  # type: ignore[no-any-return]

    frame = _simple(A.Frame, _int)

    # ---- imageView2
    def image_view2(self, c: list[Any], p: list[int], start: int, end: int) -> A.ImageView2:
        span = _new_span(Span, (start, end))
        kwargs: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        params = c[1:]
        if params and isinstance(params[0], str):
            try:
                kwargs["mode"] = _int(params[0], "imageView2", "mode")
            except CIError as exc:
                raise _at(exc, _tok_span(params[0], p[1])) from None
            spans["mode"] = _tok_span(params[0], p[1])
            params = params[1:]
        masks = any(value for key, value, _ in params if key == "ignore-error")  # 0 never cancels a 1
        values, at = _fold("imageView2", params, span)
        spans.update(at)
        names = {
            "w": "width",
            "h": "height",
            "format": "format",
            "rq": "rquality",
            "lq": "lquality",
            "interlace": "interlace",
        }
        for key, value in values.items():
            if key == "q":
                kwargs["quality"], kwargs["quality_forced"] = value
            elif key == "ignore-error":
                kwargs["ignore_error_flag"] = masks
            else:
                kwargs[names[key]] = value
        return _construct(A.ImageView2, kwargs, spans, span)  # type: ignore[no-any-return]

    view_width = _param_int("w", "imageView2", "w")
    view_height = _param_int("h", "imageView2", "h")
    view_format = _param("format", OutputFormat.from_token)
    view_rquality = _param_int("rq", "imageView2", "rq")
    view_lquality = _param_int("lq", "imageView2", "lq")
    view_interlace = _param("interlace", lambda tok: _flag(tok, "imageView2", "interlace"))

    def view_quality(self, c: list[str], p: list[int], start: int, end: int) -> tuple[str, Any, Span]:
        span = _new_span(Span, (start, end))
        try:
            return ("q", (_int(c[0], "imageView2", "q"), len(c) > 1), span)
        except CIError as exc:
            raise _at(exc, span) from None

    def view_ignore_error(self, c: list[str], p: list[int], start: int, end: int) -> tuple[str, Any, Span]:
        span = _new_span(Span, (start, end))
        if c[0] not in ("0", "1"):
            raise InvalidArgumentError(
                f"imageView2: ignore-error must be 1 (mask) or 0 (do not mask), got {c[0]!r}",
                op="imageView2",
                field="ignore-error",
                expected="1 or 0",
                actual=c[0],
                span=span,
            )
        return ("ignore-error", c[0] == "1", span)

    # ---- watermarks
    def _watermark(self, cls: type, c: list[Any], start: int, end: int, required: str) -> Any:
        span = _new_span(Span, (start, end))
        op = _WATERMARK_OPS[cls]
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        for key, value, at in c[1:]:  # a repeated key: the last one wins
            values[key] = value
            spans[key] = at
        if required not in values:
            raise InvalidArgumentError(
                f"{op}: the {required} parameter is required",
                op=op,
                field=required,
                expected=f"a {required}/<value> pair",
                actual=None,
                span=span,
            )
        return _construct(cls, values, spans, span)

    def image_watermark(self, c: list[Any], p: list[int], start: int, end: int) -> A.ImageWatermark:
        return self._watermark(A.ImageWatermark, c, start, end, "image")  # type: ignore[no-any-return]

    def text_watermark(self, c: list[Any], p: list[int], start: int, end: int) -> A.TextWatermark:
        return self._watermark(A.TextWatermark, c, start, end, "text")  # type: ignore[no-any-return]

    def blind_watermark(self, c: list[Any], p: list[int], start: int, end: int) -> A.BlindWatermark:
        return self._watermark(A.BlindWatermark, c, start, end, "type")  # type: ignore[no-any-return]

    def extract_blind_watermark(self, c: list[Any], p: list[int], start: int, end: int) -> A.ExtractBlindWatermark:
        return self._watermark(A.ExtractBlindWatermark, c, start, end, "type")  # type: ignore[no-any-return]

    wm_image = _param("image", lambda tok: _b64_text(tok, "watermark", "image"))
    wm_text = _param("text", lambda tok: _b64_text(tok, "watermark", "text"))
    wm_font = _param("font", lambda tok: _font(tok, "watermark/2"))
    wm_fill = _param("fill", lambda tok: _color(tok, "watermark/2", "fill"))
    wm_fontsize = _param_int("fontsize", "watermark/2", "fontsize")
    wm_shadow = _param_int("shadow", "watermark/2", "shadow")
    wm_blogo = _param("blogo", lambda tok: _enum(BlogoMode, tok, "watermark/1", "blogo"))
    wm_gravity = _param("gravity", Gravity.from_token)
    wm_dx = _param_int("dx", "watermark", "dx")
    wm_dy = _param_int("dy", "watermark", "dy")
    wm_dissolve = _param_int("dissolve", "watermark", "dissolve")
    wm_batch = _param("batch", lambda tok: _flag(tok, "watermark", "batch"))
    wm_degree = _param_int("degree", "watermark", "degree")
    wm_spacing = _param_int("spacing", "watermark", "spacing")
    wm_scatype = _param("scatype", lambda tok: _enum(ScaleType, tok, "watermark", "scatype"))
    wm_spcent = _param_int("spcent", "watermark", "spcent")
    blind_type = _param("type", lambda tok: _enum(BlindType, tok, "watermark", "type"))
    blind_level = _param_int("level", "watermark/3", "level")
    blind_version = _param("version")

    # ---- bare keywords and the rest
    def image_info(self, c: list[Any], p: list[int], start: int, end: int) -> A.ImageInfo:
        return A.ImageInfo(span=_new_span(Span, (start, end)))

    def exif(self, c: list[Any], p: list[int], start: int, end: int) -> A.Exif:
        return A.Exif(span=_new_span(Span, (start, end)))

    def image_ave(self, c: list[Any], p: list[int], start: int, end: int) -> A.ImageAve:
        return A.ImageAve(span=_new_span(Span, (start, end)))

    def image_slim(self, c: list[Any], p: list[int], start: int, end: int) -> A.ImageSlim:
        return A.ImageSlim(span=_new_span(Span, (start, end)))

    def image_inspect(self, c: list[Any], p: list[int], start: int, end: int) -> A.ImageInspect:
        return A.ImageInspect(span=_new_span(Span, (start, end)))

    def style_ref(self, c: list[str], p: list[int], start: int, end: int) -> A.StyleRef:
        span = _new_span(Span, (start, end))
        try:
            return A.StyleRef(c[1], span=span)
        except CIError as exc:
            raise _at(exc, _tok_span(c[1], p[1])) from None

    def qr_code(self, c: list[Any], p: list[int], start: int, end: int) -> A.QRCode:
        span = _new_span(Span, (start, end))
        values, spans = _fold("QRcode", c[1:], span)
        return _construct(A.QRCode, values, spans, span)  # type: ignore[no-any-return]

    qr_cover = _param("cover", lambda tok: _flag(tok, "QRcode", "cover"))
    qr_bar_type = _param_int("bar_type", "QRcode", "bar-type")
    qr_segment = _param_int("segment", "QRcode", "segment")
    qr_size = _param_int("size", "QRcode", "size")

    def ci_process(self, c: list[Any], p: list[int], start: int, end: int) -> A.Pipeline:
        span = _new_span(Span, (start, end))
        try:
            name = CiProcessName.from_token(c[1])
        except ValueError:
            known = sorted((n.value for n in CiProcessName), key=str.lower)
            import difflib

            hint = difflib.get_close_matches(c[1], known, n=1)
            raise ParseError(
                f"ci-process: unknown operation {c[1]!r}" + (f"; did you mean {hint[0]!r}?" if hint else ""),
                op="ci-process",
                field="name",
                token=c[1],
                expected_tokens=tuple(known),
                span=_tok_span(c[1], p[1]),
            ) from None
        step = A.CiProcess(name, tuple(c[2:]), span=span)  # type: ignore[arg-type]
        return A.Pipeline(steps=(step,), span=span)

    def ci_param(self, c: list[str], p: list[int], start: int, end: int) -> tuple[str, str | None]:
        key = unquote(c[0])
        if len(c) == 1:
            # `key` alone has no value; `key=` has the empty value (the grammar drops "=").
            return (key, None if end == start + len(c[0]) else "")
        return (key, unquote(c[1]))


# -- syntax error messages ---------------------------------------------------------------------

_TERMINAL_WORDS = {
    "INT": "a non-negative integer",
    "SIGNED_INT": "an integer",
    "DECIMAL": "a decimal number",
    "B64": "a URL-safe Base64 value",
    "GRAVITY": "a gravity (northwest, north, northeast, west, center, east, southwest, south, southeast)",
    "FLIP_AXIS": "vertical or horizontal",
    "FORMAT_NAME": "a format name (jpg, png, webp, gif, bmp, heif, avif, ...)",
    "OFFSET": "an offset such as a10 or -10",
    "SIZE_UNIT": "a unit k or m",
    "FORCE": "'!'",
    "INDEX_AXIS": "width or height",
    "AIGC_METADATA": "AIGCMetadata/Label/<Base64>[/ContentProducer/<Base64>...]",
    "STYLE_NAME": "a style name",
    "CI_PROCESS_NAME": "a ci-process operation name",
    "CI_PARAM_KEY": "a parameter name",
    "CI_PARAM_VALUE": "a parameter value",
    "$END": "the end of the string",
}


def _describe(driver: Any, term: str) -> str:
    if term in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[term]
    word = driver.literals.get(term)
    if word is not None:
        # Keyword literals carry their separators ("/thumbnail/"); users think of words.
        return repr(word.strip("/") or word)
    return term.lower()


def _empty_step(text: str, failure: Any) -> ParseError | None:
    """A leading ``|``, ``||`` or a trailing ``|``: an empty step (common in strings
    migrated from other services). Still refused, with the fix in the message."""
    if failure.term == "$END":
        at = len(text) - 1
        if at < 0 or text[at] != "|":
            return None
        where = "at the end of the string"
    else:
        at = failure.pos
        if at >= len(text) or text[at] != "|" or (at > 0 and text[at - 1] != "|"):
            return None
        where = "at the start of the string" if at == 0 else "between two '|'"
    return ParseError(
        f"pipeline: empty step {where}; remove the extra '|' (every step between "
        "'|' separators must be an operation such as imageMogr2/...)",
        op="pipeline",
        field="steps",
        token="|",  # noqa: S106 - the offending token, not a password
        expected="an operation between '|' separators",
        actual="|",
        text=text,
        span=Span(at, at + 1),
    )


def _syntax_error(driver: Any, text: str, failure: Any) -> ParseError:
    empty = _empty_step(text, failure)
    if empty is not None:
        return empty
    expected = sorted({_describe(driver, t) for t in failure.expected})
    if failure.term == "$END":
        found = "end of string"
        token = ""
        span = Span(len(text), len(text))
    else:
        # Show the whole /-separated word at the failure, not one character of it.
        stop = len(text)
        for sep in "/|&":
            at = text.find(sep, failure.pos + 1)
            if at != -1:
                stop = min(stop, at)
        token = text[failure.pos : stop] if failure.term is None else failure.token
        start = failure.pos
        if text[start] in "/|&":  # a separator where none may stand: point at it, not the next word
            token = text[start]
        found = repr(token)
        span = Span(start, start + max(1, len(token)))
    words = [e.strip("'") for e in expected if e.startswith("'")]
    import difflib

    hint = difflib.get_close_matches(token, words, n=1, cutoff=0.6) if token else []
    message = f"unexpected {found}"
    if hint:
        message += f"; did you mean {hint[0]!r}?"
    elif len(expected) <= 12:
        message += "; expected " + (expected[0] if len(expected) == 1 else "one of: " + ", ".join(expected))
    else:
        message += "; expected one of: " + ", ".join(expected[:12]) + ", ..."
    return ParseError(
        message,
        token=token,
        expected_tokens=tuple(expected),
        expected=", ".join(expected),
        actual=token,
        text=text,
        span=span,
    )


# -- entry points --------------------------------------------------------------------------------


def decode_text(text: str) -> str:
    """Percent-decode a processing string until it is stable (at most three rounds, so
    ``%257C`` becomes ``|``). ``ci-process=`` strings are left as they are: their values
    are decoded one by one."""
    if text.startswith("ci-process="):
        return text
    for _ in range(3):
        if "%" not in text or not _PERCENT.search(text):
            break
        text = unquote(text)
    return text


def parse(text: str | bytes, *, max_steps: int = MAX_STEPS) -> A.Pipeline:
    """Parse a processing string into a :class:`~ci_engine.ast.Pipeline`.

    Args:
        text: the string, raw or percent-encoded (``%7C`` and double-encoded ``%257C`` for
            ``|`` are fine), with or without a trailing ``/``.
        max_steps: the most ``|``-separated steps accepted (CI: 10).

    Returns:
        The pipeline. Results are cached: the same string gives the same (immutable) object.

    Raises:
        ParseError: the string does not follow the grammar (never masked).
        ValueRangeError: a value outside its documented range (masked by ignore-error/1).
        TooManyStepsError: more than ``max_steps`` steps (masked by ignore-error/1).
        InvalidArgumentError: any other invalid parameter.

    Example:
        >>> parse("imageMogr2/thumbnail/400x").steps[0].ops[0].geometry
        FitWidth(width=400)
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError("processing string is not UTF-8", token="", text=None) from None
    if not isinstance(text, str):
        raise TypeError(f"processing string must be str or bytes, got {type(text).__name__}")
    return _parse_cached(text, max_steps)


def _parse_uncached(text: str, max_steps: int) -> A.Pipeline:
    source = text.strip()
    if "%" in source:  # decode_text leaves a string without "%" as it is
        source = decode_text(source)
    driver = _DRIVER if _DRIVER is not None else _driver()
    try:
        try:
            pipeline: A.Pipeline = driver.parse(source)
        except SyntaxFailure as failure:
            raise _syntax_error(driver, source, failure) from None
        except CIError:
            # A value was refused before the parser saw the rest of the string; a syntax
            # error further on takes precedence (it is never masked by ignore-error/1).
            try:
                _recognizer().parse(source)
            except SyntaxFailure as failure:
                raise _syntax_error(driver, source, failure) from None
            raise
        if len(pipeline.steps) > max_steps:
            extra = pipeline.steps[max_steps]
            raise TooManyStepsError(
                f"pipeline: at most {max_steps} steps are allowed, got {len(pipeline.steps)}",
                limit=max_steps,
                actual=len(pipeline.steps),
                op="pipeline",
                field="steps",
                span=extra.span,
            )
        return pipeline
    except CIError as exc:
        exc.locate(source, None)
        exc.ignore_error_requested = bool(_IGNORE_ERROR.search(source))
        raise
    except Exception as exc:  # a bug of ours: never let a foreign exception escape
        raise InternalError(
            f"parser failure on {source!r}: {type(exc).__name__}", detail=repr(exc), text=source
        ) from exc


class _ParseCache:
    """The parse cache: least recently used, bounded by entries **and by size**.

    ``functools.lru_cache(4096)`` held 4,096 entries of any size: 20 distinct 1 MB strings
    kept 644 MB of ASTs alive after the calls returned. Here a string longer than
    :data:`CACHE_MAX_CHARS` is parsed but never kept, and the strings kept total at most
    :data:`CACHE_MAX_TOTAL_CHARS` characters (an AST takes about 30 bytes per character of
    its string: about 30 MB at most), besides the 4,096-entry cap. Thread-safe; errors are not
    cached. ``__wrapped__`` is the uncached parser (``benchmarks/parse.py``)."""

    def __init__(self, fn: Callable[[str, int], A.Pipeline], entries: int, total_chars: int, max_chars: int) -> None:
        self.__wrapped__ = fn
        self._entries = entries
        self._total_chars = total_chars
        self._max_chars = max_chars
        self._items: OrderedDict[tuple[str, int], A.Pipeline] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def __call__(self, text: str, max_steps: int) -> A.Pipeline:
        key = (text, max_steps)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
        pipeline = self.__wrapped__(text, max_steps)
        if len(text) <= self._max_chars:
            with self._lock:
                if key not in self._items:
                    self._items[key] = pipeline
                    self._chars += len(text)
                    while len(self._items) > self._entries or self._chars > self._total_chars:
                        (old, _), _ = self._items.popitem(last=False)
                        self._chars -= len(old)
        return pipeline

    def cache_clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._chars = 0

    def cache_info(self) -> tuple[int, int]:
        """``(entries, characters)`` held."""
        with self._lock:
            return len(self._items), self._chars


CACHE_ENTRIES = 4096
CACHE_MAX_CHARS = 8192
"""Strings longer than this are parsed but not cached (real processing strings are a few
hundred characters; a URL is at most a few KB)."""
CACHE_MAX_TOTAL_CHARS = 1 << 20
"""Characters of all cached strings together (1 Mi: 4,096 strings of 256 characters; about
30 MB of ASTs at most)."""

_parse_cached = _ParseCache(_parse_uncached, CACHE_ENTRIES, CACHE_MAX_TOTAL_CHARS, CACHE_MAX_CHARS)


def _leading_token(component: str) -> str:
    head = component.split("/", 1)[0]
    return head.split("|", 1)[0]


_KEYWORDS_LOWER = {k.lower() for k in KEYWORDS}
_SIGNATURE_PREFIXES = ("q-", "x-cos-", "response-")


def parse_url(url_or_query: str, *, max_steps: int = MAX_STEPS) -> A.Pipeline:
    """Find and parse the processing string of a full object URL or of its query string.

    The query is split on ``&``; the processing string is the first component whose
    leading token is an API keyword (``imageMogr2``, ``imageView2``, ``watermark``,
    ``imageInfo``, ``exif``, ``imageAve``, ``imageSlim``, ``imageInspect``, ``QRcode``, or
    ``style`` followed by ``/<name>``). Signature parameters (``q-sign-*`` ...) may come
    before or after it. Failing that, a ``ci-process=<Name>`` request is gathered from its
    parameters, and failing that the first component without ``=`` is a bare style name
    (``limits-and-errors.md`` section 4.1, ``styles.md`` section 2.2).

    Raises:
        InvalidArgumentError: no component is a processing string.
        ParseError, ValueRangeError, TooManyStepsError: as :func:`parse`.
    """
    if not isinstance(url_or_query, str):
        raise TypeError(f"url must be str, got {type(url_or_query).__name__}")
    query = url_or_query.split("#", 1)[0]
    if "?" in query:
        query = query.split("?", 1)[1]
    elif "://" in query:
        raise InvalidArgumentError("url: no query string, so no processing string", op="url")
    components = [c for c in query.split("&") if c]
    for component in components:
        lead = _leading_token(decode_text(component)).lower()
        if lead in _KEYWORDS_LOWER and (lead != "style" or "/" in decode_text(component)):
            return parse(component, max_steps=max_steps)
    for i, component in enumerate(components):
        if component.startswith("ci-process="):
            params = [c for c in components[i + 1 :] if not c.lower().startswith(_SIGNATURE_PREFIXES)]
            return parse("&".join([component, *params]), max_steps=max_steps)
    for component in components:
        if "=" not in component:
            name = unquote(component)
            try:
                return A.Pipeline(steps=(A.StyleRef(name),))
            except CIError as exc:
                raise exc.locate(name, Span(0, len(name))) from None
    raise InvalidArgumentError("url: no processing string in the query", op="url", text=query)
