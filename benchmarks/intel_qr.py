"""QR decode rate, one pass against the multi-scale pass (docs/intel.md): QR codes made by
segno, scaled (Lanczos, any size) and rotated (bicubic) into real photographs, saved as
JPEG q85, then read by ``recognize_pixels`` with ``multiscale=False`` (before) and ``True``
(after). Three sets: small codes (a 40-60 px symbol, modules of 1.4-2.9 px; every fifth in
a 4000 x 3000 photograph), medium ones
(modules of 3-8 px) and large ones (a symbol of 50-65 % of the photograph's shorter side,
turned at most 5 degrees, so that it and its quiet zone fit: 256-440 px in the 512-675 px
photographs, 1500-1950 px in a 4000 x 3000 one). A hit is the exact text with every corner within 3 px + 2 % of the
side of the true one; a decoded text that was not placed counts as a false read.

    python benchmarks/intel_qr.py [cases per set, default 40]
"""

from __future__ import annotations

import io
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ci_engine.intel.qrcode import recognize_pixels  # noqa: E402
from tests.support.qr import place  # noqa: E402

SAMPLES = ROOT / "docs" / "samples"
FIXTURES = ROOT / "tests" / "fixtures" / "faces"


def cases(count: int) -> dict[str, list[tuple[bytes, str, list[tuple[float, float]]]]]:
    rng = np.random.default_rng(15)
    photos = [Image.open(SAMPLES / name).convert("RGB") for name in ("kleiber.jpg", "ladybird.jpg")]
    photos += [Image.open(FIXTURES / name).convert("RGB") for name in ("astronaut.jpg", "coffee.jpg")]
    big = Image.open(SAMPLES / "kleiber.jpg").convert("RGB").resize((4000, 3000), Image.BICUBIC)

    def text(i: int) -> str:
        kind = i % 3
        if kind == 0:
            return f"ID{int(rng.integers(1e5))}"
        if kind == 1:
            return f"https://ex.org/{int(rng.integers(1e6))}"
        return f"https://example.org/item/{i}?k={int(rng.integers(1e6))}"

    sets: dict[str, list[tuple[bytes, str, list[tuple[float, float]]]]] = {"small": [], "medium": [], "large": []}
    for i in range(count):
        where = (float(rng.uniform()), float(rng.uniform()))
        t = text(i)
        photo = big if i % 5 == 4 else photos[i % 4]
        data, corners = place(photo, t, float(rng.uniform(40, 60)), float(rng.uniform(-180, 180)), where)
        sets["small"].append((data, t, corners))
        t = text(i)
        modules = 21 + 4 * ((len(t) > 14) + (len(t) > 26))
        symbol = modules * float(rng.uniform(3, 8))
        data, corners = place(photos[i % 2], t, symbol, float(rng.uniform(-180, 180)), where)
        sets["medium"].append((data, t, corners))
        t = text(i)
        photo = photos[i % 4] if i % 2 else big
        symbol = float(rng.uniform(0.5, 0.65)) * min(photo.size)  # with its quiet zone, inside the photo
        data, corners = place(photo, t, symbol, float(rng.uniform(-5, 5)), where)
        sets["large"].append((data, t, corners))
    return sets


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    sets = cases(count)
    for name, items in sets.items():
        rates = {}
        for multiscale in (False, True):
            hits = wrong = 0
            seconds = 0.0
            for data, text, corners in items:
                pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                start = time.perf_counter()
                codes = recognize_pixels(pixels, multiscale=multiscale)
                seconds += time.perf_counter() - start
                wrong += sum(code.text != text for code in codes)
                tolerance = 3 + 0.02 * math.dist(corners[0], corners[1])
                hits += any(
                    code.text == text and all(math.dist(p, q) <= tolerance for p, q in zip(code.points, corners))
                    for code in codes
                )
            rates[multiscale] = (hits, wrong, seconds / len(items))
        (b_hits, b_wrong, b_time), (a_hits, a_wrong, a_time) = rates[False], rates[True]
        print(
            f"  {name:6s} one pass {b_hits}/{len(items)} ({b_wrong} false)  "
            f"multi-scale {a_hits}/{len(items)} ({a_wrong} false)  "
            f"scan {b_time * 1000:.0f} -> {a_time * 1000:.0f} ms per image"
        )


if __name__ == "__main__":
    main()
