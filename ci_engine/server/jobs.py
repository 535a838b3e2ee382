"""The job APIs of the server (``/picqueue``, ``/pic_jobs``, ``/jobs``, ``/template`` on a
bucket's ci host): thin routes to :class:`ci_engine.jobs.JobsAPI` (``docs/jobs.md``).

:class:`JobsEndpoint` replaces :func:`~ci_engine.server.app.not_implemented_jobs` as
:attr:`App.jobs <ci_engine.server.app.App.jobs>`. It owns the server's
:class:`~ci_engine.jobs.JobService`, started on the first job request, or at server start
when the records hold unfinished jobs (a restart resumes them): a server that is never asked
for a job never starts a Dask cluster. Without ``scheduler`` the cluster is an embedded
``LocalCluster`` of ``job_workers`` processes; the job records are the SQLite file
``jobs.sqlite`` of the server's state folder.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from starlette.responses import Response

from ci_engine.errors import UnsupportedOperationError
from ci_engine.jobs import Buckets, JobRecords, JobsAPI, JobService
from ci_engine.jobs.records import QueueNotFoundError
from ci_engine.server.app import App, Context, io
from ci_engine.server.errors import MethodNotAllowedError, NoSuchBucketError
from ci_engine.server.objects import read_small_body
from ci_engine.server.storage import LocalStorage

__all__ = ["JobsEndpoint", "jobs_buckets", "records_path"]

log = logging.getLogger("ci_engine.server")


def records_path(app: App) -> Path:
    """The job records of a server: ``<root>/.ci-meta/jobs.sqlite`` (``root`` is the local
    state folder when the buckets live in S3)."""
    return Path(app.config.root) / ".ci-meta" / "jobs.sqlite"


def jobs_buckets(app: App) -> Buckets:
    """Where the workers find the server's buckets."""
    storage = app.storage
    describe = getattr(storage, "buckets_for_jobs", None)
    if describe is not None:
        found: Buckets = describe()
        return found
    if isinstance(storage, LocalStorage):
        return Buckets(str(storage.root), fsync=app.config.fsync)
    raise UnsupportedOperationError(f"jobs: the storage {type(storage).__name__} cannot be shared with job workers")


