"""The job service on a real Dask LocalCluster of 2 worker processes, with the buckets in a
local folder and in moto's S3 server: outputs equal persist()'s, a worker killed mid-run,
pause, cancel, restart, and an S3 endpoint that goes away."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ci_engine
from ci_engine.jobs import (
    CANCEL,
    FAILED,
    RUNNING,
    SUBMITTED,
    SUCCESS,
    Buckets,
    Cluster,
    JobRequest,
    JobService,
    JobStateError,
)
from ci_engine.jobs import service as service_module
from ci_engine.jobs.buckets import STAGING_PREFIX
from ci_engine.persistent import persist
from ci_engine.store import MemoryStore
from tests.jobs.conftest import SAMPLE, Relay

BUCKET = "photos-1250000000"
OUT = "thumbs-1250000000"
PHOTO = SAMPLE.read_bytes()

RULES = [
    "imageMogr2/thumbnail/200x",
    "imageMogr2/thumbnail/320x/format/webp",
    "imageMogr2/crop/300x300/gravity/center/format/png",
    "imageMogr2/thumbnail/150x150/quality/70",
    "imageMogr2/rotate/90/thumbnail/160x",
]


def expected(rule: str, is_pic_info: bool = False) -> bytes:
    """What persist() writes for the same source and rule."""
    store = MemoryStore()
    store.put("src/k.jpg", PHOTO)
    header = {"is_pic_info": int(is_pic_info), "rules": [{"fileid": "/out.bin", "rule": rule}]}
    persist("src/k.jpg", None, header, store, in_cloud=True, workers=1)
    return store.get("out.bin")


@pytest.fixture(scope="module")
def expectations() -> dict[str, bytes]:
    return {rule: expected(rule) for rule in RULES}


@pytest.fixture(params=["local", "s3"])
def buckets(request: pytest.FixtureRequest, tmp_path: Path) -> Buckets:
    if request.param == "local":
        b = Buckets(str(tmp_path / "root"), fsync=False)
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        s3 = request.getfixturevalue("s3_bucket")
        b = Buckets(f"s3://{s3}/ci", endpoint=endpoint)
    b.open(BUCKET).put("src/k.jpg", PHOTO)
    return b


@pytest.fixture
def service(buckets: Buckets, tmp_path: Path, cluster: Cluster) -> Iterator[JobService]:
    with JobService(tmp_path / "jobs.sqlite", buckets, cluster=cluster) as svc:
        yield svc


def requests(n: int, prefix: str = "out") -> list[JobRequest]:
    return [JobRequest("src/k.jpg", OUT, f"{prefix}/{i:02d}.img", rule=RULES[i % len(RULES)]) for i in range(n)]


def submit(svc: JobService, n: int, prefix: str = "out") -> list[str]:
    return [job.id for job in svc.submit(BUCKET, requests(n, prefix))]


def no_staging_left(buckets: Buckets) -> bool:
    return buckets.open(OUT).keys(STAGING_PREFIX) == []


def test_twenty_jobs_equal_persist(service: JobService, buckets: Buckets, expectations: dict[str, bytes]) -> None:
    ids = submit(service, 20)
    jobs = service.wait(BUCKET, ids, timeout=90)
    assert [j.state for j in jobs] == [SUCCESS] * 20, [(j.state, j.code, j.message) for j in jobs]
    out = buckets.open(OUT)
    for i, job in enumerate(jobs):
        data = out.get(f"out/{i:02d}.img")
        assert data == expectations[RULES[i % len(RULES)]], job.rule
        assert job.result is not None
        assert job.result["ObjectName"] == f"out/{i:02d}.img"
        assert job.result["ProcessResult"]["Size"] == len(data)
        assert job.start_time != "-" and job.end_time != "-" and job.code == "Success"
    assert sorted(out.keys()) == [f"out/{i:02d}.img" for i in range(20)]


def test_image_watermark_comes_from_the_jobs_bucket(service: JobService, buckets: Buckets) -> None:
    """``watermark/1`` in a job: the logo is an object of the job's bucket (local and S3);
    another bucket's URL fails the job with ``AccessDenied``, a missing logo ``NoSuchKey``."""
    import base64
    import io

    from PIL import Image

    logo = io.BytesIO()
    Image.new("RGBA", (100, 50), (0, 160, 255, 180)).save(logo, "PNG")
    buckets.open(BUCKET).put("brand/logo.png", logo.getvalue())

    def rule(url: str) -> str:
        return f"watermark/1/image/{base64.urlsafe_b64encode(url.encode()).decode()}/gravity/northwest/dx/5/dy/5"

    own = f"http://{BUCKET}.cos.ap-guangzhou.myqcloud.com/brand/logo.png"
    other = f"http://{OUT}.cos.ap-guangzhou.myqcloud.com/brand/logo.png"
    absent = f"http://{BUCKET}.cos.ap-guangzhou.myqcloud.com/brand/absent.png"
    urls = (own, other, absent)
    wanted = [JobRequest("src/k.jpg", OUT, f"wm/{i}.jpg", rule=rule(u)) for i, u in enumerate(urls)]
    made = service.submit(BUCKET, wanted)
    marked, refused, missing = service.wait(BUCKET, [j.id for j in made], timeout=60)
    assert marked.state == SUCCESS, (marked.code, marked.message)
    want = ci_engine.process(PHOTO, rule(own), resources={own: logo.getvalue()}).data
    assert buckets.open(OUT).get("wm/0.jpg") == want
    assert (refused.state, refused.code) == (FAILED, "AccessDenied")
    assert (missing.state, missing.code) == (FAILED, "NoSuchKey")


