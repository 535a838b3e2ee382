"""The XML of the job APIs (requests parsed, responses built), on the records alone: no
cluster is started (jobs stay Submitted)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from ci_engine.errors import CIError, InvalidArgumentError
from ci_engine.jobs import Buckets, JobsAPI, JobService

BUCKET = "photos-1250000000"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[JobsAPI]:
    service = JobService(tmp_path / "jobs.sqlite", Buckets(str(tmp_path / "root")))
    yield JobsAPI(service)
    service.records.close()


def job_body(
    obj: str = "in/a.jpg", out: str = "out/a.jpg", rule: str = "imageMogr2/thumbnail/100x", **extra: str
) -> str:
    more = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (
        "<Request><Tag>PicProcess</Tag><Input><Object>" + obj + "</Object></Input><Operation>"
        "<PicProcess><IsPicInfo>true</IsPicInfo><ProcessRule>" + rule + "</ProcessRule></PicProcess>"
        "<Output><Region>ap-guangzhou</Region><Bucket>out-1250000000</Bucket><Object>"
        + out
        + "</Object></Output>"
        + more
        + "</Operation></Request>"
    )


def xml(text: str) -> ET.Element:
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    return ET.fromstring(text)


def test_create_and_get_a_job(api: JobsAPI) -> None:
    answer = xml(api.create_jobs(BUCKET, job_body(UserData="hello", JobLevel="2")))
    (detail,) = answer.findall("JobsDetail")
    assert detail.findtext("State") == "Submitted"
    assert detail.findtext("Tag") == "PicProcess"
    job_id = detail.findtext("JobId")
    assert job_id is not None and job_id.startswith("c") and len(job_id) == 33
    assert detail.findtext("StartTime") == "-" and detail.findtext("EndTime") == "-"
    assert detail.findtext("QueueId", "").startswith("p")
    assert detail.findtext("Input/Object") == "in/a.jpg"
    assert detail.findtext("Input/BucketId") == BUCKET
    assert detail.findtext("Operation/PicProcess/ProcessRule") == "imageMogr2/thumbnail/100x"
    assert detail.findtext("Operation/PicProcess/IsPicInfo") == "true"
    assert detail.findtext("Operation/Output/Bucket") == "out-1250000000"
    assert detail.findtext("Operation/Output/Object") == "out/a.jpg"
    assert detail.findtext("Operation/UserData") == "hello"
    assert detail.findtext("Operation/JobLevel") == "2"
    got = xml(api.get_jobs(BUCKET, f"{job_id},cnothere"))
    assert [d.findtext("JobId") for d in got.findall("JobsDetail")] == [job_id]
    assert got.findtext("NonExistJobIds") == "cnothere"
    # another bucket does not see it
    other = xml(api.get_jobs("other-1250000000", job_id))
    assert other.findall("JobsDetail") == [] and other.findtext("NonExistJobIds") == job_id


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("<Request><Tag>Transcode</Tag></Request>", "Tag"),
        ("<Nope/>", "<Request>"),
        ("<Request><Tag>PicProcess", "well-formed"),
        ('<!DOCTYPE r [<!ENTITY a "aaaa">]><Request/>', "document type"),
        (job_body(obj=""), "Input/Object"),
        (job_body(obj="a/../b.jpg"), "Input/Object"),
        (job_body(out=""), "Output/Object"),
        (job_body(rule=""), "ProcessRule or TemplateId"),
        (job_body(JobLevel="3"), "JobLevel"),
        (job_body(UserData="x" * 1025), "UserData"),
        (job_body().replace("<IsPicInfo>true", "<IsPicInfo>yes"), "IsPicInfo"),
        (job_body().replace("<Bucket>out-1250000000</Bucket>", ""), "Output/Bucket"),
    ],
)
def test_bad_job_requests_are_invalid_argument(api: JobsAPI, body: str, needle: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        api.create_jobs(BUCKET, body)
    assert err.value.status == 400
    assert needle in err.value.message


def test_list_pages_with_next_token(api: JobsAPI) -> None:
    ids = [xml(api.create_jobs(BUCKET, job_body(out=f"o/{i}.jpg"))).findtext("JobsDetail/JobId") for i in range(7)]
    seen: list[str | None] = []
    token = ""
    pages = 0
    while True:
        page = xml(api.list_jobs(BUCKET, {"tag": "PicProcess", "size": "3", "nextToken": token}))
        seen += [d.findtext("JobId") for d in page.findall("JobsDetail")]
        token = page.findtext("NextToken") or ""
        pages += 1
        if not token:
            break
    assert pages == 3
    assert seen == list(reversed(ids))  # Desc by default
    asc = xml(api.list_jobs(BUCKET, {"orderByTime": "Asc", "size": "100"}))
    assert [d.findtext("JobId") for d in asc.findall("JobsDetail")] == ids
    assert asc.findtext("NextToken") == ""
    api.cancel_job(BUCKET, str(ids[0]))
    cancelled = xml(api.list_jobs(BUCKET, {"states": "Cancel"}))
    assert [d.findtext("JobId") for d in cancelled.findall("JobsDetail")] == [ids[0]]
    assert [d.findtext("State") for d in cancelled.findall("JobsDetail")] == ["Cancel"]
    both = xml(api.list_jobs(BUCKET, {"states": "Submitted,Cancel", "size": "100"}))
    assert len(both.findall("JobsDetail")) == 7
    for bad in ({"states": "Done"}, {"orderByTime": "Up"}, {"size": "0"}, {"size": "101"}, {"nextToken": "x"}):
        with pytest.raises(InvalidArgumentError):
            api.list_jobs(BUCKET, bad)


def test_queue_get_and_update(api: JobsAPI) -> None:
    got = xml(api.get_queues(BUCKET, {}))
    assert got.findtext("TotalCount") == "1"
    queue = got.find("QueueList")
    assert queue is not None
    queue_id = queue.findtext("QueueId")
    assert queue_id is not None and queue_id.startswith("p") and len(queue_id) == 33
    assert queue.findtext("State") == "Active"
    assert queue.findtext("Category") == "PicProcessing"
    assert queue.findtext("NotifyConfig/State") == "Off"
    body = (
        "<Request><Name>mine</Name><State>Paused</State>"
        "<NotifyConfig><State>On</State><Event>TaskFinish</Event><Type>Url</Type><Url>http://example.com/cb</Url>"
        "</NotifyConfig></Request>"
    )
    updated = xml(api.update_queue(BUCKET, queue_id, body)).find("Queue")
    assert updated is not None
    assert (updated.findtext("Name"), updated.findtext("State")) == ("mine", "Paused")
    assert updated.findtext("NotifyConfig/Url") == "http://example.com/cb"
    paused = xml(api.get_queues(BUCKET, {"state": "Paused", "queueIds": f"{queue_id},pnope"}))
    assert paused.findtext("QueueList/State") == "Paused"
    assert paused.findtext("NonExistPIDs") == "pnope"
    assert xml(api.get_queues(BUCKET, {"state": "Active"})).findtext("TotalCount") == "0"
    with pytest.raises(CIError) as err:
        api.update_queue(BUCKET, "pnope", "<Request><Name>x</Name><State>Active</State></Request>")
    assert (err.value.code, err.value.status) == ("QueueNotFound", 404)
    with pytest.raises(InvalidArgumentError):
        api.update_queue(BUCKET, queue_id, "<Request><Name>x</Name><State>Stopped</State></Request>")


def test_templates(api: JobsAPI) -> None:
    body = (
        "<Request><Tag>PicProcess</Tag><Name>thumb</Name>"
        "<PicProcess><IsPicInfo>false</IsPicInfo><ProcessRule>imageMogr2/thumbnail/64x</ProcessRule></PicProcess>"
        "</Request>"
    )
    created = xml(api.create_template(BUCKET, body)).find("Template")
    assert created is not None
    template_id = created.findtext("TemplateId")
    assert template_id is not None and template_id.startswith("t")
    assert created.findtext("PicProcess/ProcessRule") == "imageMogr2/thumbnail/64x"
    with pytest.raises(CIError):
        api.create_template(BUCKET, body)  # the name is taken
    listed = xml(api.get_templates(BUCKET, {"ids": f"{template_id},tnope"}))
    assert listed.findtext("TotalCount") == "1"
    assert listed.findtext("TemplateList/Name") == "thumb"
    assert listed.findtext("NonExistTIDs") == "tnope"
    assert xml(api.get_templates(BUCKET, {"name": "th"})).findtext("TotalCount") == "1"
    assert xml(api.get_templates(BUCKET, {"name": "x"})).findtext("TotalCount") == "0"
    # a job from the template: TemplateId wins over PicProcess
    job_xml = job_body(rule="imageMogr2/thumbnail/999x").replace(
        "<PicProcess>", f"<TemplateId>{template_id}</TemplateId><PicProcess>"
    )
    detail = xml(api.create_jobs(BUCKET, job_xml)).find("JobsDetail")
    assert detail is not None
    assert detail.findtext("Operation/TemplateId") == template_id
    assert detail.findtext("Operation/TemplateName") == "thumb"
    assert detail.findtext("Operation/PicProcess/ProcessRule") == "imageMogr2/thumbnail/64x"
    assert xml(api.delete_template(BUCKET, template_id)).findtext("TemplateId") == template_id
    with pytest.raises(CIError) as err:
        api.delete_template(BUCKET, template_id)
    assert (err.value.code, err.value.status) == ("TemplateNotFound", 404)
    with pytest.raises(CIError) as err:
        api.create_jobs(BUCKET, job_xml)
    assert err.value.code == "TemplateNotFound"


def test_cancel_unknown_and_finished(api: JobsAPI) -> None:
    with pytest.raises(CIError) as err:
        api.cancel_job(BUCKET, "cnothere")
    assert (err.value.code, err.value.status) == ("ResourceNotFound", 404)
    job_id = xml(api.create_jobs(BUCKET, job_body())).findtext("JobsDetail/JobId")
    assert job_id is not None
    assert xml(api.cancel_job(BUCKET, job_id)).findtext("JobsDetail/State") == "Cancel"


def test_values_are_escaped(api: JobsAPI) -> None:
    answer = api.create_jobs(BUCKET, job_body(rule="imageMogr2/thumbnail/100x&amp;&lt;x", UserData="a&amp;b"))
    detail = xml(answer).find("JobsDetail")
    assert detail is not None
    assert detail.findtext("Operation/PicProcess/ProcessRule") == "imageMogr2/thumbnail/100x&<x"
    assert detail.findtext("Operation/UserData") == "a&b"


def template_body(name: str, rule: str, is_pic_info: str = "false") -> str:
    return (
        f"<Request><Tag>PicProcess</Tag><Name>{name}</Name><PicProcess><IsPicInfo>{is_pic_info}</IsPicInfo>"
        f"<ProcessRule>{rule}</ProcessRule></PicProcess></Request>"
    )


def test_update_template(api: JobsAPI) -> None:
    made = xml(api.create_template(BUCKET, template_body("small", "imageMogr2/thumbnail/64x")))
    template_id = made.findtext("Template/TemplateId", "")
    xml(api.create_template(BUCKET, template_body("other", "imageMogr2/thumbnail/32x")))
    job_before = xml(api.create_jobs(BUCKET, job_body()))  # a job made from a PicProcess rule
    updated = xml(api.update_template(BUCKET, template_id, template_body("large", "imageMogr2/thumbnail/800x", "true")))
    assert updated.findtext("Template/TemplateId") == template_id
    assert updated.findtext("Template/Name") == "large"
    assert updated.findtext("Template/PicProcess/ProcessRule") == "imageMogr2/thumbnail/800x"
    assert updated.findtext("Template/PicProcess/IsPicInfo") == "true"
    assert updated.findtext("Template/CreateTime") == made.findtext("Template/CreateTime")
    listed = xml(api.get_templates(BUCKET, {"ids": template_id}))
    assert listed.findtext("TemplateList/Name") == "large"
    assert listed.findtext("TemplateList/PicProcess/ProcessRule") == "imageMogr2/thumbnail/800x"
    # a job from the template takes the new rule
    body = job_body().replace(
        "<PicProcess><IsPicInfo>true</IsPicInfo><ProcessRule>imageMogr2/thumbnail/100x</ProcessRule></PicProcess>",
        f"<TemplateId>{template_id}</TemplateId>",
    )
    detail = xml(api.create_jobs(BUCKET, body)).find("JobsDetail")
    assert detail is not None
    assert detail.findtext("Operation/PicProcess/ProcessRule") == "imageMogr2/thumbnail/800x"
    assert detail.findtext("Operation/TemplateName") == "large"
    assert job_before.findtext("JobsDetail/Operation/PicProcess/ProcessRule") == "imageMogr2/thumbnail/100x"
    with pytest.raises(CIError) as err:
        api.update_template(BUCKET, "tnosuch", template_body("x", "imageMogr2/thumbnail/10x"))
    assert (err.value.code, err.value.status) == ("TemplateNotFound", 404)
    with pytest.raises(CIError) as err:
        api.update_template(BUCKET, template_id, template_body("other", "imageMogr2/thumbnail/10x"))
    assert (err.value.code, err.value.status) == ("InvalidArgument", 400)
    with pytest.raises(InvalidArgumentError):
        api.update_template(BUCKET, template_id, template_body("large", ""))
    with pytest.raises(CIError) as err:  # another bucket's template is not this bucket's
        api.update_template("other-1250000000", template_id, template_body("y", "imageMogr2/thumbnail/10x"))
    assert err.value.code == "TemplateNotFound"


def test_drop_queue_cancels_unfinished_jobs(api: JobsAPI) -> None:
    records = api.service.records
    made = [xml(api.create_jobs(BUCKET, job_body(out=f"out/{i}.jpg"))) for i in range(3)]
    ids = [answer.findtext("JobsDetail/JobId", "") for answer in made]
    other = xml(api.create_jobs("other-1250000000", job_body())).findtext("JobsDetail/JobId", "")
    (claimed,) = records.claim(1)  # one of them Running
    assert claimed.id == ids[0]
    old_queue = records.queue_for(BUCKET).id
    assert records.drop_queue(BUCKET) == 3
    jobs, missing = records.jobs(BUCKET, ids)
    assert not missing
    assert [(j.state, j.code) for j in jobs] == [("Cancel", "Cancel")] * 3
    assert records.job(other).state == "Submitted"  # another bucket's jobs are untouched
    assert records.queue_for(BUCKET).id != old_queue  # a new queue when the service is on again
    assert records.drop_queue(BUCKET) == 0


def test_a_records_file_from_before_the_callbacks_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    from ci_engine.jobs import Job, JobRecords
    from ci_engine.jobs.records import _SCHEMA

    old = _SCHEMA.replace(", callback TEXT NOT NULL DEFAULT '', callback_format TEXT NOT NULL DEFAULT ''", "")
    assert old != _SCHEMA
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(old)
        columns = [
            "seq", "id", "bucket", "queue_id", "input_object", "output_bucket", "output_object", "rule",
            "is_pic_info", "tag", "state", "code", "message", "creation_time", "start_time", "end_time",
            "input_region", "output_region", "template_id", "template_name", "user_data", "job_level",
            "result", "attempts", "created",
        ]  # fmt: skip
        values = [1, "cold", BUCKET, "pq", "a.jpg", "o-1", "b.jpg", "imageMogr2/thumbnail/8x", 0, "PicProcess"]
        values += ["Submitted", "Success", "", "-", "-", "-", "r", "r", "", "", "", 0, None, 0, 0.0]
        db.execute(f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)
    records = JobRecords(path)
    try:
        assert (records.job("cold").callback, records.job("cold").callback_format) == ("", "")
        records.add_jobs(
            [Job("cnew", BUCKET, "pq", "a.jpg", "o-1", "c.jpg", "r", callback="http://x/", callback_format="JSON")]
        )
        assert (records.job("cnew").callback, records.job("cnew").callback_format) == ("http://x/", "JSON")
    finally:
        records.close()
