"""The ASGI application: :func:`create_app` and what every request goes through.

One request:

1. **address** (:mod:`~ci_engine.server.addressing`): host kind, bucket and key from the
   ``Host`` header, an absolute-form target (proxy mode) or the path (path style, IP mode);
2. **authenticate** (:mod:`~ci_engine.server.auth`): a v5 signature in the header or the
   query, checked against the configured keys (or none needed: ``--anonymous``, a public-read
   bucket's downloads);
3. **dispatch** to the handler of the host kind, path, method and query
   (:mod:`~ci_engine.server.objects`, :mod:`~ci_engine.server.multipart`,
   :mod:`~ci_engine.server.ci_api`); job endpoints go to :attr:`App.jobs`, the one hook the
   asynchronous-jobs service replaces;
4. any :class:`~ci_engine.CIError` becomes the COS error XML
   (:func:`~ci_engine.server.errors.error_response`); anything else is logged and answered
   ``500 InternalError``. Every response carries ``x-cos-request-id`` (and
   ``x-ci-request-id`` on the ci host).

Image work runs in :class:`ImagePool`, a fixed set of threads (one per core by default) with
a bounded waiting line: past it, ``503 SlowDown`` with ``Retry-After``. Blocking file work
(streaming bodies to disk, renames, listings) runs in anyio's worker threads, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ci_engine._dc import dataclass, field
from ci_engine.errors import CIError, InternalError, new_request_id
from ci_engine.limits import Limits
from ci_engine.server.addressing import Target, locate
from ci_engine.server.auth import SIGNATURE_PARAMS, find_signature, verify
from ci_engine.server.config import ServerConfig
from ci_engine.server.errors import (
    MissingSignatureError,
    SlowDownError,
    TimeBudgetError,
    error_response,
)
from ci_engine.server.storage import LocalStorage, Storage
from ci_engine.styles import StyleRegistry

__all__ = ["App", "Context", "ImagePool", "JobsHandler", "create_app", "not_implemented_jobs"]

log = logging.getLogger("ci_engine.server")

T = TypeVar("T")

JobsHandler = Callable[["App", "Context"], Awaitable[Response]]
"""What answers the job APIs (``/picqueue``, ``/pic_jobs``, ``/jobs``, ``/template`` on the ci
host): an async function of the app and the request context."""


@dataclass
class Context:
    """One request, as the handlers see it.

    Attributes:
        request: the Starlette request (headers, body stream).
        target: where it goes (:class:`~ci_engine.server.addressing.Target`).
        method: ``GET``, ``PUT`` ...
        query: the decoded query parameters in order (``+`` is a space), signature fields
            included.
        raw_query: the query string as received (percent-encoded).
        request_id: this request's id (``x-cos-request-id``).
        bucket: the target bucket (``None`` for bucket-less calls).
        signer: the SecretId that signed the request, ``None`` when unsigned.
    """

    request: Request
    target: Target
    method: str
    query: list[tuple[str, str]]
    raw_query: str
    request_id: str
    bucket: str | None = None
    signer: str | None = None
    headers: Headers = field(init=False)

    def __post_init__(self) -> None:
        self.headers = self.request.headers

    def has(self, name: str) -> bool:
        """The query has the parameter ``name`` (with or without a value)."""
        return any(key == name for key, _ in self.query)

    def param(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return default

    @property
    def request_params(self) -> list[tuple[str, str]]:
        """The query without the presigned-signature fields."""
        return [(k, v) for k, v in self.query if k.lower() not in SIGNATURE_PARAMS]


_CASED = {
    name.lower().encode("latin-1"): name.encode("latin-1")
    for name in (
        "ETag",
        "Content-Type",
        "Content-Length",
        "Content-Range",
        "Content-Disposition",
        "Content-Encoding",
        "Content-Language",
        "Cache-Control",
        "Expires",
        "Last-Modified",
        "Location",
        "Accept-Ranges",
        "Retry-After",
        "Server",
        "X-ErrNo",
        "X-Slimflag",
    )
}
"""Response header names as COS spells them: the SDK copies the headers into a plain dict, and
callers read ``response['ETag']`` (Starlette lower-cases names; h11 sends them as given)."""


class ImagePool:
    """A fixed set of threads for image work, with a bounded waiting line.

    ``run`` refuses with ``503 SlowDown`` when ``workers + pending`` requests are already
    admitted (running or waiting), or when no worker took the request within ``timeout``
    seconds (the work is then skipped); work that runs longer than ``timeout`` seconds answers
    ``500 InternalError`` (X-ErrNo -901). A thread cannot be interrupted: a request past its
    budget keeps its worker until it finishes, so the bound on concurrent image work holds.
    """

    def __init__(self, workers: int, pending: int, timeout: float) -> None:
        self.workers = workers
        self.capacity = workers + max(0, pending)
        self.timeout = timeout
        self.admitted = 0
        self.peak = 0
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ci-image")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.admitted >= self.capacity:
            raise SlowDownError(
                f"server: {self.admitted} image requests are running or waiting (capacity {self.capacity}); "
                "retry later"
            )
        self.admitted += 1
        self.peak = max(self.peak, self.admitted)
        loop = asyncio.get_running_loop()
        began: list[float] = []
        abandoned = threading.Event()

        def job() -> T:
            if abandoned.is_set():  # its request gave up waiting: do not do the work
                raise SlowDownError("server: abandoned")
            began.append(time.monotonic())
            return fn(*args)

        future = loop.run_in_executor(self._executor, job)
        future.add_done_callback(self._done)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                if not began:
                    abandoned.set()
                    if not began:
                        raise SlowDownError(
                            f"server: no image worker became free within {self.timeout:g} s; retry later"
                        ) from None
                if time.monotonic() >= began[0] + self.timeout:
                    raise TimeBudgetError(f"server: the image work took longer than {self.timeout:g} s") from None
                deadline = began[0] + self.timeout

    def _done(self, future: asyncio.Future[Any]) -> None:
        self.admitted -= 1
        if not future.cancelled():
            future.exception()  # retrieved, so an abandoned failure is not reported twice

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class BucketState:
    """What the server keeps in memory for one bucket: its styles (persisted as the metadata
    document ``styles.json``) and its original-image protection switch (``settings.json``,
    over the config file's value)."""

    def __init__(self, app: App, bucket: str) -> None:
        import json

        self.bucket = bucket
        cfg = app.config.bucket(bucket)
        self.styles = StyleRegistry(separators=cfg.separators)
        raw = app.storage.read_meta(bucket, "styles.json")
        if raw:
            for name, body in json.loads(raw).get("styles", []):
                self.styles.add(name, body)
        settings = app.storage.read_meta(bucket, "settings.json")
        self.protection = cfg.protection
        if settings:
            self.protection = bool(json.loads(settings).get("origin_protect", cfg.protection))
        self.lock = asyncio.Lock()

    def save_styles(self, app: App) -> None:
        import json

        doc = {"styles": [[s.name, s.body] for s in self.styles.list()]}
        app.storage.write_meta(self.bucket, "styles.json", json.dumps(doc, ensure_ascii=False).encode("utf-8"))

    def save_settings(self, app: App) -> None:
        import json

        app.storage.write_meta(self.bucket, "settings.json", json.dumps({"origin_protect": self.protection}).encode())


async def not_implemented_jobs(app: App, ctx: Context) -> Response:
    """The default :attr:`App.jobs`: every job API answers ``501 NotImplemented``."""
    from ci_engine.errors import UnsupportedOperationError

    raise UnsupportedOperationError(f"{ctx.target.path}: asynchronous image jobs are not available in this server yet")


class App:
    """The ASGI application (see the module docstring). Build it with :func:`create_app`.

    Attributes:
        config: the :class:`~ci_engine.server.config.ServerConfig`.
        storage: the buckets.
        pool: the image workers.
        jobs: the handler of the job APIs (:class:`~ci_engine.server.jobs.JobsEndpoint`;
            :func:`not_implemented_jobs` answers 501 instead).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.storage: Storage = config.storage_factory(config) if config.storage_factory else LocalStorage(
            config.root, fsync=config.fsync
        )
        self.pool = ImagePool(config.workers, config.pending_limit, config.request_timeout)
        self.limits = Limits()
        """The image limits of every request (CI's documented ones)."""
        from ci_engine.server.jobs import JobsEndpoint

        self.jobs: JobsHandler = JobsEndpoint(self)
        from ci_engine.server.cache import ResultCache, engine_identity
        from ci_engine.server.origin import OriginPuller

        self.origin = OriginPuller(
            self.storage,
            max_bytes=self.limits.max_input_bytes,
            connect_timeout=config.origin_connect_timeout,
            read_timeout=config.origin_read_timeout,
            total_timeout=config.request_timeout,
        )
        """Back-to-source for buckets with an ``origin``."""
        self.cache: ResultCache | None = (
            None
            if config.cache_dir is None
            else ResultCache(config.cache_dir, config.cache_size, engine=engine_identity(config.backend))
        )
        """The processed-result cache (``None`` without ``cache_dir``)."""
        self._states: dict[str, BucketState] = {}
        self._states_lock = threading.Lock()
        self._known: set[str] = set()
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def startup(self) -> None:
        """Once, before the first request: pin libvips' thread count, clean what a crash
        left, create the configured buckets."""
        if self._started:
            return
        os.environ.setdefault("CI_ENGINE_VIPS_CONCURRENCY", str(self.config.vips_concurrency))
        self.storage.recover()
        for name in self.config.buckets:
            self.storage.create(name)
        resume = getattr(self.jobs, "resume", None)
        if resume is not None:
            resume()  # jobs left Submitted or Running by the previous run
        self._started = True

    def shutdown(self) -> None:
        self.pool.close()
        close = getattr(self.jobs, "close", None)
        if close is not None:
            close()

    def state(self, bucket: str) -> BucketState:
        with self._states_lock:
            found = self._states.get(bucket)
            if found is None:
                found = self._states[bucket] = BucketState(self, bucket)
            return found

    async def bucket_exists(self, bucket: str) -> bool:
        """Whether ``bucket`` exists; remembered once seen (buckets are only removed through
        this server, which forgets them then)."""
        if bucket in self._known:
            return True
        found = await io(self.storage.exists, bucket)
        if found:
            self._known.add(bucket)
        return found

    async def state_async(self, bucket: str) -> BucketState:
        """:meth:`state` without a thread hop once the bucket's state is loaded."""
        found = self._states.get(bucket)
        return found if found is not None else await io(self.state, bucket)

    def forget(self, bucket: str) -> None:
        self._known.discard(bucket)
        with self._states_lock:
            self._states.pop(bucket, None)

    # -- ASGI --------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not served
            return
        if not self._started:
            await anyio.to_thread.run_sync(self.startup)
        request = Request(scope, receive)
        request_id = new_request_id()
        origin = self._cors_origin(request.headers.get("origin"))
        if origin is not None and scope["method"] == "OPTIONS":
            preflight = Response(b"", headers=self._cors_headers(origin, request))
            preflight.headers["x-cos-request-id"] = request_id
            await preflight(scope, receive, send)
            return
        ci_host = False
        resource = "/"
        head = scope["method"] == "HEAD"
        try:
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
            target = locate(raw_path.decode("latin-1"), request.headers.get("host"))
            ci_host = target.kind == "ci" or (target.kind == "service" and target.path.startswith("/picbucket"))
            resource = target.resource
            raw_query = scope.get("query_string", b"").decode("latin-1")
            query = parse_qsl(raw_query, keep_blank_values=True, encoding="utf-8", errors="replace")
            ctx = Context(request, target, scope["method"], query, raw_query, request_id, target.bucket)
            from ci_engine.server.routes import dispatch

            response = await dispatch(self, ctx)
        except ClientDisconnect:
            log.info("client disconnected during %s %s", scope["method"], scope.get("path"))
            return
        except CIError as exc:
            response = error_response(exc, resource=resource, request_id=request_id, ci_host=ci_host, head=head)
        except Exception:
            log.exception("internal error on %s %s", scope["method"], scope.get("path"))
            internal = InternalError("server: an internal error occurred; see the server log")
            response = error_response(internal, resource=resource, request_id=request_id, ci_host=ci_host, head=head)
        response.headers["x-cos-request-id"] = request_id
        if ci_host:
            response.headers["x-ci-request-id"] = request_id
        response.headers.setdefault("Server", "ci-engine")
        if origin is not None:
            response.headers.update(self._cors_headers(origin, None))
        response.raw_headers = [(_CASED.get(name, name), value) for name, value in response.raw_headers]
        await response(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await anyio.to_thread.run_sync(self.startup)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- CORS (the browser SDK) ---------------------------------------------------------------------
    def _cors_origin(self, origin: str | None) -> str | None:
        allowed = self.config.cors_origins
        if not origin or not allowed:
            return None
        if "*" in allowed:
            return "*"
        return origin if origin in allowed else None

    def _cors_headers(self, origin: str, preflight: Request | None) -> dict[str, str]:
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": "ETag, Content-Length, Content-Range, x-cos-request-id, X-ErrNo",
        }
        if origin != "*":
            headers["Vary"] = "Origin"
        if preflight is not None:
            headers["Access-Control-Allow-Methods"] = "GET, PUT, POST, DELETE, HEAD"
            asked = preflight.headers.get("access-control-request-headers")
            if asked:
                headers["Access-Control-Allow-Headers"] = asked
            headers["Access-Control-Max-Age"] = "600"
        return headers

    # -- helpers for the handlers ----------------------------------------------------------------------
    def authenticate(self, ctx: Context, *, public: bool = False) -> None:
        """Check the request's signature. Unsigned requests pass with ``--anonymous`` or when
        ``public`` (a download from a public-read bucket); otherwise ``403 AccessDenied``."""
        sig = find_signature(ctx.headers.get("authorization"), ctx.query)
        if sig is None:
            if self.config.anonymous or public or not self.config.credentials:
                return
            raise MissingSignatureError("signature: the request is not signed and this server requires signatures")
        headers = {k.lower(): v for k, v in ctx.headers.items()}
        ctx.signer = verify(
            sig,
            credentials=self.config.credentials,
            method=ctx.method,
            paths=ctx.target.sign_paths,
            query=ctx.query,
            headers=headers,
            now=time.time(),
        )


def create_app(config: ServerConfig) -> App:
    """The ASGI application for ``config`` (mount it in any ASGI server).

    Raises:
        ConfigError: neither credentials nor ``anonymous`` (the message says which to give).
    """
    config.check_auth()
    return App(config)


async def io(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking file work in anyio's worker threads."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args))