def test_pic_info_and_failures_carry_the_ci_error(service: JobService, buckets: Buckets) -> None:
    jobs = service.submit(
        BUCKET,
        [
            JobRequest("src/k.jpg", OUT, "info.jpg", rule="imageMogr2/thumbnail/100x", is_pic_info=True),
            JobRequest("src/k.jpg", OUT, "bad.jpg", rule="imageMogr2/blur/80x5"),
            JobRequest("src/missing.jpg", OUT, "missing.jpg", rule="imageMogr2/thumbnail/100x"),
            JobRequest("src/k.jpg", OUT, "style.jpg", rule="style/nope"),
        ],
    )
    info, bad, missing, style = service.wait(BUCKET, [j.id for j in jobs], timeout=60)
    assert info.state == SUCCESS and info.result is not None
    image_info = info.result["OriginalInfo"]["ImageInfo"]
    assert (image_info["Width"], image_info["Height"], image_info["Format"]) == (1200, 675, "JPEG")
    assert (bad.state, bad.code) == (FAILED, "InvalidArgument")
    assert "blur" in bad.message
    assert (missing.state, missing.code) == (FAILED, "NoSuchKey")
    assert (style.state, style.code) == (FAILED, "NoSuchStyle")
    out = buckets.open(OUT)
    assert out.keys() == ["info.jpg"]


def test_pause_holds_jobs_and_resume_runs_them(service: JobService, buckets: Buckets) -> None:
    queue = service.queue(BUCKET)
    service.update_queue(BUCKET, queue.id, state="Paused")
    ids = submit(service, 4)
    time.sleep(1.5)
    jobs, _ = service.get(BUCKET, ids)
    assert [j.state for j in jobs] == [SUBMITTED] * 4
    assert buckets.open(OUT).keys() == []
    assert service.update_queue(BUCKET, queue.id, state="Active").state == "Active"
    jobs = service.wait(BUCKET, ids, timeout=60)
    assert [j.state for j in jobs] == [SUCCESS] * 4


def test_cancel_before_and_during_a_run(service: JobService, buckets: Buckets, cluster: Cluster) -> None:
    queue = service.queue(BUCKET)
    service.update_queue(BUCKET, queue.id, state="Paused")
    ids = submit(service, 3, "c")
    assert service.cancel(BUCKET, ids[1]).state == CANCEL
    # cancelling twice is fine; a job that does not exist is not
    assert service.cancel(BUCKET, ids[1]).state == CANCEL
    service.update_queue(BUCKET, queue.id, state="Active")
    # a job cancelled while it is Running: the output must never appear
    slow = service.submit(BUCKET, [JobRequest("src/k.jpg", OUT, "slow.jpg", rule="imageMogr2/blur/30x20")])[0]
    deadline = time.monotonic() + 30
    while service.get(BUCKET, [slow.id])[0][0].state == SUBMITTED and time.monotonic() < deadline:
        time.sleep(0.01)
    cancelled = service.cancel(BUCKET, slow.id)
    assert cancelled.state == CANCEL
    jobs = service.wait(BUCKET, ids, timeout=60)
    assert [j.state for j in jobs] == [SUCCESS, CANCEL, SUCCESS]
    idle(cluster)  # the cancelled blur finished on its worker
    service.sweep()
    out = buckets.open(OUT)
    assert sorted(out.keys()) == ["c/00.img", "c/02.img"]
    assert no_staging_left(buckets)
    with pytest.raises(JobStateError):
        service.cancel(BUCKET, ids[0])


