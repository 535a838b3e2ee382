"""The Pillow backend's speed: against naive Pillow on the large-JPEG thumbnail, and against
the libvips backend on a set of workloads.

Run from the repository root::

    python benchmarks/pillow_backend.py             # 9 rounds
    python benchmarks/pillow_backend.py --rounds 5

**Images** (built once, cached in ``benchmarks/_cache/``, git-ignored): ``pb-large-6000x3375.jpg``
is ``docs/samples/kleiber.jpg`` upscaled 5x with Pillow's Lanczos (20.25 MP, quality 90);
``pb-medium-1920x1080.jpg`` the sample upscaled 1.6x the same way. Pillow builds them, so this
script runs without pyvips (the vips columns are then left out).

**The target** (issue 4): on the large-JPEG thumbnail, ``ci_engine.process(data,
"imageMogr2/thumbnail/400x/quality/80", backend="pillow")`` takes at most 0.5x the time of
naive Pillow (open, full decode, ``resize(LANCZOS)``, save at quality 80).

**Method.** All contenders of a workload run interleaved round-robin in this one process:
one untimed warm-up call each, then ``--rounds`` rounds, each calling every contender once
(the first contender rotating). A figure is the median wall time over the rounds; a ratio is
the median of the per-round ratios (the two ran back to back in the same round).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import ci_engine as ce  # noqa: E402
from ci_engine.backends import available_backends  # noqa: E402

CACHE = ROOT / "benchmarks" / "_cache"
SAMPLE = ROOT / "docs" / "samples" / "kleiber.jpg"


def built(name: str, size: tuple[int, int]) -> bytes:
    path = CACHE / name
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with Image.open(SAMPLE) as sample:
            big = sample.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        big.save(out, "JPEG", quality=90)
        path.write_bytes(out.getvalue())
    return path.read_bytes()


def naive_pillow(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        width = 400
        height = round(image.height * width / image.width)
        small = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()


def engine(backend: str, rule: str) -> Callable[[bytes], bytes]:
    def run(data: bytes) -> bytes:
        return ce.process(data, rule, backend=backend).data

    return run


def measure(contenders: dict[str, Callable[[bytes], bytes]], data: bytes, rounds: int) -> dict[str, list[float]]:
    names = list(contenders)
    for name in names:  # warm-up, untimed
        contenders[name](data)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            contenders[name](data)
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times: dict[str, list[float]], a: str, b: str) -> tuple[float, float, float]:
    per_round = [x / y for x, y in zip(times[a], times[b])]
    return statistics.median(per_round), min(per_round), max(per_round)


WORKLOADS = [
    ("thumbnail 400x, jpg", "imageMogr2/thumbnail/400x/quality/80"),
    ("thumbnail 50%, png", "imageMogr2/thumbnail/!50p/format/png"),
    ("crop 800x800 center", "imageMogr2/crop/800x800/gravity/center"),
    ("rotate 33", "imageMogr2/rotate/33"),
    ("blur 10x5", "imageMogr2/blur/10x5"),
    ("sharpen 120", "imageMogr2/sharpen/120"),
    ("bright+contrast", "imageMogr2/bright/20/contrast/30"),
    ("iradius 200, png", "imageMogr2/thumbnail/800x/iradius/200/format/png"),
    ("scrop 600x600", "imageMogr2/scrop/600x600"),
    ("format webp", "imageMogr2/format/webp/quality/80"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    backends = available_backends()
    if "pillow" not in backends:
        raise SystemExit("the pillow backend does not load here")
    have_vips = "vips" in backends

    large = built("pb-large-6000x3375.jpg", (6000, 3375))
    rule = "imageMogr2/thumbnail/400x/quality/80"
    contenders = {"ci_engine (pillow)": engine("pillow", rule), "naive Pillow": naive_pillow}
    if have_vips:
        contenders["ci_engine (vips)"] = engine("vips", rule)
    times = measure(contenders, large, args.rounds)
    print(f"large JPEG 6000x3375 ({len(large) / 2**20:.1f} MB) -> thumbnail 400x, quality 80; {args.rounds} rounds")
    for name, values in times.items():
        print(f"  {name:20} median {statistics.median(values) * 1000:8.1f} ms")
    r, lo, hi = ratio(times, "ci_engine (pillow)", "naive Pillow")
    verdict = "meets" if r <= 0.5 else "MISSES"
    print(f"  pillow backend / naive Pillow = {r:.3f} (range {lo:.3f}-{hi:.3f}): {verdict} the <= 0.5 target")
    if have_vips:
        r, lo, hi = ratio(times, "ci_engine (pillow)", "ci_engine (vips)")
        print(f"  pillow backend / vips backend = {r:.2f} (range {lo:.2f}-{hi:.2f})")

    if not have_vips:
        print("\npyvips is not importable here: no pillow-vs-vips table")
        return
    medium = built("pb-medium-1920x1080.jpg", (1920, 1080))
    print(f"\nmedium JPEG 1920x1080 ({len(medium) / 2**10:.0f} kB), pillow vs vips backend, {args.rounds} rounds")
    print(f"  {'workload':24} {'pillow ms':>10} {'vips ms':>10} {'pillow/vips':>12}")
    for label, text in [("thumbnail 400x (large)", rule), *WORKLOADS]:
        data = large if label.endswith("(large)") else medium
        pair = {"pillow": engine("pillow", text), "vips": engine("vips", text)}
        t = measure(pair, data, args.rounds)
        r, lo, hi = ratio(t, "pillow", "vips")
        print(
            f"  {label:24} {statistics.median(t['pillow']) * 1000:10.1f} {statistics.median(t['vips']) * 1000:10.1f}"
            f" {r:8.2f} ({lo:.2f}-{hi:.2f})"
        )


if __name__ == "__main__":
    main()
