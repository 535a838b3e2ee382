"""Job callbacks (``TaskFinish``): a real HTTP receiver on 127.0.0.1 started by each test, the
sender's retries, and the callbacks of jobs run on the session's LocalCluster."""

from __future__ import annotations

import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ci_engine.errors import CIError
from ci_engine.jobs import FAILED, SUCCESS, Buckets, Cluster, Job, JobsAPI, JobService
from ci_engine.jobs.detail import callback_body
from ci_engine.jobs.notify import Callback, Notifier
from tests.jobs.conftest import SAMPLE

BUCKET = "photos-1250000000"
OUT = "thumbs-1250000000"


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers the next status of
    ``script`` (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.script: list[int] = []
        self.delay = 0.0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append((self.path, self.headers.get("Content-Type", ""), body))
                    status = receiver.script.pop(0) if receiver.script else 200
                time.sleep(receiver.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/cb") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[tuple[str, str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        with self.lock:
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def settle(notifier: Notifier, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while notifier.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert notifier.pending() == 0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the sender ------------------------------------------------------------------------------------


def test_a_callback_is_retried_until_delivered(receiver: Receiver) -> None:
    receiver.script = [503, 500]
    notifier = Notifier(attempts=3, backoff=0.05, timeout=5)
    try:
        assert notifier.send(Callback(receiver.url("/x"), b"<Response/>", "application/xml", "c1"))
        settle(notifier)
        got = receiver.wait_for(3)
        assert [(p, t, b) for p, t, b in got] == [("/x", "application/xml", b"<Response/>")] * 3
        assert (notifier.delivered, notifier.failed, notifier.dropped) == (1, 0, 0)
    finally:
        notifier.close()


@pytest.mark.parametrize(("script", "tries"), [([500, 502, 503, 200], 3), ([404, 200], 1)])
def test_retries_are_bounded_and_a_4xx_is_final(receiver: Receiver, script: list[int], tries: int) -> None:
    receiver.script = list(script)
    notifier = Notifier(attempts=3, backoff=0.02)
    try:
        notifier.send(Callback(receiver.url(), b"{}", "application/json", "c2"))
        settle(notifier)
        time.sleep(0.2)  # a fourth try would come within this
        assert len(receiver.wait_for(tries)) == tries
        assert (notifier.delivered, notifier.failed) == (0, 1)
    finally:
        notifier.close()


def test_an_unreachable_receiver_never_raises() -> None:
    notifier = Notifier(attempts=2, backoff=0.01, timeout=1)
    try:
        assert notifier.send(Callback(f"http://127.0.0.1:{closed_port()}/cb", b"x", "application/xml", "c3"))
        settle(notifier)
        assert (notifier.delivered, notifier.failed) == (0, 1)
    finally:
        notifier.close()
    # after close, a send is dropped (and counted), not queued
    assert not notifier.send(Callback("http://127.0.0.1:1/", b"x", "application/xml", "c4"))
    assert notifier.dropped == 1


# -- validation (records alone, no cluster) -------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[JobsAPI]:
    service = JobService(tmp_path / "jobs.sqlite", Buckets(str(tmp_path / "root")))
    yield JobsAPI(service)
    service.notifier.close()
    service.records.close()


def queue_body(url: str, **more: str) -> str:
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in more.items())
    return (
        "<Request><Name>q</Name><State>Active</State><NotifyConfig><State>On</State><Event>TaskFinish</Event>"
        f"<Url>{url}</Url>{extra}</NotifyConfig></Request>"
    )


def job_request(out: str, rule: str = "imageMogr2/thumbnail/200x", **more: str) -> str:
    extra = "".join(f"<{k}>{v}</{k}>" for k, v in more.items())
    return (
        "<Request><Tag>PicProcess</Tag><Input><Object>src/k.jpg</Object></Input><Operation>"
        f"<PicProcess><ProcessRule>{rule}</ProcessRule></PicProcess>"
        f"<Output><Bucket>{OUT}</Bucket><Object>{out}</Object></Output><UserData>u-{out}</UserData>"
        f"</Operation>{extra}</Request>"
    )


def test_callback_settings_are_checked(api: JobsAPI) -> None:
    queue_id = api.service.queue(BUCKET).id

    def queue(**config: str) -> Callable[[], object]:
        url = config.pop("Url", "http://x/cb")
        return lambda: api.update_queue(BUCKET, queue_id, queue_body(url, **config))

    def job(**more: str) -> Callable[[], object]:
        return lambda: api.create_jobs(BUCKET, job_request("a.jpg", **more))

    cases: list[tuple[Callable[[], object], str, int]] = [
        (queue(Url="ftp://x/cb"), "InvalidArgument", 400),
        (queue(Type="TDMQ"), "NotImplemented", 501),
        (queue(ResultFormat="YAML"), "InvalidArgument", 400),
        (queue(Event="Nope"), "InvalidArgument", 400),
        (job(CallBack="not a url"), "InvalidArgument", 400),
        (job(CallBack="http:///nohost"), "InvalidArgument", 400),
        (job(CallBack="http://x/", CallBackFormat="YAML"), "InvalidArgument", 400),
        (job(CallBack="http://x/", CallBackType="TDMQ"), "NotImplemented", 501),
    ]
    for call, code, status in cases:
        with pytest.raises(CIError) as err:
            call()
        assert (err.value.code, err.value.status) == (code, status)
        if status == 501:
            assert "TDMQ" in err.value.message
    # nothing was recorded by the refused requests; a valid one is stored and shown
    assert api.service.records.pending() == 0
    shown = ET.fromstring(api.update_queue(BUCKET, queue_id, queue_body("https://example.com/cb", ResultFormat="JSON")))
    assert shown.findtext("Queue/NotifyConfig/ResultFormat") == "JSON"
    with pytest.raises(ValueError):
        callback_body(Job("c1", BUCKET, queue_id, "a.jpg", OUT, "b.jpg", "imageMogr2/thumbnail/8x"), "YAML")


# -- jobs on the cluster ------------------------------------------------------------------------------------


def test_jobs_send_task_finish_callbacks(tmp_path: Path, cluster: Cluster, receiver: Receiver) -> None:
    buckets = Buckets(str(tmp_path / "root"), fsync=False)
    buckets.open(BUCKET).put("src/k.jpg", SAMPLE.read_bytes())
    with JobService(tmp_path / "jobs.sqlite", buckets, cluster=cluster) as service:
        api = JobsAPI(service)
        queue_id = service.queue(BUCKET).id
        api.update_queue(BUCKET, queue_id, queue_body(receiver.url("/queue")))
        made = {}
        for name, body in {
            "plain": job_request("plain.jpg"),
            "json": job_request("json.jpg", CallBack=receiver.url("/job"), CallBackFormat="JSON"),
            "silent": job_request("silent.jpg", CallBack="no"),
            "broken": job_request("broken.jpg", rule="imageMogr2/thumbnail/nonsense"),
        }.items():
            made[name] = ET.fromstring(api.create_jobs(BUCKET, body)).findtext("JobsDetail/JobId")
        ended = {job.id: job for job in service.wait(BUCKET, list(made.values()), timeout=120)}
        assert [ended[made[n]].state for n in ("plain", "json", "silent", "broken")] == [SUCCESS] * 3 + [FAILED]
        got = receiver.wait_for(3)
        time.sleep(0.3)  # the silent job's callback, were it sent, would have come by now
        got = receiver.wait_for(4, timeout=0.1)
    assert len(got) == 3, got
    by_path: dict[str, list[tuple[str, bytes]]] = {}
    for path, ctype, body in got:
        by_path.setdefault(path, []).append((ctype, body))
    # the job's own URL, in JSON
    ((ctype, body),) = by_path["/job"]
    assert ctype == "application/json"
    detail = json.loads(body)["Response"]
    assert detail["EventName"] == "TaskFinish"
    assert detail["JobsDetail"]["JobId"] == made["json"] and detail["JobsDetail"]["State"] == "Success"
    assert detail["JobsDetail"]["Operation"]["PicProcessResult"]["ProcessResult"]["Width"] == 200
    assert detail["JobsDetail"]["Operation"]["UserData"] == "u-json.jpg"
    # the queue's URL, in XML: the plain job and the failed one, not the silent one
    assert [c for c, _ in by_path["/queue"]] == ["application/xml", "application/xml"]
    roots = {}
    for _, body in by_path["/queue"]:
        assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
        root = ET.fromstring(body)
        assert root.tag == "Response" and root.findtext("EventName") == "TaskFinish"
        roots[root.findtext("JobsDetail/JobId")] = root
    assert set(roots) == {made["plain"], made["broken"]}
    plain = roots[made["plain"]]
    assert plain.findtext("JobsDetail/State") == "Success"
    assert plain.findtext("JobsDetail/QueueId") == queue_id
    assert plain.findtext("JobsDetail/Operation/Output/Object") == "plain.jpg"
    assert plain.findtext("JobsDetail/Operation/PicProcessResult/ProcessResult/Width") == "200"
    assert plain.findtext("JobsDetail/Operation/PicProcessResult/ObjectName") == "plain.jpg"
    assert plain.findtext("JobsDetail/EndTime") not in (None, "-")
    etag = plain.findtext("JobsDetail/Operation/PicProcessResult/ProcessResult/Etag") or ""
    assert etag.startswith('"') and etag.endswith('"') and len(etag) == 34
    broken = roots[made["broken"]]
    assert broken.findtext("JobsDetail/State") == "Failed"
    assert broken.findtext("JobsDetail/Code") == ended[made["broken"]].code == "InvalidArgument"
    assert broken.find("JobsDetail/Operation/PicProcessResult") is None


def test_a_dead_or_slow_receiver_never_holds_a_job(tmp_path: Path, cluster: Cluster, receiver: Receiver) -> None:
    buckets = Buckets(str(tmp_path / "root"), fsync=False)
    buckets.open(BUCKET).put("src/k.jpg", SAMPLE.read_bytes())
    receiver.delay = 3.0  # every answer takes longer than the sender waits
    notifier = Notifier(attempts=2, timeout=0.5, backoff=0.05)
    with JobService(tmp_path / "jobs.sqlite", buckets, cluster=cluster, notifier=notifier) as service:
        api = JobsAPI(service)
        api.update_queue(BUCKET, service.queue(BUCKET).id, queue_body(receiver.url("/slow")))
        dead = f"http://127.0.0.1:{closed_port()}/dead"
        ids = [
            ET.fromstring(
                api.create_jobs(BUCKET, job_request(f"o{i}.jpg", **({"CallBack": dead} if i % 2 else {})))
            ).findtext("JobsDetail/JobId")
            for i in range(4)
        ]
        jobs = service.wait(BUCKET, [i for i in ids if i], timeout=120)
        assert [j.state for j in jobs] == [SUCCESS] * 4
        assert all(buckets.open(OUT).exists(f"o{i}.jpg") for i in range(4))
        settle(notifier, timeout=30)
    # two callbacks to the slow receiver, two to the dead one: each tried twice, none delivered
    assert (notifier.delivered, notifier.failed) == (0, 4)
    assert len(receiver.wait_for(4)) == 4


def test_a_cancel_sends_one_callback(api: JobsAPI, receiver: Receiver) -> None:
    queue_id = api.service.queue(BUCKET).id
    api.update_queue(BUCKET, queue_id, queue_body(receiver.url("/q")))
    job_id = ET.fromstring(api.create_jobs(BUCKET, job_request("c.jpg"))).findtext("JobsDetail/JobId") or ""
    api.cancel_job(BUCKET, job_id)
    api.cancel_job(BUCKET, job_id)  # answered the same, no second callback
    settle(api.service.notifier)
    time.sleep(0.2)
    got = receiver.wait_for(2, timeout=0.2)
    assert len(got) == 1
    root = ET.fromstring(got[0][2])
    assert (root.findtext("JobsDetail/JobId"), root.findtext("JobsDetail/State")) == (job_id, "Cancel")
    assert root.findtext("JobsDetail/Message") == "cancelled by the user"
