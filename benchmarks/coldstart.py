"""Cold start: one new process per image, as a shell loop, ``xargs`` or a serverless function runs it.

Run ``python benchmarks/coldstart.py`` from the repository root (``--help`` for the options).
It writes ``benchmarks/results/coldstart.md`` and ``coldstart.json`` and prints the Markdown.

Contenders, each a fresh ``python`` process (``vips``' own command-line tool too, when it is
on ``PATH``):

* ``ci_engine CLI``: ``ci-engine process IN RULE -o OUT -q``, started the way the installed
  console script starts it (``from ci_engine.__main__ import main; sys.exit(main())``), with
  this checkout first on ``PYTHONPATH``;
* ``pyvips script``: the raw pyvips idiom, ``pyvips.Image.thumbnail(IN, W)`` then
  ``jpegsave``/``webpsave`` with the same quality;
* ``Pillow script``: ``Image.open``, ``draft`` (JPEG shrink-on-load), a Lanczos
  ``thumbnail``, ``save`` with the same quality;
* ``vipsthumbnail``: ``vipsthumbnail IN -s W -o OUT[Q=..]`` (only when installed).

Workloads:

* ``start``: start-up alone (``import ci_engine`` / ``import pyvips`` / ``from PIL import
  Image``, nothing else), and ``python -c pass`` for the interpreter itself;
* ``thumb``: the 20 MP JPEG of ``benchmarks/images.py`` (``large``) -> 400 px JPEG, q80
  (``imageMogr2/thumbnail/400x/quality/80``);
* ``small``: the 100 KB sample photograph ``docs/samples/kleiber.jpg`` (1200 x 675) -> 200 px
  WebP, q80 (``imageMogr2/thumbnail/200x/format/webp/quality/80``), where start-up dominates.

Method: rounds of one process per contender, interleaved (the first contender rotates from
round to round), after one untimed warm-up each (page cache). A figure is the median
wall-clock time of the whole process (``subprocess.run``, start to exit), and the median
CPU time it used (user + system, all its threads, from ``getrusage(RUSAGE_CHILDREN)``); a
ratio is the median of the per-round ratios, with its min-max. This VM's timings swing with
the other work on its two cores, which the interleaving shares out fairly; CPU time moves
less with that load than wall-clock time does (but libvips' threads make the CPU time of a
multi-threaded contender larger than its wall-clock time on an idle machine). The results
record the load average before and after.

In-process figures, also medians over fresh processes: ``import ci_engine`` (from just
before the import statement to just after it, so interpreter start-up is excluded) and the
first ``parse()`` of a new process, each with the list of heavy modules they loaded (none of
pyvips, PIL, numpy or lark may appear).

Bytecode: an installed wheel has its ``.pyc`` files (pip compiles on install). This checkout
may run with ``PYTHONDONTWRITEBYTECODE`` set, which would make every process compile
ci_engine from source, so the script compiles the package first (``compileall``).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
SMALL = ROOT / "docs" / "samples" / "kleiber.jpg"

CI = "ci_engine CLI"
PYVIPS = "pyvips script"
PILLOW = "Pillow script"
VIPS_CLI = "vipsthumbnail"
BARE = "python -c pass"

HEAVY = ("pyvips", "PIL", "numpy", "pillow_heif", "lark", "regex")

_CI_MAIN = "import sys; from ci_engine.__main__ import main; sys.exit(main())"

_PYVIPS_SCRIPT = """\
import sys
import pyvips
src, width, dst, quality = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
image = pyvips.Image.thumbnail(src, width)
if dst.endswith(".webp"):
    image.webpsave(dst, Q=quality)
else:
    image.jpegsave(dst, Q=quality)
