"""Back-to-source: a real origin HTTP server on 127.0.0.1 and a real ``ci-engine serve`` with
``--origin``; the official SDK and raw HTTP as clients."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from PIL import Image

from tests.server.conftest import REPO, Server, make_client, stop_server
from tests.server.origin_support import (
    ORIGIN_BUCKET,
    Origin,
    body,
    cut,
    raw,
    redirect,
    serve_with,
    stall,
    start_origin,
)

PHOTO = (REPO / "docs" / "samples" / "kleiber.jpg").read_bytes()
OTHER = (REPO / "docs" / "samples" / "ladybird.jpg").read_bytes()
READ_TIMEOUT = 1.0
REVALIDATE = "revalidate-1250000000"


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin()
    yield o
    o.close()


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[Origin]:
    """Another host the origin redirects to: it must never be asked."""
    o = start_origin()
    o.routes["/x.jpg"] = body(PHOTO)
    yield o
    o.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, origin: Origin) -> Iterator[Server]:
    config = f"""
workers = 2
max_pending = 64
fsync = false
origin_connect_timeout = 2
origin_read_timeout = {READ_TIMEOUT}

[buckets."{REVALIDATE}"]
origin = "{origin.url}/fresh"
origin_mode = "revalidate"
"""
    srv = serve_with(
        tmp_path_factory.mktemp("origin"),
        config,
        "--origin",
        f"{ORIGIN_BUCKET}={origin.url}/src",
    )
    try:
        yield srv
    finally:
        assert stop_server(srv) == 0, srv.log_text()


def _stored(server: Server, bucket: str) -> list[str]:
    directory = server.root / bucket
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_concurrent_misses_fetch_once_then_stored_and_served(server: Server, origin: Origin) -> None:
    origin.routes["/src/a/photo.jpg"] = body(PHOTO, delay=0.5)

    def get(_: int) -> tuple[int, bytes]:
        status, _headers, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/a/photo.jpg")
        return status, data

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(get, range(16)))
    assert [s for s, _ in answers] == [200] * 16
    assert all(d == PHOTO for _, d in answers)
    assert origin.hits["/src/a/photo.jpg"] == 1
    assert (server.root / ORIGIN_BUCKET / "a" / "photo.jpg").read_bytes() == PHOTO
    # stored: a later GET does not ask the origin again, and the SDK sees the object
    client = make_client(server, "ip")
    head = client.head_object(Bucket=ORIGIN_BUCKET, Key="a/photo.jpg")
    assert head["ETag"] == f'"{hashlib.md5(PHOTO).hexdigest()}"'
    assert int(head["Content-Length"]) == len(PHOTO)
    assert origin.hits["/src/a/photo.jpg"] == 1


def test_processed_get_on_a_miss(server: Server, origin: Origin) -> None:
    origin.routes["/src/thumb-src.jpg"] = body(PHOTO)
    status, headers, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/thumb-src.jpg?imageMogr2/thumbnail/100x")
    assert status == 200
    assert headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "JPEG"
        assert im.size == (100, 56)
    assert origin.hits["/src/thumb-src.jpg"] == 1
    assert (server.root / ORIGIN_BUCKET / "thumb-src.jpg").read_bytes() == PHOTO


def test_origin_404_is_no_such_key(server: Server, origin: Origin) -> None:
    from qcloud_cos.cos_exception import CosServiceError

    client = make_client(server, "ip")
    with pytest.raises(CosServiceError) as caught:
        client.get_object(Bucket=ORIGIN_BUCKET, Key="nowhere.jpg")
    assert caught.value.get_status_code() == 404
    assert caught.value.get_error_code() == "NoSuchKey"
    assert origin.hits["/src/nowhere.jpg"] == 1
    assert "nowhere.jpg" not in _stored(server, ORIGIN_BUCKET)


def test_origin_stall_is_504_within_the_timeout_and_nothing_stored(server: Server, origin: Origin) -> None:
    origin.routes["/src/stall.jpg"] = stall(6.0)
    origin.routes["/src/stall-body.jpg"] = stall(6.0, after_headers=True)
    for key in ("stall.jpg", "stall-body.jpg"):
        began = time.monotonic()
        status, headers, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/{key}")
        took = time.monotonic() - began
        assert status == 504, data
        assert b"<Code>GatewayTimeout</Code>" in data
        assert headers["content-type"].startswith("application/xml")
        assert took < READ_TIMEOUT + 2.0, took
        assert key not in _stored(server, ORIGIN_BUCKET)
    assert not [name for name in _stored(server, ORIGIN_BUCKET) if name.startswith(".ci-tmp")]


def test_cut_body_is_502_and_nothing_stored(server: Server, origin: Origin) -> None:
    origin.routes["/src/cut.jpg"] = cut(50_000, PHOTO[:1000])
    status, _, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/cut.jpg")
    assert status == 502
    assert b"<Code>BadGateway</Code>" in data
    assert "cut.jpg" not in _stored(server, ORIGIN_BUCKET)
    assert not [name for name in _stored(server, ORIGIN_BUCKET) if name.startswith(".ci-tmp")]


def test_origin_error_status_is_502(server: Server, origin: Origin) -> None:
    origin.routes["/src/broken.jpg"] = body(b"oops", status=500, content_type="text/plain")
    status, _, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/broken.jpg")
    assert status == 502
    assert b"<Code>BadGateway</Code>" in data
    assert b"answered 500" in data


def test_redirect_to_another_host_is_not_followed(server: Server, origin: Origin, elsewhere: Origin) -> None:
    origin.routes["/src/moved.jpg"] = redirect(f"http://localhost:{elsewhere.port}/x.jpg")
    status, _, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/moved.jpg")
    assert status == 502
    assert b"not followed" in data
    assert sum(elsewhere.hits.values()) == 0
    assert "moved.jpg" not in _stored(server, ORIGIN_BUCKET)


def test_redirect_within_the_origin_is_followed(server: Server, origin: Origin) -> None:
    origin.routes["/src/old.jpg"] = redirect("/src/new.jpg")
    origin.routes["/src/new.jpg"] = body(OTHER)
    status, _, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/old.jpg")
    assert status == 200
    assert data == OTHER
    assert (server.root / ORIGIN_BUCKET / "old.jpg").read_bytes() == OTHER


def test_head_does_not_pull(server: Server, origin: Origin) -> None:
    origin.routes["/src/headonly.jpg"] = body(PHOTO)
    status, _, _ = raw(server, "HEAD", f"/{ORIGIN_BUCKET}/headonly.jpg")
    assert status == 404
    assert origin.hits["/src/headonly.jpg"] == 0


def test_revalidate_mode_replaces_a_changed_object(server: Server, origin: Origin) -> None:
    origin.routes["/fresh/r.jpg"] = body(PHOTO)
    status, _, data = raw(server, "GET", f"/{REVALIDATE}/r.jpg")
    assert (status, data) == (200, PHOTO)
    assert "if-modified-since" not in origin.headers["/fresh/r.jpg"]

    def not_modified(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(304)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    origin.routes["/fresh/r.jpg"] = not_modified
    status, _, data = raw(server, "GET", f"/{REVALIDATE}/r.jpg")
    assert (status, data) == (200, PHOTO)
    assert "if-modified-since" in origin.headers["/fresh/r.jpg"]
    origin.routes["/fresh/r.jpg"] = body(OTHER)
    status, _, data = raw(server, "GET", f"/{REVALIDATE}/r.jpg")
    assert (status, data) == (200, OTHER)
    # the origin down: the stored copy is served
    origin.routes["/fresh/r.jpg"] = body(b"", status=503)
    status, _, data = raw(server, "GET", f"/{REVALIDATE}/r.jpg")
    assert (status, data) == (200, OTHER)
    assert origin.hits["/fresh/r.jpg"] == 4


def test_origin_flag_and_config_are_checked(tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "ci_engine", "serve", "--root", str(tmp_path), "--anonymous", "--port", "0"]
    for bad in ("mirror-1250000000=ftp://x/", "nobucket=http://x/", "mirror-1250000000=http://x/?q=1"):
        done = subprocess.run([*cmd, "--origin", bad], capture_output=True, text=True, timeout=60, cwd=REPO)
        assert done.returncode == 2, (bad, done.stderr)
        assert "origin" in done.stderr


def test_origin_object_over_the_input_limit_is_502_and_nothing_stored(server: Server, origin: Origin) -> None:
    limit = 32 * 1024 * 1024

    def declared(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(limit + 1))
        handler.end_headers()
        handler.wfile.write(PHOTO)  # the rest never comes: refused on the header
        handler.close_connection = True

    def chunked(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        block = b"\0" * (1 << 20)
        try:
            for _ in range(limit // len(block) + 2):
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            handler.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass  # the server hung up once over the limit
        handler.close_connection = True

    origin.routes["/src/huge.jpg"] = declared
    origin.routes["/src/huge-chunked.jpg"] = chunked
    for key in ("huge.jpg", "huge-chunked.jpg"):
        status, _, data = raw(server, "GET", f"/{ORIGIN_BUCKET}/{key}")
        assert status == 502, data
        assert b"over the input limit" in data
        assert key not in _stored(server, ORIGIN_BUCKET)
    assert not [name for name in _stored(server, ORIGIN_BUCKET) if name.startswith(".ci-tmp")]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('origin_mode = "sometimes"', "origin_mode must be missing or revalidate"),
        ('origin = "file:///etc/"', "origin must be an http:// or https:// URL"),
        ('cache_control = 3', "cache_control: expected str"),
    ],
)
def test_bucket_origin_settings_in_the_config_file_are_checked(tmp_path: Path, setting: str, message: str) -> None:
    import subprocess
    import sys

    config = tmp_path / "server.toml"
    config.write_text(f'[buckets."{ORIGIN_BUCKET}"]\n{setting}\n')
    cmd = [sys.executable, "-m", "ci_engine", "serve", "--root", str(tmp_path / "root"), "--anonymous"]
    done = subprocess.run(
        [*cmd, "--port", "0", "--config", str(config)], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
