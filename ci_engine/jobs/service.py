"""The job service: job records in SQLite, work on a Dask cluster.

:class:`JobService` keeps the records (:class:`~ci_engine.jobs.records.JobRecords`), hands
``Submitted`` jobs of active queues to Dask (an embedded ``LocalCluster`` of worker
processes by default, or the cluster whose scheduler is named), and commits what comes back.

* **Dispatch**: one thread claims jobs (highest ``JobLevel`` first, then oldest) while fewer
  than twice the cluster's worker threads tasks are in flight, so the workers never wait for
  the service. A long backlog puts several jobs (up to :data:`MAX_GROUP`) in one Dask task, so
  that Dask's cost per task (≈ 10 ms of CPU between the service and the worker on the
  development machine: a quarter of a thumbnail) is shared; a paused queue therefore has at
  most ``2 x threads x MAX_GROUP`` jobs already handed out. A job becomes ``Running`` when it
  is handed to the cluster.
* **Pause**: a paused queue's ``Submitted`` jobs are not claimed; those already ``Running``
  finish.
* **Commit**: a worker leaves its result under a staging key of the destination bucket. The
  service then, in one write transaction, checks that the job is still ``Running`` in the same
  attempt, moves the result to its key (:func:`~ci_engine.jobs.buckets.promote`) and records
  ``Success``. A cancel takes the same lock, so once a cancel is acknowledged the output never
  appears; a stale attempt's result is dropped.
* **Faults**: a worker process that dies takes its tasks with it; Dask's scheduler hands them
  to another worker (up to ``distributed.scheduler.allowed-failures`` times; past that the job
  fails with ``InternalError``). A restarted service hands every ``Running`` job to the
  cluster again (a new attempt) and claims the ``Submitted`` ones: no job is lost.
"""

from __future__ import annotations

import logging
import os
import queue as _queue
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ci_engine._dc import dataclass, field
from ci_engine.errors import CIError, InvalidArgumentError
from ci_engine.jobs.buckets import STAGING_PREFIX, Buckets, promote
from ci_engine.jobs.notify import Notifier, make_callback
from ci_engine.jobs.records import (
    CANCEL,
    RUNNING,
    SUBMITTED,
    Job,
    JobRecords,
    Queue,
    Template,
    ci_time,
    new_id,
)
from ci_engine.jobs.work import JobSpec, run_pic_job, run_pic_jobs

__all__ = ["JobService", "Cluster", "JobRequest", "QueueFullError"]

log = logging.getLogger("ci_engine.jobs")

MAX_GROUP = 32
"""At most this many jobs share one Dask task (see ``JobService._group_size``)."""

GROUP_SPREAD = 1
"""A group takes ``backlog / (GROUP_SPREAD x worker threads)`` jobs (guided self-scheduling):
the groups shrink as the backlog does, to single jobs at its end, so the workers finish
together."""

SWEEP_SECONDS = 60.0
"""How often the dispatcher removes staged results that no attempt will commit."""


class QueueFullError(CIError):
    """The queue already holds ``MaxSize`` unfinished jobs."""

    code = "SlowDown"
    status = 503


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A ``PicProcess`` job as submitted (``Request`` of ``POST /pic_jobs``)."""

    input_object: str
    output_bucket: str
    output_object: str
    rule: str = ""
    is_pic_info: bool = False
    template_id: str = ""
    output_region: str = ""
    user_data: str = ""
    job_level: int = 0
    queue_id: str = ""
    tag: str = "PicProcess"
    callback: str = ""
    """``CallBack``: a URL for this job's ``TaskFinish`` callback, ``no`` for none."""
    callback_format: str = ""
    """``CallBackFormat``: ``XML`` or ``JSON`` (default: the queue's ``ResultFormat``)."""


