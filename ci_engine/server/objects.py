"""Objects and buckets: PUT (raw, or with ``Pic-Operations``), GET (plain, ranged, or
processed in every form clients send), HEAD, DELETE, ``POST ?image_process``; PUT / HEAD /
DELETE / GET (list) Bucket and GET Service.

A processed GET answers exactly the bytes :func:`ci_engine.process` gives for the object and
the string (the string located by :func:`ci_engine.resolve_request`, which also applies styles
and original-image protection). Request bodies stream to a temporary file in the bucket (never
all in memory), are counted against ``max_body_bytes`` as they arrive, and are renamed into
place by :meth:`Store.put_file <ci_engine.store.Store.put_file>`: a reader sees the old object
or the new one, a client that disconnects leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote, urlsplit

from starlette.responses import Response, StreamingResponse

from ci_engine.api import process
from ci_engine.errors import (
    AccessDeniedError,
    CIError,
    ImageTooLargeError,
    InvalidArgumentError,
    InvalidPicOperationsError,
    NoSuchKeyError,
    ParseError,
    UnsupportedOperationError,
)
from ci_engine.limits import check_input_bytes
from ci_engine.parse import KEYWORDS
from ci_engine.persistent import UploadResult, parse_pic_operations, persist
from ci_engine.render import render
from ci_engine.server.app import App, BucketState, Context, io
from ci_engine.server.cache import CachedResult
from ci_engine.server.config import BucketConfig
from ci_engine.server.errors import (
    EntityTooLargeError,
    IncompleteBodyError,
    InvalidRequestError,
    MethodNotAllowedError,
)
from ci_engine.server.xml import http_date, iso_time, xml_response
from ci_engine.store import ObjectInfo, Store, check_key
from ci_engine.styles import resolve_request

STAGING_PREFIX = ".ci-jobs/"
"""Where a running job leaves its result (``ci_engine.jobs.buckets.STAGING_PREFIX``, not
imported: the job package loads on the first job request): hidden from bucket listings."""

__all__ = [
    "handle",
    "receive_body",
    "processing_query",
    "check_hotlink",
    "list_objects",
    "list_buckets",
    "bucket_ops",
    "HOTLINK_X_ERRNO",
    "read_small_body",
    "store_upload",
    "qrcode_generate",
]

HOTLINK_X_ERRNO = -108
_PERSIST_MEMORY_FACTOR = 2
"""A ``Pic-Operations`` upload up to this many times the image byte limit goes through
``persist()`` (which holds it in memory); a larger one is refused without reading it."""
_KEYWORDS = frozenset(k.lower() for k in KEYWORDS)
_CHUNK = 1 << 20
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")


# -- bodies ---------------------------------------------------------------------------------------


async def receive_body(ctx: Context, dest: Path, limit: int) -> tuple[int, str]:
    """Stream the request body into the file ``dest`` (which exists, empty); returns its
    size and MD5 hex. On any failure (too large, incomplete, the client gone) the file is
    removed and the error raised."""
    declared = ctx.headers.get("content-length")
    expected: int | None = None
    if declared is not None:
        try:
            expected = int(declared)
        except ValueError:
            raise InvalidRequestError(f"request: bad Content-Length {declared!r}") from None
        if expected > limit:
            _unlink(dest)
            raise EntityTooLargeError(f"request: the body of {expected} bytes is over this server's limit of {limit}")
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    handle: BinaryIO = await io(lambda: open(dest, "wb"))
    pending = bytearray()

    def flush(block: bytes) -> None:
        handle.write(block)
        digest.update(block)

    try:
        async for chunk in ctx.request.stream():
            if not chunk:
                continue
            size += len(chunk)
            if size > limit:
                raise EntityTooLargeError(f"request: the body is over this server's limit of {limit} bytes")
            pending += chunk
            if len(pending) >= _CHUNK:
                block, pending = bytes(pending), bytearray()
                await io(flush, block)
        if pending:
            await io(flush, bytes(pending))
        if expected is not None and size != expected:
            raise IncompleteBodyError(f"request: received {size} of the {expected} bytes announced")
        await io(handle.close)
    except BaseException:
        with contextlib.suppress(Exception):
            handle.close()
        _unlink(dest)
        raise
    etag = digest.hexdigest()
    check_content_md5(ctx, etag, dest)
    return size, etag


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


async def read_small_body(ctx: Context, limit: int = 1 << 20) -> bytes:
    """A request document (XML), at most ``limit`` bytes."""
    body = bytearray()
    async for chunk in ctx.request.stream():
        body += chunk
        if len(body) > limit:
            raise EntityTooLargeError(f"request: the document is over {limit} bytes")
    return bytes(body)


# -- the processing string of a URL -------------------------------------------------------------


def processing_query(raw_query: str) -> str:
    """The query with the SDK's encoding undone: ``ci_get_object`` sends the whole rule
    percent-encoded as one parameter *name* followed by ``=`` (``imageMogr2%2Fthumbnail%2F100x=``),
    and the information calls send ``imageInfo=``. Such a component (no raw ``/``, one ``=``
    at its very end, a processing keyword first) loses its ``=``; the rest is kept as sent,
    so Base64 padding in raw strings is untouched."""
    out = []
    for component in raw_query.split("&"):
        if not component:
            continue
        if component.endswith("=") and component.count("=") == 1 and "/" not in component:
            name = unquote(component[:-1].replace("+", " "))
            lead = name.split("/", 1)[0].split("|", 1)[0].lower()
            if lead in _KEYWORDS:
                component = component[:-1]
        out.append(component)
    return "&".join(out)


# -- hotlink protection -----------------------------------------------------------------------------


def _pattern_matches(pattern: str, host: str, hostname: str) -> bool:
    pattern = pattern.strip().lower()
    if "://" in pattern:
        pattern = pattern.split("://", 1)[1]
    pattern = pattern.rstrip("/")
    subject = host if ":" in pattern else hostname
    if pattern.startswith("*."):
        return subject.endswith(pattern[1:])
    return subject == pattern


def check_hotlink(cfg: BucketConfig, referer: str | None) -> None:
    """Hotlink protection of a download (``styles.md``; X-ErrNo -108 when refused)."""
    rules = cfg.hotlink
    if rules.mode == "off":
        return
    if not referer:
        if rules.allow_empty:
            return
        raise AccessDeniedError("hotlink protection: a request without a Referer is refused", x_errno=HOTLINK_X_ERRNO)
    parts = urlsplit(referer if "://" in referer else f"http://{referer}")
    host = (parts.netloc.rsplit("@", 1)[-1]).lower()
    hostname = (parts.hostname or "").lower()
    listed = any(_pattern_matches(p, host, hostname) for p in rules.referers)
    if listed != (rules.mode == "allow"):
        raise AccessDeniedError(
            f"hotlink protection: downloads referred by {hostname or referer!r} are refused", x_errno=HOTLINK_X_ERRNO
        )


# -- dispatch ---------------------------------------------------------------------------------------


async def handle(app: App, ctx: Context) -> Response:
    """An object request (the key is not empty)."""
    from ci_engine.server import multipart

    method = ctx.method
    if method in ("GET", "HEAD"):
        if ctx.has("uploadId") and method == "GET":
            return await multipart.list_parts(app, ctx)
        return await download(app, ctx)
    if method == "PUT":
        if ctx.has("partNumber") or ctx.has("uploadId"):
            return await multipart.upload_part(app, ctx)
        if "x-cos-copy-source" in ctx.headers:
            return await copy_object(app, ctx)
        return await put_object(app, ctx)
    if method == "POST":
        if ctx.has("uploads"):
            return await multipart.initiate(app, ctx)
        if ctx.has("uploadId"):
            return await multipart.complete(app, ctx)
        if ctx.has("image_process"):
            return await image_process(app, ctx)
        raise InvalidRequestError("POST Object: expected ?uploads, ?uploadId= or ?image_process")
    if method == "DELETE":
        if ctx.has("uploadId"):
            return await multipart.abort(app, ctx)
        return await delete_object(app, ctx)
    raise MethodNotAllowedError(f"{method}: not allowed on an object")


def _store(app: App, ctx: Context) -> Store:
    assert ctx.bucket is not None
    return app.storage.store(ctx.bucket)


def _object_key(ctx: Context) -> str:
    return check_key(ctx.target.key)


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def _content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


_RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def _overrides(ctx: Context, headers: dict[str, str]) -> dict[str, str]:
    for param, header in _RESPONSE_OVERRIDES.items():
        value = ctx.param(param)
        if value:
            headers[header] = value
    return headers


# -- GET / HEAD ---------------------------------------------------------------------------------------


async def download(app: App, ctx: Context) -> Response:
    assert ctx.bucket is not None
    bucket = ctx.bucket
    cfg = app.config.bucket(bucket)
    check_hotlink(cfg, ctx.headers.get("referer"))
    state = await app.state_async(bucket)
    query = processing_query(ctx.raw_query) if ctx.method == "GET" else ""
    url = ctx.target.raw_path + (f"?{query}" if query else "")
    pull = cfg.origin is not None and ctx.method == "GET"

    def resolve(store: Store, path: str) -> tuple[str, Any]:
        try:
            return resolve_request(path, state.styles, state.protection, exists=store)
        except NoSuchKeyError:
            if not pull:
                raise
            # absent here: the origin may have it (a style suffix is taken as a style)
            return resolve_request(path, state.styles, state.protection)

    def first() -> tuple[Store, str, Any, _Found | None]:
        # one thread hop for the common case: the store, the key and pipeline, and (no origin
        # to ask first) the source's head and the cached output
        store = app.storage.store(bucket)
        key, pipeline = resolve(store, url)
        found = None if pipeline is None or pull else _lookup(app, store, bucket, key, pipeline)
        return store, key, pipeline, found

    def original() -> tuple[Store, str]:
        store = app.storage.store(bucket)
        return store, resolve(store, ctx.target.raw_path)[0]

    found: _Found | None = None
    try:
        store, key, pipeline, found = await io(first)
    except ParseError as exc:
        if getattr(exc, "op", None) == "ci-process":
            name = ctx.param("ci-process") or ""
            raise UnsupportedOperationError(f"ci-process={name}: not implemented by this server") from None
        raise
    except CIError as exc:
        if not exc.masked:
            raise
        # A refused value with ignore-error/1 (blur/80x5/ignore-error/1): CI answers the
        # original object, 200, as ci_engine.process_url does (docs/compatibility.md).
        store, key = await io(original)
        pipeline = None
    if pull:
        await app.origin.ensure(cfg, store, key)
    if pipeline is None:
        return await _plain(app, ctx, store, key, cfg)
    if found is None:
        found = await io(_lookup, app, store, bucket, key, pipeline)
    return await _processed(app, ctx, store, key, pipeline, cfg, found)


_Found = tuple[ObjectInfo, float, str | None, CachedResult | None]
"""The source's head, when the output last changed (the source, or an image a watermark step
names), the cache entry's name and the cached output (``None``: a miss)."""


