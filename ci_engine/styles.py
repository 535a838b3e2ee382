"""Image styles, style URLs and original-image protection (``styles.md``).

* :class:`StyleRegistry` holds one bucket's styles: ``name -> processing string``, each
  body parsed and checked when it is added, at most 100 of them, names per section 1 of the
  spec, and the bucket's enabled separators (``-``, ``_``, ``/``, ``!``).
* :meth:`StyleRegistry.expand` replaces the ``style/<name>`` steps of a pipeline by the
  style's steps and re-checks the 10-step limit on the expanded chain (section 2.3).
* :func:`resolve_request` turns a download URL into the object key and the pipeline to run
  (section 2.1 resolution order, the ``?<name>`` / ``?style/<name>`` query forms, a style
  plus extra operations), and enforces original-image protection (section 5).

Example:
    >>> styles = StyleRegistry({"card": "imageMogr2/thumbnail/400x400"}, separators="!")
    >>> key, pipeline = resolve_request("https://b-1250000000.cos.ap-guangzhou.myqcloud.com/trip/beach.jpg!card",
    ...                                 styles, protection=True)
    >>> key, len(pipeline.steps)
    ('trip/beach.jpg', 1)

This module imports no imaging library.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Union
from urllib.parse import unquote
from xml.sax.saxutils import escape as _xml_escape

from ci_engine import ast as A
from ci_engine._dc import dataclass
from ci_engine.ast.info import STYLE_NAME_RE
from ci_engine.errors import (
    AccessDeniedError,
    CIError,
    InvalidArgumentError,
    NoSuchKeyError,
    NoSuchStyleError,
    TooManyStepsError,
)
from ci_engine.limits import Limits
from ci_engine.parse import KEYWORDS, decode_text, parse, parse_url
from ci_engine.store import Store, check_key

__all__ = [
    "SEPARATORS",
    "DEFAULT_SEPARATORS",
    "MAX_STYLES",
    "Style",
    "StyleRegistry",
    "resolve_request",
    "PROTECTION_X_ERRNO",
]

SEPARATORS = ("-", "_", "/", "!")
"""The separators a bucket may enable between a key and a style name (section 2.1)."""

DEFAULT_SEPARATORS = ("!",)
"""Enabled when none are given. The spec leaves the default open; ``!`` is the one in its
examples, cannot occur in a style name, and rarely occurs in object keys, so it is the
least ambiguous choice."""

MAX_STYLES = 100
"""Styles per bucket (section 1, documented)."""

PROTECTION_X_ERRNO = -154
"""CI's ``X-ErrNo`` when original-image protection refuses a URL."""

_STYLE_MISSING_X_ERRNO = -105
"""``X-ErrNo`` of an unknown style on a download URL (-60967 in persistent processing)."""

_MALFORMED_URL_X_ERRNO = -106

_RESERVED = frozenset(k.lower() for k in KEYWORDS)
_KEYWORDS_LOWER = _RESERVED


@dataclass(frozen=True, slots=True)
class Style:
    """A saved style: its ``name``, its ``body`` as written and the parsed ``pipeline``."""

    name: str
    body: str
    pipeline: A.Pipeline


