"""The benchmark suite: ci_engine against its peers, on images it builds itself.

Run from the repository root::

    python benchmarks/run.py            # the full run, about 4-5 minutes on 2 cores
    python benchmarks/run.py --quick    # 5 rounds, peak RSS of ci_engine and pyvips only

It writes ``benchmarks/results/results.md`` (the tables), ``results.json`` (every
measurement) and ``ratios.png`` (a bar chart of the ratios), and prints the Markdown.

**Contenders**, all in this one process, on the same input bytes, each producing the same
output geometry (checked once before timing, and shown in the table):

- ``ci_engine (vips)`` and ``ci_engine (pillow)``: ``ci_engine.process(data, rule,
  backend=...)`` for every backend of :func:`ci_engine.backends.available_backends`;
- ``pyvips``: the raw pyvips idiom doing the same thing with default settings
  (``thumbnail_buffer`` + ``jpegsave_buffer`` for thumbnails; ``new_from_buffer`` then the
  operations for the rest; each workload's code is below);
- ``Pillow draft()``: Pillow with ``Image.draft()`` (the JPEG decoder's DCT scaling), the
  fastest peer on large-JPEG thumbnails here;
- ``Pillow naive``: open, ``resize(..., LANCZOS)``, save;
- ``decode floor``: ``jpegload_buffer(data, shrink=N).avg()`` - the JPEG decode alone at
  the shrink-on-load factor ci_engine's plan picks; ``avg()`` forces every pixel to be
  decoded and costs a few ms for the shrunk image.

**Method.** Timing on this VM varies by about +-30 % between processes, so every contender
of a workload runs interleaved round-robin in one process: one untimed warm-up call each,
then ``--rounds`` rounds (>= 5; 7 by default), each round calling every contender once,
the starting contender rotating from round to round. A workload whose round is short gets
up to 3x more rounds within a 25 s budget (10 s with ``--quick``), which steadies its
medians at little cost; the three slow ones (rotate, gif, avif) stay at 5. A figure is the
**median** over rounds; the spread printed next to it is ``(max - min) / 2 / median``. A
ratio is the median of the per-round ratios (the two contenders ran back to back in the
same round, which cancels slow drifts), with its min-max range. Process-wide libvips
settings: the operation cache is off for everyone (ci_engine turns it off; a cache hit
would time nothing), and the libvips concurrency is reset to the libvips default before
every non-ci_engine call (ci_engine picks its own per request: one thread for small
outputs). Nothing is pinned: the image targets are about wall time on this 2-core machine;
the parse target says "one core", and ``benchmarks/parse.py`` pins its measurement
processes.

**Peak RSS** is measured in a fresh subprocess per (workload, contender): the process
imports everything, reads the input, runs the contender once and reports
``resource.getrusage(RUSAGE_SELF).ru_maxrss``. The figure is the whole process (Python,
pyvips, Pillow and numpy loaded: about 60-70 MB before any image). The 30,000 x 8,000
JPEG (15.7 MB, under the 32 MB input limit, so default Limits) is measured only this way.

**Parse throughput** is ``benchmarks/parse.py``'s own measurement (imported, not
rewritten): fresh subprocesses pinned to one core, the best of 3 batches in each, median
over 5 subprocesses.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import images  # noqa: E402  (benchmarks/images.py)

RESULTS = HERE / "results"

CI_VIPS = "ci_engine (vips)"
CI_PILLOW = "ci_engine (pillow)"
PYVIPS = "pyvips"
PIL_DRAFT = "Pillow draft()"
PIL_NAIVE = "Pillow naive"
FLOOR = "decode floor"
COLUMNS = (CI_VIPS, CI_PILLOW, PYVIPS, PIL_DRAFT, PIL_NAIVE, FLOOR)


@dataclass(frozen=True)
class Target:
    """``ci_engine (vips)`` time / ``baseline`` time must be at most ``ratio``."""

    baseline: str
    ratio: float
    source: str = "issue 3"


@dataclass
class Workload:
    key: str
    title: str
    image: str
    rule: str
    targets: tuple[Target, ...]
    build: Callable[[bytes], dict[str, Callable[[], bytes | float]]]
    """data -> contender name -> a call producing the output (bytes, or a float for the floor)."""
    notes: str = ""
    max_rounds: int = 0
    """Cap on the rounds for the slow workloads (0: none); never below 5."""


# -- contenders ---------------------------------------------------------------------------------------

_DEFAULT_CONCURRENCY = 0


def _setup_vips() -> None:
    """Record libvips' default concurrency, then let ci_engine configure libvips (cache off)."""
    global _DEFAULT_CONCURRENCY
    import pyvips

    _DEFAULT_CONCURRENCY = pyvips.concurrency_get()
    from ci_engine.backends import get_backend

    get_backend("vips")


