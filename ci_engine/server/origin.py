"""Back-to-source ("data source" in seed 000; COS's origin-pull): a GET for a key missing in a
bucket with an ``origin`` fetches ``origin + key`` from that server, stores it in the bucket
and serves it (processed if asked).

Safety (the watermark resolvers' rules): only the configured origin is contacted; a redirect
is followed only while it stays on the same scheme, host and port (at most
:data:`MAX_REDIRECTS`), one elsewhere is refused (502); the body is capped at the image input
limit; connecting and each read have timeouts, and the whole pull is bounded by the server's
``request_timeout`` (504). The body streams to a temporary file in the bucket and is renamed
into place by :meth:`Store.put_file <ci_engine.store.Store.put_file>`, so a failed pull leaves
nothing. Concurrent GETs for one missing key share one fetch.

``origin_mode = "revalidate"`` asks the origin on every GET, conditionally
(``If-Modified-Since`` the stored copy's time): ``304`` keeps the stored copy, ``200``
replaces it; when the origin fails, is silent or answers ``404``, the stored copy is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import logging
import os
import time
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

from ci_engine._dc import dataclass
from ci_engine.errors import CIError, NoSuchKeyError
from ci_engine.server.config import BucketConfig
from ci_engine.server.errors import OriginError, OriginTimeoutError
from ci_engine.server.storage import Storage
from ci_engine.server.xml import http_date
from ci_engine.store import Store

__all__ = ["OriginPuller", "MAX_REDIRECTS"]

log = logging.getLogger("ci_engine.server")

MAX_REDIRECTS = 3
_CHUNK = 1 << 16
_KEY_SAFE = "/~!$&'()*+,;=:@"


@dataclass(frozen=True, slots=True)
class _Settings:
    max_bytes: int
    connect_timeout: float
    read_timeout: float
    total_timeout: float


class OriginPuller:
    """Pulls missing objects from the buckets' origins (one instance per app).

    Attributes:
        fetches: origin requests made (for tests and logs).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        max_bytes: int,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
    ) -> None:
        self.storage = storage
        self.settings = _Settings(max_bytes, connect_timeout, read_timeout, total_timeout)
        self.fetches = 0
        self._inflight: dict[tuple[str, str], asyncio.Future[None]] = {}

    async def ensure(self, cfg: BucketConfig, store: Store, key: str) -> None:
        """Make ``key`` present in ``cfg.name`` (``missing`` mode) or current
        (``revalidate``), fetching from the origin at most once for concurrent callers.

        Raises:
            NoSuchKeyError: the origin has no such object (and the bucket none either).
            OriginError: 502, the origin failed. OriginTimeoutError: 504.
        """
        import anyio.to_thread

        if cfg.origin is None:
            return
        present = await anyio.to_thread.run_sync(store.exists, key)
        if present and cfg.origin_mode == "missing":
            return
        flight = (cfg.name, key)
        running = self._inflight.get(flight)
        if running is not None:
            try:
                await asyncio.shield(running)
                return
            except asyncio.CancelledError:
                if not running.cancelled():
                    raise  # this request was cancelled
                # the request fetching it went away: fetch here (the store is checked again)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        try:
            await anyio.to_thread.run_sync(self._pull, cfg, store, key, present)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, none is fine too
            raise
        else:
            future.set_result(None)
        finally:
            if self._inflight.get(flight) is future:
                del self._inflight[flight]

    # -- blocking --------------------------------------------------------------------------------
    def _pull(self, cfg: BucketConfig, store: Store, key: str, present: bool) -> None:
        assert cfg.origin is not None
        if present:
            try:
                since = store.head(key).last_modified
            except NoSuchKeyError:
                present, since = False, 0.0
        if present and cfg.origin_mode == "missing":  # stored meanwhile
            return
        url = cfg.origin + quote(key, safe=_KEY_SAFE)
        try:
            self._fetch(cfg, store, key, url, since if present else None)
        except (OriginError, OriginTimeoutError, NoSuchKeyError) as exc:
            if not present:
                raise
            log.warning("origin of %s: %s; serving the stored copy of %r", cfg.name, exc.message, key)

    def _fetch(self, cfg: BucketConfig, store: Store, key: str, url: str, since: float | None) -> None:
        s = self.settings
        deadline = time.monotonic() + s.total_timeout
        origin = urlsplit(url)
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            connection = _connection(parts.scheme, parts.hostname or "", parts.port, s.connect_timeout)
            self.fetches += 1
            try:
                try:
                    connection.connect()
                except TimeoutError:
                    raise OriginTimeoutError(
                        f"origin: {_host(parts)} did not accept a connection within {s.connect_timeout:g} s"
                    ) from None
                assert connection.sock is not None
                connection.sock.settimeout(s.read_timeout)
                headers = {"User-Agent": "ci-engine", "Accept": "*/*", "Accept-Encoding": "identity"}
                if since is not None:
                    headers["If-Modified-Since"] = http_date(since)
                target = parts.path or "/"
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
                status = response.status
                if status == 200:
                    self._store_body(cfg, store, key, response, deadline)
                    return
                if status == 304 and since is not None:
                    return
                if status in (404, 410):
                    raise NoSuchKeyError(f"key: {key!r} does not exist (nor at the bucket's origin)")
                if status in (301, 302, 303, 307, 308):
                    location = response.getheader("location") or ""
                    url = urljoin(url, location)
                    nxt = urlsplit(url)
                    if (nxt.scheme, nxt.hostname, nxt.port) != (origin.scheme, origin.hostname, origin.port):
                        raise OriginError(
                            f"origin: {_host(origin)} redirects {key!r} to another host ({_host(nxt)}); "
                            "redirects off the origin are not followed"
                        )
                    continue
                raise OriginError(f"origin: {_host(parts)} answered {status} for {key!r}")
            except CIError:
                raise
            except TimeoutError:
                raise OriginTimeoutError(
                    f"origin: {_host(parts)} sent nothing for {s.read_timeout:g} s while answering {key!r}"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                raise OriginError(f"origin: {_host(parts)} failed for {key!r} ({type(exc).__name__})") from None
            finally:
                connection.close()
        raise OriginError(f"origin: more than {MAX_REDIRECTS} redirects for {key!r}")

    def _store_body(
        self, cfg: BucketConfig, store: Store, key: str, response: http.client.HTTPResponse, deadline: float
    ) -> None:
        limit = self.settings.max_bytes
        declared = response.getheader("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise OriginError(f"origin: {key!r} is {declared} bytes, over the input limit of {limit}")
        tmp: Path = self.storage.temp_file(cfg.name)
        try:
            digest = hashlib.md5(usedforsecurity=False)
            size = 0
            with open(tmp, "wb") as out:
                while block := response.read(_CHUNK):
                    size += len(block)
                    if size > limit:
                        raise OriginError(f"origin: {key!r} is over the input limit of {limit} bytes")
                    if time.monotonic() > deadline:
                        raise OriginTimeoutError(
                            f"origin: {key!r} took longer than {self.settings.total_timeout:g} s to arrive"
                        )
                    out.write(block)
                    digest.update(block)
            if declared is not None and declared.isdigit() and size != int(declared):
                raise OriginError(f"origin: sent {size} of the {declared} bytes of {key!r}, then closed")
            store.put_file(key, tmp, etag=digest.hexdigest())
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _host(parts: object) -> str:
    netloc = getattr(parts, "netloc", "")
    return str(netloc).rsplit("@", 1)[-1]


def _connection(scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
    if scheme == "https":
        import ssl

        return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    return http.client.HTTPConnection(host, port, timeout=timeout)