class StyleRegistry:
    """One bucket's styles.

    Args:
        styles: initial styles, ``{name: body}`` or ``(name, body)`` pairs (each checked as by
            :meth:`add`).
        separators: the enabled separators, a subset of ``- _ / !`` given as a string
            (``"-!"``) or an iterable; ``!`` by default.
        max_styles: the per-bucket limit (100).
        limits: ``max_steps`` (10) bounds style bodies and expanded chains.

    The registry is safe to share between threads.
    """

    def __init__(
        self,
        styles: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        *,
        separators: str | Iterable[str] = DEFAULT_SEPARATORS,
        max_styles: int = MAX_STYLES,
        limits: Limits | None = None,
    ) -> None:
        self._styles: dict[str, Style] = {}
        self._lock = threading.RLock()
        self._separators = _check_separators(separators)
        self.max_styles = max_styles
        self.limits = limits or Limits()
        items = styles.items() if isinstance(styles, Mapping) else (styles or ())
        for name, body in items:
            self.add(name, body)

    # -- configuration ------------------------------------------------------------------------------
    @property
    def separators(self) -> tuple[str, ...]:
        """The enabled separators, in the order of :data:`SEPARATORS`."""
        return self._separators

    def set_separators(self, separators: str | Iterable[str]) -> None:
        """Change the enabled separators.

        Raises:
            InvalidArgumentError: an unknown separator, or one that an existing style name
                contains (names must never contain an enabled separator).
        """
        enabled = _check_separators(separators)
        with self._lock:
            for name in self._styles:
                clash = [s for s in enabled if s in name]
                if clash:
                    raise InvalidArgumentError(
                        f"style: cannot enable separator {clash[0]!r}: the style {name!r} contains it",
                        op="style",
                        field="separators",
                    )
            self._separators = enabled

    # -- the management API (PUT / GET / DELETE /?style) ----------------------------------------------
    def check_name(self, name: object) -> str:
        """Validate a style name (section 1 proposal) and return it.

        Raises:
            InvalidArgumentError: not 1-64 characters of ``A-Z a-z 0-9 . _ -``, contains an
                enabled separator, or is an API keyword (``imageMogr2``, ``style`` ...,
                compared case-insensitively).
        """
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"style: name must be a string, got {type(name).__name__}", op="style", field="name"
            )
        if not STYLE_NAME_RE.fullmatch(name):
            raise InvalidArgumentError(
                f"style: name must be 1-64 characters from A-Z a-z 0-9 . _ -, got {name!r}",
                op="style",
                field="name",
                expected="1-64 characters from A-Z a-z 0-9 . _ -",
                actual=name,
            )
        for sep in self._separators:
            if sep in name:
                raise InvalidArgumentError(
                    f"style: name must not contain the enabled separator {sep!r}, got {name!r}",
                    op="style",
                    field="name",
                    actual=name,
                )
        if name.lower() in _RESERVED:
            raise InvalidArgumentError(
                f"style: name must not be an API keyword, got {name!r}", op="style", field="name", actual=name
            )
        return name

    def add(self, name: str, body: str) -> Style:
        """Add a style, or replace the body of an existing one (``PUT /?style``).

        Raises:
            InvalidArgumentError: a bad name; a body that does not parse, has more than 10
                steps, or references another style; the 101st style (``X-ErrNo`` -60957).
        """
        self.check_name(name)
        if not isinstance(body, str) or not body.strip():
            raise InvalidArgumentError("style: body must be a non-empty processing string", op="style", field="body")
        pipeline = parse(body, max_steps=self.limits.max_steps)
        for step in pipeline.steps:
            if isinstance(step, A.StyleRef):
                raise InvalidArgumentError(
                    f"style: a style body may not reference another style (style/{step.name})",
                    op="style",
                    field="body",
                    text=body,
                    span=step.span,
                )
        style = Style(name, body, pipeline)
        with self._lock:
            if name not in self._styles and len(self._styles) >= self.max_styles:
                raise InvalidArgumentError(
                    f"style: a bucket holds at most {self.max_styles} styles",
                    op="style",
                    expected=f"at most {self.max_styles}",
                    actual=len(self._styles) + 1,
                    x_errno=-60957,
                )
            self._styles[name] = style
        return style

    def get(self, name: str) -> Style:
        """The style called ``name`` (``GET /?style`` with a name). Raises ``NoSuchStyleError``."""
        with self._lock:
            style = self._styles.get(name)
        if style is None:
            raise NoSuchStyleError(f"style: {name!r} does not exist")
        return style

    def delete(self, name: str) -> None:
        """Remove a style (``DELETE /?style``). Raises ``NoSuchStyleError``."""
        with self._lock:
            if name not in self._styles:
                raise NoSuchStyleError(f"style: {name!r} does not exist")
            del self._styles[name]

    def list(self) -> list[Style]:
        """Every style, in the order they were first added (``GET /?style``)."""
        with self._lock:
            return list(self._styles.values())

    def to_xml(self, name: str | None = None) -> str:
        """The ``GET /?style`` response body: ``<StyleList><StyleRule><StyleName/>
        <StyleBody/></StyleRule>...</StyleList>`` for one style or all of them."""
        styles = [self.get(name)] if name is not None else self.list()
        lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<StyleList>"]
        for style in styles:
            lines += [
                "  <StyleRule>",
                f"    <StyleName>{_xml_escape(style.name)}</StyleName>",
                f"    <StyleBody>{_xml_escape(style.body)}</StyleBody>",
                "  </StyleRule>",
            ]
        lines.append("</StyleList>")
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self._styles)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._styles

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._styles))

    def __repr__(self) -> str:
        return f"StyleRegistry({len(self._styles)} styles, separators={''.join(self._separators)!r})"

    # -- expansion -----------------------------------------------------------------------------------
    def expand(self, pipeline: A.Pipeline, *, max_steps: int | None = None) -> A.Pipeline:
        """Replace every ``style/<name>`` step by the style's steps (section 2.3).

        The style's steps run where the reference stands, so ``style/card|imageMogr2/...``
        runs the style first. The step limit counts the expanded chain.

        Raises:
            NoSuchStyleError: an unknown name.
            TooManyStepsError: more than ``max_steps`` (default: the registry's limit)
                steps after expansion; masked by ``ignore-error/1`` anywhere in the chain.
        """
        limit = self.limits.max_steps if max_steps is None else max_steps
        if not any(isinstance(step, A.StyleRef) for step in pipeline.steps):
            return _check_steps(pipeline, limit)
        steps: list[A.Step] = []
        for step in pipeline.steps:
            if isinstance(step, A.StyleRef):
                with self._lock:
                    style = self._styles.get(step.name)
                if style is None:
                    raise NoSuchStyleError(f"style: {step.name!r} does not exist", span=step.span)
                steps.extend(style.pipeline.steps)
            else:
                steps.append(step)
        return _check_steps(A.Pipeline(steps=tuple(steps), span=pipeline.span), limit)


