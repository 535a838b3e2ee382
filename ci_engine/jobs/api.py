"""The XML face of the job service (``persistent-processing.md`` section 6): request bodies
and query parameters in, response bodies out, so that an HTTP layer only routes.

=============================================  ============================================
request                                        function
=============================================  ============================================
``GET /picqueue?queueIds=&state=&pageNumber=``  :meth:`JobsAPI.get_queues`
``PUT /picqueue/<id>`` (``<Request>``)           :meth:`JobsAPI.update_queue`
``POST /pic_jobs`` (``<Request>``)               :meth:`JobsAPI.create_jobs`
``GET /pic_jobs/<id,id>``                       :meth:`JobsAPI.get_jobs`
``GET /pic_jobs?tag=&states=&size=&nextToken=``  :meth:`JobsAPI.list_jobs`
``PUT /jobs/<id>?cancel``                       :meth:`JobsAPI.cancel_job`
``POST /template`` (``<Request>``)               :meth:`JobsAPI.create_template`
``GET /template?ids=&name=&pageNumber=``        :meth:`JobsAPI.get_templates`
``PUT /template/<id>`` (``<Request>``)           :meth:`JobsAPI.update_template`
``DELETE /template/<id>``                       :meth:`JobsAPI.delete_template`
=============================================  ============================================

Every method returns the XML body of a ``200`` answer (``<Response>...``) or raises a
:class:`~ci_engine.errors.CIError` whose code and status the HTTP layer turns into the COS
error body: ``400 InvalidArgument`` for a malformed request, ``404 QueueNotFound`` /
``TemplateNotFound`` / ``ResourceNotFound`` for an unknown id.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from datetime import datetime

from ci_engine.errors import InvalidArgumentError
from ci_engine.jobs.detail import XMLWriter as _XML
from ci_engine.jobs.detail import job_detail, pic_process
from ci_engine.jobs.notify import NO_CALLBACK, check_callback_type, check_format, check_notify_config, check_url
from ci_engine.jobs.records import ACTIVE, PAUSED, STATES, Job, Queue, Template
from ci_engine.jobs.service import JobRequest, JobService
from ci_engine.store import check_key

__all__ = ["JobsAPI", "parse_request", "MAX_BODY_BYTES"]

MAX_BODY_BYTES = 1 << 20
"""A job request body may hold up to this many bytes (the SDK's bodies are a few hundred)."""

MAX_JOBS_PER_REQUEST = 1
"""CI's ``POST /pic_jobs`` creates one job per request."""

_QUEUE_NAME_BYTES = 128
_USER_DATA_BYTES = 1024
_MAX_PAGE = 100


def _bad(message: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, op="jobs")


def parse_request(body: bytes | str) -> ET.Element:
    """The ``<Request>`` element of a body. Refuses a DTD (entity expansion), a body over
    :data:`MAX_BODY_BYTES`, malformed XML and another root element."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if len(raw) > MAX_BODY_BYTES:
        raise _bad(f"request: the body has {len(raw)} bytes; at most {MAX_BODY_BYTES} are accepted")
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise _bad("request: a document type declaration is not accepted")
    try:
        root = ET.fromstring(raw)  # noqa: S314 - no DTD (refused above), bounded size
    except ET.ParseError as exc:
        raise _bad(f"request: the body is not well-formed XML ({exc})") from None
    if root.tag != "Request":
        raise _bad(f"request: the root element must be <Request>, got <{root.tag}>")
    return root


def _text(parent: ET.Element | None, path: str, default: str = "") -> str:
    if parent is None:
        return default
    node = parent.find(path)
    if node is None or node.text is None:
        return default
    return node.text.strip()


def _bool(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("", "false", "0"):
        return False
    if lowered in ("true", "1"):
        return True
    raise _bad(f"{name}: must be true or false, got {value!r}")


def _int(value: str, name: str, default: int, low: int, high: int) -> int:
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"{name}: must be an integer between {low} and {high}, got {value!r}") from None
    if not low <= number <= high:
        raise _bad(f"{name}: must be an integer between {low} and {high}, got {value!r}")
    return number


def _key(value: str, name: str) -> str:
    if not value:
        raise _bad(f"{name}: is required")
    try:
        return check_key(value[1:] if value.startswith("/") else value)
    except InvalidArgumentError as exc:
        raise _bad(f"{name}: {exc.message}") from None


def _request_id() -> str:
    return uuid.uuid4().hex


# -- XML building ------------------------------------------------------------------------------------


def _queue_xml(xml: _XML, name: str, queue: Queue) -> None:
    xml.open(name)
    xml.leaf("QueueId", queue.id)
    xml.leaf("Name", queue.name)
    xml.leaf("State", queue.state)
    notify = {"State": "Off", **dict(queue.notify)}
    xml.tree("NotifyConfig", notify)
    xml.leaf("MaxSize", queue.max_size)
    xml.leaf("MaxConcurrent", queue.max_concurrent)
    xml.leaf("UpdateTime", queue.update_time)
    xml.leaf("CreateTime", queue.create_time)
    xml.leaf("BucketId", queue.bucket)
    xml.leaf("Category", "PicProcessing")
    xml.close(name)


def _job_xml(xml: _XML, job: Job) -> None:
    xml.tree("JobsDetail", job_detail(job))


def _template_xml(xml: _XML, name: str, template: Template) -> None:
    xml.open(name)
    xml.leaf("TemplateId", template.id)
    xml.leaf("Name", template.name)
    xml.leaf("BucketId", template.bucket)
    xml.leaf("Category", "Custom")
    xml.leaf("Tag", template.tag)
    xml.leaf("UpdateTime", template.update_time)
    xml.leaf("CreateTime", template.create_time)
    xml.tree("PicProcess", pic_process(template.is_pic_info, template.rule))
    xml.close(name)


def _template_request(body: bytes | str) -> tuple[str, str, bool]:
    """Name, rule and ``IsPicInfo`` of a template create or update body."""
    request = parse_request(body)
    tag = _text(request, "Tag")
    if tag != "PicProcess":
        raise _bad(f"Tag: must be PicProcess (the only template kind of this service), got {tag!r}")
    name = _text(request, "Name")
    if not name or len(name.encode("utf-8")) > 64:
        raise _bad("Name: is required, at most 64 bytes")
    rule = _text(request, "PicProcess/ProcessRule")
    if not rule:
        raise _bad("PicProcess/ProcessRule: is required")
    return name, rule, _bool(_text(request, "PicProcess/IsPicInfo"), "PicProcess/IsPicInfo")


def _template_response(template: Template) -> str:
    xml = _XML()
    xml.open("Response")
    xml.leaf("RequestId", _request_id())
    _template_xml(xml, "Template", template)
    xml.close("Response")
    return xml.text()


def _ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _page(query: Mapping[str, str]) -> tuple[int, int]:
    page = _int(query.get("pageNumber", ""), "pageNumber", 1, 1, 1 << 31)
    size = _int(query.get("pageSize", ""), "pageSize", 10, 1, _MAX_PAGE)
    return page, size


def _time(value: str, name: str) -> float | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).timestamp()
        except ValueError:
            continue
    raise _bad(f"{name}: expected a time like 2024-01-31T08:00:00+0800, got {value!r}")


class JobsAPI:
    """The job APIs of one service, answering in CI's XML."""

    def __init__(self, service: JobService) -> None:
        self.service = service

    # -- picqueue ----------------------------------------------------------------------------------
    def get_queues(self, bucket: str, query: Mapping[str, str]) -> str:
        queue = self.service.queue(bucket)
        page, size = _page(query)
        wanted = _ids(query.get("queueIds", ""))
        state = query.get("state", "") or "All"
        if state not in ("All", ACTIVE, PAUSED):
            raise _bad(f"state: must be Active, Paused or All, got {state!r}")
        queues = [queue]
        if wanted:
            queues = [q for q in queues if q.id in wanted]
        if state != "All":
            queues = [q for q in queues if q.state == state]
        shown = queues[(page - 1) * size : page * size]
        xml = _XML()
        xml.open("Response")
        xml.leaf("RequestId", _request_id())
        xml.leaf("TotalCount", len(queues))
        xml.leaf("PageNumber", page)
        xml.leaf("PageSize", size)
        for q in shown:
            _queue_xml(xml, "QueueList", q)
        for missing in (i for i in wanted if i != queue.id):
            xml.leaf("NonExistPIDs", missing)
        xml.close("Response")
        return xml.text()

    def update_queue(self, bucket: str, queue_id: str, body: bytes | str) -> str:
        request = parse_request(body)
        name = _text(request, "Name")
        if not name:
            raise _bad("Name: is required")
        if len(name.encode("utf-8")) > _QUEUE_NAME_BYTES:
            raise _bad(f"Name: at most {_QUEUE_NAME_BYTES} bytes")
        state = _text(request, "State")
        if state not in (ACTIVE, PAUSED):
            raise _bad(f"State: must be Active or Paused, got {state!r}")
        notify_node = request.find("NotifyConfig")
        notify: dict[str, str] | None = None
        if notify_node is not None:
            notify = {child.tag: (child.text or "").strip() for child in notify_node}
            check_notify_config(notify)
        queue = self.service.update_queue(bucket, queue_id, name=name, state=state, notify=notify)
        xml = _XML()
        xml.open("Response")
        xml.leaf("RequestId", _request_id())
        _queue_xml(xml, "Queue", queue)
        xml.close("Response")
        return xml.text()

    # -- pic_jobs ------------------------------------------------------------------------------------
    def create_jobs(self, bucket: str, body: bytes | str) -> str:
        job_request = self.parse_job(parse_request(body))
        jobs = self.service.submit(bucket, [job_request])
        return self._jobs_response(jobs)

    def parse_job(self, request: ET.Element) -> JobRequest:
        """A ``JobRequest`` from ``<Request>`` (validated; the rule itself is checked when
        the job runs, and a bad one makes the job ``Failed`` with the rule's error)."""
        tag = _text(request, "Tag")
        if tag != "PicProcess":
            raise _bad(f"Tag: must be PicProcess, got {tag!r}")
        input_object = _key(_text(request, "Input/Object"), "Input/Object")
        operation = request.find("Operation")
        if operation is None:
            raise _bad("Operation: is required")
        template_id = _text(operation, "TemplateId")
        rule = _text(operation, "PicProcess/ProcessRule")
        is_pic_info = _bool(_text(operation, "PicProcess/IsPicInfo"), "Operation/PicProcess/IsPicInfo")
        if not template_id and not rule:
            raise _bad("Operation: PicProcess/ProcessRule or TemplateId is required")
        output = operation.find("Output")
        if output is None:
            raise _bad("Operation/Output: is required")
        output_bucket = _text(output, "Bucket")
        if not output_bucket:
            raise _bad("Operation/Output/Bucket: is required")
        output_object = _key(_text(output, "Object"), "Operation/Output/Object")
        user_data = _text(operation, "UserData")
        if len(user_data.encode("utf-8")) > _USER_DATA_BYTES or not all(" " <= ch <= "~" for ch in user_data):
            raise _bad(f"Operation/UserData: at most {_USER_DATA_BYTES} printable ASCII characters")
        level = _int(_text(operation, "JobLevel"), "Operation/JobLevel", 0, 0, 2)
        callback = _text(request, "CallBack")
        if callback and callback != NO_CALLBACK:
            check_url(callback, "CallBack")
        check_callback_type(_text(request, "CallBackType"), "CallBackType")
        callback_format = _text(request, "CallBackFormat")
        check_format(callback_format, "CallBackFormat")
        return JobRequest(
            input_object,
            output_bucket,
            output_object,
            rule=rule,
            is_pic_info=is_pic_info,
            template_id=template_id,
            output_region=_text(output, "Region"),
            user_data=user_data,
            job_level=level,
            queue_id=_text(request, "QueueId"),
            callback=callback,
            callback_format=callback_format,
        )

    def get_jobs(self, bucket: str, ids: str) -> str:
        wanted = _ids(ids)
        if not wanted:
            raise _bad("jobId: at least one job id is required")
        jobs, missing = self.service.get(bucket, wanted)
        return self._jobs_response(jobs, missing=missing)

    def list_jobs(self, bucket: str, query: Mapping[str, str]) -> str:
        tag = query.get("tag", "") or "PicProcess"
        states_text = query.get("states", "") or "All"
        states: list[str] = []
        if states_text != "All":
            states = _ids(states_text)
            unknown = [s for s in states if s not in STATES]
            if unknown:
                raise _bad(f"states: unknown state {unknown[0]!r}; one of All, {', '.join(STATES)}")
        order = query.get("orderByTime", "") or "Desc"
        if order not in ("Desc", "Asc"):
            raise _bad(f"orderByTime: must be Desc or Asc, got {order!r}")
        size = _int(query.get("size", ""), "size", 10, 1, _MAX_PAGE)
        token = query.get("nextToken", "")
        after: int | None = None
        if token:
            after = _int(token, "nextToken", 0, 1, 1 << 62)
        jobs, following = self.service.records.list_jobs(
            bucket,
            tag=tag,
            queue_id=query.get("queueId", "") or None,
            states=states,
            descending=order == "Desc",
            size=size,
            after=after,
            start=_time(query.get("startCreationTime", ""), "startCreationTime"),
            end=_time(query.get("endCreationTime", ""), "endCreationTime"),
        )
        xml = _XML()
        xml.open("Response")
        for job in jobs:
            _job_xml(xml, job)
        xml.leaf("NextToken", str(following) if following is not None else "")
        xml.close("Response")
        return xml.text()

    def cancel_job(self, bucket: str, job_id: str) -> str:
        job = self.service.cancel(bucket, job_id)
        return self._jobs_response([job])

    def _jobs_response(self, jobs: Iterable[Job], *, missing: Iterable[str] = ()) -> str:
        xml = _XML()
        xml.open("Response")
        for job in jobs:
            _job_xml(xml, job)
        for job_id in missing:
            xml.leaf("NonExistJobIds", job_id)
        xml.close("Response")
        return xml.text()

    # -- templates ----------------------------------------------------------------------------------
    def create_template(self, bucket: str, body: bytes | str) -> str:
        name, rule, is_pic_info = _template_request(body)
        template = self.service.add_template(bucket, name, rule, is_pic_info)
        return _template_response(template)

    def update_template(self, bucket: str, template_id: str, body: bytes | str) -> str:
        """``PUT /template/<id>`` (the SDK's ``ci_update_template``): the same body as a
        create; answers ``Response{RequestId, Template}`` with the new ``UpdateTime``."""
        name, rule, is_pic_info = _template_request(body)
        template = self.service.records.update_template(bucket, template_id, name, rule, is_pic_info)
        return _template_response(template)

    def get_templates(self, bucket: str, query: Mapping[str, str]) -> str:
        category = query.get("category", "") or "Custom"
        page, size = _page(query)
        wanted = _ids(query.get("ids", ""))
        templates: list[Template]
        if category == "Official":
            total, templates, missing = 0, [], wanted
        elif category == "Custom":
            total, templates, missing = self.service.records.templates(
                bucket, ids=wanted, name=query.get("name", ""), page=page, size=size
            )
        else:
            raise _bad(f"category: must be Custom or Official, got {category!r}")
        xml = _XML()
        xml.open("Response")
        xml.leaf("RequestId", _request_id())
        xml.leaf("TotalCount", total)
        xml.leaf("PageNumber", page)
        xml.leaf("PageSize", size)
        for template in templates:
            _template_xml(xml, "TemplateList", template)
        for template_id in missing:
            xml.leaf("NonExistTIDs", template_id)
        xml.close("Response")
        return xml.text()

    def delete_template(self, bucket: str, template_id: str) -> str:
        self.service.records.delete_template(bucket, template_id)
        xml = _XML()
        xml.open("Response")
        xml.leaf("RequestId", _request_id())
        xml.leaf("TemplateId", template_id)
        xml.close("Response")
        return xml.text()
