"""The server's parts without a server: the v5 signature checked against the official SDK's
signer, addressing, the SDK's query encoding, the config file, the image pool's bounds, and the
streaming methods of ``Store``."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from qcloud_cos import CosConfig
from qcloud_cos.cos_auth import CosS3Auth

from ci_engine.errors import AccessDeniedError
from ci_engine.server.addressing import ci_path, locate
from ci_engine.server.app import ImagePool
from ci_engine.server.auth import find_signature, verify
from ci_engine.server.config import BucketConfig, ConfigError, HotlinkConfig, ServerConfig, load_toml
from ci_engine.server.errors import (
    ExpiredError,
    InvalidAccessKeyIdError,
    SignatureDoesNotMatchError,
    SlowDownError,
    TimeBudgetError,
)
from ci_engine.server.objects import check_hotlink, processing_query
from ci_engine.store import LocalStore, MemoryStore

SID, SKEY = "AKIDunit", "unit-secret"
HOST = "photos-1250000000.cos.ap-guangzhou.myqcloud.com"


def sdk_signed(method: str, key: str, params: dict[str, str], headers: dict[str, str]) -> requests.PreparedRequest:
    """A request prepared and signed exactly as the SDK does it."""
    conf = CosConfig(Region="ap-guangzhou", SecretId=SID, SecretKey=SKEY, Scheme="http")
    url = conf.uri(bucket="photos-1250000000", path=key)
    req = requests.Request(method, url, params=params, headers=headers, data=b"body" if method == "PUT" else None)
    signed: requests.PreparedRequest = CosS3Auth(conf, key, params=params)(req.prepare())
    return signed


def check(prepared: requests.PreparedRequest, *, key: str | None = None, **changes: Any) -> str:
    parts = urlsplit(prepared.url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    headers = {k.lower(): v for k, v in prepared.headers.items()}
    headers.setdefault("host", parts.netloc)
    target = locate(parts.path, headers["host"])
    sig = find_signature(headers.get("authorization"), query)
    assert sig is not None
    args: dict[str, Any] = {
        "credentials": {SID: SKEY},
        "method": prepared.method,
        "paths": target.sign_paths,
        "query": query,
        "headers": headers,
        "now": time.time(),
    }
    args.update(changes)
    return verify(sig, **args)


@pytest.mark.parametrize(
    ("method", "key", "params", "headers"),
    [
        ("GET", "a.jpg", {}, {}),
        ("GET", "dir/in 1+2 é.jpg", {"imageMogr2/thumbnail/100x|imageMogr2/rotate/90": ""}, {}),
        ("PUT", "shop/42.jpg", {}, {"Pic-Operations": json.dumps({"rules": [{"fileid": "ü.png", "rule": "x"}]})}),
        ("GET", "a.jpg", {"response-content-type": "image/png", "x": "a b&c"}, {"x-cos-meta-Tag": "A/B"}),
    ],
)
def test_sdk_signatures_verify(method: str, key: str, params: dict[str, str], headers: dict[str, str]) -> None:
    if "Pic-Operations" in headers:  # requests sends str headers as Latin-1; the SDK's bytes are UTF-8
        headers = {k: v.encode("utf-8").decode("latin-1") for k, v in headers.items()}
    prepared = sdk_signed(method, key, params, headers)
    assert check(prepared) == SID


def test_signature_failures() -> None:
    prepared = sdk_signed("GET", "a.jpg", {"imageInfo": ""}, {})
    with pytest.raises(SignatureDoesNotMatchError):
        check(prepared, method="PUT")
    with pytest.raises(SignatureDoesNotMatchError):
        check(prepared, paths=("/b.jpg",))
    with pytest.raises(SignatureDoesNotMatchError):
        check(prepared, credentials={SID: "other"})
    with pytest.raises(InvalidAccessKeyIdError):
        check(prepared, credentials={"AKIDother": SKEY})
    with pytest.raises(ExpiredError):
        check(prepared, now=time.time() + 20_000)
    with pytest.raises(SignatureDoesNotMatchError):  # a signed parameter removed
        check(prepared, query=[])


def test_addressing() -> None:
    t = locate("/a/b%20c.jpg", HOST)
    expected = ("cos", "photos-1250000000", "a/b c.jpg", "/a/b c.jpg", False)
    assert (t.kind, t.bucket, t.key, t.path, t.path_style) == expected
    t = locate("http://photos-1250000000.ci.ap-guangzhou.myqcloud.com/picbucket", "ignored.example")
    assert (t.kind, t.bucket, t.path) == ("ci", "photos-1250000000", "/picbucket")
    t = locate("http://ci.ap-guangzhou.myqcloud.com/picbucket", "")
    assert (t.kind, t.bucket, t.region) == ("service", None, "ap-guangzhou")
    t = locate("/photos-1250000000/x/y.jpg", "127.0.0.1:8080")
    expected = ("cos", "photos-1250000000", "x/y.jpg", True, "/x/y.jpg")
    assert (t.kind, t.bucket, t.key, t.path_style, t.raw_path) == expected
    assert t.sign_paths == ("/x/y.jpg", "/photos-1250000000/x/y.jpg")
    t = locate("/picbucket", "127.0.0.1:8080")
    assert (t.kind, t.bucket) == ("service", None)
    assert ci_path("/picbucket") and ci_path("/pic_jobs/c123") and not ci_path("/jobs/2024/a.jpg")
    assert locate("/", f"{HOST}:80").bucket == "photos-1250000000"


def test_processing_query_undoes_the_sdk_encoding() -> None:
    assert processing_query("imageMogr2%2Fthumbnail%2F100x=") == "imageMogr2%2Fthumbnail%2F100x"
    assert processing_query("q-ak=x&imageInfo=&exif=") == "q-ak=x&imageInfo&exif"
    # raw strings keep their Base64 padding; other parameters keep their '='
    raw = "watermark/2/text/6IW-6K6v5LqR=&response-content-type="
    assert processing_query(raw) == raw


def test_hotlink_rules() -> None:
    cfg = BucketConfig("b-1", hotlink=HotlinkConfig("deny", ("*.bad.com",), allow_empty=True))
    check_hotlink(cfg, None)
    check_hotlink(cfg, "https://good.com/")
    with pytest.raises(AccessDeniedError):
        check_hotlink(cfg, "https://x.bad.com/page")


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[keys]]\nsecret_id = "a"\nsecret_key = "b"\n[buckets."p-1"]\nseparators = "-!"\nprotection = true\n'
        'hotlink = { mode = "deny", referers = ["x.com"] }\n'
    )
    settings = load_toml(path)
    config = ServerConfig(root=tmp_path, **settings)
    config.check_auth()
    assert config.credentials == {"a": "b"}
    assert config.bucket("p-1").protection and config.bucket("p-1").hotlink.referers == ("x.com",)
    assert config.bucket("other-2").separators == "!"
    path.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_toml(path)
    with pytest.raises(ConfigError, match="--anonymous"):
        ServerConfig(root=tmp_path).check_auth()


def test_image_pool_bounds() -> None:
    release = threading.Event()

    async def main() -> None:
        pool = ImagePool(workers=1, pending=1, timeout=0.5)
        first = asyncio.ensure_future(pool.run(release.wait, 5))
        second = asyncio.ensure_future(pool.run(lambda: 42))
        await asyncio.sleep(0.05)
        assert pool.admitted == 2
        with pytest.raises(SlowDownError) as info:
            await pool.run(lambda: 0)
        assert (info.value.status, info.value.code) == (503, "SlowDown")
        with pytest.raises(TimeBudgetError):
            await first  # still running after the budget: 500, and its worker stays taken
        with pytest.raises(SlowDownError):
            await second  # never got a worker within the budget: 503, and it will not run
        assert pool.admitted == 2
        release.set()
        await asyncio.sleep(0.1)
        assert pool.admitted == 0
        assert await pool.run(lambda: 42) == 42
        pool.close()

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_store_put_file_consumes_and_replaces(tmp_path: Path, kind: str) -> None:
    store = LocalStore(tmp_path / "s", fsync=False) if kind == "local" else MemoryStore()
    src = tmp_path / "upload.bin"
    src.write_bytes(b"first")
    assert store.put_file("a/b.bin", src) == "8b04d5e3775d298e78455efc5ca404d5"
    assert not src.exists()
    src.write_bytes(b"second")
    store.put_file("a/b.bin", src)
    assert store.get("a/b.bin") == b"second"
    with store.open("a/b.bin") as handle:
        assert handle.read() == b"second"
    info = store.head("a/b.bin")
    assert (info.key, info.size, info.etag) == ("a/b.bin", 6, "a9f0e61a137d86aa9db53465e0801612")
    src.write_bytes(b"x")
    with pytest.raises(Exception):  # noqa: B017 - a bad key, whatever the store's exact error
        store.put_file("../escape", src)
    assert not src.exists()


def test_default_bucket_of_bucketless_ip_mode_calls(tmp_path: Path) -> None:
    from ci_engine.server import create_app
    from ci_engine.server.ci_api import default_bucket
    from ci_engine.server.errors import InvalidRequestError

    app = create_app(ServerConfig(root=tmp_path, anonymous=True))
    try:
        app.storage.create("one-1250000000")
        assert default_bucket(app) == "one-1250000000"  # the only bucket
        app.storage.create("two-1250000000")
        with pytest.raises(InvalidRequestError, match="default_bucket"):
            default_bucket(app)
        chosen = create_app(ServerConfig(root=tmp_path, anonymous=True, default_bucket="two-1250000000"))
        assert default_bucket(chosen) == "two-1250000000"
        chosen.shutdown()
    finally:
        app.shutdown()
