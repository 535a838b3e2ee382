"""Conditional and range requests on a real ``ci-engine serve``: 304 and 206 / 416 through the
official SDK (``get_object`` with ``IfNoneMatch``, ``IfModifiedSince``, ``Range``) and raw
HTTP, on plain and processed downloads; ``Cache-Control`` per bucket from the config."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.server.conftest import REPO, Server, make_client, stop_server
from tests.server.origin_support import CACHED_BUCKET, raw, serve_with

PHOTO = (REPO / "docs" / "samples" / "kleiber.jpg").read_bytes()
PLAIN = "plain-1250000000"
CACHE_CONTROL = "public, max-age=3600"
RULE = "imageMogr2/thumbnail/150x"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = f"""
workers = 2
fsync = false

[buckets."{CACHED_BUCKET}"]
cache_control = "{CACHE_CONTROL}"

[buckets."{PLAIN}"]
"""
    base = tmp_path_factory.mktemp("conditional")
    srv = serve_with(base, config, "--cache-dir", str(base / "cache"))
    try:
        client = make_client(srv, "ip")
        for bucket in (CACHED_BUCKET, PLAIN):
            client.put_object(Bucket=bucket, Key="photo.jpg", Body=PHOTO)
        yield srv
    finally:
        assert stop_server(srv) == 0, srv.log_text()


def _status(response: dict[str, Any]) -> int:
    return int(response["Body"]._rt.status_code)


ETAG = f'"{hashlib.md5(PHOTO).hexdigest()}"'


def test_sdk_if_none_match_304_and_200(server: Server) -> None:
    client = make_client(server, "ip")
    response = client.get_object(Bucket=PLAIN, Key="photo.jpg", IfNoneMatch=ETAG)
    assert _status(response) == 304
    assert response["ETag"] == ETAG
    assert response["Body"].get_raw_stream().read() == b""
    response = client.get_object(Bucket=PLAIN, Key="photo.jpg", IfNoneMatch='"0123"')
    assert _status(response) == 200
    assert response["Body"].get_raw_stream().read() == PHOTO


def test_sdk_if_modified_since(server: Server) -> None:
    client = make_client(server, "ip")
    modified = client.head_object(Bucket=PLAIN, Key="photo.jpg")["Last-Modified"]
    response = client.get_object(Bucket=PLAIN, Key="photo.jpg", IfModifiedSince=modified)
    assert _status(response) == 304
    response = client.get_object(Bucket=PLAIN, Key="photo.jpg", IfModifiedSince="Sat, 01 Jan 2000 00:00:00 GMT")
    assert _status(response) == 200
    assert response["Body"].get_raw_stream().read() == PHOTO


def test_sdk_range_206(server: Server) -> None:
    client = make_client(server, "ip")
    response = client.get_object(Bucket=PLAIN, Key="photo.jpg", Range="bytes=100-1123")
    assert _status(response) == 206
    assert response["Content-Range"] == f"bytes 100-1123/{len(PHOTO)}"
    assert int(response["Content-Length"]) == 1024
    assert response["Body"].get_raw_stream().read() == PHOTO[100:1124]
    response = client.get_object(Bucket=PLAIN, Key="photo.jpg", Range="bytes=-10")
    assert response["Body"].get_raw_stream().read() == PHOTO[-10:]
    assert response["Content-Range"] == f"bytes {len(PHOTO) - 10}-{len(PHOTO) - 1}/{len(PHOTO)}"


def test_raw_range_and_416(server: Server) -> None:
    n = len(PHOTO)
    status, headers, data = raw(server, "GET", f"/{PLAIN}/photo.jpg", {"Range": f"bytes={n - 5}-"})
    assert (status, data, headers["content-range"]) == (206, PHOTO[-5:], f"bytes {n - 5}-{n - 1}/{n}")
    status, headers, data = raw(server, "GET", f"/{PLAIN}/photo.jpg", {"Range": f"bytes=0-{n + 1000}"})
    assert (status, data, headers["content-range"]) == (206, PHOTO, f"bytes 0-{n - 1}/{n}")
    for outside in (f"bytes={n}-", f"bytes={n + 10}-{n + 20}", "bytes=-0"):
        status, headers, _ = raw(server, "GET", f"/{PLAIN}/photo.jpg", {"Range": outside})
        assert status == 416, outside
        assert headers["content-range"] == f"bytes */{n}"
    status, _, data = raw(server, "GET", f"/{PLAIN}/photo.jpg", {"Range": "pages=1-2"})
    assert (status, data) == (200, PHOTO)


def test_raw_plain_conditional(server: Server) -> None:
    status, headers, _ = raw(server, "GET", f"/{PLAIN}/photo.jpg")
    assert status == 200
    assert "cache-control" not in headers
    status, headers304, data = raw(server, "GET", f"/{PLAIN}/photo.jpg", {"If-None-Match": ETAG})
    assert (status, data, headers304["etag"]) == (304, b"", ETAG)
    status, _, _ = raw(server, "GET", f"/{PLAIN}/photo.jpg", {"If-Modified-Since": headers["last-modified"]})
    assert status == 304
    status, _, _ = raw(server, "GET", f"/{PLAIN}/photo.jpg", {"If-None-Match": '"other"'})
    assert status == 200


def test_processed_etag_last_modified_cache_control_and_304(server: Server) -> None:
    status, headers, data = raw(server, "GET", f"/{CACHED_BUCKET}/photo.jpg?{RULE}")
    assert status == 200
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (150, 84)
    etag = f'"{hashlib.md5(data).hexdigest()}"'
    assert headers["etag"] == etag
    assert headers["cache-control"] == CACHE_CONTROL
    plain = raw(server, "HEAD", f"/{CACHED_BUCKET}/photo.jpg")[1]
    assert headers["last-modified"] == plain["last-modified"]
    assert plain["cache-control"] == CACHE_CONTROL
    status, h304, body = raw(server, "GET", f"/{CACHED_BUCKET}/photo.jpg?{RULE}", {"If-None-Match": etag})
    assert (status, body, h304["etag"], h304["cache-control"]) == (304, b"", etag, CACHE_CONTROL)
    # the original's ETag is not the processed output's
    status, _, _ = raw(server, "GET", f"/{CACHED_BUCKET}/photo.jpg?{RULE}", {"If-None-Match": ETAG})
    assert status == 200
    status, _, _ = raw(
        server, "GET", f"/{CACHED_BUCKET}/photo.jpg?{RULE}", {"If-Modified-Since": headers["last-modified"]}
    )
    assert status == 304
    status, _, _ = raw(
        server, "GET", f"/{CACHED_BUCKET}/photo.jpg?{RULE}", {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
    )
    assert status == 200


def test_sdk_processed_if_none_match(server: Server, tmp_path: Path) -> None:
    client = make_client(server, "ip")
    first = client.get_object(Bucket=CACHED_BUCKET, Key="photo.jpg", ResponseCacheControl="no-cache")
    assert first["Cache-Control"] == "no-cache"  # the response-* override wins over the bucket's
    dest = tmp_path / "out.jpg"
    whole = client.ci_get_object(Bucket=CACHED_BUCKET, Key="photo.jpg", DestImagePath=str(dest), Rule=RULE)
    data = dest.read_bytes()
    assert whole["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (150, 84)
    again = client.ci_get_object(
        Bucket=CACHED_BUCKET, Key="photo.jpg", DestImagePath=str(dest), Rule=RULE, IfNoneMatch=whole["ETag"]
    )
    assert again["ETag"] == whole["ETag"]
    assert "Content-Type" not in again
    assert dest.read_bytes() == b""  # 304: no body
