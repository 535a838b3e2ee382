"""The asynchronous image jobs through the official SDK against a live ``ci-engine serve``
(the session server of ``conftest.py``: its first job request starts a Dask LocalCluster of 2
worker processes): 20 jobs whose outputs equal ``persist()``'s, listing with paging, cancel,
pause and resume of the queue, templates."""

from __future__ import annotations

import time
from typing import Any

import pytest
from qcloud_cos.cos_exception import CosServiceError

from ci_engine.persistent import persist
from ci_engine.store import MemoryStore
from tests.jobs.conftest import aws_env, cluster  # noqa: F401 - fixtures
from tests.server.conftest import PHOTOS, REGION, Server, make_client

RULES = [
    "imageMogr2/thumbnail/200x",
    "imageMogr2/thumbnail/320x/format/webp",
    "imageMogr2/crop/300x300/gravity/center/format/png",
    "imageMogr2/thumbnail/150x150/quality/70",
]


@pytest.fixture(scope="module")
def sdk(server: Server) -> Any:
    client = make_client(server, "proxy")
    client.ci_open_pic_bucket(Bucket=PHOTOS)  # the job APIs need the bucket's image service on
    return client


@pytest.fixture(scope="module")
def source(sdk: Any, photo: bytes) -> str:
    sdk.put_object(Bucket=PHOTOS, Key="jobs/src.jpg", Body=photo)
    return "jobs/src.jpg"


def persisted(photo: bytes, rule: str) -> bytes:
    store = MemoryStore()
    store.put("s.jpg", photo)
    persist("s.jpg", None, {"rules": [{"fileid": "/o", "rule": rule}]}, store, in_cloud=True, workers=1)
    return store.get("o")


def job(source: str, out: str, rule: str = "", template: str = "", **operation: str) -> dict[str, Any]:
    op: dict[str, Any] = {"Output": {"Region": REGION, "Bucket": PHOTOS, "Object": out}, **operation}
    if template:
        op["TemplateId"] = template
    else:
        op["PicProcess"] = {"IsPicInfo": "false", "ProcessRule": rule}
    return {"Tag": "PicProcess", "Input": {"Object": source}, "Operation": op}


def create(sdk: Any, spec: dict[str, Any]) -> dict[str, Any]:
    answer = sdk.ci_create_media_pic_jobs(Bucket=PHOTOS, Jobs=spec, Lst={})
    (detail,) = answer["JobsDetail"]
    return dict(detail)


def wait(sdk: Any, ids: list[str], timeout: float = 120) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        details: list[dict[str, Any]] = []
        for start in range(0, len(ids), 10):
            details += sdk.ci_get_media_pic_jobs(Bucket=PHOTOS, JobIDs=",".join(ids[start : start + 10]))["JobsDetail"]
        if all(d["State"] not in ("Submitted", "Running") for d in details) or time.monotonic() > deadline:
            return details
        time.sleep(0.2)


def queue_id(sdk: Any) -> str:
    queues = sdk.ci_get_media_pic_queue(Bucket=PHOTOS)
    (queue,) = queues["QueueList"]
    return str(queue["QueueId"])


def set_queue(sdk: Any, state: str) -> dict[str, Any]:
    request = {"Name": "pictures", "State": state, "NotifyConfig": {"State": "Off"}}
    return dict(sdk.ci_update_media_pic_queue(Bucket=PHOTOS, QueueId=queue_id(sdk), Request=request)["Queue"][0])


def test_twenty_jobs_equal_persist(sdk: Any, source: str, photo: bytes) -> None:
    created = [create(sdk, job(source, f"jobs/out/{i:02d}.img", RULES[i % len(RULES)])) for i in range(20)]
    assert all(d["State"] in ("Submitted", "Running") for d in created)
    assert all(d["JobId"].startswith("c") and d["Tag"] == "PicProcess" for d in created)
    details = wait(sdk, [d["JobId"] for d in created])
    assert [d["State"] for d in details] == ["Success"] * 20, details
    for i, detail in enumerate(details):
        assert detail["Operation"]["Output"]["Object"] == f"jobs/out/{i:02d}.img"
        result = detail["Operation"]["PicProcessResult"]
        body = sdk.get_object(Bucket=PHOTOS, Key=f"jobs/out/{i:02d}.img")["Body"].get_raw_stream().read()
        assert body == persisted(photo, RULES[i % len(RULES)])
        assert int(result["ProcessResult"]["Size"]) == len(body)
        assert detail["StartTime"] != "-" and detail["EndTime"] != "-"