def _named_images(pipeline: Any) -> list[str]:
    """The images a pipeline's watermark steps name: ``watermark/1``, and the mark or
    original of ``watermark/3`` / ``watermark/4``."""
    from ci_engine import ast as A

    kinds = (A.ImageWatermark, A.BlindWatermark, A.ExtractBlindWatermark)
    return [step.image for step in pipeline.steps if isinstance(step, kinds) and step.image]


def _lookup(app: App, store: Store, bucket: str, key: str, pipeline: Any) -> _Found:
    head = store.head(key)
    modified = head.last_modified
    # the images the watermark steps name are part of the output: their ETags go into the
    # cache key and their times into Last-Modified (one that is missing or refused fails
    # the processing, which is never cached)
    images: list[str] = []
    named_images = _named_images(pipeline)
    if named_images:
        resolver = _own_objects(store, bucket)
        for url in named_images:
            named = resolver.names(url)
            try:
                mark = store.head(named) if named is not None else None
            except CIError:
                mark = None
            images.append(f"{url}={mark.etag if mark else '-'}")
            if mark is not None:
                modified = max(modified, mark.last_modified)
    cache = app.cache
    if cache is None:
        return head, modified, None, None
    name = cache.key(bucket, key, head.etag, "\n".join([render(pipeline), *images]))
    return head, modified, name, cache.get(name)


