"""The bucket-level CI APIs: CI binding (``PUT /`` on the ci host → ``CIBucket``; the older
pic-host ``PUT /``, ``PUT /?unbind``, ``GET /`` → ``CIStatus``), the image-processing service
``picbucket`` (enable / disable / list with paging; enabling creates the bucket's queue
record), styles (``PUT/GET/DELETE /?style``) and original-image protection
(``PUT/GET/DELETE /?origin-protect``).

The job APIs (``/picqueue``, ``/pic_jobs``, ``/jobs``, ``/template``) all go to
:attr:`App.jobs <ci_engine.server.app.App.jobs>`, the one place the asynchronous-jobs service
plugs in; by default they answer ``501 NotImplemented``.

Records are small JSON metadata documents of the bucket (:class:`~ci_engine.server.storage.Storage`):
``ci.json`` (binding), ``picbucket.json`` (the service switch and its queue).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.responses import Response

from ci_engine.errors import InvalidArgumentError
from ci_engine.server.app import App, Context, io
from ci_engine.server.errors import InvalidRequestError, MethodNotAllowedError, NoSuchBucketError
from ci_engine.server.objects import read_small_body
from ci_engine.server.xml import child_text, parse_xml, xml_response

__all__ = [
    "bind_ci",
    "pic_binding",
    "styles",
    "origin_protect",
    "bucket_ci",
    "bucketless",
    "picbucket_record",
    "JOB_ROOTS",
]

JOB_ROOTS = ("picqueue", "pic_jobs", "jobs", "template")


def _cst(timestamp: float) -> str:
    """``2024-01-31T08:00:00+0800`` (China Standard Time, as CI's samples)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+0800", time.gmtime(timestamp + 8 * 3600))


async def _exists(app: App, bucket: str) -> None:
    if not await io(app.storage.exists, bucket):
        raise NoSuchBucketError(f"bucket: {bucket!r} does not exist")


# -- binding ------------------------------------------------------------------------------------


async def bind_ci(app: App, ctx: Context) -> Response:
    """``PUT /`` on ``<bucket>.ci.<region>``: bind the bucket to CI (idempotent)."""
    bucket = ctx.bucket
    assert bucket is not None
    if ctx.method != "PUT":
        raise MethodNotAllowedError(f"{ctx.method} /: only PUT binds a bucket on the ci host")
    await _exists(app, bucket)
    await io(_bind, app, bucket, True)
    return xml_response(
        "Response",
        [("RequestId", ctx.request_id), ("CIBucket", [("BucketId", bucket), ("Region", app.config.region)])],
    )


def _bind(app: App, bucket: str, on: bool) -> None:
    app.storage.write_meta(bucket, "ci.json", json.dumps({"bound": on, "time": time.time()}).encode())


def _bound(app: App, bucket: str) -> bool:
    raw = app.storage.read_meta(bucket, "ci.json")
    return bool(raw and json.loads(raw).get("bound"))


async def pic_binding(app: App, ctx: Context) -> Response:
    """The older pic-host form: ``PUT /`` (bind), ``PUT /?unbind``, ``GET /`` → ``CIStatus``."""
    bucket = ctx.bucket
    assert bucket is not None
    await _exists(app, bucket)
    if ctx.method == "PUT":
        await io(_bind, app, bucket, not ctx.has("unbind"))
        return Response(b"")
    if ctx.method == "GET":
        on = await io(_bound, app, bucket)
        return Response(
            f"<CIStatus>{'on' if on else 'off'}</CIStatus>".encode(), media_type="application/xml"
        )
    raise MethodNotAllowedError(f"{ctx.method} /: not allowed on the pic host")


# -- styles and protection ---------------------------------------------------------------------------


def _style_name(body: bytes, root: str) -> str | None:
    if not body.strip():
        return None
    return child_text(parse_xml(body, root), "StyleName")


async def styles(app: App, ctx: Context) -> Response:
    """``PUT /?style`` (add or replace), ``GET /?style`` (one, or all when the name is
    empty or there is no body), ``DELETE /?style``; persisted per bucket."""
    bucket = ctx.bucket
    assert bucket is not None
    await _exists(app, bucket)
    state = await app.state_async(bucket)
    body = await read_small_body(ctx)
    if ctx.method == "PUT":
        document = parse_xml(body, "AddStyle")
        name = child_text(document, "StyleName")
        style_body = child_text(document, "StyleBody")
        if not name or not style_body:
            raise InvalidArgumentError("style: <AddStyle> needs a <StyleName> and a <StyleBody>", op="style")
        async with state.lock:
            state.styles.add(name, style_body)
            await io(state.save_styles, app)
        return Response(b"")
    if ctx.method == "GET":
        name = _style_name(body, "GetStyle")
        return Response(state.styles.to_xml(name or None).encode("utf-8"), media_type="application/xml")
    if ctx.method == "DELETE":
        name = _style_name(body, "DeleteStyle")
        if not name:
            raise InvalidArgumentError("style: <DeleteStyle> needs a <StyleName>", op="style")
        async with state.lock:
            state.styles.delete(name)
            await io(state.save_styles, app)
        return Response(b"")
    raise MethodNotAllowedError(f"{ctx.method} /?style: not allowed")


async def origin_protect(app: App, ctx: Context) -> Response:
    """``PUT /?origin-protect`` (on), ``GET`` (``OriginProtectStatus``), ``DELETE`` (off)."""
    bucket = ctx.bucket
    assert bucket is not None
    await _exists(app, bucket)
    state = await app.state_async(bucket)
    if ctx.method == "GET":
        status = "on" if state.protection else "off"
        return Response(f"<OriginProtectStatus>{status}</OriginProtectStatus>".encode(), media_type="application/xml")
    if ctx.method not in ("PUT", "DELETE"):
        raise MethodNotAllowedError(f"{ctx.method} /?origin-protect: not allowed")
    async with state.lock:
        state.protection = ctx.method == "PUT"
        await io(state.save_settings, app)
    return Response(b"")


# -- picbucket -------------------------------------------------------------------------------------------


def picbucket_record(app: App, bucket: str) -> dict[str, Any] | None:
    """The bucket's image-processing service record (``None`` when off): its creation time
    and its queue (``QueueId`` ``p`` + 32 hex, ``State``, ``MaxSize``, ``MaxConcurrent``, ...)."""
    raw = app.storage.read_meta(bucket, "picbucket.json")
    return json.loads(raw) if raw else None


def _open(app: App, bucket: str) -> dict[str, Any]:
    record = picbucket_record(app, bucket)
    if record is not None:
        return record
    now = time.time()
    record = {
        "bucket": bucket,
        "region": app.config.region,
        "create_time": now,
        "queue": {
            "QueueId": "p" + uuid.uuid4().hex,
            "Name": f"{bucket}-pic",
            "State": "Active",
            "MaxSize": 10000,
            "MaxConcurrent": 10,
            "Category": "PicProcessing",
            "CreateTime": _cst(now),
            "UpdateTime": _cst(now),
            "NotifyConfig": {"State": "Off"},
        },
    }
    app.storage.write_meta(bucket, "picbucket.json", json.dumps(record).encode())
    return record


def _entry(record: dict[str, Any]) -> list[tuple[str, object]]:
    return [
        ("BucketId", record["bucket"]),
        ("Name", record["bucket"]),
        ("Region", record["region"]),
        ("CreateTime", _cst(record["create_time"])),
    ]


async def _picbucket(app: App, ctx: Context, bucket: str) -> Response:
    await _exists(app, bucket)
    if ctx.method == "POST":
        record = await io(_open, app, bucket)
    elif ctx.method == "DELETE":
        found = await io(picbucket_record, app, bucket)
        record = found or {"bucket": bucket, "region": app.config.region, "create_time": time.time()}
        await io(app.storage.delete_meta, bucket, "picbucket.json")
        disable = getattr(app.jobs, "disable", None)
        if disable is not None:  # the queue goes with the service: its unfinished jobs are cancelled
            await io(disable, bucket)
    elif ctx.method == "GET":
        return await _list(app, ctx, only=bucket)
    else:
        raise MethodNotAllowedError(f"{ctx.method} /picbucket: not allowed")
    return xml_response("Response", [("RequestId", ctx.request_id), ("PicBucket", _entry(record))])


def _csv(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


async def _list(app: App, ctx: Context, only: str | None = None) -> Response:
    """``GET /picbucket`` with ``regions``, ``bucketNames`` (exact), ``bucketName`` (prefix),
    ``pageNumber`` (from 1) and ``pageSize`` (1-100, default 10)."""

    def number(name: str, default: int, low: int, high: int) -> int:
        raw = ctx.param(name) or ""
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidArgumentError(f"{name}: must be an integer, got {raw!r}", op="picbucket") from None
        if not low <= value <= high:
            raise InvalidArgumentError(f"{name}: must be between {low} and {high}, got {value}", op="picbucket")
        return value

    page = number("pageNumber", 1, 1, 1_000_000)
    size = number("pageSize", 10, 1, 100)
    regions = _csv(ctx.param("regions"))
    names = _csv(ctx.param("bucketNames"))
    prefix = ctx.param("bucketName") or ""

    def collect() -> list[dict[str, Any]]:
        records = []
        for bucket in app.storage.buckets():
            if only is not None and bucket != only:
                continue
            record = picbucket_record(app, bucket)
            if record is None:
                continue
            if regions and record["region"] not in regions:
                continue
            if names and bucket not in names:
                continue
            if prefix and not bucket.startswith(prefix):
                continue
            records.append(record)
        return records

    records = await io(collect)
    shown = records[(page - 1) * size : page * size]
    children: list[tuple[str, object]] = [
        ("RequestId", ctx.request_id),
        ("TotalCount", len(records)),
        ("PageNumber", page),
        ("PageSize", size),
    ]
    children += [("PicBucketList", _entry(record)) for record in shown]
    return xml_response("Response", children)


# -- routing ------------------------------------------------------------------------------------------


def _root(path: str) -> str:
    return path.lstrip("/").split("/", 1)[0]


async def bucket_ci(app: App, ctx: Context) -> Response:
    """A CI path (``/picbucket``, ``/pic_jobs`` ...) on a bucket's ci host (or, in IP mode, its
    cos host)."""
    assert ctx.bucket is not None
    root = _root(ctx.target.path)
    if root == "picbucket":
        return await _picbucket(app, ctx, ctx.bucket)
    if root in JOB_ROOTS:
        return await app.jobs(app, ctx)
    raise InvalidRequestError(f"{ctx.target.path}: not a CI API")


def default_bucket(app: App) -> str:
    """The bucket of an IP-mode call that names none."""
    if app.config.default_bucket:
        return app.config.default_bucket
    names = app.storage.buckets()
    if len(names) == 1:
        return names[0]
    raise InvalidRequestError(
        "this request names no bucket (the SDK's IP mode sends none for this call): set default_bucket "
        "in the config file, keep one bucket, or use the SDK's proxy mode"
    )


async def bucketless(app: App, ctx: Context) -> Response:
    """A CI path on a host without a bucket: ``GET /picbucket`` on ``ci.<region>`` lists; in
    IP mode, the other calls go to :func:`default_bucket`."""
    root = _root(ctx.target.path)
    if root == "picbucket" and ctx.method == "GET":
        return await _list(app, ctx)
    ctx.bucket = await io(default_bucket, app)
    return await bucket_ci(app, ctx)