def test_failed_job_carries_the_error(sdk: Any, source: str) -> None:
    detail = create(sdk, job(source, "jobs/bad.jpg", "imageMogr2/blur/80x5"))
    (done,) = wait(sdk, [detail["JobId"]])
    assert (done["State"], done["Code"]) == ("Failed", "InvalidArgument")
    assert "blur" in done["Message"]
    with pytest.raises(CosServiceError) as err:
        sdk.head_object(Bucket=PHOTOS, Key="jobs/bad.jpg")
    assert err.value.get_status_code() == 404


def test_list_with_paging(sdk: Any, source: str) -> None:
    made = [create(sdk, job(source, f"jobs/list/{i}.jpg", RULES[0]))["JobId"] for i in range(5)]
    wait(sdk, made)
    seen: list[str] = []
    token = ""
    while True:
        page = sdk.ci_list_media_pic_jobs(Bucket=PHOTOS, Tag="PicProcess", Size=2, NextToken=token)
        got = [d["JobId"] for d in page.get("JobsDetail", [])]
        assert len(got) <= 2
        seen += got
        token = page.get("NextToken") or ""
        if not token:
            break
    assert seen[:5] == list(reversed(made))  # newest first
    assert len(seen) == len(set(seen))
    success = sdk.ci_list_media_pic_jobs(Bucket=PHOTOS, Tag="PicProcess", States="Success", Size=100)
    assert set(made) <= {d["JobId"] for d in success["JobsDetail"]}
    assert all(d["State"] == "Success" for d in success["JobsDetail"])


def test_pause_cancel_resume(sdk: Any, source: str) -> None:
    paused = set_queue(sdk, "Paused")
    assert paused["State"] == "Paused" and paused["Name"] == "pictures"
    ids = [create(sdk, job(source, f"jobs/paused/{i}.jpg", RULES[1]))["JobId"] for i in range(3)]
    time.sleep(1.5)
    details = sdk.ci_get_media_pic_jobs(Bucket=PHOTOS, JobIDs=",".join(ids))["JobsDetail"]
    assert [d["State"] for d in details] == ["Submitted"] * 3
    assert sdk.ci_cancel_jobs(Bucket=PHOTOS, JobID=ids[1]) == ""
    assert set_queue(sdk, "Active")["State"] == "Active"
    details = wait(sdk, ids)
    assert [d["State"] for d in details] == ["Success", "Cancel", "Success"]
    assert sdk.object_exists(Bucket=PHOTOS, Key="jobs/paused/0.jpg")
    assert not sdk.object_exists(Bucket=PHOTOS, Key="jobs/paused/1.jpg")
    with pytest.raises(CosServiceError) as err:
        sdk.ci_cancel_jobs(Bucket=PHOTOS, JobID="cnosuchjob")
    assert (err.value.get_error_code(), err.value.get_status_code()) == ("ResourceNotFound", 404)


def test_templates(sdk: Any, source: str, photo: bytes) -> None:
    template = {
        "Tag": "PicProcess",
        "Name": "thumb-64",
        "PicProcess": {"IsPicInfo": "true", "ProcessRule": "imageMogr2/thumbnail/64x"},
    }
    created = sdk.ci_create_template(Bucket=PHOTOS, Template=template)["Template"]
    template_id = created["TemplateId"]
    listed = sdk.ci_get_template(Bucket=PHOTOS, Ids=template_id)
    assert [t["Name"] for t in listed["TemplateList"]] == ["thumb-64"]
    detail = create(sdk, job(source, "jobs/tpl.jpg", template=template_id))
    assert detail["Operation"]["TemplateName"] == "thumb-64"
    (done,) = wait(sdk, [detail["JobId"]])
    assert done["State"] == "Success"
    assert done["Operation"]["PicProcessResult"]["OriginalInfo"]["ImageInfo"]["Width"] == "1200"
    body = sdk.get_object(Bucket=PHOTOS, Key="jobs/tpl.jpg")["Body"].get_raw_stream().read()
    assert body == persisted(photo, "imageMogr2/thumbnail/64x")
    sdk.ci_delete_template(Bucket=PHOTOS, TemplateId=template_id)
    with pytest.raises(CosServiceError) as err:
        sdk.ci_delete_template(Bucket=PHOTOS, TemplateId=template_id)
    assert err.value.get_error_code() == "TemplateNotFound"