async def _processed(
    app: App, ctx: Context, store: Store, key: str, pipeline: Any, cfg: BucketConfig, found: _Found
) -> Response:
    """A processed download: from the result cache when it holds the output, else processed
    (in the image pool) and cached. ``ETag`` is the MD5 of the output, ``Last-Modified`` the
    source's; ``If-None-Match`` / ``If-Modified-Since`` answer 304; with a cache,
    ``x-ci-cache: HIT`` or ``MISS``."""
    cache = app.cache
    bucket = ctx.bucket or ""
    head, modified, name, entry = found
    headers = {"Last-Modified": http_date(modified)}
    if cache is not None:
        headers["x-ci-cache"] = "MISS" if entry is None else "HIT"
    if cfg.cache_control:
        headers["Cache-Control"] = cfg.cache_control
    if entry is None and "if-none-match" not in ctx.headers and _not_modified(ctx, "", modified):
        # If-Modified-Since alone: the output changes only with the source and the images
        # it names, no need to make it
        return _not_modified_response(_overrides(ctx, headers))
    if entry is None:
        if head.size > app.limits.max_input_bytes and not pipeline.ignore_error:
            # limits-and-errors.md 5.4: an oversized input on a download URL redirects to the
            # original; known from the size, so the object is not even read
            return _redirect_to_original(ctx)

        async def make() -> CachedResult | None:
            """The output (``None``: over the limits, redirect), cached when there is a cache."""

            def work() -> Any:
                return process(
                    store.get(key),
                    pipeline,
                    backend=app.config.backend,
                    limits=app.limits,
                    resources=_own_objects(store, bucket),
                )

            try:
                result = await app.pool.run(work)
            except ImageTooLargeError:
                return None
            made = CachedResult(
                result.data,
                result.mime_type,
                hashlib.md5(result.data, usedforsecurity=False).hexdigest(),
                None if result.masked is None else result.masked.code,
                result.slim_flag,
            )
            if cache is not None and name is not None:
                await io(cache.put, name, made)
            return made

        if cache is None or name is None:
            entry = await make()
        else:
            rechecked = False
            while True:
                running = cache.inflight.get(name)
                if running is not None:
                    # the same output is being made for another request: share it (no decode)
                    try:
                        entry = await asyncio.shield(running)
                    except asyncio.CancelledError:
                        if not running.cancelled():
                            raise  # this request was cancelled
                        continue  # the request making it went away
                    headers["x-ci-cache"] = "HIT"
                    break
                if not rechecked:
                    # made and cached by a request that finished since the lookup?
                    rechecked = True
                    entry = await io(cache.get, name)
                    if entry is not None:
                        headers["x-ci-cache"] = "HIT"
                        break
                    continue  # a flight may have started during that hop
                # no await between the check above and registering the flight
                entry = await _single_flight(cache.inflight, name, make)
                break
        if entry is None:
            return _redirect_to_original(ctx)
    headers["ETag"] = _quoted(entry.etag)
    if _not_modified(ctx, entry.etag, modified):
        return _not_modified_response(_overrides(ctx, headers))
    headers["Content-Type"] = entry.mime_type
    if entry.masked is not None:
        headers["x-ci-masked-error"] = entry.masked
    if entry.slim_flag is not None:
        headers["X-Slimflag"] = str(entry.slim_flag)
    return Response(entry.data, headers=_overrides(ctx, headers))


