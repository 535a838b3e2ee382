"""Text watermark on a 12 MP JPEG: the cost of ``watermark/2`` on top of decode + encode.

Run ``python benchmarks/watermark.py`` from the repository root (``--help`` for the options).

The input is ``docs/samples/kleiber.jpg`` upscaled to 4000x3000 with Lanczos and saved as a
quality-90 JPEG; it is built once and cached in ``benchmarks/_cache/``.

Two pipelines run on the libvips backend (``--backend`` to change it), alternately, after a
warm-up call each (the warm-up loads the font and fills the caches a service has warm):

* ``base``: ``imageMogr2/quality/85`` (decode, encode);
* ``watermark``: ``imageMogr2/quality/85|watermark/2/text/...`` (a CJK + Latin text at
  48 px, white with a shadow, south-east with 20 px margins).

Figures are medians of ``--runs`` whole ``ci_engine.process`` calls. Target (issue 5):
``watermark / base <= 1.3``.
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ci_engine  # noqa: E402

CACHE = Path(__file__).resolve().parent / "_cache" / "watermark_12mp.jpg"
RESULTS = Path(__file__).resolve().parent / "results" / "watermark.json"
WIDTH, HEIGHT = 4000, 3000
TARGET = 1.3


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BASE = "imageMogr2/quality/85"
WATERMARK = (
    f"{BASE}|watermark/2/text/{b64('© ci_engine 水印 2024')}/fontsize/48/fill/{b64('#FFFFFF')}"
    "/shadow/60/gravity/southeast/dx/20/dy/20/dissolve/80"
)


def build_input() -> bytes:
    """The cached 12 MP JPEG, built on first use."""
    if CACHE.exists():
        return CACHE.read_bytes()
    import pyvips

    base = pyvips.Image.new_from_file(str(ROOT / "docs" / "samples" / "kleiber.jpg"))
    big = base.resize(WIDTH / base.width, vscale=HEIGHT / base.height, kernel="lanczos3")
    big = big.crop(0, 0, WIDTH, HEIGHT)
    data = bytes(big.jpegsave_buffer(Q=90))
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    CACHE.write_bytes(data)
    return data


def measure(data: bytes, runs: int, backend: str) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock and CPU seconds (all threads of the process) of each call."""
    wall: dict[str, list[float]] = {"base": [], "watermark": []}
    cpu: dict[str, list[float]] = {"base": [], "watermark": []}
    rules = {"base": BASE, "watermark": WATERMARK}
    for rule in rules.values():  # warm-up
        ci_engine.process(data, rule, backend=backend)
    for _ in range(runs):
        for name, rule in rules.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            ci_engine.process(data, rule, backend=backend)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="calls per pipeline (default 15)")
    parser.add_argument("--backend", default="vips", help="vips (default) or pillow")
    parser.add_argument("--json", action="store_true", help=f"also write {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args(argv)

    data = build_input()
    wall, cpu = measure(data, args.runs, args.backend)
    med = {kind: {k: statistics.median(v) for k, v in d.items()} for kind, d in (("wall", wall), ("cpu", cpu))}
    ratio = med["wall"]["watermark"] / med["wall"]["base"]
    cpu_ratio = med["cpu"]["watermark"] / med["cpu"]["base"]
    verdict = "met" if ratio <= TARGET else "NOT met"
    print(f"input: {WIDTH}x{HEIGHT} JPEG, {len(data) / 1e6:.1f} MB; backend {args.backend}; {args.runs} runs each")
    print()
    print("| pipeline | median wall ms | best wall ms | median CPU ms |")
    print("|---|---:|---:|---:|")
    for name, label in (("base", f"`{BASE}`"), ("watermark", "`... \\| watermark/2/text/...`")):
        print(
            f"| {label} | {med['wall'][name] * 1e3:.1f} | {min(wall[name]) * 1e3:.1f} | {med['cpu'][name] * 1e3:.1f} |"
        )
    print()
    print(f"ratio {ratio:.3f} wall, {cpu_ratio:.3f} CPU (target <= {TARGET} on the wall-clock medians: {verdict})")
    if args.json:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(
            json.dumps(
                {
                    "input": {"width": WIDTH, "height": HEIGHT, "bytes": len(data)},
                    "backend": args.backend,
                    "runs": args.runs,
                    "pipelines": {"base": BASE, "watermark": WATERMARK},
                    "wall_seconds": wall,
                    "cpu_seconds": cpu,
                    "median": med,
                    "ratio": ratio,
                    "cpu_ratio": cpu_ratio,
                    "target": TARGET,
                    "python": platform.python_version(),
                },
                indent=2,
            )
            + "\n"
        )
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
