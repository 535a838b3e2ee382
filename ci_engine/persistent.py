"""Persistent processing: the ``Pic-Operations`` header, on upload and in the cloud
(``persistent-processing.md``).

:func:`persist` is what a service calls for ``PUT /<key>`` with a ``Pic-Operations`` header
(upload-time: the source bytes are given and stored under ``key``) or for
``POST /<key>?image_process`` (in-cloud: the source is read from the store). It runs every
rule, writes each result through a :class:`~ci_engine.store.Store`, and returns the
:class:`UploadResult` whose :meth:`~UploadResult.to_xml` is the response body.

The order of work, and what a failure leaves behind (section 5):

1. **validate**, without touching the store or a pixel: the JSON, at most 5 rules, each
   ``bucket``, each ``fileid`` (resolved per section 1.1), each ``rule`` parsed, its styles
   expanded and planned. Any failure: the error, and nothing is stored;
2. **store the original** (upload-time only);
3. **resolve** every rule for the source's header (probed, input limits checked, integer
   geometry, output limits, watermarks prepared). A failure here stops before any result is
   written (the original stays);
4. **decode once**, shared by every rule (see below), then **run the rules in order**, each
   one encoded in memory and written atomically. A rule failing here stops the request: the
   results already written and the original stay, the error is raised, no partial object is
   ever written (the store's writes are atomic and a result is only written once fully
   encoded).

A failure that ``limits-and-errors.md`` section 5.4 marks as masked, in a rule carrying
``ignore-error/1``, is not a failure: the unprocessed source bytes are stored at that rule's
``fileid`` and reported like any other result.

**One decode.** The rules are planned without the ``fold_shrink_on_load`` rewrite, because
that rule changes the decode per plan (each plan would want its own shrink factor, hence its
own decode). :func:`persist` applies it afterwards, to learn the factor each resolved plan
allows, and decodes the source once at the *smallest* of them (1 as soon as one rule needs
full resolution: a crop, a filter before the resize ...), with every frame when a rule keeps
the animation, materialised in memory. Each rule then runs from that shared handle (backend
handles are immutable), or from a *level*: a Lanczos reduction of it to the rule's own
shrink-on-load size, computed once per size, each from the next larger one. A rule with a
still output gets frame 0 selected first when the shared decode holds every frame.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from ci_engine.store import LocalStore
    >>> store = LocalStore(tempfile.mkdtemp())
    >>> photo = Path("docs/samples/kleiber.jpg").read_bytes()
    >>> header = '{"rules":[{"fileid":"small/k.webp","rule":"imageMogr2/thumbnail/200x/format/webp"}]}'
    >>> result = persist("shop/k.jpg", photo, header, store, bucket="demo-1250000000")
    >>> obj = result.process_results[0]
    >>> obj.key, obj.format, obj.width, obj.height
    ('shop/small/k.webp', 'webp', 200, 113)
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Union, cast
from urllib.parse import unquote
from xml.sax.saxutils import escape as _sax_escape

from ci_engine import ast as A
from ci_engine import execute as _execute
from ci_engine._dc import dataclass, field, replace
from ci_engine.errors import (
    CIError,
    InternalError,
    InvalidArgumentError,
    InvalidImageFormatError,
    InvalidPicOperationsError,
    LimitExceededError,
    NoSuchStyleError,
)
from ci_engine.info import original_image_info
from ci_engine.limits import Limits, WorkBudget, check_input_bytes, request_budget
from ci_engine.parse import parse
from ci_engine.plan import RULES, Plan, ResolvedPlan, plan, resolve
from ci_engine.plan.rules.fold_shrink_on_load import fold_shrink_on_load
from ci_engine.plan.steps import DecodeSpec, Resize, SelectFrames
from ci_engine.store import Store, check_key
from ci_engine.types import ImageFormat, ImageHeader

if TYPE_CHECKING:
    from ci_engine.backends.base import Backend
    from ci_engine.styles import StyleRegistry

__all__ = [
    "MAX_RULES",
    "PERSIST_RULES",
    "DEFAULT_BUCKET",
    "DEFAULT_REGION",
    "PicRule",
    "PicOperations",
    "parse_pic_operations",
    "resolve_fileid",
    "persist",
    "ImageInfo",
    "OriginalInfo",
    "ProcessResult",
    "UploadResult",
]

MAX_RULES = 5
"""Rules in one ``Pic-Operations`` header (documented; more: ``X-ErrNo`` -60997)."""

PERSIST_RULES = tuple(rule for rule in RULES if rule is not fold_shrink_on_load)
"""The plan rewrite rules :func:`persist` plans with: every default rule except
``fold_shrink_on_load``, which picks a decode per plan; :func:`persist` applies it to each
plan itself and picks one decode for all the rules of a header (see the module docstring)."""

DEFAULT_BUCKET = "examplebucket-1250000000"
DEFAULT_REGION = "ap-guangzhou"

_TOO_MANY_RULES_X_ERRNO = -60997
_PERSISTENT_BAD_IMAGE_X_ERRNO = -62999
_BUCKET_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+")
_MAX_BUCKET_LENGTH = 64
MAX_WORKERS = 4
"""Most rules :func:`persist` runs at once by default (there are at most 5)."""

_LOSSLESS_QUALITY = 100
"""``Quality`` reported for formats without an encoder quality (PNG, GIF ...), as CI's
samples and ``info.md`` section 5 do."""


# -- the header ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PicRule:
    """One rule of the header, validated.

    Attributes:
        index: its position in ``rules`` (0-based).
        fileid: the ``fileid`` as written (percent-encoded).
        rule: the processing string as written.
        bucket: the destination bucket, ``None`` for the request's bucket.
        pipeline: the parsed rule (styles not expanded yet); ``None`` when parsing failed
            with an error that ``ignore-error/1`` masks (then ``error`` holds it).
        error: that masked error.
    """

    index: int
    fileid: str
    rule: str
    bucket: str | None = None
    pipeline: A.Pipeline | None = None
    error: CIError | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class PicOperations:
    """The parsed ``Pic-Operations`` header: ``is_pic_info`` and its rules in order."""

    is_pic_info: bool
    rules: tuple[PicRule, ...]


def _bad_header(message: str, **kw: Any) -> InvalidPicOperationsError:
    return InvalidPicOperationsError(f"Pic-Operations: {message}", **kw)


def parse_pic_operations(header: str | bytes | Mapping[str, Any], *, limits: Limits | None = None) -> PicOperations:
    """Parse and validate a ``Pic-Operations`` header (section 1).

    Args:
        header: the header's JSON text (or its bytes, or the already decoded object).
        limits: ``max_steps`` bounds each rule.

    ``is_pic_info`` may be ``0``/``1`` or a JSON boolean (absent: 0); ``rules`` may be absent,
    ``null`` or empty (no processing). Unknown fields are ignored. ``fileid`` is checked for
    presence here and resolved by :func:`resolve_fileid`.

    Raises:
        InvalidPicOperationsError: malformed JSON, a field of the wrong type, a missing or
            empty ``fileid`` or ``rule``, a malformed ``bucket`` (``X-ErrNo`` -60998), more
            than 5 rules (-60997).
        InvalidArgumentError, ParseError: a ``rule`` that does not parse (-60998), unless
            the error is one ``ignore-error/1`` masks and the rule carries it (then the rule
            keeps the error in :attr:`PicRule.error`).
    """
    limits = limits or Limits()
    doc = _load_json(header)
    if not isinstance(doc, Mapping):
        raise _bad_header(f"must be a JSON object, got {type(doc).__name__}")
    info = doc.get("is_pic_info", 0)
    if info is None:
        info = 0
    if isinstance(info, bool):
        is_pic_info = info
    elif type(info) is int and info in (0, 1):
        is_pic_info = info == 1
    else:
        raise _bad_header(f"is_pic_info must be 0, 1 or a boolean, got {info!r}")
    rules = doc.get("rules")
    if rules is None:
        rules = []
    if not isinstance(rules, list):
        raise _bad_header(f"rules must be an array, got {type(rules).__name__}")
    if len(rules) > MAX_RULES:
        raise _bad_header(f"at most {MAX_RULES} rules are allowed, got {len(rules)}", x_errno=_TOO_MANY_RULES_X_ERRNO)
    return PicOperations(is_pic_info, tuple(_parse_rule(i, r, limits) for i, r in enumerate(rules)))


def _load_json(header: str | bytes | Mapping[str, Any]) -> Any:
    if isinstance(header, Mapping):
        return header
    if isinstance(header, (bytes, bytearray)):
        try:
            header = bytes(header).decode("utf-8")
        except UnicodeDecodeError:
            raise _bad_header("must be UTF-8 text") from None
    if not isinstance(header, str):
        raise _bad_header(f"must be a JSON string, got {type(header).__name__}")
    try:
        return json.loads(header, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise _bad_header(f"malformed JSON ({exc})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_rule(index: int, raw: Any, limits: Limits) -> PicRule:
    where = f"rules[{index}]"
    if not isinstance(raw, Mapping):
        raise _bad_header(f"{where} must be an object, got {type(raw).__name__}")
    fileid = raw.get("fileid")
    if not isinstance(fileid, str) or not fileid:
        raise _bad_header(f"{where}.fileid is required and must be a non-empty string")
    text = raw.get("rule")
    if not isinstance(text, str) or not text.strip():
        raise _bad_header(f"{where}.rule is required and must be a non-empty string")
    bucket = raw.get("bucket")
    if bucket is not None and not isinstance(bucket, str):
        raise _bad_header(f"{where}.bucket must be a string, got {type(bucket).__name__}")
    if bucket:
        if len(bucket) > _MAX_BUCKET_LENGTH or not _BUCKET_RE.fullmatch(bucket):
            raise _bad_header(f"{where}.bucket must look like BucketName-APPID, got {bucket!r}")
    else:
        bucket = None
    try:
        pipeline = parse(text, max_steps=limits.max_steps)
    except CIError as exc:
        if exc.masked:
            return PicRule(index, fileid, text, bucket, None, _tag(exc, index))
        raise _tag(exc, index) from None
    return PicRule(index, fileid, text, bucket, pipeline)


def _tag(exc: CIError, index: int) -> CIError:
    """Prefix the message with the rule it belongs to (once)."""
    prefix = f"rules[{index}]: "
    if not exc.message.startswith(prefix):
        exc.message = prefix + exc.message
        exc.args = (exc.message,)
    return exc


def resolve_fileid(source_key: str, fileid: str) -> str:
    """The object key a rule writes to (section 1.1).

    ``fileid`` is percent-decoded once. Starting with ``/`` it is absolute (from the bucket
    root, leading slashes stripped); otherwise it is relative to the folder of
    ``source_key`` (up to and including its last ``/``; empty at the root). ``//`` collapses
    to ``/``.

    Example:
        >>> resolve_fileid("shop/items/42.jpg", "small/42.webp")
        'shop/items/small/42.webp'
        >>> resolve_fileid("shop/items/42.jpg", "/cdn/42.webp")
        'cdn/42.webp'

    Raises:
        InvalidPicOperationsError: empty; ends with ``/`` (before or after decoding); has a
            ``.`` or ``..`` segment (refused outright, whether or not it would leave the
            bucket); is not valid percent-encoded UTF-8; holds control characters; or the
            resolved key is not a valid key (over 850 bytes ...).
    """
    if not isinstance(fileid, str) or not fileid:
        raise _bad_header("fileid is required and must be a non-empty string")
    try:
        decoded = unquote(fileid, errors="strict")
    except UnicodeDecodeError:
        raise _bad_header(f"fileid {fileid!r} is not valid percent-encoded UTF-8") from None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
        raise _bad_header(f"fileid {fileid!r} contains control characters")
    if decoded.endswith("/") or fileid.endswith("/"):
        raise _bad_header(f"fileid {fileid!r} must not end with '/' (that names no file)")
    if decoded.startswith("/"):
        folder = ""
    else:
        cut = source_key.rfind("/")
        folder = source_key[: cut + 1] if cut >= 0 else ""
    segments = decoded.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise _bad_header(f"fileid {fileid!r} must not contain '.' or '..' segments")
    key = "/".join(s for s in (folder + decoded).split("/") if s)
    try:
        return check_key(key)
    except InvalidArgumentError as exc:
        raise _bad_header(f"fileid {fileid!r} resolves to an invalid key: {exc.message}") from None


# -- the response -------------------------------------------------------------------------------


def _esc(value: object) -> str:
    return _sax_escape(str(value), {'"': "&quot;"})


def _element(name: str, value: object, depth: int) -> str:
    return f"{'  ' * depth}<{name}>{_esc(value)}</{name}>"


def _quoted(etag: str) -> str:
    return f'"{etag}"'


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """``OriginalInfo/ImageInfo`` (only with ``is_pic_info=1``)."""

    format: str
    width: int
    height: int
    quality: int
    ave: str
    orientation: int
    frame_count: int

    def xml_lines(self, depth: int = 0) -> list[str]:
        inner = depth + 1
        return [
            f"{'  ' * depth}<ImageInfo>",
            _element("Format", self.format, inner),
            _element("Width", self.width, inner),
            _element("Height", self.height, inner),
            _element("Quality", self.quality, inner),
            _element("Ave", self.ave, inner),
            _element("Orientation", self.orientation, inner),
            _element("FrameCount", self.frame_count, inner),
            f"{'  ' * depth}</ImageInfo>",
        ]


@dataclass(frozen=True, slots=True)
class OriginalInfo:
    """``UploadResult/OriginalInfo``. ``etag`` is unquoted here, quoted in the XML; when a
    rule overwrote the source key it is that result's ETag."""

    key: str
    location: str
    etag: str
    image_info: ImageInfo | None = None

    def xml_lines(self, depth: int = 0) -> list[str]:
        inner = depth + 1
        lines = [
            f"{'  ' * depth}<OriginalInfo>",
            _element("Key", self.key, inner),
            _element("Location", self.location, inner),
            _element("ETag", _quoted(self.etag), inner),
        ]
        if self.image_info is not None:
            lines += self.image_info.xml_lines(inner)
        lines.append(f"{'  ' * depth}</OriginalInfo>")
        return lines


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """One ``ProcessResults/Object``: the result of one rule.

    Attributes:
        key, location: where it was written (``location`` names the destination bucket).
        format: the container, lower case (``jpeg``, ``webp`` ...).
        width, height, frame_count: its geometry.
        size: bytes written.
        quality: the encoder quality used; 100 for formats without one.
        etag: MD5 hex of the written bytes (unquoted; quoted in the XML).
        bucket: the destination bucket (not an XML element: it is in ``location``).
        masked: the error that ``ignore-error/1`` masked, when the source bytes were stored.
    """

    key: str
    location: str
    format: str
    width: int
    height: int
    size: int
    quality: int
    etag: str
    frame_count: int = 1
    bucket: str = ""
    masked: CIError | None = field(default=None, compare=False)
    extras: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    """Operation-specific children of ``Object`` after ``FrameCount`` (``CodeStatus`` and
    ``QRcodeInfo`` of ``QRcode``, ``WatermarkStatus`` of ``watermark/4/type/2``); a value
    that is a tuple of pairs nests."""
    top_level: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    """Children of ``ProcessResults`` itself (``Text`` and ``WatermarkStatusCode`` of
    ``watermark/4/type/3``, which stores no object)."""
    stored: bool = True
    """``False`` when the rule wrote no object (no ``Object`` element then)."""

    def xml_lines(self, depth: int = 0) -> list[str]:
        if not self.stored:
            return []
        inner = depth + 1
        return [
            f"{'  ' * depth}<Object>",
            _element("Key", self.key, inner),
            _element("Location", self.location, inner),
            _element("Format", self.format, inner),
            _element("Width", self.width, inner),
            _element("Height", self.height, inner),
            _element("Size", self.size, inner),
            _element("Quality", self.quality, inner),
            _element("ETag", _quoted(self.etag), inner),
            _element("FrameCount", self.frame_count, inner),
            *_extra_lines(self.extras, inner),
            f"{'  ' * depth}</Object>",
        ]