def _raw(fn: Callable[[], Any]) -> Callable[[], Any]:
    """A non-ci_engine libvips call runs with libvips' default concurrency."""
    import pyvips

    def call() -> Any:
        pyvips.concurrency_set(_DEFAULT_CONCURRENCY)
        return fn()

    return call


def _ci(data: bytes, rule: str) -> dict[str, Callable[[], bytes]]:
    import ci_engine
    from ci_engine.backends import available_backends

    out: dict[str, Callable[[], bytes]] = {}
    for backend in available_backends():
        name = {"vips": CI_VIPS, "pillow": CI_PILLOW}.get(backend, f"ci_engine ({backend})")
        out[name] = lambda backend=backend: ci_engine.process(data, rule, backend=backend).data
    return out


def _pil_save(im: Any, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _open(data: bytes) -> Any:
    from PIL import Image

    return Image.open(io.BytesIO(data))


def _fit_width(data: bytes, width: int) -> tuple[int, int]:
    im = _open(data)
    w, h = im.size
    return width, round(h * width / w)


def jpeg_thumbnail(width: int, floor_shrink: int) -> Callable[[bytes], dict[str, Callable[[], Any]]]:
    """The contenders of a JPEG -> ``width`` px wide JPEG thumbnail at q80; the decode floor
    is ``jpegload`` at ``floor_shrink`` (the shrink-on-load factor the target allows)."""

    def contenders(data: bytes) -> dict[str, Callable[[], Any]]:
        import pyvips
        from PIL import Image

        size = _fit_width(data, width)

        def draft() -> bytes:
            im = _open(data)
            im.draft("RGB", size)
            return _pil_save(im.resize(size, Image.Resampling.LANCZOS), "JPEG", quality=80)

        def naive() -> bytes:
            return _pil_save(_open(data).resize(size, Image.Resampling.LANCZOS), "JPEG", quality=80)

        return {
            **_ci(data, f"imageMogr2/thumbnail/{width}x/quality/80"),
            PYVIPS: _raw(lambda: pyvips.Image.thumbnail_buffer(data, width).jpegsave_buffer(Q=80)),
            PIL_DRAFT: draft,
            PIL_NAIVE: naive,
            FLOOR: _raw(lambda: pyvips.Image.jpegload_buffer(data, shrink=floor_shrink).avg()),
        }

    return contenders


CROP = 1600
CROP_OUT = 600


def crop_resize_webp(data: bytes) -> dict[str, Callable[[], Any]]:
    import pyvips
    from PIL import Image

    w, h = _open(data).size
    left, top = (w - CROP) // 2, (h - CROP) // 2
    box = (left, top, left + CROP, top + CROP)

    def raw() -> bytes:
        im = pyvips.Image.new_from_buffer(data, "", access="sequential")
        return im.crop(left, top, CROP, CROP).resize(CROP_OUT / CROP).webpsave_buffer(Q=80)

    def draft() -> bytes:
        im = _open(data)
        im.draft("RGB", (w * CROP_OUT // CROP + 1, h * CROP_OUT // CROP + 1))
        scale = im.size[0] / w
        scaled = tuple(round(v * scale) for v in box)
        out = im.crop(scaled).resize((CROP_OUT, CROP_OUT), Image.Resampling.LANCZOS)
        return _pil_save(out, "WEBP", quality=80)

    def naive() -> bytes:
        out = _open(data).crop(box).resize((CROP_OUT, CROP_OUT), Image.Resampling.LANCZOS)
        return _pil_save(out, "WEBP", quality=80)

    return {
        **_ci(data, f"imageMogr2/crop/{CROP}x{CROP}/gravity/center/thumbnail/{CROP_OUT}x/format/webp/quality/80"),
        PYVIPS: _raw(raw),
        PIL_DRAFT: draft,
        PIL_NAIVE: naive,
    }


def rotate_blur_sharpen(data: bytes) -> dict[str, Callable[[], Any]]:
    import pyvips
    from PIL import Image, ImageFilter

    def raw() -> bytes:
        im = pyvips.Image.new_from_buffer(data, "")
        im = im.rotate(30, background=[255, 255, 255], interpolate=pyvips.Interpolate.new("bicubic"))
        return im.gaussblur(2).sharpen(sigma=1).jpegsave_buffer(Q=80)

    def naive() -> bytes:
        im = _open(data).rotate(30, Image.Resampling.BICUBIC, expand=True, fillcolor=(255, 255, 255))
        im = im.filter(ImageFilter.GaussianBlur(2)).filter(ImageFilter.UnsharpMask(1, 70, 0))
        return _pil_save(im, "JPEG", quality=80)

    return {
        **_ci(data, "imageMogr2/rotate/30/blur/4x2/sharpen/70/quality/80"),
        PYVIPS: _raw(raw),
        PIL_NAIVE: naive,
    }


def png_alpha_webp(data: bytes) -> dict[str, Callable[[], Any]]:
    import pyvips

    return {
        **_ci(data, "imageMogr2/format/webp/quality/80"),
        PYVIPS: _raw(lambda: pyvips.Image.new_from_buffer(data, "", access="sequential").webpsave_buffer(Q=80)),
        PIL_NAIVE: lambda: _pil_save(_open(data), "WEBP", quality=80),
    }


def gif_half(data: bytes) -> dict[str, Callable[[], Any]]:
    import pyvips
    from PIL import Image, ImageSequence

    def naive() -> bytes:
        im = _open(data)
        frames, durations = [], []
        for frame in ImageSequence.Iterator(im):
            rgb = frame.convert("RGB")
            frames.append(rgb.resize((rgb.width // 2, rgb.height // 2), Image.Resampling.LANCZOS))
            durations.append(frame.info.get("duration", 100))
        return _pil_save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)

    return {
        **_ci(data, "imageMogr2/thumbnail/!50p"),
        PYVIPS: _raw(lambda: pyvips.Image.thumbnail_buffer(data, 320, option_string="n=-1").gifsave_buffer()),
        PIL_NAIVE: naive,
    }


def reencode_strip(data: bytes) -> dict[str, Callable[[], Any]]:
    import pyvips

    def raw() -> bytes:
        return pyvips.Image.new_from_buffer(data, "", access="sequential").jpegsave_buffer(Q=85, keep="none")

    return {
        **_ci(data, "imageMogr2/strip/quality/85"),
        PYVIPS: _raw(raw),
        PIL_NAIVE: lambda: _pil_save(_open(data), "JPEG", quality=85),
    }


def avif(data: bytes) -> dict[str, Callable[[], Any]]:
    import pyvips
    from PIL import Image

    size = _fit_width(data, 720)

    def draft() -> bytes:
        im = _open(data)
        im.draft("RGB", size)
        return _pil_save(im.resize(size, Image.Resampling.LANCZOS), "AVIF", quality=50)

    return {
        **_ci(data, "imageMogr2/thumbnail/720x/format/avif/quality/50"),
        PYVIPS: _raw(lambda: pyvips.Image.thumbnail_buffer(data, 720).heifsave_buffer(Q=50, compression="av1")),
        PIL_DRAFT: draft,
    }


def huge_thumbnail(data: bytes) -> dict[str, Callable[[], Any]]:
    import pyvips

    return {
        **_ci(data, "imageMogr2/thumbnail/1000x"),
        PYVIPS: _raw(lambda: pyvips.Image.thumbnail_buffer(data, 1000).jpegsave_buffer()),
    }


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "thumb",
        "Large-JPEG thumbnail: 6000x3375 (20 MP) -> 400 px, q80",
        "large",
        "imageMogr2/thumbnail/400x/quality/80",
        (Target(PYVIPS, 0.80), Target(FLOOR, 1.15)),
        jpeg_thumbnail(400, floor_shrink=8),
        "decode floor: jpegload shrink=8 + avg()",
    ),
    Workload(
        "sharp",
        "sharp's workload: 2725x2225 JPEG -> 720x588, Lanczos3, q80",
        "sharp",
        "imageMogr2/thumbnail/720x/quality/80",
        (Target(PYVIPS, 0.75),),
        jpeg_thumbnail(720, floor_shrink=2),
        "decode floor: jpegload shrink=2 + avg()",
    ),
    Workload(
        "crop",
        f"Crop + resize to WebP: 2725x2225 JPEG, centre {CROP}x{CROP} -> {CROP_OUT} px, q80",
        "sharp",
        f"imageMogr2/crop/{CROP}x{CROP}/gravity/center/thumbnail/{CROP_OUT}x/format/webp/quality/80",
        (Target(PYVIPS, 1.05),),
        crop_resize_webp,
        "pyvips: new_from_buffer(sequential).crop().resize().webpsave_buffer(Q=80)",
    ),
    Workload(
        "rotate",
        "Rotate 30 + blur + sharpen: 1920x1080 JPEG, q80",
        "medium",
        "imageMogr2/rotate/30/blur/4x2/sharpen/70/quality/80",
        (Target(PYVIPS, 1.05),),
        rotate_blur_sharpen,
        "pyvips: rotate(30, white, bicubic).gaussblur(2).sharpen(sigma=1); "
        "Pillow: rotate(BICUBIC, expand).GaussianBlur(2).UnsharpMask(1, 70)",
        max_rounds=5,
    ),
    Workload(
        "alpha",
        "PNG with alpha -> WebP: 1600x900 RGBA, q80",
        "alpha",
        "imageMogr2/format/webp/quality/80",
        (Target(PYVIPS, 1.05),),
        png_alpha_webp,
    ),
    Workload(
        "gif",
        "Animated GIF 50 %: 640x360 x 24 frames -> 320x180",
        "animated",
        "imageMogr2/thumbnail/!50p",
        (Target(PYVIPS, 0.30),),
        gif_half,
        "pyvips: thumbnail_buffer(n=-1) + default gifsave_buffer()",
        max_rounds=5,
    ),
    Workload(
        "strip",
        "Full-size re-encode with strip: 6000x3375 JPEG, q85",
        "large",
        "imageMogr2/strip/quality/85",
        (Target(PYVIPS, 1.05),),
        reencode_strip,
        "pyvips: new_from_buffer(sequential).jpegsave_buffer(Q=85, keep='none')",
    ),
    Workload(
        "avif",
        "AVIF: 2725x2225 JPEG -> 720 px AVIF, q50",
        "sharp",
        "imageMogr2/thumbnail/720x/format/avif/quality/50",
        (Target(PYVIPS, 1.05),),
        avif,
        "pyvips: thumbnail_buffer(720).heifsave_buffer(Q=50, compression='av1'); Pillow: its AVIF defaults",
        max_rounds=5,
    ),
)

HUGE = Workload(
    "huge",
    "Peak RSS: 30000x8000 JPEG (240 MP) -> thumbnail/1000x",
    "huge",
    "imageMogr2/thumbnail/1000x",
    (),
    huge_thumbnail,
)
RSS_LIMIT_MB = 200.0
PARSE_TARGETS = {"uncached": 20_000, "cached": 500_000}

BY_KEY = {w.key: w for w in (*WORKLOADS, HUGE)}


# -- measuring -------------------------------------------------------------------------------------------


@dataclass
class Measured:
    workload: Workload
    times: dict[str, list[float]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)


def _describe(output: Any) -> str:
    """``400x225 JPEG`` for image bytes; ``-`` for the decode floor's number."""
    if not isinstance(output, (bytes, bytearray)):
        return "-"
    from PIL import Image

    with Image.open(io.BytesIO(output)) as im:
        frames = getattr(im, "n_frames", 1)
        return f"{im.width}x{im.height}{f' x{frames}' if frames > 1 else ''} {im.format}"


def time_workload(workload: Workload, rounds: int, budget: float, log: Callable[[str], None]) -> Measured:
    """Warm up, then time ``rounds`` interleaved rounds; a workload whose rounds are short
    gets more of them (up to 3x, within ``budget`` seconds), which steadies its medians on a
    noisy machine at little cost. Slow workloads are capped at ``max_rounds`` (>= 5)."""
    data = images.IMAGES[workload.image]().read_bytes()
    contenders = workload.build(data)
    names = list(contenders)
    measured = Measured(workload, {name: [] for name in names})
    start = time.perf_counter()
    for name in names:  # warm-up, and the output each one makes
        measured.outputs[name] = _describe(contenders[name]())
    one_round = time.perf_counter() - start
    if workload.max_rounds:
        rounds = min(rounds, max(5, workload.max_rounds))
    else:
        rounds = max(rounds, min(3 * rounds, int(budget / max(one_round, 1e-3))))
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            start = time.perf_counter()
            contenders[name]()
            measured.times[name].append(time.perf_counter() - start)
        log(f"  {workload.key}: round {r + 1}/{rounds}")
    return measured


def rss_worker(key: str, contender: str) -> dict[str, float]:
    """In a fresh process: peak RSS of one run of one contender (MB)."""
    _setup_vips()
    import PIL.Image  # noqa: F401  (every contender's libraries loaded before the baseline)

    workload = BY_KEY[key]
    data = images.IMAGES[workload.image]().read_bytes()
    call = workload.build(data)[contender]
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"baseline": baseline, "peak": peak, "seconds": seconds, "output": _describe(out)}  # type: ignore[dict-item]


# Linux keeps ru_maxrss across fork and exec: a child started from this (large) process
# would report this process's peak. A small launcher process in between starts the worker
# from a fresh address space, so the worker's figure is its own.
_LAUNCHER = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"


def measure_rss(key: str, contender: str) -> dict[str, Any]:
    worker = [sys.executable, str(Path(__file__).resolve()), "--rss-worker", key, contender]
    command = [sys.executable, "-c", _LAUNCHER, *worker]
    proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure_parse(runs: int, seconds: float) -> dict[str, Any]:
    """``benchmarks/parse.py``'s measurement, ``runs`` fresh pinned processes."""
    spec = importlib.util.spec_from_file_location("ci_engine_parse_benchmark", HERE / "parse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = argparse.Namespace(seconds=seconds, repeat=3, cpu=None)
    results = [module._run_worker(args) for _ in range(runs)]
    out: dict[str, Any] = {"runs": results, "cpu": results[0].get("cpu")}
    for key in ("uncached", "cached"):
        values = [r[key] for r in results]
        out[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return out


# -- reporting ---------------------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    median = statistics.median(values)
    spread = (max(values) - min(values)) / 2 / median if median else 0.0
    return f"{median * 1000:,.1f} ±{spread:.0%}"


def paired_ratio(m: Measured, a: str, b: str) -> tuple[float, float, float] | None:
    """Median, min and max over rounds of time(a) / time(b)."""
    if a not in m.times or b not in m.times:
        return None
    ratios = [x / y for x, y in zip(m.times[a], m.times[b]) if y > 0]
    return statistics.median(ratios), min(ratios), max(ratios)


def _environment() -> dict[str, Any]:
    import PIL
    import pyvips

    # A run from an exported tree (git archive) has no .git: the exporter names the commit.
    commit = os.environ.get("CI_ENGINE_BENCH_COMMIT", "")
    if not commit:
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            commit = "unknown"
    return {
        "python": platform.python_version(),
        "pyvips": pyvips.__version__,
        "libvips": f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}",
        "pillow": PIL.__version__,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "commit": commit,
        "load": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


@dataclass
class Verdict:
    label: str
    required: str
    measured: str
    value: float
    limit: float
    met: bool | None
    spread: str = ""


def verdicts(measured: list[Measured], huge_rss: dict[str, Any], parse: dict[str, Any] | None) -> list[Verdict]:
    out: list[Verdict] = []
    for m in measured:
        for t in m.workload.targets:
            r = paired_ratio(m, CI_VIPS, t.baseline)
            if r is None:
                out.append(Verdict(f"{m.workload.key}: vs {t.baseline}", f"≤ {t.ratio:.2f}x", "n/a", 0, t.ratio, None))
                continue
            out.append(
                Verdict(
                    f"{m.workload.title} — ci_engine (vips) / {t.baseline}",
                    f"≤ {t.ratio:.2f}x",
                    f"{r[0]:.3f}x",
                    r[0],
                    t.ratio,
                    r[0] <= t.ratio,
                    f"{r[1]:.2f}-{r[2]:.2f}",
                )
            )
    ci_rss = huge_rss.get(CI_VIPS, {})
    if "peak" in ci_rss:
        out.append(
            Verdict(
                "Peak RSS, 30000x8000 JPEG -> thumbnail/1000x, ci_engine (vips), whole process",
                f"≤ {RSS_LIMIT_MB:.0f} MB",
                f"{ci_rss['peak']:.0f} MB",
                ci_rss["peak"],
                RSS_LIMIT_MB,
                ci_rss["peak"] <= RSS_LIMIT_MB,
            )
        )
    if parse is not None:
        for key, required in PARSE_TARGETS.items():
            median = parse[key]["median"]
            out.append(
                Verdict(
                    f"Parse throughput, {key} (one core)",
                    f"≥ {required:,} /s",
                    f"{median:,.0f} /s",
                    median,
                    required,
                    median >= required,
                    f"{parse[key]['min']:,.0f}-{parse[key]['max']:,.0f}",
                )
            )
    return out


def markdown(
    measured: list[Measured],
    huge_rss: dict[str, Any],
    parse: dict[str, Any] | None,
    env: dict[str, Any],
    args: argparse.Namespace,
    elapsed: float,
) -> str:
    lines: list[str] = []
    add = lines.append
    command = "python benchmarks/run.py" + (" --quick" if args.quick else "")
    add("# ci_engine benchmarks\n")
    load = env.get("load")
    counts = ", ".join(f"{m.workload.key} {len(next(iter(m.times.values())))}" for m in measured if m.times)
    add(
        f"`{command}` — interleaved rounds per workload: {counts}; commit {env['commit']}, "
        f"Python {env['python']}, libvips {env['libvips']} (pyvips {env['pyvips']}), Pillow {env['pillow']}, "
        f"{env['cores']} cores" + (f", load average {load[0]:.1f} at the start" if load else "") + f"; "
        f"the whole run took {elapsed / 60:.1f} min."
    )
    add("")
    if load and env.get("cores") and load[0] > env["cores"]:
        add(
            f"**The machine was busy** (load average {load[0]:.1f} on {env['cores']} cores when the run began: "
            "other processes shared the cores), so every figure is slower and noisier than on an idle "
            "machine; the interleaving keeps the ratios comparable, and the per-round ranges show the noise."
        )
        add("")
    add("Times are medians in ms over the rounds, ± half the min-max range relative to the median. ")
    add("Ratios are medians of per-round ratios (ci_engine (vips) time / the other's time; < 1 means ")
    add("ci_engine is faster), with their min-max over rounds. Method and image recipes: the docstrings ")
    add("of `benchmarks/run.py` and `benchmarks/images.py`, and `benchmarks/README.md`.")
    add("")
    add("## Targets\n")
    add("| target | required | measured | per-round range | met |")
    add("|---|---:|---:|---:|:---:|")
    for v in verdicts(measured, huge_rss, parse):
        met = "n/a" if v.met is None else ("yes" if v.met else "**no**")
        add(f"| {v.label} | {v.required} | {v.measured} | {v.spread} | {met} |")
    add("")
    add("## Medians (ms)\n")
    present = [c for c in COLUMNS if any(c in m.times for m in measured)]
    add("| workload | " + " | ".join(present) + " |")
    add("|---|" + "---:|" * len(present))
    for m in measured:
        cells = [_ms(m.times[c]) if c in m.times else "—" for c in present]
        add(f"| {m.workload.title} | " + " | ".join(cells) + " |")
    add("")
    add("## Ratios: ci_engine (vips) time / each contender's time\n")
    others = [c for c in present if c != CI_VIPS]
    add("| workload | " + " | ".join(f"vs {c}" for c in others) + " |")
    add("|---|" + "---:|" * len(others))
    for m in measured:
        cells = []
        for c in others:
            r = paired_ratio(m, CI_VIPS, c)
            cells.append("—" if r is None else f"{r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f})")
        add(f"| {m.workload.title} | " + " | ".join(cells) + " |")
    if CI_PILLOW in present:
        add("")
        add("ci_engine (pillow) against the Pillow idioms:\n")
        add("| workload | vs Pillow draft() | vs Pillow naive |")
        add("|---|---:|---:|")
        for m in measured:
            cells = []
            for c in (PIL_DRAFT, PIL_NAIVE):
                r = paired_ratio(m, CI_PILLOW, c)
                cells.append("—" if r is None else f"{r[0]:.2f} ({r[1]:.2f}-{r[2]:.2f})")
            add(f"| {m.workload.title} | " + " | ".join(cells) + " |")
    add("")
    add("## Peak RSS (MB, whole process, one run in a fresh subprocess)\n")
    rss_rows = [*measured, Measured(HUGE, rss=huge_rss)]
    add("| workload | " + " | ".join(present) + " |")
    add("|---|" + "---:|" * len(present))
    for m in rss_rows:
        cells = []
        for c in present:
            r = m.rss.get(c)
            if r is None:
                cells.append("—")
            elif "error" in r:
                cells.append("error")
            else:
                cells.append(f"{r['peak']:.0f}")
        add(f"| {m.workload.title} | " + " | ".join(cells) + " |")
    base = [r["baseline"] for m in rss_rows for r in m.rss.values() if "baseline" in r]
    if base:
        add("")
        add(f"Baseline before the run (interpreter + libraries + input bytes): {min(base):.0f}-{max(base):.0f} MB.")
    ci_huge = huge_rss.get(CI_VIPS, {})
    if "seconds" in ci_huge:
        add(f"The 240 MP thumbnail took {ci_huge['seconds']:.2f} s in ci_engine (vips), output {ci_huge['output']}.")
    add("")
    add("## Outputs (checked once, before timing)\n")
    add("| workload | rule | " + " | ".join(present) + " | notes |")
    add("|---|---|" + "---|" * len(present) + "---|")
    for m in measured:
        cells = [m.outputs.get(c, "—") for c in present]
        add(f"| {m.workload.key} | `{m.workload.rule}` | " + " | ".join(cells) + f" | {m.workload.notes} |")
    if parse is not None:
        add("")
        add("## Parse throughput (benchmarks/parse.py, pinned to one core)\n")
        add("| figure | median | min | max | runs |")
        add("|---|---:|---:|---:|---|")
        for key in ("uncached", "cached"):
            p = parse[key]
            runs = ", ".join(f"{r[key]:,.0f}" for r in parse["runs"])
            add(f"| {key} strings/s | {p['median']:,.0f} | {p['min']:,.0f} | {p['max']:,.0f} | {runs} |")
    add("")
    return "\n".join(lines)


def chart(measured: list[Measured], path: Path) -> None:
    """A horizontal bar chart (log scale) of ci_engine (vips)'s ratio to each contender, per
    workload, with the target marked where there is one."""
    import math

    from PIL import Image, ImageDraw, ImageFont

    palette = {
        PYVIPS: (66, 133, 244),
        PIL_DRAFT: (52, 168, 83),
        PIL_NAIVE: (251, 188, 5),
        FLOOR: (154, 160, 166),
        CI_PILLOW: (171, 71, 188),
    }
    rows: list[tuple[str, str, float, float | None]] = []
    for m in measured:
        targets = {t.baseline: t.ratio for t in m.workload.targets}
        for c in palette:
            r = paired_ratio(m, CI_VIPS, c)
            if r is not None:
                rows.append((m.workload.key, c, r[0], targets.get(c)))
    lo, hi = 0.02, 4.0
    width, label_w, bar_h, gap = 1200, 300, 18, 10
    groups = [m.workload.key for m in measured]
    height = 110 + len(rows) * bar_h + len(groups) * gap + 40
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=13)
        big = ImageFont.load_default(size=17)
    except TypeError:  # Pillow without FreeType
        font = big = ImageFont.load_default()
    title = "ci_engine (vips) time / contender time (log scale; < 1 = ci_engine faster)"
    draw.text((20, 12), title, fill="black", font=big)
    x0, x1 = label_w, width - 250

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return x0 + (math.log(v) - math.log(lo)) / (math.log(hi) - math.log(lo)) * (x1 - x0)

    top = 70
    for tick in (0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 4):
        draw.line([(x(tick), top - 8), (x(tick), height - 40)], fill=(200, 200, 200) if tick != 1 else "black")
        draw.text((x(tick) - 10, top - 26), f"{tick:g}", fill="black", font=font)
    y = top
    current = None
    for key, contender, value, target in rows:
        if key != current:
            y += gap
            current = key
            draw.text((20, y), key, fill="black", font=big)
        draw.text((110, y + 2), contender, fill=(60, 60, 60), font=font)
        colour = palette[contender]
        draw.rectangle([x0, y + 2, x(value), y + bar_h - 2], fill=colour)
        draw.text((x(value) + 6, y + 2), f"{value:.2f}", fill="black", font=font)
        if target is not None:
            tx = x(target)
            ok = value <= target
            draw.line([(tx, y), (tx, y + bar_h)], fill=(0, 140, 0) if ok else (210, 0, 0), width=3)
            verdict = f"target <= {target:g}: {'met' if ok else 'NOT met'}"
            draw.text((x1 + 30, y + 2), verdict, fill=(0, 110, 0) if ok else (200, 0, 0), font=font)
        y += bar_h
    note = "Medians of per-round ratios; thick marks are the issue-3 targets."
    draw.text((20, height - 28), note, fill="black", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


# -- main ------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds, peak RSS of ci_engine and pyvips only")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds per workload (default 7, up to 3x more for quick workloads; >= 5)",
    )
    parser.add_argument("--only", action="append", choices=[w.key for w in WORKLOADS], help="run only this workload")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--no-parse", action="store_true", help="skip the parse throughput")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results.md, results.json, ratios.png go")
    parser.add_argument("--rss-worker", nargs=2, metavar=("WORKLOAD", "CONTENDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_worker:
        print(json.dumps(rss_worker(*args.rss_worker)))
        return 0
    args.rounds = args.rounds or (5 if args.quick else 7)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5 (medians of >= 5 repetitions)")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    start = time.perf_counter()
    env = _environment()
    log("building the test images (cached in benchmarks/_cache/) ...")
    images.build_all(lambda name: log(f"  {name}"))
    _setup_vips()
    workloads = [w for w in WORKLOADS if not args.only or w.key in args.only]
    measured = []
    for workload in workloads:
        log(f"{workload.key}: {workload.title}")
        measured.append(time_workload(workload, args.rounds, 10.0 if args.quick else 25.0, log))

    huge_rss: dict[str, Any] = {}
    if not args.no_rss:
        # Peak RSS does not depend on what runs beside it: two subprocesses at a time.
        from concurrent.futures import ThreadPoolExecutor

        log("peak RSS (fresh subprocesses, two at a time) ...")
        jobs: list[tuple[dict[str, Any], str, str]] = []
        for m in measured:
            for contender in m.times:
                if not args.quick or contender in (CI_VIPS, PYVIPS):
                    jobs.append((m.rss, m.workload.key, contender))
        jobs += [(huge_rss, HUGE.key, contender) for contender in HUGE.build(b"")]
        with ThreadPoolExecutor(2) as pool:
            futures = [(into, key, c, pool.submit(measure_rss, key, c)) for into, key, c in jobs]
            for into, key, contender, future in futures:
                into[contender] = future.result()
                log(f"  {key} / {contender}: {into[contender]}")

    parse = None
    if not args.no_parse:
        log("parse throughput (benchmarks/parse.py, 5 pinned processes) ...")
        parse = measure_parse(5, 0.3 if args.quick else 0.5)

    elapsed = time.perf_counter() - start
    text = markdown(measured, huge_rss, parse, env, args, elapsed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text, encoding="utf-8")
    chart(measured, args.out / "ratios.png")
    raw = {
        "environment": env,
        "rounds": args.rounds,
        "elapsed_s": elapsed,
        "workloads": {
            m.workload.key: {
                "title": m.workload.title,
                "rule": m.workload.rule,
                "image": m.workload.image,
                "times_s": m.times,
                "outputs": m.outputs,
                "rss_mb": m.rss,
            }
            for m in measured
        },
        "huge_rss_mb": huge_rss,
        "parse": parse,
        "targets": [v.__dict__ for v in verdicts(measured, huge_rss, parse)],
    }
    (args.out / "results.json").write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    print(text)
    log(f"wrote {args.out / 'results.md'}, results.json and ratios.png in {elapsed / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
