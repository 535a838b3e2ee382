"""What the work bombs (tests/fixtures/bombs/work, issue 12 classes 3-5) cost: CPU and peak RSS.

Every input runs in a fresh interpreter (``python -m tests.hostile.work_figures --one NAME``),
which imports ci_engine from ``--root`` (a checkout: this tree by default, or a snapshot of
an older main to measure "before"), warms the backend up on a small image, then reports one
JSON line: the outcome (``ok``, a CI error code, or ``crash:<type>`` for anything else),
the CPU time of the ``process()`` call (``time.process_time()``: every thread) and its peak
RSS above the level before the call (the kernel's ``VmHWM``, reset through
``/proc/self/clear_refs``). The subprocess runs under an 8 GiB address-space limit, so a
runaway allocation is a ``MemoryError`` rather than a swapping machine.

Usage::

    python -m tests.hostile.work_figures                       # this tree, both backends
    python -m tests.hostile.work_figures --before /tmp/main-at-b21bb2f   # before and after

(A snapshot of an older main: ``git archive <commit> | tar -x -C DIR``.)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.hostile.runner import _reset_peak, _status

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BOMBS = ROOT / "tests" / "fixtures" / "bombs"
ADDRESS_SPACE = 8 << 30
EXTRA = ("memoryview-released", "resources-str-value", "resolver-returns-str")
"""Class 5: foreign exceptions. Not files: the call itself is the input."""


def _one(name: str, backend: str, root: str) -> dict[str, Any]:
    """Run one input in this process (the subprocess side)."""
    sys.path.insert(0, root)
    sys.path.insert(0, str(BOMBS))
    import make_work_bombs

    import ci_engine as ce

    small = make_work_bombs.png_rgb(16, 16)
    by_name = {bomb.name: bomb for bomb in make_work_bombs.WORK_BOMBS}
    resources: Any = None
    if name in by_name:
        bomb = by_name[name]
        data: Any = make_work_bombs.load(bomb)
        rule = bomb.rule
        resources = bomb.resources() or None
    else:  # class 5
        data, rule = small, "imageMogr2/thumbnail/8x"
        if name == "memoryview-released":
            data = memoryview(bytearray(small))
            data.release()
        elif name == "resources-str-value":
            rule = f"watermark/1/image/{make_work_bombs.b64('logo.png')}"
            resources = {"logo.png": "not bytes"}
        elif name == "resolver-returns-str":
            rule = f"watermark/1/image/{make_work_bombs.b64('logo.png')}"
            resources = lambda url: "not bytes"  # noqa: E731
    gc.collect()
    reset = _reset_peak()
    before = _status("VmRSS")
    started = time.process_time()
    outcome, kind, size = "ok", None, 0
    try:
        result = ce.process(data, rule, backend=backend, resources=resources)
        size = len(result.data)
    except ce.CIError as exc:
        outcome, kind = exc.code, getattr(exc, "kind", None)
    except (TypeError, ValueError) as exc:  # programming errors, documented (docs/errors.md)
        outcome = f"{type(exc).__name__}: {exc}"[:70]
    except BaseException as exc:
        outcome = f"crash:{type(exc).__name__}"
    cpu = time.process_time() - started
    hwm = _status("VmHWM")
    peak = (hwm - before) / 2**20 if reset and hwm is not None and before is not None else None
    return {"name": name, "backend": backend, "outcome": outcome, "kind": kind, "cpu_ms": cpu * 1e3,
            "rss_mb": peak, "out_bytes": size}  # fmt: skip


def _warm_up(backend: str, root: str) -> None:
    sys.path.insert(0, root)
    sys.path.insert(0, str(BOMBS))
    import make_work_bombs

    import ci_engine as ce

    small = make_work_bombs.png_rgb(16, 16)
    for rule in ("imageMogr2/thumbnail/8x/format/jpg", "imageMogr2/thumbnail/32x32!/format/png", "exif"):
        ce.process(small, rule, backend=backend)
    ce.process(make_work_bombs.bmp_rle_eol(8, 8, False), "imageMogr2/thumbnail/4x", backend=backend)
    gc.collect()


def measure_many(names: list[str], backend: str, root: Path = ROOT, timeout: float = 900) -> dict[str, dict[str, Any]]:
    """Run ``names`` on ``backend`` with ci_engine from ``root``, one after the other in one
    fresh subprocess (each measured on its own); name -> report."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("CI_ENGINE_BACKEND", None)
    proc = subprocess.run(
        ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-m", "tests.hostile.work_figures",
         "--one", ",".join(names), "--backend", backend, "--root", str(root)],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=str(ROOT), env=env,
    )  # fmt: skip
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = {report["name"]: report for report in reports}
    assert len(done) == len(names), f"work_figures ({backend}) exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    return done


def measure(name: str, backend: str, root: Path = ROOT, timeout: float = 600) -> dict[str, Any]:
    """Run ``name`` on ``backend`` with ci_engine from ``root``, in a fresh subprocess (started
    through ``sh``, so that its peak RSS does not start from this process'). Past ``timeout``
    seconds the subprocess' whole process group is killed and the report says so."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("CI_ENGINE_BACKEND", None)
    proc = subprocess.Popen(
        ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, "-m", "tests.hostile.work_figures",
         "--one", name, "--backend", backend, "--root", str(root)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT), env=env, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"name": name, "backend": backend, "outcome": f"timeout (> {timeout:.0f} s)", "kind": None,
                "cpu_ms": float("nan"), "rss_mb": None}  # fmt: skip
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"name": name, "backend": backend, "outcome": f"died:{proc.returncode}", "kind": None,
                "cpu_ms": float("nan"), "rss_mb": None, "detail": stderr[-500:]}  # fmt: skip
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def _cell(report: dict[str, Any]) -> str:
    outcome = report["outcome"] + (f" ({report['kind']})" if report.get("kind") else "")
    if report["outcome"].startswith("timeout"):
        return report["outcome"]
    rss = "?" if report.get("rss_mb") is None else f"{report['rss_mb']:.0f}"
    return f"{outcome}, {report['cpu_ms']:.0f} ms, {rss} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--root", default=str(ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--backend", action="append", choices=["vips", "pillow"])
    parser.add_argument("--before", type=Path, help="a checkout of the code before (e.g. a snapshot of main)")
    parser.add_argument("--only", action="append", help="input names (default: all)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per input and run (default 600)")
    args = parser.parse_args(argv)
    backends = args.backend or ["vips", "pillow"]
    if args.one:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
        _warm_up(backends[0], args.root)
        for name in args.one.split(","):
            print(json.dumps(_one(name, backends[0], args.root)), flush=True)
        return 0
    sys.path.insert(0, str(BOMBS))
    import make_work_bombs

    names = args.only or [bomb.name for bomb in make_work_bombs.WORK_BOMBS] + list(EXTRA)
    klass = {bomb.name: bomb.klass for bomb in make_work_bombs.WORK_BOMBS}
    header = "| class | input | backend | " + ("before | " if args.before else "") + "after |"
    print(header)
    print("|---|---|---|" + ("---|" if args.before else "") + "---|")
    for name in names:
        for backend in backends:
            cells = []
            if args.before:
                cells.append(_cell(measure(name, backend, args.before, args.timeout)))
            cells.append(_cell(measure(name, backend, timeout=args.timeout)))
            print(f"| {klass.get(name, 5)} | `{name}` | {backend} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
