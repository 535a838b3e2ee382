"""``ci-engine batch SRC RULE DEST --scheduler tcp://HOST:PORT`` on the session's LocalCluster
(2 worker processes), with folders and with s3:// URLs on moto."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

import ci_engine
from ci_engine.cli import main
from ci_engine.jobs import Cluster
from tests.jobs.conftest import SAMPLE

PHOTO = SAMPLE.read_bytes()
RULE = "imageMogr2/thumbnail/160x/format/webp"


def tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "one.jpg").write_bytes(PHOTO)
    (root / "a" / "two.jpg").write_bytes(PHOTO)
    (root / "a" / "b" / "three.JPG").write_bytes(PHOTO)
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (root / "notes.txt").write_text("skipped")
    (root / ".hidden.jpg").write_bytes(PHOTO)


def test_folders_on_the_cluster(tmp_path: Path, cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    tree(src)
    code = main(["batch", str(src), RULE, str(dest), "--scheduler", cluster.address, "--progress", "none"])
    out = capsys.readouterr().out
    assert code == 1, out  # the broken file
    assert "3 written, 0 skipped (up to date), 1 failed" in out
    assert "InvalidImageFormat (1):" in out and "a/broken.jpg" in out
    want = ci_engine.process(PHOTO, RULE).data
    written = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert written == ["a/b/three.webp", "a/two.webp", "one.webp"]
    for name in written:
        assert (dest / name).read_bytes() == want
    # a second run skips what is up to date; --force redoes it
    assert main(["batch", str(src), RULE, str(dest), "--scheduler", cluster.address, "--progress", "none"]) == 1
    assert "0 written, 3 skipped (up to date), 1 failed" in capsys.readouterr().out
    (src / "a" / "broken.jpg").unlink()
    args = ["batch", str(src), RULE, str(dest), "--scheduler", cluster.address, "--progress", "none", "--force"]
    assert main(args) == 0
    assert "3 written, 0 skipped" in capsys.readouterr().out


def test_s3_to_s3_and_folder_to_s3(
    tmp_path: Path, cluster: Cluster, moto_endpoint: str, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    for key in ("in/x.jpg", "in/sub/y.jpg", "in/readme.txt"):
        s3.put_object(Bucket=s3_bucket, Key=key, Body=PHOTO)
    common = ["--scheduler", cluster.address, "--s3-endpoint", moto_endpoint, "--progress", "none"]
    code = main(["batch", f"s3://{s3_bucket}/in", RULE, f"s3://{s3_bucket}/out", *common])
    assert code == 0, capsys.readouterr()
    want = ci_engine.process(PHOTO, RULE).data
    for key in ("out/x.webp", "out/sub/y.webp"):
        assert s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == want
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="out/")["Contents"])
    assert listed == ["out/sub/y.webp", "out/x.webp"]
    src = tmp_path / "src"
    tree(src)
    (src / "a" / "broken.jpg").unlink()
    assert main(["batch", str(src), RULE, f"s3://{s3_bucket}/fromdisk", *common]) == 0
    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="fromdisk/")["Contents"])
    assert listed == ["fromdisk/a/b/three.webp", "fromdisk/a/two.webp", "fromdisk/one.webp"]


def test_unreachable_s3_fails_each_file_cleanly(
    tmp_path: Path, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "p.jpg").write_bytes(PHOTO)
    code = main(
        [
            "batch",
            str(src),
            RULE,
            "s3://nowhere/out",
            "--scheduler",
            cluster.address,
            "--s3-endpoint",
            "http://127.0.0.1:9",
            "--progress",
            "none",
        ]
    )
    captured = capsys.readouterr()
    assert code == 2, captured  # listing DEST fails before any work: a usage error
    assert "ServiceUnavailable" in captured.err and "127.0.0.1:9" in captured.err


def test_s3_without_a_scheduler_uses_a_local_cluster(
    moto_endpoint: str, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=s3_bucket, Key="in/x.jpg", Body=PHOTO)
    args = ["batch", f"s3://{s3_bucket}/in", RULE, f"s3://{s3_bucket}/out", "--s3-endpoint", moto_endpoint]
    assert main([*args, "--jobs", "1", "--progress", "none"]) == 0, capsys.readouterr()
    assert "1 written, 0 skipped (up to date), 0 failed" in capsys.readouterr().out
    assert s3.get_object(Bucket=s3_bucket, Key="out/x.webp")["Body"].read() == ci_engine.process(PHOTO, RULE).data
    # up to date: skipped the second time
    assert main([*args, "--jobs", "1", "--progress", "none"]) == 0
    assert "0 written, 1 skipped (up to date), 0 failed" in capsys.readouterr().out


def test_chunk_sizes_shrink_to_one_and_cover_every_file() -> None:
    from ci_engine.cli.batch_dask import chunk_sizes

    assert chunk_sizes(0, 2) == []
    assert chunk_sizes(1, 2) == [1]
    assert chunk_sizes(10, 2) == [3, 2, 2, 1, 1, 1]
    sizes = chunk_sizes(200, 2)
    assert sum(sizes) == 200 and len(sizes) == 17
    assert sizes[:3] == [32] * 3 and sizes[-4:] == [1] * 4
    assert sizes == sorted(sizes, reverse=True)
    assert max(chunk_sizes(10_000, 100)) == 32 and sum(chunk_sizes(10_000, 100)) == 10_000
    with pytest.raises(ValueError):
        chunk_sizes(5, 0)


def test_a_chunked_batch_writes_every_file(
    tmp_path: Path, cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "p00.jpg").write_bytes(PHOTO)
    for i in range(1, 40):
        (src / f"p{i:02d}.jpg").hardlink_to(src / "p00.jpg")
    (src / "p17.jpg").unlink()
    (src / "p17.jpg").write_bytes(b"\xff\xd8\xff broken")  # inside a chunk of several files
    code = main(["batch", str(src), RULE, str(dest), "--scheduler", cluster.address, "--progress", "none"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "39 written, 0 skipped (up to date), 1 failed" in out and "p17.jpg" in out
    want = ci_engine.process(PHOTO, RULE).data
    written = sorted(p.name for p in dest.iterdir())
    assert written == sorted(f"p{i:02d}.webp" for i in range(40) if i != 17)
    assert all((dest / name).read_bytes() == want for name in written)


def test_a_lost_chunk_reports_each_of_its_files() -> None:
    from ci_engine.cli.batch import Outcome, Task
    from ci_engine.cli.batch_dask import chunk_outcomes

    tasks = [Task("a.jpg", "a.webp", "a.jpg"), Task("b.jpg", "b.webp", "b.jpg")]
    ran = [Outcome(tasks[0], True, size=10), Outcome(tasks[1], False, code="InvalidImageFormat")]
    assert chunk_outcomes(tasks, "finished", ran) == ran
    lost = RuntimeError("KilledWorker: worker died 3 times")
    for status, value in (("error", (RuntimeError, lost, None)), ("cancelled", lost)):
        got = chunk_outcomes(tasks, status, value)
        assert [(o.task.name, o.ok, o.code) for o in got] == [
            ("a.jpg", False, "InternalError"),
            ("b.jpg", False, "InternalError"),
        ]
        assert all("the cluster lost it" in o.message and "worker died 3 times" in o.message for o in got)
