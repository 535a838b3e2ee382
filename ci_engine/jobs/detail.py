"""``JobsDetail``: one job as CI shows it, in the API answers (:mod:`ci_engine.jobs.api`) and
in the ``TaskFinish`` callback (:mod:`ci_engine.jobs.notify`), built once as a tree of
ordered mappings (:func:`job_detail`) and written as XML (:class:`XMLWriter`) or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from ci_engine.jobs.records import Job

__all__ = ["XMLWriter", "job_detail", "pic_process", "quoted_etags", "callback_body", "CALLBACK_FORMATS"]

CALLBACK_FORMATS = ("XML", "JSON")


class XMLWriter:
    """A small XML writer: elements in the order given, text escaped, empty ones ``<X/>``."""

    def __init__(self, *, declaration: bool = True) -> None:
        self.parts: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n'] if declaration else []

    def open(self, name: str) -> None:
        self.parts.append(f"<{name}>")

    def close(self, name: str) -> None:
        self.parts.append(f"</{name}>")

    def leaf(self, name: str, value: object) -> None:
        text = escape(str(value)) if value is not None else ""
        self.parts.append(f"<{name}>{text}</{name}>" if text else f"<{name}/>")

    def tree(self, name: str, value: Mapping[str, Any]) -> None:
        self.open(name)
        for key, item in value.items():
            if isinstance(item, Mapping):
                self.tree(key, item)
            else:
                self.leaf(key, item)
        self.close(name)

    def text(self) -> str:
        return "".join(self.parts)


def quoted_etags(value: Mapping[str, Any]) -> dict[str, Any]:
    """``PicProcessResult`` with its ETags quoted, as in ``UploadResult``."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, Mapping):
            out[key] = quoted_etags(item)
        elif key == "Etag":
            out[key] = f'"{item}"'
        else:
            out[key] = item
    return out


def pic_process(is_pic_info: bool, rule: str) -> dict[str, Any]:
    """The ``PicProcess`` element of a job's operation and of a template."""
    return {"IsPicInfo": "true" if is_pic_info else "false", "ProcessRule": rule}


def job_detail(job: Job) -> dict[str, Any]:
    """The children of ``<JobsDetail>``, in CI's order."""
    operation: dict[str, Any] = {}
    if job.template_id:
        operation["TemplateId"] = job.template_id
        operation["TemplateName"] = job.template_name
    operation["PicProcess"] = pic_process(job.is_pic_info, job.rule)
    operation["Output"] = {"Region": job.output_region, "Bucket": job.output_bucket, "Object": job.output_object}
    if job.result is not None:
        operation["PicProcessResult"] = quoted_etags(job.result)
    if job.user_data:
        operation["UserData"] = job.user_data
    operation["JobLevel"] = job.job_level
    return {
        "Code": job.code,
        "Message": job.message,
        "JobId": job.id,
        "Tag": job.tag,
        "State": job.state,
        "CreationTime": job.creation_time,
        "StartTime": job.start_time,
        "EndTime": job.end_time,
        "QueueId": job.queue_id,
        "Input": {"BucketId": job.bucket, "Object": job.input_object, "Region": job.input_region},
        "Operation": operation,
    }


def callback_body(job: Job, fmt: str = "XML") -> tuple[bytes, str]:
    """The body and ``Content-Type`` of the ``TaskFinish`` callback of an ended job:
    ``<Response><EventName>TaskFinish</EventName><JobsDetail>...</JobsDetail></Response>``
    (CI's callback page), or the same tree as JSON (``{"Response": {"EventName": ...,
    "JobsDetail": {...}}}``, CI documents no JSON sample)."""
    if fmt not in CALLBACK_FORMATS:
        raise ValueError(f"callback format must be XML or JSON, got {fmt!r}")
    tree = {"EventName": "TaskFinish", "JobsDetail": job_detail(job)}
    if fmt == "JSON":
        return json.dumps({"Response": tree}, ensure_ascii=False).encode("utf-8"), "application/json"
    xml = XMLWriter()
    xml.tree("Response", tree)
    return xml.text().encode("utf-8"), "application/xml"