def _unfinished(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with sqlite3.connect(path) as db:
            row = db.execute("SELECT COUNT(*) FROM jobs WHERE state IN ('Submitted', 'Running')").fetchone()
    except sqlite3.Error:
        return False
    return bool(row and row[0])


class JobsEndpoint:
    """The server's job APIs (the callable set as ``App.jobs``)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._service: JobService | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        return self._service is not None

    def service(self) -> JobService:
        """The job service, started on first use (blocking: seconds for a LocalCluster)."""
        with self._lock:
            if self._service is None:
                config = self.app.config
                service = JobService(
                    records_path(self.app),
                    jobs_buckets(self.app),
                    workers=config.job_workers or config.workers,
                    scheduler=config.scheduler,
                    region=config.region,
                    backend=config.backend,
                )
                service.start()
                self._service = service
            return self._service

    def resume(self) -> None:
        """At server start: start the service when jobs are waiting from a previous run."""
        if _unfinished(records_path(self.app)):
            log.info("resuming the unfinished jobs of %s", records_path(self.app))
            self.service()

    def close(self) -> None:
        with self._lock:
            if self._service is not None:
                self._service.close()
                self._service = None

    async def __call__(self, app: App, ctx: Context) -> Response:
        bucket = ctx.bucket
        assert bucket is not None
        route = _route(ctx)
        if route is None:
            if ctx.target.kind == "cos" and ctx.target.key:
                # IP mode sends CI calls to the cos host, so the dispatcher tries a path like
                # /jobs/x.jpg here first; what is no job API is the object of that name.
                from ci_engine.server import objects

                return await objects.handle(app, ctx)
            raise MethodNotAllowedError(f"{ctx.method} {ctx.target.path}: not a job API")
        if not await io(app.storage.exists, bucket):
            raise NoSuchBucketError(f"bucket: {bucket!r} does not exist")
        name, ident = route
        if name in _NEED_PICBUCKET and await io(_picbucket, self.app, bucket) is None:
            raise QueueNotFoundError(
                f"queue: the asynchronous image service is off for bucket {bucket!r} (POST /picbucket turns it on)"
            )
        service = await io(self.service)
        await io(self._adopt_queue, service, bucket)
        api = JobsAPI(service)
        params = {k: v for k, v in ctx.request_params}
        body = await read_small_body(ctx) if ctx.method in ("POST", "PUT") else b""
        calls: dict[str, Any] = {
            "get_queues": lambda: api.get_queues(bucket, params),
            "update_queue": lambda: api.update_queue(bucket, ident, body),
            "create_jobs": lambda: api.create_jobs(bucket, body),
            "cancel_job": lambda: api.cancel_job(bucket, ident),
            "get_jobs": lambda: api.get_jobs(bucket, ident),
            "list_jobs": lambda: api.list_jobs(bucket, params),
            "create_template": lambda: api.create_template(bucket, body),
            "get_templates": lambda: api.get_templates(bucket, params),
            "update_template": lambda: api.update_template(bucket, ident, body),
            "delete_template": lambda: api.delete_template(bucket, ident),
        }
        answer: str = await io(calls[name])
        return Response(answer.encode("utf-8"), media_type="application/xml")

    def _adopt_queue(self, service: JobService, bucket: str) -> None:
        """Use the queue id that ``POST /picbucket`` announced for the bucket (no queue is
        made for a bucket whose service is off)."""
        record: Any = _picbucket(self.app, bucket)
        if not isinstance(record, dict):
            return
        queue = record.get("queue", {})
        service.records.queue_for(bucket, queue_id=queue.get("QueueId"), name=queue.get("Name"))

    def disable(self, bucket: str) -> int:
        """``DELETE /picbucket``: cancel the bucket's unfinished jobs (no output of theirs
        appears afterwards) and remove its queue. Works on the records alone when the job
        service has not started (no cluster is started for this). Returns how many jobs
        were cancelled."""
        with self._lock:
            service = self._service
        if service is not None:
            cancelled = service.records.drop_queue(bucket)
            service.wake()
            return cancelled
        path = records_path(self.app)
        if not path.exists():
            return 0
        records = JobRecords(path)
        try:
            return records.drop_queue(bucket)
        finally:
            records.close()


_NEED_PICBUCKET = frozenset({"get_queues", "update_queue", "create_jobs"})
"""The job APIs that need the bucket's asynchronous image service on (``POST /picbucket``);
reading, listing and cancelling jobs and the templates work without it."""


def _picbucket(app: App, bucket: str) -> Any:
    from ci_engine.server.ci_api import picbucket_record

    return picbucket_record(app, bucket)


def _route(ctx: Context) -> tuple[str, str] | None:
    """The :class:`~ci_engine.jobs.JobsAPI` method a request names, and the id in its path;
    ``None`` when it names none."""
    parts = ctx.target.path.strip("/").split("/")
    root, ident = parts[0], "/".join(parts[1:])
    method = ctx.method
    if "/" in ident:
        return None
    if root == "picqueue":
        if method == "GET" and not ident:
            return "get_queues", ""
        if method == "PUT" and ident:
            return "update_queue", ident
    elif root in ("pic_jobs", "jobs"):
        if method == "POST" and not ident:
            return "create_jobs", ""
        if method == "PUT" and ident and ctx.has("cancel"):
            return "cancel_job", ident
        if method == "GET":
            return ("get_jobs", ident) if ident else ("list_jobs", "")
    elif root == "template":
        if method == "POST" and not ident:
            return "create_template", ""
        if method == "GET" and not ident:
            return "get_templates", ""
        if method == "DELETE" and ident:
            return "delete_template", ident
        if method == "PUT" and ident:
            return "update_template", ident
    return None
