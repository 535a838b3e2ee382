"""Blind watermark figures: PSNR of the embedding and extraction under each attack of
issue 15, on the sample and fixture photographs. Run from the repository root:

    python benchmarks/intel_blindmark.py

Prints one line per photograph and attack; docs/intel.md quotes the results.
"""

from __future__ import annotations

import base64
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ci_engine as ce  # noqa: E402
from ci_engine.intel.blindmark import extract_pixels  # noqa: E402
from tests.support.images import encode, psnr, to_array  # noqa: E402

PHOTOS = [
    ROOT / "docs" / "samples" / "kleiber.jpg",
    ROOT / "docs" / "samples" / "ladybird.jpg",
    ROOT / "tests" / "fixtures" / "faces" / "grace_hopper.jpg",
    ROOT / "tests" / "fixtures" / "faces" / "astronaut.jpg",
    ROOT / "tests" / "fixtures" / "faces" / "coffee.jpg",
    ROOT / "tests" / "fixtures" / "faces" / "chelsea.jpg",
    ROOT / "tests" / "fixtures" / "faces" / "rocket.jpg",
    ROOT / "tests" / "fixtures" / "faces" / "camera.jpg",
]
TEXT = "Order1007"


def attacks(png: bytes) -> dict[str, bytes]:
    """The issue's attacks, on the marked image (lossless PNG)."""
    pixels = to_array(png)
    image = Image.fromarray(pixels)
    h, w = pixels.shape[:2]
    half = image.resize((w // 2, h // 2), Image.Resampling.LANCZOS)
    return {
        "none (PNG)": png,
        "JPEG q75": encode(pixels, "JPEG", quality=75),
        "downscale 50%": encode(np.asarray(half), "PNG"),
        "crop 10% left": encode(pixels[:, w // 10 :], "PNG"),
        "crop 10% top": encode(pixels[h // 10 :], "PNG"),
        "brightness +20": encode(np.clip(pixels.astype(np.int16) + 20, 0, 255).astype(np.uint8), "PNG"),
        "PNG -> WebP (q75)": encode(pixels, "WEBP", quality=75),
        # beyond the list, for the margin: two attacks in a row, and a 1/3 downscale
        "50% + JPEG q75": encode(np.asarray(half), "JPEG", quality=75),
        "50% + WebP q75": encode(np.asarray(half), "WEBP", quality=75),
        "downscale 33%": encode(np.asarray(image.resize((w // 3, h // 3), Image.Resampling.LANCZOS)), "PNG"),
        "unmarked": b"",
    }


def extract_text(data: bytes) -> tuple[str, int]:
    root = ET.fromstring(ce.process(data, "watermark/4/type/3").data)
    return root.findtext("Text") or "", int(root.findtext("WatermarkStatus") or -1)


def main() -> None:
    rule = "watermark/3/type/3/text/" + base64.urlsafe_b64encode(TEXT.encode()).decode().rstrip("=")
    total: dict[str, list[bool]] = {}
    for path in PHOTOS:
        source = to_array(path.read_bytes())
        png = encode(source, "PNG")
        marked = ce.process(png, rule)
        value = psnr(source, to_array(marked.data))
        print(f"{path.name} {source.shape[1]}x{source.shape[0]}: PSNR {value:.2f} dB")
        unmarked = []
        for name, data in attacks(marked.data).items():
            text, status = extract_text(data or png)
            ok = text == TEXT if data else text == ""
            total.setdefault(name, []).append(ok)
            z = extract_pixels(to_array(data or png))[0].z
            print(f"  {name:20s} text={text!r:14s} status={status:3d} z={z:5.1f} {'ok' if ok else 'FAIL'}")
        for data in attacks(png).values():  # the unmarked photograph under the same attacks
            text, status = extract_text(data or png)
            unmarked.append(status)
            total.setdefault("unmarked, attacked", []).append(text == "")
        print(f"  unmarked under every attack: highest status {max(unmarked)}")
    print("success per attack:", {k: f"{sum(v)}/{len(v)}" for k, v in total.items()})
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import wallpapers  # the real files of the imageSlim benchmark, unmarked

    scores = []
    for name, path in wallpapers.fetch().items():
        found = extract_pixels(to_array(path.read_bytes()))[0]
        scores.append(found.z)
        assert found.payload is None, name
    print(f"unmarked real files (benchmarks/wallpapers.py): {len(scores)}, none decoded, highest z {max(scores):.2f}")


if __name__ == "__main__":
    main()
