"""What the crafted files of issue 12, classes 1 and 2 (header loops, lying headers) cost
through ``process()``: CPU and peak RSS, on both backends, before and after.

Every input runs in a fresh interpreter: the bomb runner (``tests/hostile/runner.py``) of
the checkout measured, given the file inline, so that the code before (a snapshot of an
older main, which has the runner but not these files) runs the very same bytes. The runner
reports the CPU time of the call (``time.process_time()``: every thread) and its peak RSS
above the level after the imports and a warm-up (``ru_maxrss``, and the kernel's ``VmHWM``
reset before the call); it runs under an 8 GiB address-space limit.

Usage::

    python -m tests.hostile.round2_figures                   # this tree: the worst of each format
    python -m tests.hostile.round2_figures --all             # every round-2 file
    python -m tests.hostile.round2_figures --before DIR      # DIR: git archive b21bb2f | tar -x -C DIR

The closing table (one line per class and backend) gives the worst CPU and the worst RSS
over the inputs measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "bombs"))
import make_bombs  # noqa: E402

ADDRESS_SPACE = 8 << 30
RULE = "imageMogr2/thumbnail/64x64"
WORST = {
    1: ("jpeg-fill-30mb.jpg", "gif-10m-comments.gif", "gif-15m-subblocks.gif", "webp-3m-junk.webp",
        "png-8000-ztxt.png", "bigtiff-1.5m-entries.tif", "heif-ipma-30m.heic"),
    2: ("heif-clap-grid-20480.heic", "heif-two-pitm.heic", "gif-frame-13000.gif", "tiff-255-samples.tif",
        "tiff-tile-16384.tif", "jpeg-baseline-7500-scans.jpg"),
}  # fmt: skip
"""The inputs measured by default: per format, the one the issue found most costly."""


def klass(name: str) -> int:
    return 1 if name in {bomb.name for bomb in make_bombs.ROUND2_LOOPS} else 2


def measure(root: Path, backend: str, name: str, timeout: float = 600) -> dict[str, Any]:
    """One input through ``root``'s runner, in a fresh subprocess (started through ``sh``,
    so that its peak RSS does not start from this process')."""
    bomb = {bomb.name: bomb for bomb in make_bombs.BOMBS}[name]
    request = {
        "backend": backend,
        "rule": RULE,
        "files": {name: make_bombs.load(bomb).hex()},
        "address_space": ADDRESS_SPACE,
        "repeat": 1,
    }
    runner = root / "tests" / "hostile" / "runner.py"
    try:
        proc = subprocess.run(
            ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, str(runner)],
            input=json.dumps(request), capture_output=True, text=True, timeout=timeout, check=False, cwd=str(root),
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"outcome": f"timeout {timeout:.0f} s", "kind": None, "cpu_ms": float("nan"), "rss": None}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"outcome": f"died:{proc.returncode}", "kind": None, "cpu_ms": float("nan"), "rss": None}
    report: dict[str, Any] = json.loads(lines[-1])
    report["rss"] = max(report["rss_mb"], report["hwm_mb"] or 0.0)
    return report


def cell(report: dict[str, Any]) -> str:
    outcome = report["outcome"].split(":")[0] + (f" ({report['kind']})" if report.get("kind") else "")
    rss = "?" if report.get("rss") is None else f"{report['rss']:.0f}"
    return f"{outcome}, {report['cpu_ms']:.0f} ms, {rss} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", type=Path, help="a checkout of the code before (a snapshot of main)")
    parser.add_argument("--backend", action="append", choices=["vips", "pillow"])
    parser.add_argument("--all", action="store_true", help="every round-2 file, not the worst of each format")
    parser.add_argument("--only", action="append", help="input names")
    args = parser.parse_args(argv)
    backends = args.backend or ["vips", "pillow"]
    if args.only:
        names = list(args.only)
    elif args.all:
        names = [bomb.name for bomb in (*make_bombs.ROUND2_LOOPS, *make_bombs.ROUND2_LIES)]
    else:
        names = [*WORST[1], *WORST[2]]
    roots = ([("before", args.before)] if args.before else []) + [("after", ROOT)]
    print("| class | input | backend | " + " | ".join(label for label, _ in roots) + " |")
    print("|---|---|---|" + "---|" * len(roots))
    worst: dict[tuple[int, str, str], tuple[float, float]] = {}
    for name in names:
        for backend in backends:
            cells = []
            for label, root in roots:
                report = measure(root, backend, name)
                cells.append(cell(report))
                key = (klass(name), backend, label)
                cpu, rss = worst.get(key, (0.0, 0.0))
                cpu = max(cpu, report["cpu_ms"]) if report["cpu_ms"] == report["cpu_ms"] else cpu
                worst[key] = (cpu, max(rss, report.get("rss") or 0.0))
            print(f"| {klass(name)} | `{name}` | {backend} | " + " | ".join(cells) + " |", flush=True)
    print()
    print("| class | backend | " + " | ".join(f"worst CPU {label} | worst RSS {label}" for label, _ in roots) + " |")
    print("|---|---|" + "---|---|" * len(roots))
    for number in (1, 2):
        for backend in backends:
            figures = [worst.get((number, backend, label)) for label, _ in roots]
            if any(figure is None for figure in figures):
                continue
            text = " | ".join(f"{cpu:.0f} ms | {rss:.0f} MB" for cpu, rss in figures)  # type: ignore[misc]
            print(f"| {number} | {backend} | {text} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