QUIET_DASK: dict[str, Any] = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "10s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.tick.interval": "1s",
    "distributed.scheduler.work-stealing": False,
    "distributed.scheduler.active-memory-manager.start": False,
    "distributed.client.scheduler-info-interval": "10s",
}
"""Dask settings of the clusters started here. The workers' statistical profiler (a stack
sample every 10 ms) and the 100 ms monitors cost each idle worker 2.5 % of a core, and the
scheduler 3.5 %; the system monitor (dashboard figures) every 10 s, the event-loop tick every
second (it only detects a blocked loop), no work stealing (tasks wait on the scheduler until
a worker has a free thread, so there is nothing to steal) and no active memory manager (a job
keeps no data on the cluster) with the cluster's dashboard metadata every 30 s
(:func:`local_cluster`) take an idle service process with one worker from 9.0 to 6 to 7 ms of
CPU per second (``docs/scaling.md``)."""


def local_cluster(workers: int) -> Any:
    """An embedded ``LocalCluster``: ``workers`` processes of one thread each, bound to
    127.0.0.1, libvips given ``cores // workers`` threads each, with :data:`QUIET_DASK`."""
    import dask
    from distributed import LocalCluster

    with dask.config.set(QUIET_DASK):
        return LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            scheduler_port=0,
            silence_logs=logging.ERROR,
            # the cluster's metadata for a dashboard widget: by default a round trip every second
            scheduler_sync_interval=30,
            env={"VIPS_CONCURRENCY": str(max(1, usable_cores() // workers))},
        )


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass
class Cluster:
    """A Dask client: to the cluster at ``scheduler`` (``tcp://HOST:PORT``), or to an
    embedded ``LocalCluster`` of ``workers`` processes (one thread each; default: the
    cores) bound to 127.0.0.1. ``close()`` stops what was started here."""

    workers: int | None = None
    scheduler: str | None = None
    client: Any = field(default=None, init=False)
    local: Any = field(default=None, init=False)

    def start(self) -> Any:
        from distributed import Client

        if self.scheduler:
            self.client = Client(self.scheduler, timeout="20s")  # type: ignore[no-untyped-call]
            return self.client
        n = self.workers or usable_cores()
        if n < 1:
            raise ValueError(f"workers must be at least 1, got {n}")
        self.local = local_cluster(n)
        self.client = Client(self.local)  # type: ignore[no-untyped-call]
        return self.client

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    def threads(self) -> int:
        try:
            return max(1, int(sum(self.client.nthreads().values())))
        except Exception:
            return 1

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.local is not None:
            self.local.close()
            self.local = None


class JobService:
    """Asynchronous image jobs (``picqueue``, ``pic_jobs``, templates) over a Dask cluster.

    Args:
        records: the SQLite file (or an open :class:`JobRecords`).
        buckets: where the buckets' objects live (shared with the workers).
        cluster: the Dask cluster to use (default: an embedded ``LocalCluster`` of
            ``workers`` processes); a given cluster that is already started is not closed by
            :meth:`close`.
        region: the region named in ``JobsDetail`` and ``Location``.
        backend: the imaging backend the workers use.
        notifier: sends the ``TaskFinish`` callbacks (default: a :class:`Notifier` with
            3 tries, 5 s each).

    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        records: str | Path | JobRecords,
        buckets: Buckets,
        *,
        cluster: Cluster | None = None,
        workers: int | None = None,
        scheduler: str | None = None,
        region: str = "ap-guangzhou",
        backend: str = "auto",
        notifier: Notifier | None = None,
    ) -> None:
        self.records = records if isinstance(records, JobRecords) else JobRecords(records)
        self.buckets = buckets
        self._own_cluster = cluster is None or cluster.client is None
        self.cluster = cluster or Cluster(workers=workers, scheduler=scheduler)
        self.region = region
        self.backend = backend
        self._inflight: dict[str, tuple[Any, list[tuple[str, int]]]] = {}
        """Dask task key -> (future, the (job id, attempt) it runs)."""
        self._done: _queue.SimpleQueue[tuple[str, Any]] = _queue.SimpleQueue()
        self._wake = threading.Event()
        self._ended = threading.Condition()
        """Notified when jobs end (a commit, a cancel): :meth:`wait` sleeps on it."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._threads = 1
        self._threads_checked = 0.0
        self.committed = 0
        self.notifier = notifier or Notifier()
        self._notify_configs: dict[str, tuple[float, Mapping[str, str]]] = {}

    # -- life cycle -----------------------------------------------------------------------------------
    def start(self) -> JobService:
        if self._thread is not None:
            return self
        if self.cluster.client is None:
            self.cluster.start()
        self._stop.clear()
        # resume: every Running job goes back to the cluster as a new attempt.
        running = [self.records.restart(job) for job in self.records.running()]
        for start in range(0, len(running), MAX_GROUP):
            self._submit(running[start : start + MAX_GROUP])
        self._swept = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="ci-engine-jobs", daemon=True)
        self._thread.start()
        return self

    def close(self, *, wait: float = 0.0) -> None:
        """Stop dispatching (after up to ``wait`` seconds for the jobs in flight) and release
        the cluster when it was started here. Unfinished jobs stay in the records and resume
        at the next start."""
        deadline = time.monotonic() + wait
        while wait and self._inflight and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for future, _ in self._inflight.values():
            future.release()
        self._inflight.clear()
        self.notifier.close(wait=2.0)
        if self._own_cluster:
            self.cluster.close()

    def __enter__(self) -> JobService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the API ------------------------------------------------------------------------------------------
    def queue(self, bucket: str) -> Queue:
        """The bucket's queue (created ``Active`` on first use)."""
        return self._with_concurrency(self.records.queue_for(bucket))

    def _with_concurrency(self, queue: Queue) -> Queue:
        from dataclasses import replace

        return replace(queue, max_concurrent=self._threads)

    def update_queue(
        self,
        bucket: str,
        queue_id: str,
        *,
        name: str | None = None,
        state: str | None = None,
        notify: Mapping[str, str] | None = None,
    ) -> Queue:
        self.records.queue_for(bucket)
        queue = self.records.update_queue(bucket, queue_id, name=name, state=state, notify=notify)
        self._notify_configs.pop(bucket, None)
        self._wake.set()
        return self._with_concurrency(queue)

    def submit(self, bucket: str, requests: Sequence[JobRequest]) -> list[Job]:
        """Record new jobs (``Submitted``) and wake the dispatcher."""
        queue = self.records.queue_for(bucket)
        if self.records.count_unfinished(queue.id) + len(requests) > queue.max_size:
            raise QueueFullError(f"queue: {queue.id} already holds {queue.max_size} unfinished jobs")
        now = ci_time()
        jobs: list[Job] = []
        for request in requests:
            if request.queue_id and request.queue_id != queue.id:
                self.records.queue(bucket, request.queue_id)  # raises QueueNotFound
            rule, is_pic_info, template_name = request.rule, request.is_pic_info, ""
            if request.template_id:
                template = self.records.template(bucket, request.template_id)
                rule, is_pic_info, template_name = template.rule, template.is_pic_info, template.name
            if not rule:
                raise InvalidArgumentError("Operation: PicProcess/ProcessRule or TemplateId is required")
            jobs.append(
                Job(
                    new_id("c"),
                    bucket,
                    queue.id,
                    request.input_object,
                    request.output_bucket,
                    request.output_object,
                    rule,
                    is_pic_info,
                    tag=request.tag,
                    creation_time=now,
                    input_region=self.region,
                    output_region=request.output_region or self.region,
                    template_id=request.template_id,
                    template_name=template_name,
                    user_data=request.user_data,
                    job_level=request.job_level,
                    callback=request.callback,
                    callback_format=request.callback_format,
                )
            )
        stored = self.records.add_jobs(jobs)
        self._wake.set()
        return stored

    def get(self, bucket: str, ids: Sequence[str]) -> tuple[list[Job], list[str]]:
        return self.records.jobs(bucket, ids)

    def cancel(self, bucket: str, job_id: str) -> Job:
        """Cancel a job that has not ended; afterwards its output never appears."""
        already = self.records.job(job_id, bucket).state == CANCEL  # raises ResourceNotFound
        job = self.records.cancel(bucket, job_id)
        self._wake.set()
        self._signal_ended()
        if not already:  # a repeated cancel answers the same and sends no second callback
            self._notify([job])
        return job

    def wake(self) -> None:
        """Have the dispatcher look at the records again (after a change made to them directly)."""
        self._wake.set()

    def add_template(self, bucket: str, name: str, rule: str, is_pic_info: bool = False) -> Template:
        return self.records.add_template(bucket, name, rule, is_pic_info)

    def wait(self, bucket: str, ids: Sequence[str], timeout: float = 60.0) -> list[Job]:
        """Block until these jobs have ended (for tests and scripts)."""
        deadline = time.monotonic() + timeout
        with self._ended:
            while self.records.unfinished(ids):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # woken by every commit and cancel; at most a second, for a change made to
                # the records from outside this service (which wakes no one)
                self._ended.wait(timeout=min(left, 1.0))
        return self.records.jobs(bucket, ids)[0]

    def sweep(self) -> int:
        """Remove staged results that will never be committed: those of jobs that have ended
        and of older attempts (an attempt handed out before a restart can still finish on a
        shared cluster after its service stopped). Returns how many were removed."""
        removed = 0
        for bucket in self.records.output_buckets():
            store = self.buckets.open(bucket)
            try:
                staged = store.keys(STAGING_PREFIX)
            except CIError:
                continue
            for key in staged:
                job_id, _, attempt_text = key[len(STAGING_PREFIX) :].rpartition("-")
                try:
                    job = self.records.job(job_id)
                    attempt = int(attempt_text)
                except (CIError, ValueError):
                    continue
                if job.state in (SUBMITTED, RUNNING) and attempt >= job.attempts:
                    continue
                try:
                    store.delete(key)
                    removed += 1
                except CIError:
                    continue
        return removed

    # -- the dispatcher ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain()
                self._fill()
                if time.monotonic() - self._swept > SWEEP_SECONDS:
                    self._swept = time.monotonic()
                    self.sweep()
            except Exception:  # the loop must survive a bad record or a store hiccup
                log.exception("job dispatcher")
            self._wake.wait(timeout=0.5)
            self._wake.clear()

    def _capacity(self) -> int:
        """Free task slots: twice the cluster's threads, minus the tasks in flight."""
        now = time.monotonic()
        if now - self._threads_checked > 1.0:
            self._threads = self.cluster.threads()
            self._threads_checked = now
        return 2 * self._threads - len(self._inflight)

    def _group_size(self) -> int:
        """Jobs per Dask task: the backlog shared among the worker threads (guided
        self-scheduling, :data:`GROUP_SPREAD`), at most :data:`MAX_GROUP`; 1 while the backlog
        is short (every job its own task, the lowest latency). Dask's cost per task and the
        commit transaction are shared by the group."""
        backlog = self.records.pending()
        return max(1, min(MAX_GROUP, backlog // (GROUP_SPREAD * self._threads)))

    def _fill(self) -> None:
        while not self._stop.is_set():
            room = self._capacity()
            if room <= 0:
                return
            group = self._group_size()
            claimed = self.records.claim(room * group)
            if not claimed:
                return
            size = max(1, -(-len(claimed) // room))
            for start in range(0, len(claimed), size):
                self._submit(claimed[start : start + size])

    def _spec(self, job: Job) -> JobSpec:
        return JobSpec(
            job.id,
            job.attempts,
            self.buckets,
            job.bucket,
            self.region,
            job.input_object,
            job.output_bucket,
            job.output_object,
            job.rule,
            job.is_pic_info,
            self.backend,
        )

    def _submit(self, jobs: Sequence[Job]) -> None:
        client = self.cluster.client
        members = [(job.id, job.attempts) for job in jobs]
        level = max(job.job_level for job in jobs)
        key = f"pic-job-{jobs[0].id}-{jobs[0].attempts}" + (f"-x{len(jobs)}" if len(jobs) > 1 else "")
        if len(jobs) == 1:
            future = client.submit(run_pic_job, self._spec(jobs[0]), key=key, pure=False, priority=level)
        else:
            specs = [self._spec(job) for job in jobs]
            future = client.submit(run_pic_jobs, specs, key=key, pure=False, priority=level)
        self._inflight[key] = (future, members)

        def done(f: Any, key: str = key) -> None:
            self._done.put((key, f))
            self._wake.set()

        future.add_done_callback(done)

    def _drain(self) -> None:
        finished: list[tuple[str, int, dict[str, Any]]] = []
        while True:
            try:
                key, future = self._done.get_nowait()
            except _queue.Empty:
                break
            entry = self._inflight.pop(key, None)
            if entry is None:
                future.release()
                continue
            outcomes = self._outcomes(future, len(entry[1]))
            finished += [(job_id, attempt, o) for (job_id, attempt), o in zip(entry[1], outcomes)]
        if finished:
            self._commit(finished)

    def _signal_ended(self) -> None:
        with self._ended:
            self._ended.notify_all()

    def _notify_config(self, bucket: str) -> Mapping[str, str]:
        """The bucket queue's ``NotifyConfig`` (read again after 2 s, or at once after
        :meth:`update_queue`)."""
        now = time.monotonic()
        cached = self._notify_configs.get(bucket)
        if cached is None or now - cached[0] > 2.0:
            try:
                notify = self.records.queue_for(bucket).notify
            except CIError:
                notify = {}
            cached = (now, notify)
            self._notify_configs[bucket] = cached
        return cached[1]

    def _notify(self, ended: Sequence[Job]) -> None:
        """Queue the ``TaskFinish`` callbacks of jobs that just ended (``ended`` may hold
        their records from before the end: the final ones are read when a callback is due).
        Never raises: a callback never changes a job."""
        for before in ended:
            try:
                notify = self._notify_config(before.bucket)
                if not before.callback and notify.get("State") != "On":
                    continue
                job = self.records.job(before.id)
                callback = make_callback(job, notify)
                if callback is not None:
                    self.notifier.send(callback)
            except Exception:
                log.exception("callback of job %s", before.id)

    def _outcomes(self, future: Any, count: int) -> list[dict[str, Any]]:
        try:
            value = future.result(timeout=60)
        except Exception as exc:  # KilledWorker (too many worker deaths), a cancelled future ...
            lost = {"ok": False, "code": "InternalError", "message": f"the cluster lost the job: {type(exc).__name__}"}
            return [lost] * count
        finally:
            future.release()
        return list(value) if isinstance(value, list) else [value]

    def _commit(self, finished: list[tuple[str, int, dict[str, Any]]]) -> None:
        """Commit finished attempts, in one write transaction."""
        drop: list[tuple[str, str]] = []
        ended: list[Job] = []
        try:
            with self.records.transaction() as db:
                for job_id, attempt, outcome in finished:
                    staged = outcome.get("staged") if outcome.get("ok") else None
                    job = self.records.current(db, job_id)
                    if job.state != RUNNING or job.attempts != attempt:
                        # a cancelled job, or an older attempt: its result never becomes an output.
                        if staged is not None:
                            drop.append((job.output_bucket, str(staged)))
                        continue
                    if staged is not None:
                        try:
                            promote(self.buckets.open(job.output_bucket), str(staged), job.output_object)
                        except CIError as exc:
                            outcome = {"ok": False, "code": exc.code, "message": exc.message}
                    if outcome.get("ok"):
                        self.records.finish(db, job_id, "Success", result=outcome["result"])
                        self.committed += 1
                    else:
                        self.records.finish(
                            db, job_id, "Failed", code=str(outcome["code"]), message=str(outcome["message"])
                        )
                    ended.append(job)
        except Exception:
            log.exception("committing %d jobs", len(finished))
            return
        self._signal_ended()
        self._notify(ended)
        for bucket, staged in drop:
            try:
                self.buckets.open(bucket).delete(staged)
            except CIError:
                log.warning("could not remove the staged result %s", staged)
