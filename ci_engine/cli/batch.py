"""``ci-engine batch SRC_DIR RULE DEST_DIR``: one processing string over a directory tree.

- **Recursive**: every image file under ``SRC_DIR`` (by suffix, hidden files and
  directories skipped) gives ``DEST_DIR/<same relative path>``, with the suffix of the
  rule's output format (the source's suffix when the rule keeps the format).
- **Parallel**: ``--jobs N`` worker processes (default: the usable cores). Each worker
  gives libvips ``cores // jobs`` threads so that the machine is not oversubscribed.
- **Resumable**: an output already newer than its source is skipped (``--force`` redoes
  it), so re-running an interrupted batch finishes the rest.
- **Atomic**: a worker first reserves a hidden temporary file next to the output, writes the
  result there, then :func:`os.replace` s it into place. An output is either complete or
  absent.
- **Interruptible**: on Ctrl-C (SIGINT) or SIGTERM the parent terminates the workers,
  deletes every temporary file of the run, prints what was done and exits 130 (143 for
  SIGTERM). Workers ignore SIGINT: the terminal sends it to the whole process group, and
  only the parent decides.
- **Summary**: counts, time and rate, then the failures grouped by CI error code; the exit
  code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from ci_engine import ast as A
from ci_engine._dc import dataclass, field
from ci_engine.cli.common import (
    EXIT_FAILURES,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    IMAGE_SUFFIXES,
    PROG,
    SUFFIXES,
    TEMP_GLOB,
    Extras,
    exit_code,
    reserve_temp,
    rule_format,
    temp_path,
)
from ci_engine.cli.progress import Progress, format_duration
from ci_engine.errors import CIError
from ci_engine.limits import Limits

__all__ = ["Task", "Outcome", "Config", "find_tasks", "run_batch", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Task:
    source: str
    dest: str
    name: str
    """The source path relative to ``SRC_DIR`` (for messages)."""
    shown: str = ""
    """The output path as the user named it (for messages)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    task: Task
    ok: bool
    code: str = ""
    message: str = ""
    column: int | None = None
    caret: str = ""
    exit: int = EXIT_OK
    size: int = 0
    seconds: float = 0.0
    masked: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    """What every worker needs (pickled once per worker)."""

    pipeline: A.Pipeline | None
    """``None``: the rule is invalid and ``--ignore-error`` masked it (copy the originals)."""
    backend: str
    limits: Limits
    token: str
    threads: int = 0
    """libvips threads per worker (0: libvips' default)."""
    masked: str = ""
    """The masked parse error, when ``pipeline`` is ``None``."""
    extras: Extras = field(default_factory=Extras)
    """``--resources`` and ``--styles``."""


@dataclass
class Plan:
    """The files of a batch: to do, skipped because they are up to date, and refused because
    an earlier source already has the same output name (``a.jpg`` and ``a.png`` with
    ``format/webp``)."""

    todo: list[Task] = field(default_factory=list)
    skipped: list[Task] = field(default_factory=list)
    collisions: list[Outcome] = field(default_factory=list)


# -- planning ---------------------------------------------------------------------------------------


def _walk(src: Path, exclude: Path | None) -> Iterator[Path]:
    for root, dirs, files in os.walk(src):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (exclude is None or here / d != exclude))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield here / name


def find_tasks(src: Path, dest: Path, pipeline: A.Pipeline | None, *, force: bool = False) -> Plan:
    """The work of a batch: every image under ``src``, its output under ``dest``, minus the
    outputs already newer than their source (unless ``force``)."""
    fmt = rule_format(pipeline) if pipeline is not None else None
    suffix = SUFFIXES.get(fmt) if fmt else None
    src_abs, dest_abs = src.resolve(), dest.resolve()
    exclude = dest_abs if dest_abs != src_abs and dest_abs.is_relative_to(src_abs) else None
    plan = Plan()
    claimed: dict[str, str] = {}
    for path in _walk(src_abs, exclude):
        rel = path.relative_to(src_abs)
        out = dest_abs / rel
        if suffix is not None:
            out = out.with_suffix(suffix)
        shown = dest / rel
        if suffix is not None:
            shown = shown.with_suffix(suffix)
        task = Task(str(path), str(out), str(rel), str(shown))
        first = claimed.setdefault(str(out), str(rel))
        if first != str(rel):
            message = f"its output {shown} is also the output of {first}; rename one of them"
            plan.collisions.append(Outcome(task, False, code="OutputCollision", message=message, exit=EXIT_USAGE))
            continue
        if not force:
            try:
                if out.stat().st_mtime_ns >= path.stat().st_mtime_ns:
                    plan.skipped.append(task)
                    continue
            except OSError:
                pass
        plan.todo.append(task)
    return plan


