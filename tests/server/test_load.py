"""Load on a live ``ci-engine serve`` (127.0.0.1, keys, the real command in a subprocess):

* 32 concurrent clients, each a keep-alive connection sending a mixed sequence of signed
  requests on its own keys (PUT, processed GETs with several strings in the raw and the
  SDK's form, HEAD, ``imageInfo``, a plain GET, DELETE, a GET of the deleted key). The only
  failure allowed is the documented ``503 SlowDown`` with ``Retry-After`` (the server's
  bounded waiting line), which the client honours and retries. Every answer must equal, byte
  for byte, the answer of the same sequence run alone before the load.
* 64 concurrent connections each uploading a 30 MB body: every upload answers 200 with the
  ETag of its bytes, the stored objects are those bytes, no staging file is left, and the
  server's peak resident memory (``VmHWM`` of the server process) stays under 1.5 GB: bodies
  stream to disk, they are never held whole in memory.

Bounded: a fixed number of requests, every wait with a timeout; the two tests take about
20 s each on 2 cores (45 s for the file with the machine loaded). The upload test is marked
``slow`` only so that CI's second pass (without libvips) does not repeat it: it does not
depend on the imaging backend.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import pytest

from tests.server.conftest import PHOTOS, REPO, Server, make_client, start_configured, stop_server

SAMPLES = REPO / "docs" / "samples"

CLIENTS = 32
UPLOADS = 64
UPLOAD_BYTES = 30 * 1024 * 1024
RSS_LIMIT = 1536 * 1024 * 1024  # 1.5 GB
MAX_RETRIES = 60  # per request, each after Retry-After (1 s): a hard bound on the test's time

# (rule as sent in the query, output format, output width for a source of height h and a
# client width w): several kinds of work on the photographs of docs/samples (1200 x 675 and
# 960 x 600); client i takes three of them, from the i-th on, ``{w}`` being 96 + 8 i.
RULES: list[tuple[str, str, Callable[[int, int], int]]] = [
    ("imageMogr2/thumbnail/{w}x/format/webp", "WEBP", lambda h, w: w),
    ("imageMogr2/crop/300x200/gravity/center/quality/70", "JPEG", lambda h, w: 300),
    ("imageMogr2/thumbnail/!25p/rotate/90/format/png", "PNG", lambda h, w: round(h / 4)),
    ("imageMogr2/thumbnail/240x/blur/4x2", "JPEG", lambda h, w: 240),
    ("imageMogr2%2Fthumbnail%2F180x%2Fformat%2Fwebp=", "WEBP", lambda h, w: 180),  # the SDK's ci_get_object form
    ("imageMogr2/thumbnail/320x/strip/interlace/1", "JPEG", lambda h, w: 320),
]


def _rule(client: int, n: int) -> tuple[str, str, int, int]:
    """The n-th rule of a client: (query, format, width for a 675 px high source, for a 600 px one)."""
    template, fmt, width = RULES[(client + n) % len(RULES)]
    w = 96 + 8 * client
    return template.replace("{w}", str(w)), fmt, width(675, w), width(600, w)


CONFIG = f"""
default_bucket = "{PHOTOS}"
fsync = false
"""


def _start(tmp: Path, name: str) -> Server:
    return start_configured(tmp / name, CONFIG, "--bucket", PHOTOS)


@pytest.fixture()
def load_server(tmp_path: Path) -> Iterator[Server]:
    srv = _start(tmp_path, "load")
    try:
        yield srv
    finally:
        code = stop_server(srv)
        assert code == 0, (code, srv.log_text())


def peak_rss(pid: int) -> int:
    """``VmHWM`` (peak resident set) of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


class Signer:
    """Authorization headers from the official SDK's signer (one client per thread)."""

    def __init__(self, server: Server) -> None:
        self.client = make_client(server, "ip")

    def __call__(self, method: str, key: str) -> str:
        return str(self.client.get_auth(Method=method, Bucket=PHOTOS, Key=key, Params={}, SignHost=False))


# -- 32 clients, mixed requests -------------------------------------------------------------------------


Answer = tuple[str, int, str, str, bytes]
"""(what, status, Content-Type, ETag, body): the part of an answer that must not depend on
the load (request ids, dates and the Last-Modified of a fresh upload do)."""


def _error_code(body: bytes) -> str:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error", body[:200]
    code = root.findtext("Code")
    assert code, body[:200]
    return code


