"""Decompression bombs (tests/fixtures/bombs) through ``process()`` on every backend.

Each bomb runs in a fresh subprocess (a few bombs per subprocess, each measured on its own)
that reports its peak RSS (``ru_maxrss`` above the level after the imports and a warm-up,
and the per-bomb ``VmHWM``) and its CPU time (``time.process_time()``, every thread). Every
bomb must give its expected outcome in under 50 ms of CPU and 100 MB of RSS; the metadata
blobs (legal 30 MB inputs whose cost is linear in their size) get 50 ms + 0.1 s per MB; the
other inputs built in memory (issue 12's 30 MB floods) get the fixed budget.

The figures: ``python -m tests.hostile.test_bombs`` prints the table for every backend.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ci_engine.backends import available_backends
from tests.hostile import measure

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "bombs"))
import make_bombs

BACKENDS = available_backends()
MAX_CPU_MS = 50.0
MAX_RSS_MB = 100.0
LINEAR_CPU_MS_PER_MB = 100.0
BATCHES = 2

COMMITTED = [bomb for bomb in make_bombs.BOMBS if bomb.committed]
IN_MEMORY = [bomb for bomb in make_bombs.BOMBS if not bomb.committed]
BY_NAME = {bomb.name: bomb for bomb in make_bombs.BOMBS}


def batches() -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(BATCHES)]
    for index, bomb in enumerate(COMMITTED):
        out[index % BATCHES].append(bomb.name)
    return [*out, [bomb.name for bomb in IN_MEMORY]]


def check(report: dict[str, Any], size: int) -> list[str]:
    """What is wrong with one bomb's report ([] when nothing)."""
    bomb = BY_NAME[report["name"]]
    problems = []
    allowed = bomb.expected.split("|")
    if report["outcome"] not in allowed:
        problems.append(f"outcome {report['outcome']!r}, expected {bomb.expected}")
    elif bomb.kind is not None and report["kind"] != bomb.kind:
        problems.append(f"limit {report['kind']!r}, expected {bomb.kind!r}")
    budget = MAX_CPU_MS + (LINEAR_CPU_MS_PER_MB * size / 2**20 if bomb.linear else 0)
    if report["cpu_ms"] >= budget:
        problems.append(f"{report['cpu_ms']:.1f} ms of CPU (budget {budget:.0f})")
    for key in ("rss_mb", "hwm_mb"):
        if report[key] is not None and report[key] >= MAX_RSS_MB:
            problems.append(f"{key} {report[key]:.1f} MB")
    return problems


def test_the_corpus_is_what_make_bombs_generates() -> None:
    assert make_bombs.main(["--check"]) == 0, "run python tests/fixtures/bombs/make_bombs.py"
    for bomb in COMMITTED:
        assert (make_bombs.HERE / bomb.name).stat().st_size < 6 * 2**20, bomb.name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", range(BATCHES + 1))
def test_bombs_are_rejected_fast_and_small(backend: str, batch: int) -> None:
    names = batches()[batch]
    reports = measure(backend, bombs=names)
    failures = []
    for name in names:
        size = len(make_bombs.load(BY_NAME[name])) if BY_NAME[name].linear else 0
        problems = check(reports[name], size)
        if problems:
            failures.append(f"{name}: {'; '.join(problems)}")
    assert not failures, f"{backend}:\n" + "\n".join(failures)


@pytest.mark.parametrize("backend", BACKENDS)
def test_decoders_stop_at_the_declared_size(backend: str) -> None:
    """Past the probe (which refuses it), straight into the decoder: a 64 x 64 PNG whose IDAT
    inflates to 2 GiB decodes to 64 x 64 without allocating more than the image. (libspng
    still inflates the rest of the stream, ~0.3 s of CPU: hence the probe's IDAT check.)"""
    reports = measure(backend, bombs=["png-idat-2g.png"], decode=(64, 64))
    report = reports["png-idat-2g.png"]
    assert report["outcome"] in ("ok", "InvalidImageFormat"), report
    assert report["rss_mb"] < MAX_RSS_MB and (report["hwm_mb"] or 0) < MAX_RSS_MB, report
    assert report["cpu_ms"] < 5_000, report


def figures() -> None:  # pragma: no cover - the reporting command
    """Print every bomb's outcome, CPU and RSS on every backend."""
    for backend in BACKENDS:
        rejected = worst_cpu = worst_rss = 0.0
        print(f"\n{backend}")
        print(f"{'bomb':34} {'outcome':24} {'cpu ms':>8} {'rss MB':>7} {'hwm MB':>7}")
        for names in batches():
            reports = measure(backend, bombs=names)
            for name in names:
                r = reports[name]
                size = len(make_bombs.load(BY_NAME[name])) if BY_NAME[name].linear else 0
                ok = not check(r, size)
                rejected += ok
                if BY_NAME[name].committed:
                    worst_cpu = max(worst_cpu, r["cpu_ms"])
                worst_rss = max(worst_rss, r["rss_mb"], r["hwm_mb"] or 0)
                outcome = r["outcome"] + (f" ({r['kind']})" if r["kind"] else "")
                hwm = "-" if r["hwm_mb"] is None else f"{r['hwm_mb']:.1f}"
                flag = "" if ok else "  FAIL"
                print(f"{name:34} {outcome[:40]:24} {r['cpu_ms']:8.1f} {r['rss_mb']:7.1f} {hwm:>7}{flag}")
        total = len(make_bombs.BOMBS)
        print(
            f"{backend}: {int(rejected)}/{total} as expected; max CPU {worst_cpu:.1f} ms (committed bombs), "
            f"max RSS {worst_rss:.1f} MB"
        )


if __name__ == "__main__":  # pragma: no cover
    figures()