async def qrcode_generate(app: App, ctx: Context) -> Response:
    """``GET /?ci-process=qrcode-generate&qrcode-content=...&width=...&mode=...`` on the
    bucket (no object; the SDK's ``ci_qrcode_generate``): the XML with the Base64 PNG."""
    from ci_engine import ast as A
    from ci_engine.types import CiProcessName

    params = tuple((key, ctx.param(key)) for key in ("qrcode-content", "width", "mode") if ctx.has(key))
    pipeline = A.Pipeline((A.CiProcess(CiProcessName.QRCODE_GENERATE, params),))
    result = await app.pool.run(lambda: process(b"", pipeline, limits=app.limits))
    return Response(result.data, headers={"Content-Type": "application/xml"})


async def _single_flight(
    flights: dict[str, Any], name: str, make: Callable[[], Awaitable[CachedResult | None]]
) -> CachedResult | None:
    """Run ``make`` with a future under ``flights[name]`` that concurrent callers await."""
    flight: asyncio.Future[CachedResult | None] = asyncio.get_running_loop().create_future()
    flights[name] = flight
    try:
        made = await make()
    except asyncio.CancelledError:
        flight.cancel()  # the waiters make it themselves
        raise
    except BaseException as exc:
        flight.set_exception(exc)
        flight.exception()  # retrieved: the waiters re-raise it, none is fine too
        raise
    else:
        flight.set_result(made)
        return made
    finally:
        if flights.get(name) is flight:
            del flights[name]


