"""``ci-engine batch SRC RULE DEST --scheduler tcp://HOST:PORT``: a batch on a Dask cluster,
with SRC and DEST folders or ``s3://BUCKET[/PREFIX]`` URLs (``--s3-endpoint``).

Every image under SRC (by suffix; hidden files and folders skipped) is read by a worker through
its store, processed, and written to DEST/<same relative key> (with the suffix of the rule's
output format) through the destination store: a temporary file and a rename in a folder, one
PUT in S3, so an output is complete or absent. The bytes never pass through the client or
the scheduler: a task carries keys, and returns a small outcome per file.

Files go to the cluster in **chunks** (:func:`chunk_sizes`): large ones first, shrinking to
one file at the end (guided self-scheduling), so that the scheduler, the client and the
workers' event loops handle a few dozen tasks instead of one per file (on a 2-core machine
their CPU per task competes with the image work) while the last tasks stay small enough
for the workers to finish together. An output that already
exists is skipped (in a folder: when it is newer than its source) unless ``--force``, so a
re-run finishes an interrupted batch. Without ``--scheduler`` an s3:// batch runs on an
embedded ``LocalCluster`` of ``--jobs`` worker processes. The workers of a named cluster must
reach SRC and DEST (the same shared folders, or the same S3 endpoint) and import the same
ci_engine. The summary and the exit codes are those of ``batch``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import PurePosixPath
from typing import Any

from ci_engine import ast as A
from ci_engine._dc import dataclass, field
from ci_engine.cli.batch import (
    Outcome,
    Plan,
    Task,
    _note,
    _summary,
    apply_rule,
    ci_failure,
    internal_failure,
    usable_cores,
)
from ci_engine.cli.common import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    IMAGE_SUFFIXES,
    PROG,
    SUFFIXES,
    Extras,
    rule_format,
)
from ci_engine.cli.progress import Progress
from ci_engine.errors import CIError
from ci_engine.limits import Limits
from ci_engine.store import Store

__all__ = ["DaskConfig", "run_file", "run_files", "chunk_sizes", "chunk_outcomes", "run_batch_dask", "plan_keys"]

CHUNK_FACTOR = 2
"""A chunk holds at most ``remaining files / (CHUNK_FACTOR x worker threads)`` files."""

MAX_CHUNK = 32
"""... and at most this many (progress, and the work redone when a worker dies)."""


def chunk_sizes(files: int, slots: int, *, factor: int = CHUNK_FACTOR, largest: int = MAX_CHUNK) -> list[int]:
    """The sizes of the tasks of a batch of ``files`` on ``slots`` worker threads, in
    submission order: each takes ``ceil(remaining / (factor x slots))`` files (at most
    ``largest``, at least 1), so chunks shrink towards the end and every worker runs out of
    work at about the same time. ``chunk_sizes(200, 2)`` is 17 tasks, ``chunk_sizes(10, 2)`` 6."""
    if files < 0 or slots < 1 or factor < 1 or largest < 1:
        raise ValueError(f"chunk_sizes({files}, {slots}, factor={factor}, largest={largest})")
    sizes: list[int] = []
    remaining = files
    while remaining:
        size = max(1, min(largest, -(-remaining // (factor * slots))))
        sizes.append(size)
        remaining -= size
    return sizes


@dataclass(frozen=True, slots=True)
class DaskConfig:
    """What every task needs (sent to the workers once)."""

    source: str
    dest: str
    endpoint: str | None
    pipeline: A.Pipeline | None
    backend: str
    limits: Limits
    masked: str = ""
    extras: Extras = field(default_factory=Extras)


_STORES: dict[tuple[str, str | None], Store] = {}


def _store(root: str, endpoint: str | None) -> Store:
    """One store per root and worker process (S3 clients are reused)."""
    from ci_engine.store import LocalStore, open_store

    key = (root, endpoint)
    found = _STORES.get(key)
    if found is None:
        found = open_store(root, endpoint=endpoint) if root.startswith("s3://") else LocalStore(root, fsync=False)
        _STORES[key] = found
    return found


def run_file(task: Task, config: DaskConfig) -> Outcome:
    """One file, on a worker: read through the source store, process, write through the
    destination store (atomic there)."""

    start = time.perf_counter()
    try:
        data = _store(config.source, config.endpoint).get(task.source)
        output, masked = apply_rule(data, config.pipeline, config.backend, config.limits, config.extras, config.masked)
        _store(config.dest, config.endpoint).put(task.dest, output)
        return Outcome(task, True, size=len(output), seconds=time.perf_counter() - start, masked=masked)
    except CIError as exc:
        return ci_failure(task, exc, start)
    except Exception as exc:
        return internal_failure(task, exc)


def run_files(tasks: list[Task], config: DaskConfig) -> list[Outcome]:
    """A chunk of files, on a worker, one after the other (:func:`run_file` each)."""
    return [run_file(task, config) for task in tasks]


def chunk_outcomes(tasks: list[Task], status: str, value: Any) -> list[Outcome]:
    """The outcomes of a finished chunk: ``value`` itself when the task ran (``status``
    ``finished``); else (the cluster lost it: ``KilledWorker`` after the retries, a cancel) one
    ``InternalError`` per file, naming what Dask reported (``value`` is then the exception,
    or Dask's ``(type, exception, traceback)``)."""
    if status == "finished" and isinstance(value, list):
        return value
    exc = value[1] if isinstance(value, tuple) and len(value) == 3 else value
    message = f"the cluster lost it: {exc!r}"
    return [Outcome(task, False, code="InternalError", message=message) for task in tasks]


def _is_image(key: str) -> bool:
    parts = key.split("/")
    return not any(p.startswith(".") for p in parts) and PurePosixPath(key).suffix.lower() in IMAGE_SUFFIXES


def plan_keys(source: Store, dest: Store, pipeline: A.Pipeline | None, *, force: bool, exclude: str = "") -> Plan:
    """The work of a batch between two stores: every image key of ``source`` (but those under
    ``exclude``: DEST inside SRC), its output key in ``dest``; an output that exists and is
    newer than its source is skipped unless ``force``."""
    fmt = rule_format(pipeline) if pipeline is not None else None
    suffix = SUFFIXES.get(fmt) if fmt else None
    existing = set(dest.keys()) if not force else set()
    plan = Plan()
    claimed: dict[str, str] = {}
    for key in source.keys():
        if not _is_image(key) or (exclude and key.startswith(exclude)):
            continue
        out = str(PurePosixPath(key).with_suffix(suffix)) if suffix else key
        task = Task(key, out, key, out)
        first = claimed.setdefault(out, key)
        if first != key:
            message = f"its output {out} is also the output of {first}; rename one of them"
            plan.collisions.append(Outcome(task, False, code="OutputCollision", message=message, exit=EXIT_USAGE))
            continue
        if out in existing and not _newer_source(source, dest, key, out):
            plan.skipped.append(task)
            continue
        plan.todo.append(task)
    return plan


def _newer_source(source: Store, dest: Store, key: str, out: str) -> bool:
    try:
        return source.head(key).last_modified > dest.head(out).last_modified
    except CIError:
        return True


def run_batch_dask(
    args: argparse.Namespace,
    pipeline: A.Pipeline | None,
    limits: Limits,
    *,
    masked: str = "",
    extras: Extras | None = None,
) -> int:
    """``batch`` on Dask (``--scheduler``, or an s3:// SRC or DEST)."""
    src, dest, endpoint = str(args.src), str(args.dest), getattr(args, "s3_endpoint", None)
    if not src.startswith("s3://") and not os.path.isdir(src):
        print(f"{PROG}: batch: {src} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    if not dest.startswith("s3://") and os.path.exists(dest) and not os.path.isdir(dest):
        print(f"{PROG}: batch: {dest} exists and is not a directory", file=sys.stderr)
        return EXIT_USAGE
    if args.jobs is not None and args.jobs < 1:
        print(f"{PROG}: batch: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    exclude = ""
    if not src.startswith("s3://"):
        src = os.path.realpath(src)
    if not dest.startswith("s3://"):
        dest = os.path.realpath(dest)
        os.makedirs(dest, exist_ok=True)
        if not src.startswith("s3://") and dest != src and dest.startswith(src + os.sep):
            exclude = os.path.relpath(dest, src).replace(os.sep, "/") + "/"
    try:
        source, target = _store(src, endpoint), _store(dest, endpoint)
        plan = plan_keys(source, target, pipeline, force=args.force, exclude=exclude)
    except CIError as exc:
        print(f"{PROG}: batch: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    config = DaskConfig(src, dest, endpoint, pipeline, args.backend, limits, masked, extras or Extras())

    from distributed import Client, as_completed

    cluster: Any = None
    client: Any
    if args.scheduler:
        client = Client(args.scheduler, timeout="20s")  # type: ignore[no-untyped-call]
    else:
        from ci_engine.jobs.service import local_cluster  # (not needed with a named cluster: 65 ms)

        n = max(1, min(args.jobs or usable_cores(), len(plan.todo) or 1))
        cluster = local_cluster(n)
        client = Client(cluster)  # type: ignore[no-untyped-call]
    progress = Progress(len(plan.todo), mode=args.progress)
    outcomes: list[Outcome] = list(plan.collisions)
    interrupted = False
    try:
        shared = client.scatter(config, broadcast=True)
        slots = max(1, sum(client.nthreads().values()))
        chunks: list[list[Task]] = []
        start = 0
        for size in chunk_sizes(len(plan.todo), slots):
            chunks.append(plan.todo[start : start + size])
            start += size
        # one submission for every chunk (a submission per chunk costs the client and the
        # scheduler a message and a graph update each)
        submitted = client.map(run_files, chunks, config=shared, pure=False)
        futures = dict(zip(submitted, chunks))
        # with_results: the client fetches results in the background as tasks finish, instead
        # of one request per future (measured: ~1.2 ms less client + scheduler CPU per task)
        finished = as_completed(futures, with_results=True, raise_errors=False)  # type: ignore[no-untyped-call]
        for future, value in finished:
            for outcome in chunk_outcomes(futures[future], future.status, value):
                outcomes.append(outcome)
                progress.done(outcome.task.name, ok=outcome.ok, note=_note(outcome))
            future.release()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        client.close()
        if cluster is not None:
            cluster.close()
    _summary(plan, outcomes, progress.elapsed, interrupted=interrupted)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILURES if any(not o.ok for o in outcomes) else EXIT_OK