def _extra_lines(items: tuple[tuple[str, Any], ...], depth: int) -> list[str]:
    lines: list[str] = []
    for name, value in items:
        if isinstance(value, tuple):
            lines.append(f"{'  ' * depth}<{name}>")
            lines += _extra_lines(value, depth + 1)
            lines.append(f"{'  ' * depth}</{name}>")
        else:
            lines.append(_element(name, value, depth))
    return lines


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The response of a ``Pic-Operations`` request (section 4)."""

    original_info: OriginalInfo
    process_results: tuple[ProcessResult, ...] = ()

    def to_xml(self, *, declaration: bool = True) -> str:
        """The XML body: elements in the documented order, two-space indentation, ETags as
        ``&quot;...&quot;``, ``ImageInfo`` only with ``is_pic_info=1``. ``Object`` ends
        with ``FrameCount`` (the newer samples' extra)."""
        lines = ['<?xml version="1.0" encoding="UTF-8"?>'] if declaration else []
        lines.append("<UploadResult>")
        lines += self.original_info.xml_lines(1)
        lines.append("  <ProcessResults>")
        for result in self.process_results:
            lines += result.xml_lines(2)
        for result in self.process_results:
            lines += _extra_lines(result.top_level, 2)
        lines.append("  </ProcessResults>")
        lines.append("</UploadResult>")
        return "\n".join(lines)


def location(bucket: str, region: str, key: str) -> str:
    """``<bucket>.cos.<region>.myqcloud.com/<key>`` (no scheme), as in the samples."""
    return f"{bucket}.cos.{region}.myqcloud.com/{key}"


# -- running ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    rule: PicRule
    key: str
    bucket: str
    store: Store
    pipeline: A.Pipeline | None = None
    symbolic: Plan | None = None
    resolved: ResolvedPlan | None = None
    masked: CIError | None = None
    intel: str = ""
    """``"process"``: runs through :func:`ci_engine.process` (``watermark/3``,
    ``imageSlim``); ``"qrcode"``, ``"extract"``: a final ``QRcode`` / ``watermark/4`` step
    whose findings go into the result XML (``docs/intel.md``)."""


def persist(
    key: str,
    data: bytes | None,
    header: str | bytes | Mapping[str, Any],
    store: Store,
    *,
    bucket: str = DEFAULT_BUCKET,
    region: str = DEFAULT_REGION,
    styles: StyleRegistry | None = None,
    backend: str = "auto",
    limits: Limits | None = None,
    in_cloud: bool = False,
    buckets: Mapping[str, Store] | None = None,
    resources: Any = None,
    fonts: Any = None,
    workers: int | None = None,
) -> UploadResult:
    """Run a ``Pic-Operations`` header on an image and store the results.

    Args:
        key: the source object key (a leading ``/`` is dropped).
        data: the uploaded bytes (upload-time; stored under ``key`` first), or ``None`` with
            ``in_cloud=True``.
        header: the ``Pic-Operations`` JSON.
        store: the request's bucket.
        bucket, region: the request's bucket name (``BucketName-APPID``) and region, for the
            ``Location`` elements and to recognise ``rules[].bucket``.
        styles: the bucket's styles, for ``style/<name>`` rules.
        backend: ``"auto"``, ``"vips"`` or ``"pillow"``.
        limits: size limits (CI's by default).
        in_cloud: process the stored object ``key`` (``POST ?image_process``) instead of an
            upload; ``data`` must be ``None``.
        buckets: stores of other destination buckets, by name, for rules whose ``bucket``
            is not the request's.
        resources, fonts: passed to the watermark preparation (logo fetching, fonts).
        workers: how many rules run at once from the shared decode (threads; the backend
            releases the GIL). ``None``: one per CPU, at most :data:`MAX_WORKERS`; ``1``:
            one after the other. Results are written in rule order either way, and the
            failure semantics are the same: a rule's result is written only when every
            rule before it succeeded.

    Returns:
        The :class:`UploadResult`.

    Raises:
        InvalidPicOperationsError: a bad header or ``fileid``; an unknown destination bucket.
        InvalidArgumentError: a rule that does not parse, or that yields no image
            (``imageInfo`` ...).
        NoSuchStyleError: an unknown ``style/<name>`` (-60967).
        NoSuchKeyError: in-cloud, no object at ``key``.
        ImageTooLargeError (-60996), InvalidImageFormatError (-62999),
        ImageResolutionExceedError ...: as :func:`ci_engine.process`, unless masked.
    """
    # 0. programming errors (docs/errors.md): the arguments' types, before anything else.
    from ci_engine.api import _limits, as_bytes, check_arguments

    limits = _limits(limits)
    parallel = _workers(workers)
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, got {type(key).__name__}")
    if in_cloud:
        if data is not None:
            raise ValueError("data must be None for in-cloud processing (the source is in the store)")
    else:
        data = as_bytes(data, "data")
    check_arguments(resources=resources, fonts=fonts, styles=styles)
    with request_budget(limits) as budget:
        return _persist(
            key, data, header, store, bucket, region, styles, backend, limits, in_cloud, buckets, resources, fonts,
            parallel, budget,
        )  # fmt: skip


def _persist(
    key: str,
    data: bytes | None,
    header: str | bytes | Mapping[str, Any],
    store: Store,
    bucket: str,
    region: str,
    styles: StyleRegistry | None,
    backend: str,
    limits: Limits,
    in_cloud: bool,
    buckets: Mapping[str, Store] | None,
    resources: Any,
    fonts: Any,
    parallel: int,
    budget: WorkBudget,
) -> UploadResult:
    # 1. validate everything that needs neither the store nor a pixel.
    source_key = check_key(key[1:] if key.startswith("/") else key)
    ops = parse_pic_operations(header, limits=limits)
    jobs = [_job(rule, source_key, store, bucket, buckets, styles, limits) for rule in ops.rules]

    # 2. the source, and the original stored on upload.
    if in_cloud:
        source = store.get(source_key)
        original_etag = store.etag(source_key)
    else:
        assert data is not None
        source = bytes(data)
        original_etag = store.put(source_key, source)
    if not jobs and not ops.is_pic_info:
        return UploadResult(OriginalInfo(source_key, location(bucket, region, source_key), original_etag))

    # 3. the header, limits and every rule resolved: still nothing written but the original.
    input_error: CIError | None = None
    try:
        check_input_bytes(len(source), limits, persistent=True)
        budget.charge_bytes(len(source), "the source")
    except CIError as exc:
        input_error = exc
    if input_error is None:
        try:  # the limits checked while probing: on what decoders would allocate, and early
            image_header = _probe(source, limits)
        except LimitExceededError as exc:
            input_error = exc
            image_header = _probe(source)
    else:
        image_header = _probe(source)
    if input_error is None:
        _rewrite_face_crops(jobs, source, backend, limits)
    for job in jobs:
        _resolve_job(job, image_header, input_error, budget)
    engine: Backend[Any] | None = None
    active = [job for job in jobs if job.resolved is not None]
    plans: dict[int, ResolvedPlan] = {}
    decode_plan: ResolvedPlan | None = None
    if active or (ops.is_pic_info and input_error is None):
        from ci_engine.backends import get_backend

        engine = get_backend(backend)
    if active:
        assert engine is not None
        decode_plan, plans = _shared_plans(active, image_header, engine, resources, fonts, limits)

    # 4. decode once, then each rule in order.
    handle: Any = None
    if decode_plan is not None:
        assert engine is not None
        tune = getattr(engine, "tune", None)
        if tune is not None:
            tune(decode_plan.decoded_size[0] * decode_plan.decoded_size[1] * decode_plan.decode.frames)
        try:
            handle = engine.materialize(_execute.decode(decode_plan, engine, source))
        except InvalidImageFormatError as exc:
            raise _persistent_errno(exc) from None
    image_info = None
    if ops.is_pic_info:
        image_info = _image_info(source, image_header, engine, handle, input_error is None)
    levels: dict[tuple[int, int], Any] = {}
    if decode_plan is not None:
        assert engine is not None
        levels = _levels(engine, handle, decode_plan.decoded_size, [p.decoded_size for p in plans.values()])
    outcomes = _compute_parallel(jobs, plans, engine, levels, source, parallel)
    results: list[ProcessResult] = []
    overwritten: str | None = None
    for job in jobs:
        if job.intel and job.masked is None:
            result = _write_intel(job, source, region, backend, limits, resources, fonts)
            results.append(result)
            if job.bucket == bucket and job.key == source_key:
                overwritten = result.etag
            continue
        resolved = plans.get(job.rule.index)
        outcome = outcomes.get(job.rule.index)
        if outcome is None and resolved is not None and job.masked is None:
            assert engine is not None
            outcome = _compute(resolved, engine, levels[resolved.decoded_size], source, tune=True)
        result = _write(job, resolved, outcome, source, image_header, region)
        results.append(result)
        if job.bucket == bucket and job.key == source_key:
            overwritten = result.etag
    original = OriginalInfo(source_key, location(bucket, region, source_key), overwritten or original_etag, image_info)
    return UploadResult(original, tuple(results))


def _job(
    rule: PicRule,
    source_key: str,
    store: Store,
    bucket: str,
    buckets: Mapping[str, Store] | None,
    styles: StyleRegistry | None,
    limits: Limits,
) -> _Job:
    dest = rule.bucket or bucket
    if dest == bucket:
        dest_store = store
    elif buckets is not None and dest in buckets:
        dest_store = buckets[dest]
    else:
        raise _bad_header(f"rules[{rule.index}].bucket {dest!r} is not a bucket this service knows")
    job = _Job(rule, resolve_fileid(source_key, rule.fileid), dest, dest_store, masked=rule.error)
    if rule.pipeline is None:
        return job
    try:
        pipeline = rule.pipeline
        if styles is not None:
            pipeline = styles.expand(pipeline, max_steps=limits.max_steps)
        elif any(isinstance(step, A.StyleRef) for step in pipeline.steps):
            ref = next(step for step in pipeline.steps if isinstance(step, A.StyleRef))
            raise NoSuchStyleError(f"style: {ref.name!r} does not exist (no styles configured)", span=ref.span)
        from ci_engine.intel.run import pic_rule

        job.intel, pipeline = pic_rule(pipeline)  # docs/intel.md: intel operations in a rule
        job.pipeline = pipeline
        if job.intel:
            return job
        job.symbolic = plan(pipeline, rules=PERSIST_RULES, limits=limits)
    except CIError as exc:
        job.masked = _masked_or_raise(exc, rule.pipeline, rule.index)
        return job
    if job.symbolic.info is not None:
        raise _tag(
            InvalidArgumentError(
                f"{job.symbolic.info.keyword}: a Pic-Operations rule must produce an image to store",
                op=job.symbolic.info.keyword,
                span=job.symbolic.info.span,
            ),
            rule.index,
        )
    return job


def _masked_or_raise(exc: CIError, pipeline: A.Pipeline | None, index: int) -> CIError:
    """``exc`` when ``ignore-error/1`` in the rule masks it; otherwise raise it."""
    if pipeline is not None and pipeline.ignore_error:
        exc.ignore_error_requested = True
    if exc.masked:
        return exc
    if isinstance(exc, InvalidImageFormatError):
        raise _persistent_errno(exc)
    raise _tag(exc, index)


def _persistent_errno(exc: InvalidImageFormatError) -> InvalidImageFormatError:
    """Persistent processing reports an undecodable source as -62999 (-443 on download)."""
    exc.x_errno = _PERSISTENT_BAD_IMAGE_X_ERRNO
    return exc


def _probe(source: bytes, limits: Limits | None = None) -> ImageHeader:
    from ci_engine.io import probe

    try:
        return probe(source, limits=limits)
    except InvalidImageFormatError as exc:
        raise _persistent_errno(exc) from None


def _rewrite_face_crops(jobs: Sequence[_Job], source: bytes, backend: str, limits: Limits) -> None:
    """``scrop`` crops around the faces of this source, as in :func:`ci_engine.process`
    (``docs/intel.md``): each rule holding it is rewritten and planned again."""
    from ci_engine.intel import has_scrop

    for job in jobs:
        if job.masked is not None or job.pipeline is None or not has_scrop(job.pipeline):
            continue
        from ci_engine.intel.faces import rewrite_scrop

        try:
            job.pipeline = rewrite_scrop(job.pipeline, source, backend=backend, limits=limits, rules=PERSIST_RULES)
            if not job.intel:  # an intel rule runs through ci_engine.intel, not this plan
                job.symbolic = plan(job.pipeline, rules=PERSIST_RULES, limits=limits)
        except CIError as exc:
            job.masked = _masked_or_raise(exc, job.pipeline, job.rule.index)


def _resolve_job(job: _Job, header: ImageHeader, input_error: CIError | None, budget: WorkBudget) -> None:
    if job.masked is not None or job.symbolic is None:
        return
    if input_error is not None:
        # The same input error for every rule: masked for the rules that ask, raised by the
        # first one that does not.
        if input_error.maskable and job.symbolic.ignore_error:
            job.masked = input_error
            return
        input_error.ignore_error_requested = False
        raise input_error
    try:
        resolved = resolve(job.symbolic, header)
        budget.charge_plan(resolved, f"rules[{job.rule.index}]")  # the shared decode is counted per rule
        job.resolved = resolved
    except CIError as exc:
        job.masked = _masked_or_raise(exc, job.pipeline, job.rule.index)


def _shared_plans(
    jobs: Sequence[_Job],
    header: ImageHeader,
    engine: Backend[Any],
    resources: Any,
    fonts: Any,
    limits: Limits,
) -> tuple[ResolvedPlan | None, dict[int, ResolvedPlan]]:
    """The one decode and, per rule, the plan that runs from its handle.

    Returns ``(decode_plan, {rule index: plan})``; ``decode_plan`` is ``None`` when every
    rule was masked while being prepared.
    """
    caps = engine.capabilities
    frames = max(job.resolved.decode.frames for job in jobs if job.resolved is not None)
    chosen: dict[int, ResolvedPlan] = {}
    for job in jobs:
        assert job.resolved is not None
        chosen[job.rule.index] = job.resolved
    if header.format in caps.shrink_on_load and frames == 1:
        # Each rule gets the shrink-on-load plan process() would run; the decode is at the
        # smallest factor among them, the others read a level derived from it.
        chosen = {index: fold_shrink_on_load(resolved) for index, resolved in chosen.items()}
    factor = min(p.decode.shrink for p in chosen.values())
    spec = DecodeSpec(format=header.format, shrink=factor, frames=frames, sequential=True)
    decoded_size = (header.width // factor, header.height // factor)
    out: dict[int, ResolvedPlan] = {}
    for job in jobs:
        resolved = chosen[job.rule.index]
        try:
            resolved = _prepare_watermarks(resolved, engine, resources, fonts, limits)
            adapted = _adapt(resolved, spec)
            _execute.check_capabilities(adapted, engine)
        except CIError as exc:
            job.masked = _masked_or_raise(exc, job.pipeline, job.rule.index)
            job.resolved = None
            continue
        out[job.rule.index] = adapted
    if not out:
        return None, out
    first = next(iter(out.values()))
    return replace(first, decode=spec, decoded_size=decoded_size, steps=()), out


def _adapt(resolved: ResolvedPlan, spec: DecodeSpec) -> ResolvedPlan:
    """``resolved`` rewritten to start from the shared decode: frame 0 selected first when
    the shared decode has every frame and this rule keeps one. Its ``decoded_size`` stays:
    it names the level (:func:`_levels`) the rule reads."""
    if spec.frames > 1 and resolved.decode.frames == 1:
        select = SelectFrames(((0,),), origin="shared decode: first frame")
        return replace(resolved, decode=spec, steps=(select, *resolved.steps))
    return replace(resolved, decode=spec)


def _levels(
    engine: Backend[Any], handle: Any, decoded_size: tuple[int, int], wanted: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], Any]:
    """The shared decode and the smaller shrink-on-load sizes the rules read, each level a
    Lanczos reduction of the next larger one (1/2 of the decode, then 1/4 from it ...),
    materialised once. A level stands in for a decoder shrink: both are a downscale by an
    integer factor, and the rule's own resize to its target follows."""
    images: dict[tuple[int, int], Any] = {decoded_size: handle}
    previous = handle
    for size in sorted(set(wanted) - {decoded_size}, key=lambda wh: -(wh[0] * wh[1])):
        try:
            previous = engine.materialize(engine.resize(previous, Resize(size[0], size[1], origin="shared decode")))
        except CIError:
            raise
        except Exception as exc:
            raise InternalError(
                f"{engine.name}: the shared shrink to {size[0]}x{size[1]} failed", detail=repr(exc)
            ) from exc
        images[size] = previous
    return images


def _prepare_watermarks(
    resolved: ResolvedPlan, engine: Backend[Any], resources: Any, fonts: Any, limits: Limits
) -> ResolvedPlan:
    """Watermark steps get their overlay before execution (``ci_engine.watermark``)."""
    if not any(step.method == "watermark" for step in resolved.steps):
        return resolved
    from ci_engine.watermark.prepare import prepare

    return prepare(resolved, engine, resources=resources, fonts=fonts, limits=limits)


def _workers(requested: int | None) -> int:
    if requested is None:
        return max(1, min(os.cpu_count() or 1, MAX_WORKERS))
    if type(requested) is not int or requested < 1:
        raise ValueError(f"workers must be a positive integer, got {requested!r}")
    return requested


_Outcome = Union[_execute.Encoded, BaseException]


def _compute(resolved: ResolvedPlan, engine: Backend[Any], handle: Any, source: bytes, *, tune: bool) -> _Outcome:
    """Run one rule from the shared handle and encode it, in memory; a failure is returned,
    not raised, so that the caller decides in rule order."""
    try:
        if tune and (tuner := getattr(engine, "tune", None)) is not None:
            tuner(resolved.width * resolved.height * resolved.frames, resolved.encode.format)
        image = _execute.run_steps(resolved, engine, handle)
        return _execute.encode(resolved, engine, image, source)
    except Exception as exc:
        return exc


def _compute_parallel(
    jobs: Sequence[_Job],
    plans: Mapping[int, ResolvedPlan],
    engine: Backend[Any] | None,
    levels: Mapping[tuple[int, int], Any],
    source: bytes,
    workers: int,
) -> dict[int, _Outcome]:
    """With several workers, every rule computed at once (the writes still happen in order
    afterwards); with one, nothing here: the caller computes each rule just before writing
    it, and stops at the first failure without computing the rest."""
    runnable = [job for job in jobs if job.masked is None and job.rule.index in plans]
    if workers <= 1 or len(runnable) <= 1 or engine is None:
        return {}
    if (tuner := getattr(engine, "tune", None)) is not None:
        plan_pixels = max(p.width * p.height * p.frames for p in plans.values())
        avif = any(p.encode.format is ImageFormat.AVIF for p in plans.values())
        tuner(plan_pixels, ImageFormat.AVIF if avif else None)
    with ThreadPoolExecutor(max_workers=min(workers, len(runnable)), thread_name_prefix="ci_engine-persist") as pool:
        futures = {}
        for job in runnable:
            resolved = plans[job.rule.index]
            futures[job.rule.index] = pool.submit(
                _compute, resolved, engine, levels[resolved.decoded_size], source, tune=False
            )
        return {index: future.result() for index, future in futures.items()}


def _write(
    job: _Job,
    resolved: ResolvedPlan | None,
    outcome: _Outcome | None,
    source: bytes,
    header: ImageHeader,
    region: str,
) -> ProcessResult:
    """Write one rule's result (or the source bytes, when masked) and describe it; raise the
    rule's failure when it is not masked."""
    if isinstance(outcome, CIError):
        job.masked = _masked_or_raise(outcome, job.pipeline, job.rule.index)
    elif isinstance(outcome, BaseException):
        raise _tag(InternalError("the rule failed unexpectedly", detail=repr(outcome)), job.rule.index) from outcome
    elif outcome is not None and resolved is not None and job.masked is None:
        fmt = header.format if outcome.original else resolved.encode.format
        etag = job.store.put(job.key, outcome.data)
        return ProcessResult(
            job.key,
            location(job.bucket, region, job.key),
            fmt.value,
            outcome.width,
            outcome.height,
            len(outcome.data),
            outcome.quality if outcome.quality is not None else _LOSSLESS_QUALITY,
            etag,
            outcome.frames,
            job.bucket,
        )
    etag = job.store.put(job.key, source)
    return ProcessResult(
        job.key,
        location(job.bucket, region, job.key),
        header.format.value,
        header.width,
        header.height,
        len(source),
        _source_quality(header),
        etag,
        header.frames,
        job.bucket,
        masked=job.masked,
    )


def _write_intel(
    job: _Job, source: bytes, region: str, backend: str, limits: Limits, resources: Any, fonts: Any
) -> ProcessResult:
    """A rule of ``ci_engine.intel`` (``job.intel``), written and described like any other,
    with its findings in the XML."""
    from ci_engine.api import process

    assert job.pipeline is not None
    steps = job.pipeline.steps
    before = A.Pipeline(steps[:-1]) if len(steps) > 1 else None
    kw: dict[str, Any] = {"backend": backend, "limits": limits, "resources": resources, "fonts": fonts}
    extras: tuple[tuple[str, Any], ...] = ()
    top: tuple[tuple[str, Any], ...] = ()
    image = source
    try:
        if before is not None and any(isinstance(step, A.BlindWatermark) for step in before.steps):
            # watermark/3 before the analysis: embed first (ci_engine.process), then look
            image, before = process(source, before, **kw).data, None
        if job.intel == "qrcode":
            from ci_engine.intel.qrcode import recognize

            last = steps[-1]
            assert isinstance(last, A.QRCode)
            # stored: the covered image with cover/1, else the image the steps before made
            # (one decode for both)
            found = recognize(
                image, cover=bool(last.cover), bar_type=last.bar_type or 0, image=True, pipeline=before, **kw
            )
            assert found.image is not None and found.image_format is not None
            data, fmt = found.image, found.image_format
            infos = tuple(
                (
                    "QRcodeInfo",
                    (("CodeUrl", c.text), ("CodeLocation", tuple(("Point", f"{x},{y}") for x, y in c.points))),
                )
                for c in found.codes
            )
            extras = (("CodeStatus", found.status), *infos)
        elif job.intel == "extract":
            from ci_engine.intel.blindmark import extract
            from ci_engine.types import BlindType

            last = steps[-1]
            assert isinstance(last, A.ExtractBlindWatermark)
            extraction, mark = extract(image, last, pipeline=before, **kw)
            if last.type is BlindType.TEXT:  # CI: Text and WatermarkStatusCode, nothing stored
                code = 0 if extraction.text is not None else 1
                top = (("Text", extraction.text or ""), ("WatermarkStatusCode", code))
                return ProcessResult(job.key, location(job.bucket, region, job.key), "", 0, 0, 0, 0, "",
                                     bucket=job.bucket, top_level=top, stored=False)  # fmt: skip
            assert mark is not None
            data, fmt = mark, "png"
            if last.type is BlindType.BLIND:
                extras = (("WatermarkStatus", extraction.status),)
        else:
            out = process(source, job.pipeline, **kw)
            data, fmt = out.data, out.format
    except CIError as exc:
        job.masked = _masked_or_raise(exc, job.pipeline, job.rule.index)
        return _write(job, None, None, source, _probe(source), region)
    from ci_engine.io import probe

    header = probe(data)
    etag = job.store.put(job.key, data)
    quality = header.quality if fmt == "jpeg" and header.quality is not None else _LOSSLESS_QUALITY
    return ProcessResult(
        job.key,
        location(job.bucket, region, job.key),
        fmt,
        header.width,
        header.height,
        len(data),
        quality,
        etag,
        header.frames,
        job.bucket,
        extras=extras,
    )


def _source_quality(header: ImageHeader) -> int:
    if header.format is ImageFormat.JPEG and header.quality is not None:
        return header.quality
    return _LOSSLESS_QUALITY


# -- ImageInfo ------------------------------------------------------------------------------------


class _Predecoded:
    """A backend stand-in whose ``decode`` hands back the shared decode, so that
    ``ci_engine.info`` computes ``Ave`` from it instead of decoding again. (Reducing a full
    size shared decode to ``imageAve``'s 1/8 size first was measured: faster on libvips,
    slower on Pillow, 40-100 ms either way, against 60-90 ms for the mean of every pixel.)"""

    def __init__(self, engine: Backend[Any], handle: Any) -> None:
        self._engine = engine
        self._handle = handle
        self.name = engine.name

    @property
    def capabilities(self) -> Any:
        return self._engine.capabilities

    def decode(self, data: bytes, spec: DecodeSpec, header: ImageHeader) -> Any:
        return self._handle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def _image_info(
    source: bytes, header: ImageHeader, engine: Backend[Any] | None, handle: Any, may_decode: bool
) -> ImageInfo:
    """``ImageInfo`` of the source (``info.md`` section 5, through
    :func:`ci_engine.info.original_image_info`). ``Ave`` comes from the shared decode when
    there is one; it is empty when the source is over the input limits (nothing may decode
    it) and every rule was masked."""
    if engine is None or (handle is None and not may_decode):
        return ImageInfo(
            header.format.value.upper(),
            header.width,
            header.height,
            _source_quality(header),
            "",
            header.orientation,
            header.frames,
        )
    via: Any = engine if handle is None else cast(Any, _Predecoded(engine, handle))
    values = original_image_info(source, header, backend=via)
    return ImageInfo(
        str(values["Format"]),
        int(values["Width"]),
        int(values["Height"]),
        int(values["Quality"]),
        str(values["Ave"]),
        int(values["Orientation"]),
        int(values["FrameCount"]),
    )