def _redirect_to_original(ctx: Context) -> Response:
    location = ctx.target.raw_path if not ctx.target.path_style else f"/{ctx.bucket}{ctx.target.raw_path}"
    return Response(b"", status_code=302, headers={"Location": location})


async def _plain(app: App, ctx: Context, store: Store, key: str, cfg: BucketConfig) -> Response:
    def opened() -> tuple[BinaryIO, int, Any]:  # one trip to a worker thread
        handle = store.open(key)
        try:
            return handle, _size_of(handle), store.head(key)
        except BaseException:
            handle.close()
            raise

    handle, size, info = await io(opened)
    headers = {
        "ETag": _quoted(info.etag),
        "Last-Modified": http_date(info.last_modified),
        "Content-Type": _content_type(key),
        "Accept-Ranges": "bytes",
    }
    if cfg.cache_control:
        headers["Cache-Control"] = cfg.cache_control
    _overrides(ctx, headers)
    if _not_modified(ctx, info.etag, info.last_modified):
        handle.close()
        return _not_modified_response({k: v for k, v in headers.items() if k != "Content-Type"})
    start, end, status = 0, size - 1, 200
    requested = ctx.headers.get("range")
    if requested:
        m = _RANGE_RE.fullmatch(requested.strip())
        if m and (m[1] or m[2]):
            if m[1]:
                start = int(m[1])
                end = min(int(m[2]), size - 1) if m[2] else size - 1
            else:
                start, end = max(0, size - int(m[2])), size - 1
            if start >= size or start > end:
                handle.close()
                return Response(b"", status_code=416, headers={"Content-Range": f"bytes */{size}", **headers})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    if ctx.method == "HEAD":
        handle.close()
        return Response(b"", status_code=status, headers=headers)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            await io(handle.seek, start)
            left = length
            while left > 0:
                block = await io(handle.read, min(_CHUNK, left))
                if not block:
                    break
                left -= len(block)
                yield block
        finally:
            handle.close()

    return StreamingResponse(chunks(), status_code=status, headers=headers)


def _not_modified_response(headers: dict[str, str]) -> Response:
    """304 with ``Content-Length: 0``: the official Python SDK's ``get_object`` reads a
    response only when it has a length (or is chunked)."""
    return Response(b"", status_code=304, headers={**headers, "Content-Length": "0"})


def _not_modified(ctx: Context, etag: str, modified: float) -> bool:
    """``If-None-Match`` (an ETag list or ``*``), else ``If-Modified-Since``."""
    import email.utils

    tags = ctx.headers.get("if-none-match")
    if tags is not None:
        wanted = {t.strip().removeprefix("W/").strip('"') for t in tags.split(",")}
        return "*" in wanted or etag in wanted
    since = ctx.headers.get("if-modified-since")
    if since:
        try:
            when = email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(modified) <= when
    return False