def idle(cluster: Cluster, timeout: float = 60) -> None:
    """Wait until no task is left on the cluster (attempts of a stopped service included)."""
    deadline = time.monotonic() + timeout
    while any(cluster.client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_restart_resumes_submitted_and_running_jobs(
    buckets: Buckets, tmp_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one job per task: 4 of the 8 are handed out (twice the 2 threads), 4 stay Submitted
    monkeypatch.setattr(service_module, "MAX_GROUP", 1)
    slow = "imageMogr2/blur/20x10/thumbnail/300x"
    want = expected(slow)
    db = tmp_path / "restart.sqlite"
    first = JobService(db, buckets, cluster=cluster).start()
    ids = [
        j.id for j in first.submit(BUCKET, [JobRequest("src/k.jpg", OUT, f"r/{i}.jpg", rule=slow) for i in range(8)])
    ]
    deadline = time.monotonic() + 30
    while not any(j.state == RUNNING for j in first.get(BUCKET, ids)[0]) and time.monotonic() < deadline:
        time.sleep(0.01)
    first.close()  # jobs queued and running: all stay in the records
    states = [j.state for j in first.records.jobs(BUCKET, ids)[0]]
    assert RUNNING in states and SUBMITTED in states, states
    with JobService(db, buckets, cluster=cluster) as second:
        jobs = second.wait(BUCKET, ids, timeout=90)
        assert [j.state for j in jobs] == [SUCCESS] * 8
        assert max(j.attempts for j in jobs) == 2  # the interrupted ones ran again
        idle(cluster)
        second.sweep()
    out = buckets.open(OUT)
    assert sorted(out.keys()) == sorted(f"r/{i}.jpg" for i in range(8))
    for i in range(8):
        assert out.get(f"r/{i}.jpg") == want
    assert no_staging_left(buckets)


def test_killed_worker_every_job_still_succeeds(service: JobService, buckets: Buckets, cluster: Cluster) -> None:
    rules = ["imageMogr2/blur/20x10/thumbnail/300x", "imageMogr2/sharpen/70/thumbnail/500x/format/png"]
    want = {rule: expected(rule) for rule in rules}
    pids = cluster.client.run(os.getpid)
    assert len(pids) == 2
    made = service.submit(
        BUCKET, [JobRequest("src/k.jpg", OUT, f"k/{i:02d}.img", rule=rules[i % 2]) for i in range(20)]
    )
    ids = [job.id for job in made]
    deadline = time.monotonic() + 60
    busy: list[str] = []
    while time.monotonic() < deadline:
        if service.committed >= 2:
            busy = [addr for addr, keys in cluster.client.processing().items() if keys]
            if busy:
                break
        time.sleep(0.005)
    assert busy, "no worker was running a job"
    victim = pids[busy[0]]
    os.kill(victim, signal.SIGKILL)  # mid-run: it holds at least one job
    jobs = service.wait(BUCKET, ids, timeout=120)
    assert [j.state for j in jobs] == [SUCCESS] * 20, [(j.state, j.code, j.message) for j in jobs]
    out = buckets.open(OUT)
    for i in range(20):
        assert out.get(f"k/{i:02d}.img") == want[rules[i % 2]]
    assert no_staging_left(buckets)
    # the nanny brought the worker back: the cluster still has two
    deadline = time.monotonic() + 30
    while len(cluster.client.nthreads()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim not in cluster.client.run(os.getpid).values()


def test_s3_endpoint_gone_fails_the_job_cleanly(
    relay: Relay, s3_bucket: str, moto_endpoint: str, tmp_path: Path, cluster: Cluster
) -> None:
    direct = Buckets(f"s3://{s3_bucket}/ci", endpoint=moto_endpoint)
    direct.open(BUCKET).put("src/k.jpg", PHOTO)
    via = Buckets(f"s3://{s3_bucket}/ci", endpoint=relay.endpoint, timeout=0.5, retries=2)
    with JobService(tmp_path / "gone.sqlite", via, cluster=cluster) as svc:
        relay.mode = "refuse"
        refused = svc.submit(BUCKET, requests(1, "refused"))[0]
        (job,) = svc.wait(BUCKET, [refused.id], timeout=60)
        assert (job.state, job.code) == (FAILED, "ServiceUnavailable")
        assert relay.endpoint in job.message
        relay.mode = "stall"
        stalled = svc.submit(BUCKET, requests(1, "stalled"))[0]
        (job,) = svc.wait(BUCKET, [stalled.id], timeout=60)
        assert (job.state, job.code) == (FAILED, "ServiceUnavailable")
        assert "timed out" in job.message
    assert direct.open(OUT).keys() == []


def test_s3_policy_refusing_the_output_fails_the_job_cleanly(
    s3_bucket: str, moto_endpoint: str, tmp_path: Path, cluster: Cluster
) -> None:
    import json

    import boto3

    buckets = Buckets(f"s3://{s3_bucket}/ci", endpoint=moto_endpoint)
    buckets.open(BUCKET).put("src/k.jpg", PHOTO)
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject"],
        "Resource": f"arn:aws:s3:::{s3_bucket}/ci/{OUT}/*",
    }
    raw = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    raw.put_bucket_policy(Bucket=s3_bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    with JobService(tmp_path / "denied.sqlite", buckets, cluster=cluster) as svc:
        made = svc.submit(BUCKET, requests(2, "denied"))
        jobs = svc.wait(BUCKET, [j.id for j in made], timeout=60)
    assert [(j.state, j.code) for j in jobs] == [(FAILED, "AccessDenied")] * 2
    assert all("refused by the S3 service" in j.message for j in jobs)
    raw.delete_bucket_policy(Bucket=s3_bucket)
    listed = sorted(o["Key"] for o in raw.list_objects_v2(Bucket=s3_bucket, Prefix="ci/")["Contents"])
    assert listed == [f"ci/{BUCKET}/src/k.jpg"]  # no output, nothing staged
