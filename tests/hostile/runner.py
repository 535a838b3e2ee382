"""Run inputs through ``process()`` in this process and report what each one cost.

Used by the hostile tests as a subprocess (``python tests/hostile/runner.py``), so that
every measurement starts from a fresh interpreter and a crash, a hang or a runaway
allocation cannot take the test runner with it. The request comes as JSON on stdin::

    {"backend": "vips", "rule": "imageMogr2/thumbnail/64x64",
     "bombs": ["png-100k.png", ...],          # names from tests/fixtures/bombs/make_bombs.py
     "files": {"name": "<hex bytes>", ...},   # or inputs given inline
     "address_space": 8589934592,             # optional RLIMIT_AS safety net, bytes
     "decode": [64, 64]}                      # optional: decode only, trusting this size

and one JSON object per input is written to stdout::

    {"name": ..., "outcome": "ok" | "<CI error code>" | "crash:<exception type>",
     "kind": <LimitExceededError.kind or null>, "cpu_ms": ..., "rss_mb": ..., "hwm_mb": ...}

How the cost is measured:

* ``cpu_ms``: ``time.process_time()`` around the ``process()`` call: CPU of every thread of
  the process (libvips' workers included), not wall time; the best of 3 runs (1 for inputs
  over 1 MB), since CPU time too inflates on a loaded machine.
* ``rss_mb``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after the call minus its value
  once the imports, a warm-up run of every decoder and the loading of every input are done:
  how far this input raised the process' high-water mark. (The high-water mark only grows:
  within a batch this is an upper bound for each input.)
* ``hwm_mb``: the same for this input alone: the kernel's peak-RSS counter is reset
  (``/proc/self/clear_refs``, value 5) before the call and ``VmHWM`` read after it, minus
  ``VmRSS`` before it. ``null`` where ``/proc`` does not allow it.

The caller must start this script through a small shell (``sh -c '"$0" "$@"; exit $?'``):
a process ``exec``'d directly by a large parent inherits the parent's peak RSS as its own
``ru_maxrss`` (Linux keeps it across ``exec``), which would hide everything below it.
"""

from __future__ import annotations

import gc
import io
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BOMBS_DIR = ROOT / "tests" / "fixtures" / "bombs"


def _status(field: str) -> int | None:
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``), or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def warm_up(backend: str, rule: str) -> None:
    """One small image of every format through ``process()``: the lazy imports, codec
    plug-ins and libvips operation classes are loaded before anything is measured."""
    import numpy as np
    from PIL import Image

    import ci_engine as ce

    pixels = (np.arange(24 * 16 * 3, dtype=np.uint32) % 251).astype(np.uint8).reshape(16, 24, 3)
    image = Image.fromarray(pixels, "RGB")
    samples = []
    for fmt, options in (
        ("PNG", {}),
        ("JPEG", {"progressive": True}),
        ("JPEG", {}),
        ("WEBP", {}),
        ("BMP", {}),
        ("TIFF", {}),
        ("GIF", {"save_all": True, "append_images": [image.rotate(180)]}),
        ("WEBP", {"save_all": True, "append_images": [image.rotate(180)]}),
    ):
        out = io.BytesIO()
        image.save(out, fmt, **options)
        samples.append(out.getvalue())
    try:
        import pillow_heif

        heif = pillow_heif.from_pillow(image)
        out = io.BytesIO()
        heif.save(out, quality=50)
        samples.append(out.getvalue())
    except Exception:  # pragma: no cover - no HEVC encoder in this build
        pass
    for data in samples:
        try:
            ce.process(data, rule, backend=backend)
        except ce.CIError:
            pass
    gc.collect()


def decode_only(data: bytes, backend: str, size: tuple[int, int]) -> None:
    """Decode with the backend directly, past the probe and the limits, trusting ``size``:
    what a decoder does with a stream that holds more than the header declares."""
    from ci_engine.backends import get_backend
    from ci_engine.io import sniff
    from ci_engine.plan.steps import DecodeSpec
    from ci_engine.types import ImageHeader

    fmt = sniff(data)
    engine = get_backend(backend)
    engine.to_array(engine.decode(data, DecodeSpec(format=fmt), ImageHeader(fmt, *size)))


def run_one(data: bytes, rule: str, backend: str, decode: tuple[int, int] | None = None) -> dict[str, Any]:
    import ci_engine as ce

    gc.collect()
    reset = _reset_peak()
    before = _status("VmRSS")
    started = time.process_time()
    outcome, kind = "ok", None
    try:
        if decode is not None:
            decode_only(data, backend, decode)
        else:
            ce.process(data, rule, backend=backend)
    except ce.CIError as exc:
        outcome, kind = exc.code, getattr(exc, "kind", None)
    except BaseException as exc:  # the point of the harness: anything else is reported
        outcome = f"crash:{type(exc).__name__}: {exc}"[:300]
    cpu = time.process_time() - started
    hwm = _status("VmHWM")
    return {
        "outcome": outcome,
        "kind": kind,
        "cpu_ms": cpu * 1e3,
        "maxrss": _maxrss(),
        "hwm_mb": (hwm - before) / 2**20 if reset and hwm is not None and before is not None else None,
    }


def main() -> int:
    request = json.load(sys.stdin)
    if request.get("address_space"):
        limit = int(request["address_space"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    backend, rule = request["backend"], request["rule"]
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(BOMBS_DIR))
    import make_bombs

    import ci_engine  # noqa: F401

    inputs: list[tuple[str, bytes]] = []
    by_name = {bomb.name: bomb for bomb in make_bombs.BOMBS}
    for name in request.get("bombs", []):
        inputs.append((name, make_bombs.load(by_name[name])))
    for name, hexed in request.get("files", {}).items():
        inputs.append((name, bytes.fromhex(hexed)))
    warm_up(backend, rule)
    gc.freeze()  # the imports' objects: later collections only walk what the inputs made
    baseline = _maxrss()
    decode = tuple(request["decode"]) if request.get("decode") else None
    for name, data in inputs:
        runs = [
            run_one(data, rule, backend, decode) for _ in range(1 if len(data) > 2**20 else request.get("repeat", 3))
        ]
        report = runs[0]
        report["cpu_ms"] = min(run["cpu_ms"] for run in runs)  # best of the runs: CPU time is noisy under load
        report["hwm_mb"] = max((run["hwm_mb"] for run in runs if run["hwm_mb"] is not None), default=None)
        report["rss_mb"] = (max(run.pop("maxrss") for run in runs) - baseline) / 2**20
        report["name"] = name
        print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