"""

_PILLOW_SCRIPT = """\
import sys
from PIL import Image
src, width, dst, quality = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with Image.open(src) as im:
    im.draft("RGB", (width, width * im.height // im.width))
    im.thumbnail((width, 10**6), Image.Resampling.LANCZOS)
    im.save(dst, quality=quality)
"""

_IMPORT_PROBE = """\
import sys, time, json
t, c = time.perf_counter(), time.process_time()
import ci_engine
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print(json.dumps({"ms": elapsed * 1000, "cpu_ms": cpu * 1000, "heavy": heavy}))
"""

_PARSE_PROBE = """\
import sys, time, json
from ci_engine import parse
t, c = time.perf_counter(), time.process_time()
parse("imageMogr2/thumbnail/400x/quality/80")
elapsed, cpu = time.perf_counter() - t, time.process_time() - c
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(%r))
print(json.dumps({"ms": elapsed * 1000, "cpu_ms": cpu * 1000, "heavy": heavy}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("CI_ENGINE_BACKEND", None)
    return env


def _run(cmd: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock time and CPU time (user + system, all threads) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _workloads(tmp: Path, large: Path) -> dict[str, tuple[str, dict[str, list[str]]]]:
    py = sys.executable
    pyvips_script = tmp / "raw_pyvips.py"
    pyvips_script.write_text(_PYVIPS_SCRIPT)
    pillow_script = tmp / "raw_pillow.py"
    pillow_script.write_text(_PILLOW_SCRIPT)
    vips_cli = shutil.which("vipsthumbnail")

    def contenders(src: Path, width: int, fmt: str, rule: str) -> dict[str, list[str]]:
        out = str(tmp / f"out.{fmt}")
        found = {
            CI: [py, "-c", _CI_MAIN, "process", str(src), rule, "-o", out, "-q"],
            PYVIPS: [py, str(pyvips_script), str(src), str(width), out, "80"],
            PILLOW: [py, str(pillow_script), str(src), str(width), out, "80"],
        }
        if vips_cli:
            found[VIPS_CLI] = [vips_cli, str(src), "-s", str(width), "-o", f"{out}[Q=80]"]
        return found

    start = {
        CI: [py, "-c", "import ci_engine"],
        PYVIPS: [py, "-c", "import pyvips"],
        PILLOW: [py, "-c", "from PIL import Image"],
        BARE: [py, "-c", "pass"],
    }
    if vips_cli:
        start[VIPS_CLI] = [vips_cli, "--version"]
    return {
        "start": ("start-up only (import, nothing else)", start),
        "thumb": (
            f"20 MP JPEG -> 400 px JPEG q80, whole process ({large.name})",
            contenders(large, 400, "jpg", "imageMogr2/thumbnail/400x/quality/80"),
        ),
        "small": (
            f"100 KB JPEG -> 200 px WebP q80, whole process ({SMALL.name}, {SMALL.stat().st_size // 1000} KB)",
            contenders(SMALL, 200, "webp", "imageMogr2/thumbnail/200x/format/webp/quality/80"),
        ),
    }


def measure(
    contenders: dict[str, list[str]], rounds: int, env: dict[str, str], reference: str | None
) -> dict[str, Any]:
    names = list(contenders)
    for name in names:  # warm-up: page cache, and a check that every contender runs
        _run(contenders[name], env)
    times: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            wall, used = _run(contenders[name], env)
            times[name].append(wall)
            cpu[name].append(used)
    result: dict[str, Any] = {
        "times": times,
        "cpu": cpu,
        "median_ms": {n: statistics.median(t) * 1000 for n, t in times.items()},
        "median_cpu_ms": {n: statistics.median(t) * 1000 for n, t in cpu.items()},
    }
    if reference and CI in times and reference in times:
        for key, series in (("ratio", times), ("cpu_ratio", cpu)):
            per_round = [a / b for a, b in zip(series[CI], series[reference])]
            result[key] = {
                "reference": reference,
                "median": statistics.median(per_round),
                "min": min(per_round),
                "max": max(per_round),
            }
    return result


def probe(code: str, runs: int, env: dict[str, str]) -> dict[str, Any]:
    values = []
    cpu = []
    heavy: set[str] = set()
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, env=env, cwd=ROOT, capture_output=True, text=True
        ).stdout
        data = json.loads(out.strip().splitlines()[-1])
        values.append(data["ms"])
        cpu.append(data["cpu_ms"])
        heavy.update(data["heavy"])
    return {
        "median_ms": statistics.median(values),
        "min_ms": min(values),
        "median_cpu_ms": statistics.median(cpu),
        "runs": values,
        "cpu_runs": cpu,
        "heavy": sorted(heavy),
    }


def _load() -> list[float] | None:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Cold start: one new process per image",
        "",
        f"Measured {report['date']} on {report['machine']['cpus']} CPUs, Python {report['machine']['python']}; "
        f"load average {_fmt_load(report['load_before'])} before, {_fmt_load(report['load_after'])} after; "
        f"{report['rounds']} interleaved rounds. Reproduce: "
        f"`python benchmarks/coldstart.py --rounds {report['rounds']}` (method in benchmarks/README.md).",
        "",
        "## In-process start-up (median over fresh processes)",
        "",
        "| figure | median (wall) | min (wall) | median (CPU) | target | heavy modules loaded |",
        "|---|---:|---:|---:|---:|---|",
    ]
    imp = report["import"]
    first = report["first_parse"]
    lines.append(
        f"| `import ci_engine` (interpreter start excluded) | {imp['median_ms']:.1f} ms | {imp['min_ms']:.1f} ms "
        f"| {imp['median_cpu_ms']:.1f} ms | <= 60 ms | {', '.join(imp['heavy']) or 'none'} |"
    )
    lines.append(
        f"| first `parse()` in a new process | {first['median_ms']:.2f} ms | {first['min_ms']:.2f} ms "
        f"| {first['median_cpu_ms']:.2f} ms | <= 5 ms | {', '.join(first['heavy']) or 'none'} |"
    )
    lines += ["", "## Whole processes (median wall-clock time)", ""]
    for key, (title, result) in report["workloads"].items():
        names = list(result["median_ms"])
        lines += [f"### {key}: {title}", "", "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
        lines.append("| wall-clock | " + " | ".join(f"{result['median_ms'][n]:.0f} ms" for n in names) + " |")
        cpu_cells = " | ".join(f"{result['median_cpu_ms'][n]:.0f} ms" for n in names)
        lines.append(f"| CPU (user + system) | {cpu_cells} |")
        target = " (target <= 1.2)" if key in ("thumb", "small") else ""
        for ratio_key, what in (("ratio", "wall-clock"), ("cpu_ratio", "CPU time")):
            ratio = result.get(ratio_key)
            if ratio:
                lines += [
                    "",
                    f"ci_engine CLI / {ratio['reference']}, {what}: **{ratio['median']:.2f}x** median of per-round "
                    f"ratios (min {ratio['min']:.2f}, max {ratio['max']:.2f}){target if ratio_key == 'ratio' else ''}.",
                ]
        lines.append("")
    return "\n".join(lines)


def _fmt_load(load: list[float] | None) -> str:
    return "n/a" if load is None else " / ".join(f"{v:.2f}" for v in load)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per workload (default 9)")
    parser.add_argument("--probes", type=int, default=9, help="fresh processes per in-process figure (default 9)")
    parser.add_argument("--only", action="append", choices=("start", "thumb", "small"), help="only this workload")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import images

    compileall.compile_dir(str(ROOT / "ci_engine"), quiet=1)
    env = _env()
    load_before = _load()
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "rounds": args.rounds,
        "load_before": load_before,
        "import": probe(_IMPORT_PROBE % (HEAVY,), args.probes, env),
        "first_parse": probe(_PARSE_PROBE % (HEAVY,), args.probes, env),
        "workloads": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        workloads = _workloads(Path(tmp), images.large() if not args.only or "thumb" in args.only else SMALL)
        for key, (title, contenders) in workloads.items():
            if args.only and key not in args.only:
                continue
            reference = PYVIPS
            report["workloads"][key] = (title, measure(contenders, args.rounds, env, reference))
    report["load_after"] = _load()
    text = render_markdown(report)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "coldstart.md").write_text(text + "\n")
        (RESULTS / "coldstart.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