def test_update_template(sdk: Any, source: str, photo: bytes) -> None:
    """``ci_update_template`` (``PUT /template/<id>``): the next job from it takes the new rule."""
    template = {"Tag": "PicProcess", "Name": "to-update", "PicProcess": {"ProcessRule": "imageMogr2/thumbnail/64x"}}
    template_id = sdk.ci_create_template(Bucket=PHOTOS, Template=template)["Template"]["TemplateId"]
    template = {"Tag": "PicProcess", "Name": "updated", "PicProcess": {"ProcessRule": "imageMogr2/thumbnail/90x"}}
    answer = sdk.ci_update_template(Bucket=PHOTOS, TemplateId=template_id, Template=template)
    assert answer["Template"]["TemplateId"] == template_id
    assert answer["Template"]["Name"] == "updated"
    assert answer["Template"]["PicProcess"]["ProcessRule"] == "imageMogr2/thumbnail/90x"
    (done,) = wait(sdk, [create(sdk, job(source, "jobs/tpl-updated.jpg", template=template_id))["JobId"]])
    assert (done["State"], done["Operation"]["TemplateName"]) == ("Success", "updated")
    assert done["Operation"]["PicProcessResult"]["ProcessResult"]["Width"] == "90"
    body = sdk.get_object(Bucket=PHOTOS, Key="jobs/tpl-updated.jpg")["Body"].get_raw_stream().read()
    assert body == persisted(photo, "imageMogr2/thumbnail/90x")
    with pytest.raises(CosServiceError) as err:
        sdk.ci_update_template(Bucket=PHOTOS, TemplateId="tnosuchtemplate", Template=template)
    assert (err.value.get_error_code(), err.value.get_status_code()) == ("TemplateNotFound", 404)
    sdk.ci_delete_template(Bucket=PHOTOS, TemplateId=template_id)


def test_staged_results_are_hidden_from_listings(sdk: Any) -> None:
    """Objects under ``.ci-jobs/`` (where a running job leaves its result) are not listed."""
    sdk.put_object(Bucket=PHOTOS, Key=".ci-jobs/cstaged-1", Body=b"staged")
    sdk.put_object(Bucket=PHOTOS, Key="listing/visible.txt", Body=b"visible")
    listed = sdk.list_objects(Bucket=PHOTOS, Prefix="")
    keys = [c["Key"] for c in listed.get("Contents", [])]
    assert "listing/visible.txt" in keys
    assert not any(k.startswith(".ci-jobs/") for k in keys), keys
    assert "Contents" not in sdk.list_objects(Bucket=PHOTOS, Prefix=".ci-jobs/")
    folders = sdk.list_objects(Bucket=PHOTOS, Prefix="", Delimiter="/")
    assert ".ci-jobs/" not in [p["Prefix"] for p in folders.get("CommonPrefixes", [])]
    sdk.delete_object(Bucket=PHOTOS, Key=".ci-jobs/cstaged-1")


def test_picbucket_off_refuses_jobs_and_drops_the_queue(sdk: Any, source: str) -> None:
    """Disabling the bucket's image service cancels its unfinished jobs (no output appears)
    and removes its queue; while it is off, creating a job or reading the queue answers
    ``404 QueueNotFound``; turned on again, a new queue runs new jobs."""
    old_queue = queue_id(sdk)
    set_queue(sdk, "Paused")
    ids = [create(sdk, job(source, f"jobs/off/{i}.jpg", RULES[0]))["JobId"] for i in range(3)]
    sdk.ci_close_pic_bucket(Bucket=PHOTOS)
    try:
        details = sdk.ci_get_media_pic_jobs(Bucket=PHOTOS, JobIDs=",".join(ids))["JobsDetail"]
        assert [d["State"] for d in details] == ["Cancel"] * 3
        for call in (
            lambda: create(sdk, job(source, "jobs/off/refused.jpg", RULES[0])),
            lambda: sdk.ci_get_media_pic_queue(Bucket=PHOTOS),
        ):
            with pytest.raises(CosServiceError) as err:
                call()
            assert (err.value.get_error_code(), err.value.get_status_code()) == ("QueueNotFound", 404)
            assert "picbucket" in err.value.get_error_msg()
    finally:
        sdk.ci_open_pic_bucket(Bucket=PHOTOS)
    assert queue_id(sdk) != old_queue
    (done,) = wait(sdk, [create(sdk, job(source, "jobs/off/after.jpg", RULES[0]))["JobId"]])
    assert done["State"] == "Success"
    time.sleep(0.5)
    for i in range(3):
        assert not sdk.object_exists(Bucket=PHOTOS, Key=f"jobs/off/{i}.jpg")


def test_ip_mode_reaches_the_same_queue(server: Server, sdk: Any) -> None:
    ip = make_client(server, "ip")
    assert queue_id(ip) == queue_id(sdk)


