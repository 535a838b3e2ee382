"""Helpers of the origin / cache / conditional tests: a real HTTP origin server on 127.0.0.1
(the standard library's, in a thread) whose answers the tests choose per path and whose
requests it counts, and a ``ci-engine serve`` started with ``--origin``, ``--cache-dir`` and
keys plus ``--anonymous`` (the SDK signs, raw HTTP need not)."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.server.conftest import Server, start_configured

ORIGIN_BUCKET = "mirror-1250000000"
CACHED_BUCKET = "cached-1250000000"

Answer = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class Origin:
    """A test origin: ``routes`` maps a path to a function answering the request."""

    server: ThreadingHTTPServer
    routes: dict[str, Answer] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def start_origin() -> Origin:
    holder: list[Origin] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            origin = holder[0]
            with origin.lock:
                origin.hits[self.path] += 1
                origin.headers[self.path] = {k.lower(): v for k, v in self.headers.items()}
            answer = origin.routes.get(self.path)
            if answer is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            answer(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    class Quiet(ThreadingHTTPServer):
        def handle_error(self, request: object, client_address: object) -> None:
            pass  # a client (the server under test) hanging up mid-answer is part of the tests

    server = Quiet(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    origin = Origin(server)
    holder.append(origin)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return origin


def body(data: bytes, *, delay: float = 0.0, content_type: str = "image/jpeg", status: int = 200) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        if delay:
            time.sleep(delay)
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def redirect(location: str) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return answer


def stall(seconds: float, *, after_headers: bool = False) -> Answer:
    def answer(handler: BaseHTTPRequestHandler) -> None:
        if after_headers:
            handler.send_response(200)
            handler.send_header("Content-Length", "100000")
            handler.end_headers()
            handler.wfile.write(b"\xff\xd8" + b"\0" * 100)
            handler.wfile.flush()
        time.sleep(seconds)

    return answer


def cut(declared: int, sent: bytes) -> Answer:
    """Announce ``declared`` bytes, send ``sent``, close."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(declared))
        handler.end_headers()
        handler.wfile.write(sent)
        handler.wfile.flush()
        handler.close_connection = True

    return answer


def serve_with(tmp: Path, config: str, *extra: str) -> Server:
    return start_configured(tmp, config, "--anonymous", *extra)


def raw(
    server: Server, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One unsigned request (path style: ``/<bucket>/<key>``)."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        conn.close()
