"""PNG with alpha -> WebP, warm: is ci_engine's gap to raw pyvips real or noise? (issue 16)

Run ``python benchmarks/alpha_webp.py`` from the repository root (``--rounds N``, default 20).
It writes ``benchmarks/results/alpha_webp.md`` and ``alpha_webp.json`` and prints the Markdown.

The workload is ``run.py``'s ``alpha``: the 1600 x 900 RGBA PNG of ``images.py`` through
``imageMogr2/format/webp/quality/80``. Four contenders run interleaved in one process (the
first rotating from round to round), after a warm-up call each:

* ``pyvips``: ``new_from_buffer(data, "", access="sequential").webpsave_buffer(Q=80)`` at
  libvips' default thread count (what ``run.py`` times);
* ``ci_engine``: ``ci_engine.process(data, rule, backend="vips")`` as it runs (its
  per-request thread count: one thread for this 1.44 MP output);
* ``ci_engine, default threads``: the same with ``tune()`` replaced by libvips' default, to
  see whether the thread count is the gap;
* ``pyvips, 1 thread``: the raw call at ``concurrency_set(1)``, the other half of that test.

Every call is timed in wall-clock time and in CPU time of the whole process (all threads,
``time.process_time``). A ratio is the median of the per-round ratios to ``pyvips``, with a
95 % bootstrap interval of that median (2,000 resamples of the rounds). Equal CPU time with
a wall-clock gap means the same work scheduled differently; a CPU gap means more work.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
RULE = "imageMogr2/format/webp/quality/80"


def _contenders(data: bytes) -> dict[str, Callable[[], bytes]]:
    import pyvips

    import ci_engine
    from ci_engine.backends import get_backend

    backend: Any = get_backend("vips")
    default = backend._default_concurrency

    def raw() -> bytes:
        pyvips.concurrency_set(default)
        return bytes(pyvips.Image.new_from_buffer(data, "", access="sequential").webpsave_buffer(Q=80))

    def raw_one() -> bytes:
        pyvips.concurrency_set(1)
        return bytes(pyvips.Image.new_from_buffer(data, "", access="sequential").webpsave_buffer(Q=80))

    def ci() -> bytes:
        return ci_engine.process(data, RULE, backend="vips").data

    def ci_default() -> bytes:
        backend.tune = lambda *args, **kwargs: pyvips.concurrency_set(default)
        try:
            return ci_engine.process(data, RULE, backend="vips").data
        finally:
            del backend.tune

    return {"pyvips": raw, "ci_engine": ci, "ci_engine, default threads": ci_default, "pyvips, 1 thread": raw_one}


def _interval(values: list[float], reference: list[float], resamples: int = 2000) -> tuple[float, float, float]:
    ratios = [a / b for a, b in zip(values, reference)]
    medians = sorted(statistics.median(random.choices(ratios, k=len(ratios))) for _ in range(resamples))
    return statistics.median(ratios), medians[int(resamples * 0.025)], medians[int(resamples * 0.975)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import images

    random.seed(16)
    data = images.alpha().read_bytes()
    contenders = _contenders(data)
    sizes = {name: len(fn()) for name, fn in contenders.items()}  # warm-up, and the outputs
    names = list(contenders)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            w, c = time.perf_counter(), time.process_time()
            contenders[name]()
            wall[name].append(time.perf_counter() - w)
            cpu[name].append(time.process_time() - c)
    load.append(os.getloadavg()[0])
    rows = {
        name: {
            "wall_ms": statistics.median(wall[name]) * 1000,
            "cpu_ms": statistics.median(cpu[name]) * 1000,
            "wall_ratio": _interval(wall[name], wall["pyvips"]),
            "cpu_ratio": _interval(cpu[name], cpu["pyvips"]),
            "bytes": sizes[name],
        }
        for name in names
    }
    lines = [
        "# PNG with alpha -> WebP (1600x900 RGBA, q80), warm, in one process",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {args.rounds} interleaved rounds, "
        f"load average {load[0]:.1f} at the start and {load[1]:.1f} at the end. "
        f"Reproduce: `python benchmarks/alpha_webp.py --rounds {args.rounds}`.",
        "",
        "| contender | wall-clock | CPU (all threads) | wall / pyvips [95 % CI] | CPU / pyvips [95 % CI] | output |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        w, c = row["wall_ratio"], row["cpu_ratio"]
        lines.append(
            f"| {name} | {row['wall_ms']:.0f} ms | {row['cpu_ms']:.0f} ms | {w[0]:.3f} [{w[1]:.3f}, {w[2]:.3f}] "
            f"| {c[0]:.3f} [{c[1]:.3f}, {c[2]:.3f}] | {row['bytes']:,} B |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "alpha_webp.md").write_text(text + "\n")
        report = {"rounds": args.rounds, "load": load, "rows": rows, "wall": wall, "cpu": cpu}
        (RESULTS / "alpha_webp.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