# -- the worker ------------------------------------------------------------------------------------------

_CONFIG: Config | None = None


def _init_worker(config: Config) -> None:
    """Pool initializer: ignore SIGINT (the parent decides), die on SIGTERM, size libvips."""
    global _CONFIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if config.threads:
        os.environ["VIPS_CONCURRENCY"] = str(config.threads)
    _CONFIG = config


def apply_rule(
    data: bytes, pipeline: A.Pipeline | None, backend: str, limits: Limits, extras: Extras, masked: str
) -> tuple[bytes, str]:
    """The output bytes of one file and its masked-error note (``CODE: message``, or ``masked``
    when the rule itself was masked and the original is copied). Shared by both batch runners."""
    if pipeline is None:
        return data, masked
    from ci_engine.api import process

    result = process(data, pipeline, backend=backend, limits=limits, **extras.kwargs())
    note = f"{result.masked.code}: {result.masked.message}" if result.masked is not None else ""
    return result.data, note


def ci_failure(task: Task, exc: CIError, start: float) -> Outcome:
    """The outcome of a file whose processing raised a CI error."""
    return Outcome(
        task,
        False,
        code=exc.code,
        message=exc.message,
        column=exc.column,
        caret=exc.caret,
        exit=exit_code(exc),
        seconds=time.perf_counter() - start,
    )


def internal_failure(task: Task, exc: Exception) -> Outcome:
    """The outcome of a file whose processing failed with an unexpected exception."""
    return Outcome(task, False, code="InternalError", message=f"{type(exc).__name__}: {exc}", exit=exit_code(exc))


def process_one(task: Task, config: Config) -> Outcome:
    """Run the batch's processing string on one file (in a worker process)."""

    start = time.perf_counter()
    dest = Path(task.dest)
    tmp: Path | None = None
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Reserve the temporary file first: an unwritable destination fails before any work,
        # and an interrupted run is cleaned up by name.
        tmp = reserve_temp(dest, config.token)
        data = Path(task.source).read_bytes()
        output, masked = apply_rule(data, config.pipeline, config.backend, config.limits, config.extras, config.masked)
        with open(tmp, "wb") as fh:
            fh.write(output)
        os.replace(tmp, dest)
        tmp = None
        return Outcome(task, True, size=len(output), seconds=time.perf_counter() - start, masked=masked)
    except CIError as exc:
        return ci_failure(task, exc, start)
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        return Outcome(task, False, code="OSError", message=f"{where}{exc.strerror or exc}", exit=exit_code(exc))
    except Exception as exc:
        return internal_failure(task, exc)
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()


def _work(task: Task) -> Outcome:
    assert _CONFIG is not None, "worker not initialised"
    return process_one(task, _CONFIG)


# -- the parent ------------------------------------------------------------------------------------------