def test_restart_with_jobs_queued(tmp_path: Any, photo: bytes) -> None:
    """A server stopped (SIGTERM) with jobs queued and running, started again on the same
    root: the jobs complete, outputs equal persist()'s."""
    from tests.server.conftest import SECRET_ID, SECRET_KEY, start_server, stop_server

    root = tmp_path / "root"
    args = ("--secret-id", SECRET_ID, "--secret-key", SECRET_KEY, "--bucket", PHOTOS, "--workers", "2")
    first = start_server(root, *args)
    try:
        client = make_client(first, "proxy")
        client.ci_open_pic_bucket(Bucket=PHOTOS)
        client.put_object(Bucket=PHOTOS, Key="in/src.jpg", Body=photo)
        slow = "imageMogr2/blur/20x10/thumbnail/300x"
        ids = [create(client, job("in/src.jpg", f"out/{i}.jpg", slow))["JobId"] for i in range(6)]
    finally:
        assert stop_server(first) == 0, first.log_text()
    second = start_server(root, *args)
    try:
        client = make_client(second, "proxy")
        details = wait(client, ids)
        assert [d["State"] for d in details] == ["Success"] * 6, details
        want = persisted(photo, slow)
        for i in range(6):
            assert client.get_object(Bucket=PHOTOS, Key=f"out/{i}.jpg")["Body"].get_raw_stream().read() == want
    finally:
        assert stop_server(second) == 0, second.log_text()


def test_serve_with_a_named_scheduler(tmp_path: Any, photo: bytes, cluster: Any) -> None:  # noqa: F811
    """``serve --scheduler tcp://...``: the jobs run on that cluster (its workers run the
    job: their pids are the ones the cluster reports)."""
    from tests.server.conftest import SECRET_ID, SECRET_KEY, start_server, stop_server

    server = start_server(
        tmp_path / "root",
        *("--secret-id", SECRET_ID, "--secret-key", SECRET_KEY, "--bucket", PHOTOS),
        *("--scheduler", cluster.address),
    )
    try:
        client = make_client(server, "proxy")
        client.ci_open_pic_bucket(Bucket=PHOTOS)
        client.put_object(Bucket=PHOTOS, Key="in/src.jpg", Body=photo)
        ids = [create(client, job("in/src.jpg", f"out/{i}.jpg", RULES[0]))["JobId"] for i in range(3)]
        details = wait(client, ids)
        assert [d["State"] for d in details] == ["Success"] * 3, details
        want = persisted(photo, RULES[0])
        assert client.get_object(Bucket=PHOTOS, Key="out/2.jpg")["Body"].get_raw_stream().read() == want
        # the server's jobs went through this scheduler: it knows their task keys
        seen = cluster.client.run_on_scheduler(_task_keys)
        assert any(str(key).startswith("pic-job") for key in seen), (seen, server.log_text())
    finally:
        assert stop_server(server) == 0, server.log_text()


def _task_keys(dask_scheduler: Any) -> list[str]:
    return [str(ts.key) for ts in dask_scheduler.tasks.values()] + [
        str(key) for key in getattr(dask_scheduler, "task_prefixes", {})
    ]


def test_callbacks_reach_a_receiver(sdk: Any, source: str) -> None:
    """The queue's ``NotifyConfig`` and a job's own ``CallBack``, set through the SDK: a real
    HTTP receiver on 127.0.0.1 gets CI's ``TaskFinish`` body for each job."""
    import json
    import xml.etree.ElementTree as ET

    from tests.jobs.test_notify import Receiver

    receiver = Receiver()
    try:
        notify = {"State": "On", "Event": "TaskFinish", "Type": "Url", "Url": receiver.url("/queue")}
        request = {"Name": "pictures", "State": "Active", "NotifyConfig": notify}
        shown = sdk.ci_update_media_pic_queue(Bucket=PHOTOS, QueueId=queue_id(sdk), Request=request)["Queue"][0]
        assert shown["NotifyConfig"]["Url"] == receiver.url("/queue")
        by_queue = create(sdk, job(source, "jobs/cb/q.jpg", RULES[0]))["JobId"]
        own = {**job(source, "jobs/cb/j.jpg", RULES[0]), "CallBack": receiver.url("/own"), "CallBackFormat": "JSON"}
        by_job = create(sdk, own)["JobId"]
        assert [d["State"] for d in wait(sdk, [by_queue, by_job])] == ["Success", "Success"]
        got = {path: (ctype, body) for path, ctype, body in receiver.wait_for(2)}
    finally:
        set_queue(sdk, "Active")  # NotifyConfig Off again for the other tests
        receiver.close()
    assert set(got) == {"/queue", "/own"}
    ctype, body = got["/queue"]
    root = ET.fromstring(body)
    assert ctype == "application/xml" and root.findtext("EventName") == "TaskFinish"
    assert (root.findtext("JobsDetail/JobId"), root.findtext("JobsDetail/State")) == (by_queue, "Success")
    assert root.findtext("JobsDetail/Operation/PicProcessResult/ProcessResult/Width") == "200"
    ctype, body = got["/own"]
    detail = json.loads(body)["Response"]["JobsDetail"]
    assert ctype == "application/json" and (detail["JobId"], detail["State"]) == (by_job, "Success")
