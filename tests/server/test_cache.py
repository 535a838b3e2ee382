"""The processed-result cache of ``ci-engine serve --cache-dir``: a real server, the official
SDK for uploads and deletes, raw HTTP for processed downloads."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

import ci_engine
from tests.server.conftest import REGION, REPO, Server, make_client, stop_server
from tests.server.origin_support import CACHED_BUCKET, raw, serve_with

PHOTO = (REPO / "docs" / "samples" / "kleiber.jpg").read_bytes()  # 1200 x 675
OTHER = (REPO / "docs" / "samples" / "ladybird.jpg").read_bytes()  # 960 x 600
CACHE_SIZE = 60_000
CONFIG = f"""
workers = 2
max_pending = 64
fsync = false

[buckets."{CACHED_BUCKET}"]
separators = "!"
"""


def _start(base: Path) -> Server:
    return serve_with(
        base,
        CONFIG,
        "--bucket",
        CACHED_BUCKET,
        "--cache-dir",
        str(base / "cache"),
        "--cache-size",
        str(CACHE_SIZE),
    )


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def server(base: Path) -> Iterator[Server]:
    srv = _start(base)
    try:
        yield srv
    finally:
        assert stop_server(srv) == 0, srv.log_text()


def _entries(base: Path) -> list[Path]:
    return [p for p in (base / "cache").rglob("*") if p.is_file() and not p.name.startswith(".tmp-")]


def _get(server: Server, key: str, rule: str) -> tuple[int, dict[str, str], bytes]:
    return raw(server, "GET", f"/{CACHED_BUCKET}/{key}?{rule}")


def _size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size


def test_hit_bytes_identical_to_the_miss(server: Server) -> None:
    client = make_client(server, "ip")
    client.put_object(Bucket=CACHED_BUCKET, Key="same.jpg", Body=PHOTO)
    status, miss_headers, miss = _get(server, "same.jpg", "imageMogr2/thumbnail/120x/format/png")
    assert status == 200
    assert miss_headers["x-ci-cache"] == "MISS"
    status, hit_headers, hit = _get(server, "same.jpg", "imageMogr2/thumbnail/120x/format/png")
    assert status == 200
    assert hit_headers["x-ci-cache"] == "HIT"
    assert hit == miss
    assert _size(hit) == (120, 68)
    assert hit_headers["content-type"] == miss_headers["content-type"] == "image/png"
    assert hit_headers["etag"] == miss_headers["etag"] == f'"{hashlib.md5(hit).hexdigest()}"'
    assert hit_headers["last-modified"] == miss_headers["last-modified"]


def test_a_hit_is_served_from_the_entry_without_decoding(server: Server, base: Path) -> None:
    """Rewrite the one entry's bytes on disk: the next GET answers them, so the hit path read
    the entry and did not make the image again."""
    client = make_client(server, "ip")
    client.put_object(Bucket=CACHED_BUCKET, Key="probe.jpg", Body=PHOTO)
    before = {p.name for p in _entries(base)}
    status, headers, _ = _get(server, "probe.jpg", "imageMogr2/thumbnail/77x")
    assert (status, headers["x-ci-cache"]) == (200, "MISS")
    (entry,) = [p for p in _entries(base) if p.name not in before]
    blob = entry.read_bytes()
    (length,) = struct.unpack(">I", blob[4:8])
    size = len(blob) - 8 - length
    fake = (b"not an image: served from the cache " * (size // 36 + 1))[:size]
    entry.write_bytes(blob[: 8 + length] + fake)
    status, headers, data = _get(server, "probe.jpg", "imageMogr2/thumbnail/77x")
    assert (status, headers["x-ci-cache"]) == (200, "HIT")
    assert data == fake
    # an entry torn short (a crash after the rename: entries are not fsynced) is a miss, remade
    entry.write_bytes(blob[: len(blob) // 2])
    status, headers, data = _get(server, "probe.jpg", "imageMogr2/thumbnail/77x")
    assert (status, headers["x-ci-cache"]) == (200, "MISS")
    assert data == blob[8 + length :]
    assert entry.read_bytes() == blob


def test_concurrent_requests_agree(server: Server) -> None:
    client = make_client(server, "ip")
    client.put_object(Bucket=CACHED_BUCKET, Key="busy.jpg", Body=PHOTO)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _get(server, "busy.jpg", "imageMogr2/thumbnail/90x"), range(16)))
    assert {status for status, _, _ in answers} == {200}
    assert len({data for _, _, data in answers}) == 1
    assert _size(answers[0][2]) == (90, 51)
    # concurrent misses of one output make it once; the others share it (and say HIT)
    assert sorted(h["x-ci-cache"] for _, h, _ in answers) == ["HIT"] * 15 + ["MISS"]


def test_put_of_the_source_changes_the_output_at_once_and_delete_hides_it(server: Server) -> None:
    from qcloud_cos.cos_exception import CosServiceError

    client = make_client(server, "ip")
    client.put_object(Bucket=CACHED_BUCKET, Key="swap.jpg", Body=PHOTO)
    rule = "imageMogr2/thumbnail/200x"
    _get(server, "swap.jpg", rule)
    status, headers, data = _get(server, "swap.jpg", rule)
    assert (status, headers["x-ci-cache"], _size(data)) == (200, "HIT", (200, 113))
    client.put_object(Bucket=CACHED_BUCKET, Key="swap.jpg", Body=OTHER)
    status, headers, data = _get(server, "swap.jpg", rule)
    assert (status, headers["x-ci-cache"], _size(data)) == (200, "MISS", (200, 125))
    client.delete_object(Bucket=CACHED_BUCKET, Key="swap.jpg")
    status, _, data = _get(server, "swap.jpg", rule)
    assert status == 404
    assert b"<Code>NoSuchKey</Code>" in data
    with pytest.raises(CosServiceError):
        client.get_object(Bucket=CACHED_BUCKET, Key="swap.jpg")


def test_eviction_keeps_the_cache_within_its_size(server: Server, base: Path) -> None:
    client = make_client(server, "ip")
    client.put_object(Bucket=CACHED_BUCKET, Key="many.jpg", Body=PHOTO)
    for width in range(100, 400, 12):
        status, _, _ = _get(server, "many.jpg", f"imageMogr2/thumbnail/{width}x")
        assert status == 200
        total = sum(p.stat().st_size for p in _entries(base))
        assert total <= CACHE_SIZE
    assert len(_entries(base)) >= 2
    # the most recent output is still cached, the first has been evicted
    assert _get(server, "many.jpg", f"imageMogr2/thumbnail/{width}x")[1]["x-ci-cache"] == "HIT"
    assert _get(server, "many.jpg", "imageMogr2/thumbnail/100x")[1]["x-ci-cache"] == "MISS"


def _logo(color: tuple[int, int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (90, 40), color).save(out, "PNG")
    return out.getvalue()


def _mark_rule(url: str) -> str:
    encoded = base64.urlsafe_b64encode(url.encode()).decode("ascii")
    # small enough for the test's cache (CACHE_SIZE)
    return f"imageMogr2/thumbnail/300x|watermark/1/image/{encoded}/gravity/southeast/dx/12/dy/8/dissolve/80"


def test_image_watermark_on_download_reads_the_bucket_and_keys_the_cache_by_the_logo(server: Server) -> None:
    """``watermark/1`` on a download GET: the logo is the named object of the same bucket;
    the cached output is keyed by the logo's ETag too (a new logo is a miss with the new
    logo in it) and ``Last-Modified`` is the later of the photo's and the logo's."""
    client = make_client(server, "ip")
    url = f"http://{CACHED_BUCKET}.cos.{REGION}.myqcloud.com/brand/logo.png"
    rule = _mark_rule(url)
    red, blue = _logo((220, 20, 20, 255)), _logo((20, 20, 220, 160))
    client.put_object(Bucket=CACHED_BUCKET, Key="marked.jpg", Body=PHOTO)
    client.put_object(Bucket=CACHED_BUCKET, Key="brand/logo.png", Body=red)

    status, headers, first = _get(server, "marked.jpg", rule)
    assert (status, headers["x-ci-cache"]) == (200, "MISS"), first[:300]
    assert first == ci_engine.process(PHOTO, rule, resources={url: red}).data
    status, headers, again = _get(server, "marked.jpg", rule)
    assert (status, headers["x-ci-cache"], again) == (200, "HIT", first)
    logo_time = client.head_object(Bucket=CACHED_BUCKET, Key="brand/logo.png")["Last-Modified"]
    assert headers["last-modified"] == logo_time  # uploaded after the photo

    client.put_object(Bucket=CACHED_BUCKET, Key="brand/logo.png", Body=blue)
    status, headers, second = _get(server, "marked.jpg", rule)
    assert (status, headers["x-ci-cache"]) == (200, "MISS")
    assert second == ci_engine.process(PHOTO, rule, resources={url: blue}).data != first


@pytest.mark.parametrize(
    ("url", "status", "code"),
    [
        (f"http://other-1250000000.cos.{REGION}.myqcloud.com/brand/logo.png", 403, "AccessDenied"),
        (f"http://{CACHED_BUCKET}.cos.{REGION}.myqcloud.com/brand/absent.png", 404, "NoSuchKey"),
    ],
)
def test_image_watermark_on_download_refuses_other_buckets_and_missing_logos(
    server: Server, url: str, status: int, code: str
) -> None:
    client = make_client(server, "ip")
    client.put_object(Bucket=CACHED_BUCKET, Key="refused.jpg", Body=PHOTO)
    got, _, body = _get(server, "refused.jpg", _mark_rule(url))
    assert got == status, body[:300]
    assert f"<Code>{code}</Code>".encode() in body


# last: it stops the module's server
def test_restart_keeps_hits(server: Server, base: Path) -> None:
    client = make_client(server, "ip")
    client.put_object(Bucket=CACHED_BUCKET, Key="keep.jpg", Body=PHOTO)
    status, headers, first = _get(server, "keep.jpg", "imageMogr2/thumbnail/64x")
    assert (status, headers["x-ci-cache"]) == (200, "MISS")
    assert stop_server(server) == 0  # the fixture's stop at teardown is then a no-op
    again = _start(base)
    try:
        status, headers, data = _get(again, "keep.jpg", "imageMogr2/thumbnail/64x")
        assert (status, headers["x-ci-cache"]) == (200, "HIT")
        assert data == first
    finally:
        assert stop_server(again) == 0