class Client:
    """One client: a keep-alive connection, its own keys, a fixed request sequence."""

    def __init__(self, server: Server, index: int) -> None:
        self.server = server
        self.index = index
        self.sign = Signer(server)
        self.conn = http.client.HTTPConnection(server.host, server.port, timeout=120)
        self.slowdowns = 0

    def close(self) -> None:
        self.conn.close()

    def send(self, method: str, key: str, query: str = "", body: bytes | None = None) -> tuple[int, Any, bytes]:
        path = f"/{PHOTOS}/{quote(key)}" + (f"?{query}" if query else "")
        for _ in range(MAX_RETRIES):
            headers = {"Authorization": self.sign(method, key)}
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server may close a keep-alive connection between requests; never mid-answer
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.server.host, self.server.port, timeout=120)
                continue
            if response.status == 503:
                # the documented answer past capacity: SlowDown with Retry-After, nothing done
                assert _error_code(data) == "SlowDown", data[:300]
                retry_after = response.getheader("Retry-After")
                assert retry_after is not None and retry_after.isdigit(), response.getheaders()
                self.slowdowns += 1
                time.sleep(min(int(retry_after), 2) * (0.5 + (self.index % 8) / 16))
                continue
            return response.status, response, data
        raise AssertionError(f"{method} {path}: still refused after {MAX_RETRIES} tries")

    def run(self, source: bytes) -> list[Answer]:
        i = self.index
        key = f"load/client-{i:02d}/photo {i}.jpg"
        out: list[Answer] = []

        def keep(what: str, status: int, response: Any, body: bytes) -> None:
            if status >= 400:
                body = _error_code(body).encode()  # the XML carries this request's id
            ctype = response.getheader("Content-Type") or ""
            etag = response.getheader("ETag") or ""
            length = response.getheader("Content-Length")
            if what != "head" and length is not None:
                assert int(length) == len(body) or status >= 400, (what, length, len(body))
            out.append((what, status, ctype, etag, body))

        keep("put", *self.send("PUT", key, body=source))
        for n in range(3):
            rule = _rule(i, n)[0]
            keep(rule, *self.send("GET", key, rule))
        status, response, body = self.send("HEAD", key)
        assert body == b""
        keep("head", status, response, response.getheader("Content-Length", "").encode())
        keep("imageInfo", *self.send("GET", key, "imageInfo"))
        keep("plain", *self.send("GET", key))
        keep("delete", *self.send("DELETE", key))
        keep("gone", *self.send("GET", key, "imageMogr2/thumbnail/100x"))
        return out


def _sources() -> list[bytes]:
    return [(SAMPLES / "kleiber.jpg").read_bytes(), (SAMPLES / "ladybird.jpg").read_bytes()]


def _run_clients(server: Server, concurrent: bool) -> tuple[dict[int, list[Answer]], int]:
    sources = _sources()
    clients = [Client(server, i) for i in range(CLIENTS)]
    results: dict[int, list[Answer]] = {}
    try:
        if concurrent:
            start = threading.Barrier(CLIENTS)

            def go(client: Client) -> list[Answer]:
                start.wait(30)
                return client.run(sources[client.index % 2])

            with ThreadPoolExecutor(CLIENTS) as pool:
                futures = {c.index: pool.submit(go, c) for c in clients}
                for index, future in futures.items():
                    results[index] = future.result(timeout=240)
        else:
            for client in clients:
                results[client.index] = client.run(sources[client.index % 2])
    finally:
        for client in clients:
            client.close()
    return results, sum(c.slowdowns for c in clients)


def _check_sequential(results: dict[int, list[Answer]]) -> None:
    """The reference run itself is right: what each answer must be."""
    from PIL import Image

    sources = _sources()
    for i, answers in results.items():
        source = sources[i % 2]
        what = [a[0] for a in answers]
        status = {a[0]: a[1] for a in answers}
        by = {a[0]: a for a in answers}
        assert len(answers) == 9, what
        assert status["put"] == 200 and by["put"][3] == f'"{hashlib.md5(source).hexdigest()}"'
        for n, (name, code, ctype, etag, body) in enumerate(answers[1:4]):
            rule, fmt, width_kleiber, width_ladybird = _rule(i, n)
            assert name == rule and code == 200, (name, body[:200])
            assert etag == f'"{hashlib.md5(body).hexdigest()}"'
            with Image.open(io.BytesIO(body)) as im:
                assert (im.format, ctype) == (fmt, Image.MIME[fmt]), (name, ctype, im.format)
                assert im.width == (width_kleiber if i % 2 == 0 else width_ladybird), (name, im.size)
        assert status["head"] == 200 and by["head"][4] == str(len(source)).encode()
        assert status["imageInfo"] == 200 and by["imageInfo"][2] == "application/json"
        assert status["plain"] == 200 and by["plain"][4] == source
        assert status["delete"] == 204
        assert status["gone"] == 404 and by["gone"][4] == b"NoSuchKey"


