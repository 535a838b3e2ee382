"""``ci-engine serve --root s3://BUCKET/PREFIX --s3-endpoint URL``: the server's buckets in
moto's standalone S3 server. The object requests (plain, processed, Pic-Operations, multipart,
listing, delete) and the job requests run again on it, through the official SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

import ci_engine
from tests.jobs.conftest import AWS_ENV, aws_env, moto_endpoint, s3_bucket  # noqa: F401 - fixtures
from tests.server.conftest import PHOTOS, SECRET_ID, SECRET_KEY, Server, make_client, start_server, stop_server
from tests.server.test_jobs_sdk import create, job, persisted, wait


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[tuple[Server, str]]:  # noqa: F811
    name = "srv-" + os.urandom(4).hex()
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    base = tmp_path_factory.mktemp("s3-serve")
    server = start_server(
        base / "root",  # where the log goes; the later --root wins
        "--root",
        f"s3://{name}/ci",
        "--s3-endpoint",
        moto_endpoint,
        "--state-dir",
        str(base / "state"),
        "--secret-id",
        SECRET_ID,
        "--secret-key",
        SECRET_KEY,
        "--bucket",
        PHOTOS,
        "--workers",
        "2",
        env=AWS_ENV,
    )
    try:
        yield server, name
    finally:
        assert stop_server(server) == 0, server.log_text()


def raw_keys(endpoint: str, bucket: str) -> list[str]:
    listed = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_objects_live_in_s3(s3_server: tuple[Server, str], moto_endpoint: str, photo: bytes, tmp_path: Path) -> None:  # noqa: F811
    server, name = s3_server
    sdk = make_client(server, "proxy")
    sdk.put_object(Bucket=PHOTOS, Key="a/photo.jpg", Body=photo)
    assert f"ci/{PHOTOS}/a/photo.jpg" in raw_keys(moto_endpoint, name)
    got = sdk.get_object(Bucket=PHOTOS, Key="a/photo.jpg")["Body"].get_raw_stream().read()
    assert got == photo
    rule = "imageMogr2/thumbnail/200x/format/webp"
    out = tmp_path / "t.webp"
    sdk.ci_get_object(Bucket=PHOTOS, Key="a/photo.jpg", DestImagePath=str(out), Rule=rule)
    assert out.read_bytes() == ci_engine.process(photo, rule).data
    ops = '{"is_pic_info":1,"rules":[{"fileid":"small.jpg","rule":"imageMogr2/thumbnail/100x"}]}'
    _, result = sdk.ci_put_object(Bucket=PHOTOS, Key="b/p.jpg", Body=photo, PicOperations=ops)
    assert result["ProcessResults"]["Object"]["Width"] == "100"
    assert f"ci/{PHOTOS}/b/small.jpg" in raw_keys(moto_endpoint, name)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    sdk.upload_file(Bucket=PHOTOS, Key="c/big.bin", LocalFilePath=str(big), PartSize=1, MAXThread=2)
    assert sdk.get_object(Bucket=PHOTOS, Key="c/big.bin")["Body"].get_raw_stream().read() == big.read_bytes()
    listed = sdk.list_objects(Bucket=PHOTOS, Prefix="b/")
    assert sorted(c["Key"] for c in listed["Contents"]) == ["b/p.jpg", "b/small.jpg"]
    sdk.delete_object(Bucket=PHOTOS, Key="c/big.bin")
    assert f"ci/{PHOTOS}/c/big.bin" not in raw_keys(moto_endpoint, name)


def test_jobs_on_s3(s3_server: tuple[Server, str], moto_endpoint: str, photo: bytes) -> None:  # noqa: F811
    server, name = s3_server
    sdk = make_client(server, "proxy")
    sdk.ci_open_pic_bucket(Bucket=PHOTOS)
    sdk.put_object(Bucket=PHOTOS, Key="src.jpg", Body=photo)
    rules = ["imageMogr2/thumbnail/200x", "imageMogr2/thumbnail/320x/format/webp"]
    ids = [create(sdk, job("src.jpg", f"out/{i}.img", rules[i % 2]))["JobId"] for i in range(6)]
    details = wait(sdk, ids)
    assert [d["State"] for d in details] == ["Success"] * 6, details
    for i in range(6):
        body = sdk.get_object(Bucket=PHOTOS, Key=f"out/{i}.img")["Body"].get_raw_stream().read()
        assert body == persisted(photo, rules[i % 2])
    deadline = time.monotonic() + 10
    while any(".ci-jobs/" in k for k in raw_keys(moto_endpoint, name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(".ci-jobs/" in k for k in raw_keys(moto_endpoint, name))


def test_bad_s3_root_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ci_engine", "serve", "--root", str(tmp_path), "--s3-endpoint", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--s3-endpoint needs an s3:// --root" in out.stderr


def test_settings_styles_and_in_cloud_processing_on_s3(
    s3_server: tuple[Server, str],
    moto_endpoint: str,  # noqa: F811
    photo: bytes,
) -> None:
    import json

    from qcloud_cos.cos_exception import CosServiceError

    server, name = s3_server
    sdk = make_client(server, "proxy")
    sdk.put_object(Bucket=PHOTOS, Key="s/src.jpg", Body=photo)
    body = "imageMogr2/thumbnail/120x/format/png"
    sdk.ci_put_image_style(Bucket=PHOTOS, Request={"StyleName": "small", "StyleBody": body})
    assert f"ci/.ci-meta/{PHOTOS}/styles.json" in raw_keys(moto_endpoint, name)
    _, listed = sdk.ci_get_image_style(Bucket=PHOTOS, Request={"StyleName": "small"})
    assert listed["StyleRule"] == {"StyleName": "small", "StyleBody": body}
    styled = sdk.get_object(Bucket=PHOTOS, Key="s/src.jpg!small")["Body"].get_raw_stream().read()
    assert styled == ci_engine.process(photo, body).data
    ops = {"rules": [{"fileid": "cloud.webp", "rule": "imageMogr2/thumbnail/90x/format/webp"}]}
    _, result = sdk.ci_image_process(Bucket=PHOTOS, Key="s/src.jpg", PicOperations=json.dumps(ops))
    assert result["ProcessResults"]["Object"]["Key"] == "s/cloud.webp"
    head = sdk.head_object(Bucket=PHOTOS, Key="s/cloud.webp")
    assert int(head["Content-Length"]) == len(ci_engine.process(photo, "imageMogr2/thumbnail/90x/format/webp").data)
    ranged = sdk.get_object(Bucket=PHOTOS, Key="s/src.jpg", Range="bytes=10-19")["Body"].get_raw_stream().read()
    assert ranged == photo[10:20]
    with pytest.raises(CosServiceError) as err:
        sdk.get_object(Bucket=PHOTOS, Key="s/none.jpg")
    assert (err.value.get_error_code(), err.value.get_status_code()) == ("NoSuchKey", 404)
    sdk.ci_open_pic_bucket(Bucket=PHOTOS)
    assert f"ci/.ci-meta/{PHOTOS}/picbucket.json" in raw_keys(moto_endpoint, name)
    listed_buckets = sdk.list_buckets()["Buckets"]["Bucket"]
    entries = listed_buckets if isinstance(listed_buckets, list) else [listed_buckets]
    assert [b["Name"] for b in entries] == [PHOTOS]
