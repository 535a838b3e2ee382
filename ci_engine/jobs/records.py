"""The job service's records in SQLite: queues, jobs and PicProcess templates
(``persistent-processing.md`` section 6).

One database file under the service's root, in WAL mode (readers never block the writer,
a crash loses no committed record). Every state change is one transaction; the ones that
decide between two outcomes (commit a result or see a cancel) take the write lock first
(``BEGIN IMMEDIATE``), so the decision holds across threads and processes sharing the file.

States: ``Submitted → Running → Success | Failed | Cancel``.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from ci_engine._dc import dataclass, field, fields, replace
from ci_engine.errors import CIError

__all__ = [
    "SUBMITTED",
    "RUNNING",
    "SUCCESS",
    "FAILED",
    "CANCEL",
    "STATES",
    "FINAL_STATES",
    "ACTIVE",
    "PAUSED",
    "Job",
    "Queue",
    "Template",
    "JobRecords",
    "QueueNotFoundError",
    "TemplateNotFoundError",
    "JobNotFoundError",
    "JobStateError",
    "ci_time",
    "new_id",
]

SUBMITTED, RUNNING, SUCCESS, FAILED, CANCEL = "Submitted", "Running", "Success", "Failed", "Cancel"
STATES = (SUBMITTED, RUNNING, SUCCESS, FAILED, CANCEL)
FINAL_STATES = frozenset({SUCCESS, FAILED, CANCEL})
ACTIVE, PAUSED = "Active", "Paused"

DEFAULT_MAX_SIZE = 10000
"""``MaxSize`` of a queue: the jobs it may hold that have not finished."""


class QueueNotFoundError(CIError):
    """No queue with this id in this bucket (CI's 1106)."""

    code = "QueueNotFound"
    status = 404


class TemplateNotFoundError(CIError):
    """No template with this id in this bucket (CI's 1107)."""

    code = "TemplateNotFound"
    status = 404


class JobNotFoundError(CIError):
    """No job with this id in this bucket (CI's 1103 ResourceNotFound)."""

    code = "ResourceNotFound"
    status = 404


class JobStateError(CIError):
    """The job is in a state that does not allow the request (cancel a finished job)."""

    code = "InvalidArgument"
    status = 400


def ci_time(at: float | None = None) -> str:
    """CI's time format, local time with its offset: ``2024-01-31T08:00:00+0800``."""
    moment = datetime.fromtimestamp(time.time() if at is None else at).astimezone()
    return moment.strftime("%Y-%m-%dT%H:%M:%S%z")


def new_id(kind: str) -> str:
    """``p`` + 32 hex for queues, ``c`` + 32 hex for jobs, ``t`` + 32 hex for templates."""
    return kind + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Queue:
    id: str
    bucket: str
    name: str
    state: str = ACTIVE
    max_size: int = DEFAULT_MAX_SIZE
    max_concurrent: int = 0
    notify: Mapping[str, str] = field(default_factory=dict)
    """``NotifyConfig`` as given (``State`` ``Off`` by default); with ``State`` ``On`` its
    ``Url`` gets the ``TaskFinish`` callback of the queue's jobs (:mod:`ci_engine.jobs.notify`)."""
    create_time: str = ""
    update_time: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    id: str
    bucket: str
    name: str
    rule: str
    is_pic_info: bool = False
    tag: str = "PicProcess"
    create_time: str = ""
    update_time: str = ""


@dataclass(frozen=True, slots=True)
class Job:
    """One ``JobsDetail``. Times are CI strings, ``-`` when unset."""

    id: str
    bucket: str
    queue_id: str
    input_object: str
    output_bucket: str
    output_object: str
    rule: str
    is_pic_info: bool = False
    tag: str = "PicProcess"
    state: str = SUBMITTED
    code: str = "Success"
    message: str = ""
    creation_time: str = "-"
    start_time: str = "-"
    end_time: str = "-"
    input_region: str = ""
    output_region: str = ""
    template_id: str = ""
    template_name: str = ""
    user_data: str = ""
    job_level: int = 0
    callback: str = ""
    """The job's ``CallBack`` URL (``no``: none, not even the queue's; empty: the queue's)."""
    callback_format: str = ""
    """``CallBackFormat``: ``XML`` or ``JSON`` (empty: the queue's ``ResultFormat``)."""
    result: Mapping[str, Any] | None = None
    """``PicProcessResult`` once the job succeeded (see :mod:`ci_engine.jobs.api`)."""
    attempts: int = 0
    """How many times the job was handed to the cluster (restarts and resumes included)."""
    seq: int = 0


_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    id TEXT PRIMARY KEY, bucket TEXT NOT NULL UNIQUE, name TEXT NOT NULL, state TEXT NOT NULL,
    max_size INTEGER NOT NULL, max_concurrent INTEGER NOT NULL, notify TEXT NOT NULL,
    create_time TEXT NOT NULL, update_time TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, bucket TEXT NOT NULL,
    queue_id TEXT NOT NULL, input_object TEXT NOT NULL, output_bucket TEXT NOT NULL,
    output_object TEXT NOT NULL, rule TEXT NOT NULL, is_pic_info INTEGER NOT NULL, tag TEXT NOT NULL,
    state TEXT NOT NULL, code TEXT NOT NULL, message TEXT NOT NULL, creation_time TEXT NOT NULL,
    start_time TEXT NOT NULL, end_time TEXT NOT NULL, input_region TEXT NOT NULL,
    output_region TEXT NOT NULL, template_id TEXT NOT NULL, template_name TEXT NOT NULL,
    user_data TEXT NOT NULL, job_level INTEGER NOT NULL, result TEXT, attempts INTEGER NOT NULL,
    created REAL NOT NULL, callback TEXT NOT NULL DEFAULT '', callback_format TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, job_level DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_bucket ON jobs (bucket, tag, seq);
CREATE TABLE IF NOT EXISTS templates (
    id TEXT PRIMARY KEY, bucket TEXT NOT NULL, name TEXT NOT NULL, tag TEXT NOT NULL,
    rule TEXT NOT NULL, is_pic_info INTEGER NOT NULL, create_time TEXT NOT NULL,
    update_time TEXT NOT NULL, UNIQUE (bucket, name)
);
"""

_JOB_COLUMNS = tuple(f.name for f in fields(Job))
_INSERT_JOB = (
    f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS[:-1])}, created) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join('?' * (len(_JOB_COLUMNS) - 1))}, ?)"
)


class JobRecords:
    """The SQLite file of a job service (thread-safe: one connection behind a lock).

    Args:
        path: the database file (its folder is created); ``":memory:"`` for a throw-away one.
    """

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.executescript(_SCHEMA)
            # a file made before the callback columns: add them (existing jobs get none)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for column in ("callback", "callback_format"):
                if column not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"JobRecords({self.path!r})"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``): what is read inside stays true until
        it commits."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # -- queues -----------------------------------------------------------------------------------
    def queue_for(self, bucket: str, *, queue_id: str | None = None, name: str | None = None) -> Queue:
        """The bucket's image-processing queue, created (``Active``) when missing, with
        ``queue_id`` and ``name`` when given (a queue record the caller already announced)."""
        rows = self._query("SELECT * FROM queues WHERE bucket = ?", (bucket,))
        if rows:
            return _queue(rows[0])
        now = ci_time()
        queue = Queue(queue_id or new_id("p"), bucket, name or f"queue-{bucket}", create_time=now, update_time=now)
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO queues VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (queue.id, bucket, queue.name, queue.state, queue.max_size, 0, "{}", now, now),
            )
        return _queue(self._query("SELECT * FROM queues WHERE bucket = ?", (bucket,))[0])

    def drop_queue(self, bucket: str) -> int:
        """The service was disabled: cancel the bucket's unfinished jobs (``Submitted`` and
        ``Running``: the commit of a running one then drops its result) and remove its queue
        record, in one transaction; the ended jobs stay listable. Returns how many jobs were
        cancelled."""
        with self.transaction() as db:
            rows = list(
                db.execute("SELECT id FROM jobs WHERE bucket = ? AND state IN (?, ?)", (bucket, SUBMITTED, RUNNING))
            )
            for row in rows:
                self.finish(db, row["id"], CANCEL, code="Cancel", message="the bucket's image service was disabled")
            db.execute("DELETE FROM queues WHERE bucket = ?", (bucket,))
        return len(rows)

    def queue(self, bucket: str, queue_id: str) -> Queue:
        rows = self._query("SELECT * FROM queues WHERE bucket = ? AND id = ?", (bucket, queue_id))
        if not rows:
            raise QueueNotFoundError(f"queue: no queue {queue_id!r} in bucket {bucket!r}")
        return _queue(rows[0])

    def update_queue(
        self,
        bucket: str,
        queue_id: str,
        *,
        name: str | None = None,
        state: str | None = None,
        notify: Mapping[str, str] | None = None,
    ) -> Queue:
        with self.transaction() as db:
            rows = list(db.execute("SELECT * FROM queues WHERE bucket = ? AND id = ?", (bucket, queue_id)))
            if not rows:
                raise QueueNotFoundError(f"queue: no queue {queue_id!r} in bucket {bucket!r}")
            old = _queue(rows[0])
            new = replace(
                old,
                name=old.name if name is None else name,
                state=old.state if state is None else state,
                notify=old.notify if notify is None else dict(notify),
                update_time=ci_time(),
            )
            db.execute(
                "UPDATE queues SET name = ?, state = ?, notify = ?, update_time = ? WHERE id = ?",
                (new.name, new.state, json.dumps(dict(new.notify)), new.update_time, queue_id),
            )
        return new

    def paused_queues(self) -> set[str]:
        return {row["id"] for row in self._query("SELECT id FROM queues WHERE state = ?", (PAUSED,))}

    # -- jobs ---------------------------------------------------------------------------------------
    def add_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        """Store new jobs (state ``Submitted``); returns them with their sequence numbers."""
        stored: list[Job] = []
        now = time.time()
        with self.transaction() as db:
            for job in jobs:
                values = _job_values(job)
                cursor = db.execute(_INSERT_JOB, (*values[:-1], now))
                stored.append(replace(job, seq=int(cursor.lastrowid or 0)))
        return stored

    def job(self, job_id: str, bucket: str | None = None) -> Job:
        if bucket is None:
            rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        else:
            rows = self._query("SELECT * FROM jobs WHERE id = ? AND bucket = ?", (job_id, bucket))
        if not rows:
            raise JobNotFoundError(f"job: no job {job_id!r}" + (f" in bucket {bucket!r}" if bucket else ""))
        return _job(rows[0])

    def jobs(self, bucket: str, ids: Sequence[str]) -> tuple[list[Job], list[str]]:
        """The bucket's jobs with these ids, in the order asked, and the ids that have none."""
        found: list[Job] = []
        missing: list[str] = []
        for job_id in ids:
            try:
                found.append(self.job(job_id, bucket))
            except JobNotFoundError:
                missing.append(job_id)
        return found, missing

    def list_jobs(
        self,
        bucket: str,
        *,
        tag: str = "PicProcess",
        queue_id: str | None = None,
        states: Sequence[str] = (),
        descending: bool = True,
        size: int = 10,
        after: int | None = None,
        start: float | None = None,
        end: float | None = None,
    ) -> tuple[list[Job], int | None]:
        """One page of the bucket's jobs, by creation order; returns the page and the
        sequence number to continue after (``None`` on the last page)."""
        where = ["bucket = ?", "tag = ?"]
        args: list[Any] = [bucket, tag]
        if queue_id:
            where.append("queue_id = ?")
            args.append(queue_id)
        if states:
            where.append(f"state IN ({', '.join('?' * len(states))})")
            args.extend(states)
        if after is not None:
            where.append("seq < ?" if descending else "seq > ?")
            args.append(after)
        if start is not None:
            where.append("created >= ?")
            args.append(start)
        if end is not None:
            where.append("created <= ?")
            args.append(end)
        order = "DESC" if descending else "ASC"
        rows = self._query(
            f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?",  # noqa: S608
            (*args, size + 1),
        )
        page = [_job(row) for row in rows[:size]]
        more = len(rows) > size
        return page, (page[-1].seq if more and page else None)

    def pending(self) -> int:
        """How many ``Submitted`` jobs of active queues wait to be claimed."""
        rows = self._query(
            "SELECT COUNT(*) AS n FROM jobs JOIN queues ON queues.id = jobs.queue_id "
            "WHERE jobs.state = ? AND queues.state = ?",
            (SUBMITTED, ACTIVE),
        )
        return int(rows[0]["n"])

    def unfinished(self, ids: Sequence[str]) -> int:
        """How many of these jobs are still ``Submitted`` or ``Running`` (one query per 500 ids)."""
        total = 0
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            rows = self._query(
                f"SELECT COUNT(*) AS n FROM jobs WHERE state IN (?, ?) AND id IN ({', '.join('?' * len(chunk))})",  # noqa: S608
                (SUBMITTED, RUNNING, *chunk),
            )
            total += int(rows[0]["n"])
        return total

    def count_unfinished(self, queue_id: str) -> int:
        rows = self._query(
            "SELECT COUNT(*) AS n FROM jobs WHERE queue_id = ? AND state IN (?, ?)", (queue_id, SUBMITTED, RUNNING)
        )
        return int(rows[0]["n"])

    def output_buckets(self) -> list[str]:
        return [row["output_bucket"] for row in self._query("SELECT DISTINCT output_bucket FROM jobs")]

    def claim(self, limit: int) -> list[Job]:
        """Up to ``limit`` ``Submitted`` jobs of active queues, highest ``JobLevel`` first,
        then oldest, marked ``Running`` (with their start time and one more attempt)."""
        if limit <= 0:
            return []
        now = ci_time()
        with self.transaction() as db:
            rows = list(
                db.execute(
                    "SELECT jobs.* FROM jobs JOIN queues ON queues.id = jobs.queue_id "
                    "WHERE jobs.state = ? AND queues.state = ? ORDER BY jobs.job_level DESC, jobs.seq LIMIT ?",
                    (SUBMITTED, ACTIVE, limit),
                )
            )
            claimed = [replace(_job(row), state=RUNNING, start_time=now, attempts=row["attempts"] + 1) for row in rows]
            for job in claimed:
                db.execute(
                    "UPDATE jobs SET state = ?, start_time = ?, attempts = ? WHERE id = ?",
                    (RUNNING, now, job.attempts, job.id),
                )
        return claimed

    def running(self) -> list[Job]:
        """The jobs marked ``Running`` (to resume after a restart), oldest first."""
        return [_job(row) for row in self._query("SELECT * FROM jobs WHERE state = ? ORDER BY seq", (RUNNING,))]

    def restart(self, job: Job) -> Job:
        """Count one more attempt of a ``Running`` job handed to the cluster again."""
        with self.transaction() as db:
            db.execute("UPDATE jobs SET attempts = attempts + 1 WHERE id = ?", (job.id,))
        return replace(job, attempts=job.attempts + 1)

    def finish(
        self,
        db: sqlite3.Connection,
        job_id: str,
        state: str,
        *,
        code: str = "Success",
        message: str = "",
        result: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a final state, inside a :meth:`transaction` (``db``)."""
        assert state in FINAL_STATES, state
        db.execute(
            "UPDATE jobs SET state = ?, code = ?, message = ?, end_time = ?, result = ? WHERE id = ?",
            (state, code, message, ci_time(), json.dumps(result) if result is not None else None, job_id),
        )

    def current(self, db: sqlite3.Connection, job_id: str) -> Job:
        """A job read inside a :meth:`transaction`."""
        rows = list(db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)))
        if not rows:
            raise JobNotFoundError(f"job: no job {job_id!r}")
        return _job(rows[0])

    def cancel(self, bucket: str, job_id: str) -> Job:
        """Cancel a job that has not finished. Once this returns, the job's output is never
        written (the commit of a result checks the state in the same lock)."""
        with self.transaction() as db:
            rows = list(db.execute("SELECT * FROM jobs WHERE id = ? AND bucket = ?", (job_id, bucket)))
            if not rows:
                raise JobNotFoundError(f"job: no job {job_id!r} in bucket {bucket!r}")
            job = _job(rows[0])
            if job.state == CANCEL:
                return job
            if job.state in FINAL_STATES:
                raise JobStateError(f"job: {job_id!r} has already ended ({job.state}); it cannot be cancelled")
            self.finish(db, job_id, CANCEL, code="Cancel", message="cancelled by the user")
        return self.job(job_id)

    # -- templates ----------------------------------------------------------------------------------
    def add_template(self, bucket: str, name: str, rule: str, is_pic_info: bool) -> Template:
        now = ci_time()
        template = Template(new_id("t"), bucket, name, rule, is_pic_info, create_time=now, update_time=now)
        with self.transaction() as db:
            if list(db.execute("SELECT id FROM templates WHERE bucket = ? AND name = ?", (bucket, name))):
                raise JobStateError(f"template: a template named {name!r} already exists")
            db.execute(
                "INSERT INTO templates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (template.id, bucket, name, template.tag, rule, int(is_pic_info), now, now),
            )
        return template

    def update_template(self, bucket: str, template_id: str, name: str, rule: str, is_pic_info: bool) -> Template:
        """Replace a template's name and rule (``PUT /template/<id>``); jobs already created
        from it keep the rule they were given."""
        with self.transaction() as db:
            rows = list(db.execute("SELECT * FROM templates WHERE bucket = ? AND id = ?", (bucket, template_id)))
            if not rows:
                raise TemplateNotFoundError(f"template: no template {template_id!r} in bucket {bucket!r}")
            clash = "SELECT id FROM templates WHERE bucket = ? AND name = ? AND id != ?"
            if list(db.execute(clash, (bucket, name, template_id))):
                raise JobStateError(f"template: a template named {name!r} already exists")
            db.execute(
                "UPDATE templates SET name = ?, rule = ?, is_pic_info = ?, update_time = ? WHERE id = ?",
                (name, rule, int(is_pic_info), ci_time(), template_id),
            )
        return self.template(bucket, template_id)

    def template(self, bucket: str, template_id: str) -> Template:
        rows = self._query("SELECT * FROM templates WHERE bucket = ? AND id = ?", (bucket, template_id))
        if not rows:
            raise TemplateNotFoundError(f"template: no template {template_id!r} in bucket {bucket!r}")
        return _template(rows[0])

    def templates(
        self, bucket: str, *, ids: Sequence[str] = (), name: str = "", page: int = 1, size: int = 10
    ) -> tuple[int, list[Template], list[str]]:
        """One page of the bucket's templates (ids, or a name prefix), the total and the ids
        that have none."""
        where: list[str] = ["bucket = ?"]
        args: list[Any] = [bucket]
        if ids:
            where.append(f"id IN ({', '.join('?' * len(ids))})")
            args.extend(ids)
        if name:
            where.append("substr(name, 1, ?) = ?")
            args.extend([len(name), name])
        cond = " AND ".join(where)
        total = int(self._query(f"SELECT COUNT(*) AS n FROM templates WHERE {cond}", args)[0]["n"])  # noqa: S608
        rows = self._query(
            f"SELECT * FROM templates WHERE {cond} ORDER BY create_time, id LIMIT ? OFFSET ?",  # noqa: S608
            (*args, size, (page - 1) * size),
        )
        found = {row["id"] for row in self._query(f"SELECT id FROM templates WHERE {cond}", args)}  # noqa: S608
        return total, [_template(row) for row in rows], [i for i in ids if i not in found]

    def delete_template(self, bucket: str, template_id: str) -> None:
        with self.transaction() as db:
            cursor = db.execute("DELETE FROM templates WHERE bucket = ? AND id = ?", (bucket, template_id))
            if cursor.rowcount == 0:
                raise TemplateNotFoundError(f"template: no template {template_id!r} in bucket {bucket!r}")


def _queue(row: sqlite3.Row) -> Queue:
    return Queue(
        row["id"],
        row["bucket"],
        row["name"],
        row["state"],
        int(row["max_size"]),
        int(row["max_concurrent"]),
        json.loads(row["notify"]),
        row["create_time"],
        row["update_time"],
    )


def _template(row: sqlite3.Row) -> Template:
    return Template(
        row["id"],
        row["bucket"],
        row["name"],
        row["rule"],
        bool(row["is_pic_info"]),
        row["tag"],
        row["create_time"],
        row["update_time"],
    )


def _job_values(job: Job) -> tuple[Any, ...]:
    values: list[Any] = []
    for name in _JOB_COLUMNS:
        value = getattr(job, name)
        if name == "is_pic_info":
            value = int(value)
        elif name == "result":
            value = json.dumps(dict(value)) if value is not None else None
        values.append(value)
    return tuple(values)


def _job(row: sqlite3.Row) -> Job:
    values: dict[str, Any] = {name: row[name] for name in _JOB_COLUMNS if name != "seq"}
    values["is_pic_info"] = bool(values["is_pic_info"])
    values["result"] = json.loads(values["result"]) if values["result"] else None
    return Job(**values, seq=int(row["seq"]))