def test_32_concurrent_clients_answer_as_when_alone(load_server: Server) -> None:
    sequential, refused_alone = _run_clients(load_server, concurrent=False)
    assert refused_alone == 0  # one request at a time never meets a full waiting line
    _check_sequential(sequential)
    concurrent, slowdowns = _run_clients(load_server, concurrent=True)
    for i in range(CLIENTS):
        for alone, loaded in zip(sequential[i], concurrent[i], strict=True):
            assert loaded == alone, (i, alone[:4], loaded[:4])
    # nothing of the clients is left: every key was deleted, no staging file remains
    leftovers = [p for p in (load_server.root / PHOTOS).rglob("*") if p.is_file()]
    assert leftovers == []
    # the server logged no internal error
    assert "Traceback" not in load_server.log_text() and "internal error" not in load_server.log_text()
    print(f"32 clients: {slowdowns} answers were 503 SlowDown (retried after Retry-After)")


# -- 64 uploads of 30 MB ------------------------------------------------------------------------------


@pytest.mark.slow  # 1.9 GB through the server; independent of the imaging backend, so CI's no-libvips pass skips it
def test_64_concurrent_30mb_uploads_stream_to_disk(load_server: Server) -> None:
    block = os.urandom(UPLOAD_BYTES - 32)
    base = hashlib.md5(block)
    tails = [f"upload {i:04d} ".encode().ljust(32, b".") for i in range(UPLOADS)]
    digests = []
    for tail in tails:
        h = base.copy()
        h.update(tail)
        digests.append(h.hexdigest())
    start = threading.Barrier(UPLOADS)
    chunk = 256 * 1024
    view = memoryview(block)

    def upload(i: int) -> tuple[int, str, bytes]:
        key = f"big/upload-{i:02d}.bin"
        conn = http.client.HTTPConnection(load_server.host, load_server.port, timeout=180)
        try:
            conn.putrequest("PUT", f"/{PHOTOS}/{key}", skip_accept_encoding=True)
            conn.putheader("Authorization", Signer(load_server)("PUT", key))
            conn.putheader("Content-Length", str(UPLOAD_BYTES))
            conn.putheader("Content-Type", "application/octet-stream")
            conn.endheaders()
            start.wait(60)
            for offset in range(0, len(block), chunk):
                conn.send(view[offset : offset + chunk])
            conn.send(tails[i])
            response = conn.getresponse()
            return response.status, response.getheader("ETag") or "", response.read()
        finally:
            conn.close()

    began = time.monotonic()
    with ThreadPoolExecutor(UPLOADS) as pool:
        answers = list(pool.map(upload, range(UPLOADS), timeout=240))
    elapsed = time.monotonic() - began
    peak = peak_rss(load_server.process.pid)
    failures = [(i, status, body[:200]) for i, (status, _, body) in enumerate(answers) if status != 200]
    assert failures == []
    assert [etag for _, etag, _ in answers] == [f'"{d}"' for d in digests]
    bucket = load_server.root / PHOTOS
    stored = sorted(p for p in bucket.rglob("*") if p.is_file())
    assert [p.relative_to(bucket).as_posix() for p in stored] == [f"big/upload-{i:02d}.bin" for i in range(UPLOADS)]
    for i, path in enumerate(stored):
        assert path.stat().st_size == UPLOAD_BYTES
        with open(path, "rb") as handle:
            handle.seek(UPLOAD_BYTES - 32)
            assert handle.read() == tails[i]
    # one object read back whole through the server
    signer = Signer(load_server)
    conn = http.client.HTTPConnection(load_server.host, load_server.port, timeout=60)
    try:
        conn.request(
            "GET", f"/{PHOTOS}/big/upload-07.bin", headers={"Authorization": signer("GET", "big/upload-07.bin")}
        )
        response = conn.getresponse()
        assert response.status == 200 and hashlib.md5(response.read()).hexdigest() == digests[7]
    finally:
        conn.close()
    assert peak <= RSS_LIMIT, f"server peak RSS {peak / 2**20:.0f} MiB over 1.5 GB"
    for path in stored:  # free the 1.9 GB now rather than at the end of the session
        path.unlink()
    print(f"64 x 30 MB uploads: {elapsed:.1f} s, server peak RSS {peak / 2**20:.0f} MiB")
