"""Figures for docs/intel.md (issue 15): the time of each intelligence operation on a 12 MP
JPEG against a plain ``thumbnail/1000x`` of it, imageSlim's size reduction and SSIM (real
files of ``benchmarks/wallpapers.py`` and, separately, the synthetic photographs of
``benchmarks/images.py``; written to ``benchmarks/results/slim.json``), and the QR decode
rate on placed codes. Run from the repository root (a few minutes; say how busy the machine
was when quoting):

    python benchmarks/intel_ops.py [timing|slim|qr]
"""

from __future__ import annotations

import base64
import io
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import ci_engine as ce  # noqa: E402
from ci_engine.intel.qrcode import recognize  # noqa: E402
from ci_engine.intel.slim import ssim, ssim_box  # noqa: E402

SAMPLES = ROOT / "docs" / "samples"


def photo_12mp() -> bytes:
    """4000 x 3000 JPEG q90 from the sample photograph (Lanczos upscale of its centre plus
    grain, as benchmarks/images.py builds its photographs), cached."""
    import images  # benchmarks/images.py

    path = images.CACHE / "intel-12mp-v1.jpg"
    if not path.exists():
        import pyvips

        images.CACHE.mkdir(exist_ok=True)
        sample = pyvips.Image.new_from_file(str(SAMPLES / "kleiber.jpg"))
        centre = sample.crop((1200 - 900) // 2, 0, 900, 675)
        big = images._upscale(centre, 4000, 3000)
        big.jpegsave(str(path), Q=90, keep="none")
    return path.read_bytes()


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timing() -> None:
    data = photo_12mp()
    text = base64.urlsafe_b64encode(b"Order1007").decode().rstrip("=")
    marked = ce.process(data, f"watermark/3/type/3/text/{text}").data
    rules = {
        "thumbnail/1000x (baseline)": (data, "imageMogr2/thumbnail/1000x"),
        "imageInspect": (data, "imageInspect"),
        "ci-process=QRcode": (data, "ci-process=QRcode"),
        "ci-process=QRcode&cover=1": (data, "ci-process=QRcode&cover=1"),
        "ci-process=AssessQuality": (data, "ci-process=AssessQuality"),
        "scrop/600x600": (data, "imageMogr2/scrop/600x600"),
        "watermark/3 type 3": (data, f"watermark/3/type/3/text/{text}"),
        "watermark/4 type 3": (marked, "watermark/4/type/3"),
        "imageSlim": (data, "imageSlim"),
    }
    base = None
    print(f"12 MP JPEG: {len(data):,} bytes")
    for name, (payload, rule) in rules.items():
        seconds = _best(lambda p=payload, r=rule: ce.process(p, r), repeat=1 if name == "imageSlim" else 3)
        base = base or seconds
        print(f"  {name:30s} {seconds * 1000:9.0f} ms  {seconds / base:6.1f}x")


def _slim_one(path: Path) -> dict[str, object]:
    data = path.read_bytes()
    start = time.perf_counter()
    result = ce.process(data, "imageSlim")
    seconds = time.perf_counter() - start
    a = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    b = np.asarray(Image.open(io.BytesIO(result.data)).convert("L"))
    row = {
        "name": path.name,
        "format": result.format,
        "size": list(Image.open(io.BytesIO(data)).size),
        "input": len(data),
        "output": len(result.data),
        "reduction": 1 - len(result.data) / len(data),
        "ssim_gaussian": ssim(a, b),
        "ssim_uniform7": ssim_box(a, b),
        "flag": result.slim_flag,
        "seconds": seconds,
    }
    print(
        f"  {path.name:28s} {len(data):>10,} -> {len(result.data):>10,} bytes  {row['reduction']:6.1%}  "
        f"SSIM {row['ssim_gaussian']:.4f} / {row['ssim_uniform7']:.4f}  flag {result.slim_flag}  {seconds:5.1f} s",
        flush=True,
    )
    return row


def _slim_summary(label: str, rows: list[dict[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {"set": label}
    for fmt in sorted({str(r["format"]) for r in rows}):
        cuts = [float(r["reduction"]) for r in rows if r["format"] == fmt]  # type: ignore[arg-type]
        out[f"mean_reduction_{fmt}"] = statistics.mean(cuts)
        print(f"  {label}: mean reduction {fmt}: {statistics.mean(cuts):.1%} over {len(cuts)}")
    cuts = [float(r["reduction"]) for r in rows]  # type: ignore[arg-type]
    worst = min(min(float(r["ssim_gaussian"]), float(r["ssim_uniform7"])) for r in rows)  # type: ignore[arg-type]
    out.update(mean_reduction=statistics.mean(cuts), min_ssim=worst, count=len(rows))
    print(f"  {label}: mean reduction, all: {statistics.mean(cuts):.1%} over {len(cuts)}; minimum SSIM {worst:.4f}")
    return out


def slim_figures() -> None:
    """imageSlim on the real photographs of benchmarks/wallpapers.py (fetched on first use)
    and, separately, on the synthetic ones of benchmarks/images.py; writes
    benchmarks/results/slim.json."""
    import json

    import images
    import wallpapers

    print("real photographs and PNGs (benchmarks/wallpapers.py, as packaged):")
    real = [_slim_one(path) for path in wallpapers.fetch().values()]
    real_summary = _slim_summary("real", real)
    print("synthetic (benchmarks/images.py: upscale + grain) and the repository's samples:")
    synthetic = [_slim_one(p) for p in (images.large(), images.sharp(), images.medium(), images.alpha())]
    synthetic_summary = _slim_summary("synthetic", synthetic)
    samples = [_slim_one(SAMPLES / name) for name in ("kleiber.jpg", "ladybird.jpg")]
    samples_summary = _slim_summary("docs/samples", samples)
    out = ROOT / "benchmarks" / "results" / "slim.json"
    summaries = [real_summary, synthetic_summary, samples_summary]
    out.write_text(json.dumps({"summary": summaries, "rows": real + synthetic + samples}, indent=1) + "\n")


def qr_figures() -> None:
    import segno

    rng = np.random.default_rng(15)
    photos = [Image.open(SAMPLES / name).convert("RGB") for name in ("kleiber.jpg", "ladybird.jpg")]
    decoded = exact = total = 0
    errors = []
    for trial in range(60):
        base = photos[trial % 2].copy()
        text = f"https://example.org/item/{trial}?k={rng.integers(1e6)}"
        scale = int(rng.integers(3, 9))
        angle = float(rng.uniform(-180, 180))
        qr = segno.make_qr(text, error="m")
        buf = io.BytesIO()
        qr.save(buf, kind="png", scale=scale, border=4)
        code = Image.open(buf).convert("RGB")
        side = code.size[0]
        rotated = code.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))
        mask = Image.new("L", code.size, 255).rotate(angle, resample=Image.BICUBIC, expand=True)
        if rotated.size[0] >= base.size[0] or rotated.size[1] >= base.size[1]:
            continue
        left = int(rng.integers(0, base.size[0] - rotated.size[0]))
        top = int(rng.integers(0, base.size[1] - rotated.size[1]))
        base.paste(rotated, (left, top), mask)
        out = io.BytesIO()
        base.save(out, "JPEG", quality=85)
        total += 1
        found = recognize(out.getvalue()).codes
        hit = [c for c in found if c.text == text]
        if not hit:
            continue
        decoded += 1
        b, n, c = 4 * scale, side - 8 * scale, side / 2
        t = math.radians(angle)
        c2 = (rotated.size[0] / 2, rotated.size[1] / 2)
        want = []
        for x, y in ((b, b), (b + n, b), (b + n, b + n), (b, b + n)):
            dx, dy = x - c, y - c
            want.append(
                (left + c2[0] + dx * math.cos(t) + dy * math.sin(t), top + c2[1] - dx * math.sin(t) + dy * math.cos(t))
            )
        worst = max(math.dist(p, q) for p, q in zip(hit[0].points, want))
        errors.append(worst / n)
        exact += worst <= 3 + 0.02 * n
    print(
        f"  QR decode rate {decoded}/{total}; corners within 3 px + 2 % of the side: {exact}/{decoded}; "
        f"median worst-corner error {statistics.median(errors):.1%} of the side"
    )


if __name__ == "__main__":
    what = sys.argv[1:] or ["timing", "slim", "qr"]
    if "qr" in what:
        qr_figures()
    if "timing" in what:
        timing()
    if "slim" in what:
        slim_figures()