def _check_steps(pipeline: A.Pipeline, limit: int) -> A.Pipeline:
    count = len(pipeline.steps)
    if count > limit:
        exc = TooManyStepsError(
            f"pipeline: at most {limit} steps are allowed after style expansion, got {count}",
            limit=limit,
            actual=count,
            op="pipeline",
            field="steps",
        )
        exc.ignore_error_requested = pipeline.ignore_error
        raise exc
    return pipeline


def _check_separators(separators: str | Iterable[str]) -> tuple[str, ...]:
    given = list(separators)
    for sep in given:
        if sep not in SEPARATORS:
            raise InvalidArgumentError(
                f"style: separators must be among {' '.join(SEPARATORS)}, got {sep!r}",
                op="style",
                field="separators",
            )
    return tuple(s for s in SEPARATORS if s in given)


# -- download requests ----------------------------------------------------------------------------

Exists = Union[Callable[[str], bool], Store]


def resolve_request(
    url: str,
    styles: StyleRegistry | None = None,
    protection: bool = False,
    *,
    exists: Exists | None = None,
    max_steps: int | None = None,
) -> tuple[str, A.Pipeline | None]:
    """The object key and the pipeline of a download URL.

    Args:
        url: ``https://<host>/<key>[<sep><style>][?<query>]``, or just the path and query
            (``/trip/beach.jpg!card``, ``trip/beach.jpg?style/card``). The path is
            percent-decoded once.
        styles: the bucket's styles and separators (none: no style URL can match).
        protection: original-image protection is on for the bucket.
        exists: tells whether an object exists (a :class:`~ci_engine.store.Store` or a
            callable). It drives the resolution order of section 2.1: the full key first, then
            for each enabled separator the split at its last occurrence whose prefix exists
            and whose suffix is a style (longest key wins), else ``404 NoSuchKey``. Without
            it, existence cannot be checked: a path whose suffix after an enabled separator
            names a style is taken as a style URL, anything else as a plain key.
        max_steps: the step limit after expansion (default: the registry's, else 10).

    Returns:
        ``(key, pipeline)``: ``pipeline`` is ``None`` for a plain download of the object;
        otherwise it has every style expanded (style steps first, then the query's extra
        steps).

    Raises:
        NoSuchKeyError: neither the key nor a key + style split exists (``X-ErrNo`` -46628).
        NoSuchStyleError: an unknown style in the query (``X-ErrNo`` -105).
        AccessDeniedError: protection is on and the URL is not a pure style URL
            (``X-ErrNo`` -154): a plain object, an ad-hoc processing string, an information
            query (``imageInfo``, ``exif``, ``imageAve``), or a style plus extra steps.
        InvalidArgumentError, ParseError, TooManyStepsError: a bad processing string.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be str, got {type(url).__name__}")
    limit = max_steps if max_steps is not None else (styles.limits.max_steps if styles else Limits().max_steps)
    raw_path, query = _split_url(url)
    path = unquote(raw_path)
    if path.startswith("/"):
        path = path[1:]
    if not path:
        raise InvalidArgumentError("url: no object key in the path", op="url", x_errno=_MALFORMED_URL_X_ERRNO)
    components = [c for c in query.split("&") if c]
    chosen = _locate(components)
    key, path_style = _resolve_path(path, styles, _exists_fn(exists))
    if protection:
        _check_protection(key, path_style, chosen)
    steps: list[A.Step] = []
    if path_style is not None:
        steps.append(A.StyleRef(path_style))
    if chosen is not None:
        steps.extend(parse_url(query, max_steps=limit).steps)
    if not steps:
        return key, None
    pipeline = A.Pipeline(steps=tuple(steps))
    if styles is None:
        ref = next((s for s in pipeline.steps if isinstance(s, A.StyleRef)), None)
        if ref is not None:
            raise NoSuchStyleError(f"style: {ref.name!r} does not exist", x_errno=_STYLE_MISSING_X_ERRNO)
        return key, _check_steps(pipeline, limit)
    try:
        return key, styles.expand(pipeline, max_steps=limit)
    except NoSuchStyleError as exc:
        exc.x_errno = _STYLE_MISSING_X_ERRNO
        raise


def _split_url(url: str) -> tuple[str, str]:
    """``(path, query)`` of a URL or of a bare path (the fragment dropped)."""
    text = url.split("#", 1)[0]
    head, _, query = text.partition("?")
    scheme_end = head.find("://")
    if scheme_end >= 0:
        rest = head[scheme_end + 3 :]
        slash = rest.find("/")
        head = "" if slash < 0 else rest[slash:]
    return head, query


def _leading_token(component: str) -> str:
    return component.split("/", 1)[0].split("|", 1)[0]


@dataclass(frozen=True, slots=True)
class _Located:
    """The query component that carries the processing string, and what kind it is:
    ``keyword`` (its leading API keyword, lower case), ``ci-process`` or ``bare`` (a bare
    style name)."""

    component: str
    kind: str
    keyword: str = ""


def _locate(components: list[str]) -> _Located | None:
    """Which query component :func:`~ci_engine.parse.parse_url` will use (the same order:
    a leading API keyword, then ``ci-process=``, then the first component without ``=``), or
    ``None`` when there is no processing string (signature parameters only)."""
    for component in components:
        decoded = decode_text(component)
        lead = _leading_token(decoded).lower()
        if lead in _KEYWORDS_LOWER and (lead != "style" or "/" in decoded):
            return _Located(component, "keyword", lead)
    for component in components:
        if component.startswith("ci-process="):
            return _Located(component, "ci-process")
    for component in components:
        if "=" not in component:
            return _Located(component, "bare")
    return None


def _exists_fn(exists: Exists | None) -> Callable[[str], bool] | None:
    if exists is None:
        return None
    if isinstance(exists, Store):
        return exists.exists
    return exists


def _safe_exists(exists: Callable[[str], bool], key: str) -> bool:
    try:
        check_key(key)
        return bool(exists(key))
    except CIError:
        return False


def _resolve_path(
    path: str, styles: StyleRegistry | None, exists: Callable[[str], bool] | None
) -> tuple[str, str | None]:
    """Section 2.1: ``(key, style name or None)``."""
    if exists is not None and _safe_exists(exists, path):
        return path, None
    best: tuple[str, str] | None = None
    if styles is not None:
        for sep in styles.separators:
            cut = path.rfind(sep)
            if cut <= 0 or cut == len(path) - len(sep):
                continue
            prefix, suffix = path[:cut], path[cut + len(sep) :]
            if suffix not in styles:
                continue
            if exists is not None and not _safe_exists(exists, prefix):
                continue
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, suffix)
    if best is not None:
        return best
    if exists is None:
        return path, None
    raise NoSuchKeyError(f"key: no object {path!r} and no style URL matches it")


def _check_protection(key: str, path_style: str | None, chosen: _Located | None) -> None:
    """Original-image protection (section 5): only pure style URLs pass."""
    if path_style is not None and chosen is None:
        return
    if path_style is None and chosen is not None:
        if chosen.kind == "bare":
            return
        if chosen.kind == "keyword" and chosen.keyword == "style":
            pipeline = parse(chosen.component)
            if len(pipeline.steps) == 1 and isinstance(pipeline.steps[0], A.StyleRef):
                return
    if chosen is None:
        why = "the original image"
    elif path_style is not None:
        why = "a style with extra processing"
    elif chosen.kind == "keyword" and chosen.keyword in ("imageinfo", "exif", "imageave"):
        why = "an information query"
    else:
        why = "an ad-hoc processing string"
    raise AccessDeniedError(
        f"original-image protection: {key!r} can only be downloaded through a style, not as {why}",
        x_errno=PROTECTION_X_ERRNO,
    )