def _size_of(handle: BinaryIO) -> int:
    try:
        return os.fstat(handle.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(0)
        return size


# -- PUT / POST ?image_process / DELETE -----------------------------------------------------------------


def _pic_operations(ctx: Context) -> bytes | None:
    value = ctx.headers.get("pic-operations")
    if value is None:
        return None
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def _other_buckets(app: App) -> dict[str, Store]:
    return {name: app.storage.store(name) for name in app.storage.buckets()}


def _persist(
    app: App,
    state: BucketState,
    store: Store,
    bucket: str,
    key: str,
    data: bytes | None,
    header: bytes,
    *,
    in_cloud: bool = False,
) -> UploadResult:
    """:func:`ci_engine.persist` with the server's region, backend, limits, the bucket's styles,
    the other buckets (for ``fileid`` targets elsewhere) and the bucket's own objects as the
    watermark images a rule names (:func:`_own_objects`); run in the image pool."""
    return persist(
        key,
        data,
        header,
        store,
        bucket=bucket,
        region=app.config.region,
        styles=state.styles,
        backend=app.config.backend,
        limits=app.limits,
        in_cloud=in_cloud,
        buckets=_other_buckets(app),
        resources=_own_objects(store, bucket),
    )


def _own_objects(store: Store, bucket: str) -> Any:
    """The watermark images of a rule (``watermark/1``, and the mark or original of
    ``watermark/3`` / ``watermark/4`` types 1 and 2): objects of the request's own bucket
    named by ``http://<bucket>.cos.<region>.myqcloud.com/<key>`` (CI takes them from the same
    bucket only); any other URL is ``AccessDenied``, a missing key ``NoSuchKey``."""
    from ci_engine.watermark.resources import BucketResolver

    return BucketResolver(bucket, store.get)


async def store_upload(app: App, ctx: Context, key: str, tmp: Path, etag: str) -> Response:
    """Put the uploaded file ``tmp`` under ``key`` (consuming it): with ``Pic-Operations``
    through :func:`ci_engine.persist` (in the image pool), else renamed into place."""
    assert ctx.bucket is not None
    bucket = ctx.bucket
    store = await io(app.storage.store, bucket)
    header = _pic_operations(ctx)
    if header is None:
        etag = await io(lambda: store.put_file(key, tmp, etag=etag))
        return Response(b"", headers={"ETag": _quoted(etag)})
    state = await app.state_async(bucket)
    size = await io(lambda: tmp.stat().st_size)
    if size > _PERSIST_MEMORY_FACTOR * app.limits.max_input_bytes:
        # Far over the 32 MB image limit: do not read it into memory for persist(). Same
        # outcome as persist() for a rule without ignore-error/1: the header is validated
        # first (nothing stored if it is bad), the original is stored, then 400 ImageTooLarge.
        parse_pic_operations(header, limits=app.limits)
        await io(lambda: store.put_file(key, tmp, etag=etag))
        check_input_bytes(size, app.limits, persistent=True)

    def work() -> Any:
        try:
            data = tmp.read_bytes()
        finally:
            _unlink(tmp)
        return _persist(app, state, store, bucket, key, data, header)

    try:
        result = await app.pool.run(work)
    except BaseException:
        _unlink(tmp)
        raise
    response = Response(result.to_xml().encode("utf-8"), media_type="application/xml")
    response.headers["ETag"] = _quoted(result.original_info.etag)
    return response


async def put_object(app: App, ctx: Context) -> Response:
    assert ctx.bucket is not None
    key = _object_key(ctx)
    tmp = await io(app.storage.temp_file, ctx.bucket)
    _, etag = await receive_body(ctx, tmp, app.config.max_body_bytes)
    return await store_upload(app, ctx, key, tmp, etag)


def check_content_md5(ctx: Context, etag: str, tmp: Path) -> None:
    """``Content-MD5`` (Base64 of the MD5), when sent, must match the body: else
    ``400 BadDigest`` and the body is dropped."""
    import base64
    import binascii

    from ci_engine.server.errors import BadDigestError

    sent = ctx.headers.get("content-md5")
    if sent is None:
        return
    try:
        wanted = base64.b64decode(sent.strip(), validate=True).hex()
    except (binascii.Error, ValueError):
        wanted = ""
    if wanted != etag:
        _unlink(tmp)
        raise BadDigestError("Content-MD5: the body's MD5 does not match the Content-MD5 header")


async def image_process(app: App, ctx: Context) -> Response:
    assert ctx.bucket is not None
    bucket = ctx.bucket
    key = _object_key(ctx)
    header = _pic_operations(ctx)
    if header is None:
        raise InvalidPicOperationsError("Pic-Operations: POST ?image_process needs the Pic-Operations header")
    store = await io(app.storage.store, bucket)
    state = await app.state_async(bucket)

    def work() -> Any:
        return _persist(app, state, store, bucket, key, None, header, in_cloud=True)

    result = await app.pool.run(work)
    return Response(result.to_xml().encode("utf-8"), media_type="application/xml")


async def copy_object(app: App, ctx: Context) -> Response:
    """``PUT /<key>`` with ``x-cos-copy-source: <bucket>.cos.<region>.myqcloud.com/<key>``
    (or ``/<bucket>/<key>``): a copy within this server, streamed through a temporary file."""
    from ci_engine.server.addressing import locate
    from ci_engine.server.errors import NoSuchBucketError

    assert ctx.bucket is not None
    key = _object_key(ctx)
    source = ctx.headers["x-cos-copy-source"].strip()
    bare = source.split("://", 1)[1] if "://" in source else source
    if bare.startswith("/"):  # /<bucket>/<key>, path style
        host, path = "", bare
    else:
        host, _, rest = bare.partition("/")
        path = "/" + rest
    origin = locate(path.split("?", 1)[0], host)
    if origin.bucket is None or not origin.key:
        raise InvalidArgumentError(f"x-cos-copy-source: not <bucket>.cos.<region>.myqcloud.com/<key>: {source!r}")
    if not await io(app.storage.exists, origin.bucket):
        raise NoSuchBucketError(f"bucket: {origin.bucket!r} does not exist")
    src_store = await io(app.storage.store, origin.bucket)
    dest_store = await io(app.storage.store, ctx.bucket)
    tmp = await io(app.storage.temp_file, ctx.bucket)

    def copy() -> str:
        digest = hashlib.md5(usedforsecurity=False)
        with src_store.open(check_key(origin.key)) as handle, open(tmp, "wb") as out:
            while block := handle.read(_CHUNK):
                out.write(block)
                digest.update(block)
        return dest_store.put_file(key, tmp, etag=digest.hexdigest())

    try:
        etag = await io(copy)
    except BaseException:
        _unlink(tmp)
        raise
    info = await io(dest_store.head, key)
    return xml_response("CopyObjectResult", [("ETag", _quoted(etag)), ("LastModified", iso_time(info.last_modified))])


async def delete_object(app: App, ctx: Context) -> Response:
    key = _object_key(ctx)
    store = await io(app.storage.store, ctx.bucket)
    await io(store.delete, key)
    return Response(b"", status_code=204)


# -- buckets and the service ----------------------------------------------------------------------------


async def bucket_ops(app: App, ctx: Context) -> Response:
    """PUT / HEAD / DELETE / GET Bucket (the key is empty)."""
    from ci_engine.server import multipart
    from ci_engine.server.errors import BucketAlreadyExistsError, NoSuchBucketError

    bucket = ctx.bucket
    assert bucket is not None
    if ctx.method == "PUT":
        created = await io(app.storage.create, bucket)
        if not created:
            raise BucketAlreadyExistsError(f"bucket: {bucket!r} already exists")
        return Response(b"", headers={"Location": f"/{bucket}"})
    if not await io(app.storage.exists, bucket):
        raise NoSuchBucketError(f"bucket: {bucket!r} does not exist")
    if ctx.method == "HEAD":
        return Response(b"", headers={"x-cos-bucket-region": app.config.region})
    if ctx.method == "DELETE":
        await io(app.storage.remove, bucket)
        app.forget(bucket)
        return Response(b"", status_code=204)
    if ctx.method == "GET":
        if ctx.has("uploads"):
            return await multipart.list_uploads(app, ctx)
        return await list_objects(app, ctx)
    if ctx.method == "POST" and ctx.has("delete"):
        return await delete_objects(app, ctx)
    raise MethodNotAllowedError(f"{ctx.method}: not allowed on a bucket")


async def delete_objects(app: App, ctx: Context) -> Response:
    """``POST /?delete``: ``<Delete><Quiet/><Object><Key/></Object>...</Delete>`` →
    ``<DeleteResult>`` (at most 1000 keys)."""
    from ci_engine.errors import CIError
    from ci_engine.server.xml import child_text, parse_xml

    document = parse_xml(await read_small_body(ctx, 4 << 20), "Delete")
    quiet = (child_text(document, "Quiet") or "").lower() == "true"
    keys = [child_text(obj, "Key") or "" for obj in document.findall("Object")]
    if not keys or len(keys) > 1000:
        raise InvalidArgumentError(f"delete: between 1 and 1000 <Object> elements, got {len(keys)}", op="delete")
    store = await io(app.storage.store, ctx.bucket)

    def run() -> list[tuple[str, object]]:
        out: list[tuple[str, object]] = []
        for key in keys:
            try:
                store.delete(check_key(key))
            except CIError as exc:
                out.append(("Error", [("Key", key), ("Code", exc.code), ("Message", exc.message)]))
                continue
            if not quiet:
                out.append(("Deleted", [("Key", key)]))
        return out

    return xml_response("DeleteResult", await io(run))


def _int_param(ctx: Context, name: str, default: int, low: int, high: int) -> int:
    raw = ctx.param(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgumentError(f"{name}: must be an integer, got {raw!r}", op=name) from None
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name}: must be between {low} and {high}, got {value}", op=name)
    return value


async def list_objects(app: App, ctx: Context) -> Response:
    bucket = ctx.bucket
    assert bucket is not None
    prefix = ctx.param("prefix") or ""
    marker = ctx.param("marker") or ""
    delimiter = ctx.param("delimiter") or ""
    max_keys = _int_param(ctx, "max-keys", 1000, 0, 1000)
    encode = (ctx.param("encoding-type") or "") == "url"
    store = await io(app.storage.store, bucket)

    def listing() -> tuple[list[Any], list[str], bool, str]:
        contents: list[Any] = []
        prefixes: list[str] = []
        truncated = False
        last = ""
        for key in store.keys(prefix):
            if key <= marker or key.startswith(STAGING_PREFIX):  # a running job's staged result
                continue
            if delimiter:
                cut = key.find(delimiter, len(prefix))
                if cut >= 0:
                    common = key[: cut + len(delimiter)]
                    if common <= marker or (prefixes and prefixes[-1] == common):
                        continue
                    if len(contents) + len(prefixes) >= max_keys:
                        truncated = True
                        break
                    prefixes.append(common)
                    last = common
                    continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            contents.append(store.head(key))
            last = key
        return contents, prefixes, truncated, last

    contents, prefixes, truncated, last = await io(listing)

    def enc(text: str) -> str:
        return quote(text, safe="/") if encode else text

    children: list[tuple[str, object]] = [
        ("Name", bucket),
        ("EncodingType", "url") if encode else ("Prefix", enc(prefix)),
    ]
    if encode:
        children.append(("Prefix", enc(prefix)))
    children += [
        ("Marker", enc(marker)),
        ("MaxKeys", max_keys),
        ("Delimiter", enc(delimiter)),
        ("IsTruncated", "true" if truncated else "false"),
    ]
    if truncated:
        children.append(("NextMarker", enc(last)))
    for prefix_ in prefixes:
        children.append(("CommonPrefixes", [("Prefix", enc(prefix_))]))
    for info in contents:
        children.append(
            (
                "Contents",
                [
                    ("Key", enc(info.key)),
                    ("LastModified", iso_time(info.last_modified)),
                    ("ETag", _quoted(info.etag)),
                    ("Size", info.size),
                    ("Owner", [("ID", "ci-engine"), ("DisplayName", "ci-engine")]),
                    ("StorageClass", "STANDARD"),
                ],
            )
        )
    return xml_response("ListBucketResult", children)


async def list_buckets(app: App, ctx: Context) -> Response:
    names = await io(app.storage.buckets)
    entries: list[tuple[str, object]] = []
    for name in names:
        created = await io(app.storage.created, name)
        entries.append(
            (
                "Bucket",
                [("Name", name), ("Location", app.config.region), ("CreationDate", iso_time(created))],
            )
        )
    return xml_response(
        "ListAllMyBucketsResult",
        [("Owner", [("ID", "ci-engine"), ("DisplayName", "ci-engine")]), ("Buckets", entries)],
    )