class _Terminated(Exception):
    """SIGTERM, turned into an exception so that the same cleanup runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _context() -> Any:
    """``fork`` where it is safe (Linux, and libvips not started in this process: its
    thread pool would not survive a fork), ``spawn`` elsewhere."""
    if sys.platform.startswith("linux") and "pyvips" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _remove_temps(tasks: list[Task], token: str) -> int:
    removed = 0
    for task in tasks:
        tmp = temp_path(Path(task.dest), token)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed += 1
    return removed


def _remove_stale_temps(dest: Path) -> None:
    """Temporary files left by a run that was killed outright (SIGKILL, power loss)."""
    if not dest.is_dir():
        return
    for path in dest.rglob(TEMP_GLOB):
        with contextlib.suppress(OSError):
            path.unlink()


def _note(outcome: Outcome) -> str:
    if outcome.ok:
        tail = f" (ignore-error: original kept, {outcome.masked})" if outcome.masked else ""
        where = outcome.task.shown or outcome.task.dest
        return f"-> {where} ({outcome.size:,} bytes, {outcome.seconds * 1000:.0f} ms){tail}"
    column = f" (column {outcome.column})" if outcome.column is not None else ""
    return f"{outcome.code}: {outcome.message}{column}"


def run_batch(
    args: argparse.Namespace,
    pipeline: A.Pipeline | None,
    limits: Limits,
    *,
    masked: str = "",
    extras: Extras | None = None,
) -> int:
    """The ``batch`` subcommand (the pipeline is parsed, the limits built)."""
    src, dest = Path(args.src), Path(args.dest)
    if not src.is_dir():
        print(f"{PROG}: batch: {src} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    if dest.exists() and not dest.is_dir():
        print(f"{PROG}: batch: {dest} exists and is not a directory", file=sys.stderr)
        return EXIT_USAGE
    if args.jobs is not None and args.jobs < 1:
        print(f"{PROG}: batch: --jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE

    plan = find_tasks(src, dest, pipeline, force=args.force)
    dest.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(dest)
    tasks = plan.todo
    cores = usable_cores()
    jobs = max(1, min(args.jobs or cores, len(tasks) or 1))
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    threads = max(1, cores // jobs)
    config = Config(pipeline, args.backend, limits, token, threads=threads, masked=masked, extras=extras or Extras())

    # Sources that collide on one output name count as failed files, in the progress as in
    # the summary, so the two agree ([20/20], "20 files").
    progress = Progress(len(tasks) + len(plan.collisions), mode=args.progress)
    outcomes: list[Outcome] = list(plan.collisions)
    for collision in plan.collisions:
        progress.done(collision.task.name, ok=False, note=_note(collision))
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # A parent that ignores SIGINT (nohup, some job runners) passes that on to us: Ctrl-C
    # must still stop a batch cleanly.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    pool: Any = None
    interrupted: int | None = None
    try:
        if tasks:
            # Even one job runs in a worker: the parent never loads libvips, so Ctrl-C always
            # reaches it as a KeyboardInterrupt (pyvips runs Python callbacks inside libvips
            # calls, and an interrupt raised in one of those is swallowed by cffi).
            pool = _context().Pool(jobs, initializer=_init_worker, initargs=(config,))
            for outcome in pool.imap_unordered(_work, tasks, chunksize=1):
                outcomes.append(outcome)
                progress.done(outcome.task.name, ok=outcome.ok, note=_note(outcome))
            pool.close()
            pool.join()
            pool = None
    except KeyboardInterrupt:
        interrupted = EXIT_INTERRUPTED
    except _Terminated:
        interrupted = 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        if pool is not None:
            pool.terminate()
            pool.join()
        if interrupted is not None:
            # The workers are gone: whatever temporary file they held is an orphan.
            _remove_temps(tasks, token)
        progress.close()

    _summary(plan, outcomes, progress.elapsed, interrupted=interrupted is not None)
    if interrupted is not None:
        return interrupted
    return EXIT_FAILURES if any(not o.ok for o in outcomes) else EXIT_OK


def _summary(plan: Plan, outcomes: list[Outcome], seconds: float, *, interrupted: bool) -> None:
    ok = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    masked = [o for o in ok if o.masked]
    rate = len(outcomes) / seconds if seconds > 0 else 0.0
    parts = [f"{len(ok)} written", f"{len(plan.skipped)} skipped (up to date)", f"{len(failed)} failed"]
    if masked:
        parts.append(f"{len(masked)} kept the original (ignore-error)")
    if interrupted:
        parts.append(f"{len(plan.todo) + len(plan.collisions) - len(outcomes)} not done (interrupted)")
    out = sys.stdout
    print(
        f"{'interrupted' if interrupted else 'done'}: " + ", ".join(parts) + f" in {format_duration(seconds)}"
        f" ({rate:.1f} files/s)",
        file=out,
    )
    if failed:
        print("failures by error code:", file=out)
        by_code: dict[str, list[Outcome]] = {}
        for o in failed:
            by_code.setdefault(o.code, []).append(o)
        for code in sorted(by_code, key=lambda c: (-len(by_code[c]), c)):
            group = sorted(by_code[code], key=lambda o: o.task.name)
            print(f"  {code} ({len(group)}):", file=out)
            for o in group:
                column = f" (column {o.column})" if o.column is not None else ""
                print(f"    {o.task.name}: {o.message}{column}", file=out)
    out.flush()
