"""S3Store against moto's standalone server (a real HTTP S3 endpoint on 127.0.0.1), and
against an endpoint that refuses or stalls."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from ci_engine.errors import CIError, InvalidArgumentError, NoSuchKeyError
from ci_engine.store import md5_etag, open_store
from tests.jobs.conftest import Relay


def _raw(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_import_ci_engine_does_not_load_boto3() -> None:
    code = "import sys, ci_engine, ci_engine.store, ci_engine.jobs; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_round_trip_under_a_prefix(moto_endpoint: str, s3_bucket: str) -> None:
    from ci_engine.store import S3Store

    store = open_store(f"s3://{s3_bucket}/root/b1", endpoint=moto_endpoint)
    assert isinstance(store, S3Store)
    assert repr(store) == f"S3Store('s3://{s3_bucket}/root/b1/' at {moto_endpoint})"
    data = b"\xff\xd8hello" * 1000
    assert store.put("a/b.jpg", data) == md5_etag(data)
    assert store.get("a/b.jpg") == data
    assert store.exists("a/b.jpg") and not store.exists("a/c.jpg")
    assert "a/b.jpg" in store
    assert store.etag("a/b.jpg") == md5_etag(data)
    store.put("a/c.jpg", b"x")
    store.put("z.jpg", b"y")
    assert store.keys() == ["a/b.jpg", "a/c.jpg", "z.jpg"]
    assert store.keys("a/") == ["a/b.jpg", "a/c.jpg"]
    # the prefix is where the objects really are
    listed = _raw(moto_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["root/b1/a/b.jpg", "root/b1/a/c.jpg", "root/b1/z.jpg"]
    store.delete("a/b.jpg")
    store.delete("a/b.jpg")  # deleting a missing key is not an error
    assert not store.exists("a/b.jpg")
    with pytest.raises(NoSuchKeyError):
        store.get("a/b.jpg")
    with pytest.raises(NoSuchKeyError):
        store.etag("a/b.jpg")


def test_keys_are_checked(moto_endpoint: str, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}", endpoint=moto_endpoint)
    for bad in ("", "/a", "a/../b", "a//b", "a\x00b"):
        with pytest.raises(InvalidArgumentError):
            store.put(bad, b"x")


def test_put_file_streams_a_multipart_object(moto_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    store = open_store(f"s3://{s3_bucket}/p", endpoint=moto_endpoint)
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * (40 * 1024 + 7)  # ~10 MB: multipart above 8 MB
    big.write_bytes(payload)
    etag = store.put_file("big/one.bin", big)
    assert not big.exists()  # consumed, as Store.put_file says
    assert etag == md5_etag(payload)
    assert store.get("big/one.bin") == payload
    assert store.etag("big/one.bin") == etag  # the S3 multipart ETag is not an MD5: computed
    info = store.head("big/one.bin")
    assert (info.key, info.size, info.etag) == ("big/one.bin", len(payload), etag)
    assert abs(info.last_modified - time.time()) < 300
    with store.open("big/one.bin") as fh:
        assert fh.read(5) == payload[:5]
        fh.seek(len(payload) - 3)
        assert fh.read() == payload[-3:]
    with pytest.raises(NoSuchKeyError):
        store.open("big/none.bin")
    with pytest.raises(NoSuchKeyError):
        store.head("big/none.bin")
    failing = tmp_path / "f.bin"
    failing.write_bytes(b"abc")
    with pytest.raises(InvalidArgumentError):
        store.put_file("bad//key", failing)
    assert not failing.exists()


def test_copy_and_pickle(moto_endpoint: str, s3_bucket: str) -> None:
    from ci_engine.store import S3Store

    store = S3Store(s3_bucket, prefix="x", endpoint=moto_endpoint)
    store.put("a", b"abc")
    clone = pickle.loads(pickle.dumps(store))
    clone.copy("a", "b/c")
    assert store.get("b/c") == b"abc"
    assert clone.url == f"s3://{s3_bucket}/x/"


def test_missing_bucket_is_no_such_bucket(moto_endpoint: str) -> None:
    store = open_store("s3://no-such-bucket-here", endpoint=moto_endpoint)
    with pytest.raises(CIError) as err:
        store.put("a.jpg", b"x")
    assert (err.value.code, err.value.status) == ("NoSuchBucket", 404)


def test_refusing_endpoint_is_service_unavailable(relay: Relay, s3_bucket: str) -> None:
    from ci_engine.store import S3Store

    relay.mode = "refuse"
    store = S3Store(s3_bucket, endpoint=relay.endpoint, retries=2, connect_timeout=1, read_timeout=1)
    with pytest.raises(CIError) as err:
        store.put("a.jpg", b"x")
    assert (err.value.code, err.value.status) == ("ServiceUnavailable", 503)
    assert relay.endpoint in err.value.message and "2 attempts" in err.value.message


def test_stalling_endpoint_times_out_and_writes_nothing(relay: Relay, s3_bucket: str, moto_endpoint: str) -> None:
    from ci_engine.store import S3Store

    relay.mode = "stall"
    store = S3Store(s3_bucket, endpoint=relay.endpoint, retries=2, connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(CIError) as err:
        store.put("a.jpg", b"x" * 100_000)
    assert err.value.code == "ServiceUnavailable"
    assert "timed out" in err.value.message
    assert "Contents" not in _raw(moto_endpoint).list_objects_v2(Bucket=s3_bucket)


def test_relay_passes_through(relay: Relay, s3_bucket: str) -> None:
    from ci_engine.store import S3Store

    store = S3Store(s3_bucket, endpoint=relay.endpoint)
    store.put("k", b"v")
    assert store.get("k") == b"v"


def test_open_store_needs_an_s3_url() -> None:
    from ci_engine.s3 import parse_s3_url

    with pytest.raises(InvalidArgumentError):
        parse_s3_url("s3://")
    with pytest.raises(InvalidArgumentError):
        parse_s3_url("s3://b/p?x=1")
    with pytest.raises(ValueError):
        open_store("/tmp/x", endpoint="http://127.0.0.1:1")


def _deny(endpoint: str, bucket: str, actions: list[str], resource: str) -> None:
    import json

    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": actions, "Resource": f"arn:aws:s3:::{bucket}/{resource}"}
        ],
    }
    _raw(endpoint).put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def test_a_policy_refusal_is_access_denied_and_leaves_nothing(
    moto_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    from botocore.exceptions import ClientError

    from ci_engine.errors import AccessDeniedError

    store = open_store(f"s3://{s3_bucket}/root", endpoint=moto_endpoint)
    store.put("locked/old.jpg", b"before the policy")
    store.put("open/a.jpg", b"a")
    _deny(moto_endpoint, s3_bucket, ["s3:PutObject", "s3:GetObject"], "root/locked/*")
    raw = _raw(moto_endpoint)
    # what the server itself answers
    with pytest.raises(ClientError) as refused:
        raw.put_object(Bucket=s3_bucket, Key="root/locked/new.jpg", Body=b"x")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    # what the library makes of it: a typed 403 AccessDenied naming the key, for each call
    for call in (
        lambda: store.put("locked/new.jpg", b"\xff\xd8 new"),
        lambda: store.put("locked/old.jpg", b"\xff\xd8 replacement"),
        lambda: store.get("locked/old.jpg"),
    ):
        with pytest.raises(AccessDeniedError) as err:
            call()
        assert (err.value.code, err.value.status) == ("AccessDenied", 403)
        assert "locked/" in err.value.message and "refused by the S3 service" in err.value.message
    # a 10 MB multipart upload: its parts are refused; no object and no open upload remain
    big = tmp_path / "big.bin"
    big.write_bytes(b"\x01" * (10 << 20))
    with pytest.raises(AccessDeniedError) as err:
        store.put_file("locked/big.bin", big)
    assert (err.value.code, err.value.status) == ("AccessDenied", 403)
    assert raw.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    listed = sorted(o["Key"] for o in raw.list_objects_v2(Bucket=s3_bucket, Prefix="root/")["Contents"])
    assert listed == ["root/locked/old.jpg", "root/open/a.jpg"]
    # the object that was there is unchanged; the rest of the bucket still works
    raw.delete_bucket_policy(Bucket=s3_bucket)
    assert store.get("locked/old.jpg") == b"before the policy"
    assert store.put("open/b.jpg", b"b") == md5_etag(b"b")
