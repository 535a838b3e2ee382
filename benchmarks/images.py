"""The benchmark's test images, built from the repository's sample photograph and cached.

Every image is derived from ``docs/samples/kleiber.jpg`` (1200 x 675, a real photograph;
``docs/samples/SOURCES.md``), so the codecs see photographic content rather than flat
colour or pure noise:

=============  =================  ===============================================================
name           size               recipe
=============  =================  ===============================================================
``large``      6000 x 3375 JPEG   the sample scaled 5x with libvips' Lanczos3 (``resize``), plus
               (20.25 MP)         Gaussian grain (sigma 6) so that the upscale keeps the fine
                                  texture and the file size of a real 20 MP photo; quality 90.
``sharp``      2725 x 2225 JPEG   the centre 827 x 675 of the sample scaled 3.3x the same way
                                  (the size of sharp's benchmark image), grain, quality 90.
``medium``     1920 x 1080 JPEG   the sample scaled 1.6x, grain, quality 90.
``alpha``      1600 x 900 PNG     the sample scaled 4/3, with an alpha channel: a soft-edged
                                  ellipse (opaque centre, transparent corners).
``animated``   640 x 360 GIF,     a slow zoom into the sample (each frame a smaller centred
               24 frames          window, Lanczos-scaled to 640 x 360), 80 ms per frame, looping;
                                  quantised by Pillow (fast octree) to 256 colours per frame.
``huge``       30000 x 8000 JPEG  the sample tiled 25 x 12 with alternate tiles mirrored (no hard
               (240 MP)           seams), cropped to 8000 rows, written by libvips ``jpegsave``
                                  straight to the file (streamed, never held in memory), quality 60
                                  so that it stays under CI's 32 MB input limit.
=============  =================  ===============================================================

Images are cached in ``benchmarks/_cache/`` (git-ignored) under a name that carries the
recipe version; :func:`build_all` builds what is missing. ``python benchmarks/images.py``
builds them and prints their sizes.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "samples" / "kleiber.jpg"
CACHE = Path(__file__).resolve().parent / "_cache"
RECIPE = 2
"""Bump when a recipe changes: cached files of another version are ignored."""

GRAIN = 6.0


def _path(name: str, suffix: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)  # a fresh clone has no benchmarks/_cache/
    return CACHE / f"{name}-v{RECIPE}{suffix}"


def _sample() -> object:
    import pyvips

    return pyvips.Image.new_from_file(str(SAMPLE), access="sequential")


def _upscale(image: object, width: int, height: int) -> object:
    """Lanczos3 to exactly ``width`` x ``height``, plus grain."""
    import pyvips

    img: pyvips.Image = image  # type: ignore[assignment]
    out = img.resize(width / img.width, vscale=height / img.height, kernel="lanczos3")
    out = out.crop(0, 0, min(width, out.width), min(height, out.height))
    if (out.width, out.height) != (width, height):
        out = out.embed(0, 0, width, height, extend="copy")
    noise = pyvips.Image.gaussnoise(width, height, sigma=GRAIN, mean=0)
    return (out + noise).cast("uchar")


def _save_jpeg(image: object, path: Path, quality: int) -> None:
    tmp = path.with_suffix(".tmp")
    image.jpegsave(str(tmp), Q=quality, keep="none")  # type: ignore[attr-defined]
    tmp.replace(path)


def large() -> Path:
    """The >= 20 MP JPEG (6000 x 3375)."""
    path = _path("large-6000x3375", ".jpg")
    if not path.exists():
        _save_jpeg(_upscale(_sample(), 6000, 3375), path, 90)
    return path


def sharp() -> Path:
    """The 2725 x 2225 JPEG of sharp's benchmark workload."""
    path = _path("sharp-2725x2225", ".jpg")
    if not path.exists():
        import pyvips

        sample = pyvips.Image.new_from_file(str(SAMPLE))
        centre = sample.crop((1200 - 827) // 2, 0, 827, 675)
        _save_jpeg(_upscale(centre, 2725, 2225), path, 90)
    return path


def medium() -> Path:
    """A 1920 x 1080 JPEG (rotate, blur and sharpen)."""
    path = _path("medium-1920x1080", ".jpg")
    if not path.exists():
        _save_jpeg(_upscale(_sample(), 1920, 1080), path, 90)
    return path


def alpha() -> Path:
    """A 1600 x 900 RGBA PNG."""
    path = _path("alpha-1600x900", ".png")
    if not path.exists():
        import pyvips

        rgb = pyvips.Image.new_from_file(str(SAMPLE)).resize(4 / 3, kernel="lanczos3")
        rgb = rgb.crop(0, 0, 1600, 900)
        xy = pyvips.Image.xyz(1600, 900)
        dx = (xy.extract_band(0) - 800) / 800
        dy = (xy.extract_band(1) - 450) / 450
        r = (dx * dx + dy * dy) ** 0.5
        a = ((1.15 - r) * 4 * 255).cast("float")
        a = (a > 255).ifthenelse(255, a)
        a = (a < 0).ifthenelse(0, a).cast("uchar")
        out = rgb.bandjoin(a).copy(interpretation="srgb")
        tmp = path.with_suffix(".tmp")
        out.pngsave(str(tmp), compression=6)
        tmp.replace(path)
    return path


def animated() -> Path:
    """A 24-frame 640 x 360 animated GIF."""
    path = _path("animated-640x360x24", ".gif")
    if not path.exists():
        from PIL import Image

        with Image.open(SAMPLE) as img:
            sample = img.convert("RGB")
        frames = []
        for i in range(24):
            zoom = 1 + 0.6 * i / 23
            w, h = 1200 / zoom, 675 / zoom
            left, top = (1200 - w) / 2 + 40 * i / 23, (675 - h) / 2
            box = (left, top, left + w, top + h)
            frame = sample.resize((640, 360), Image.Resampling.LANCZOS, box=box)
            frames.append(frame.quantize(256, method=Image.Quantize.FASTOCTREE))
        buf = io.BytesIO()
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
    return path


def huge() -> Path:
    """The 30,000 x 8,000 JPEG (240 MP) of the peak-RSS target."""
    path = _path("huge-30000x8000", ".jpg")
    if not path.exists():
        import pyvips

        sample = pyvips.Image.new_from_file(str(SAMPLE))
        mirrored = sample.fliphor()
        row = pyvips.Image.arrayjoin([sample if i % 2 == 0 else mirrored for i in range(25)])
        flipped_row = row.flipver()
        tile = pyvips.Image.arrayjoin([row if j % 2 == 0 else flipped_row for j in range(12)], across=1)
        out = tile.crop(0, 0, 30000, 8000)
        _save_jpeg(out, path, 60)
    return path


IMAGES: dict[str, Callable[[], Path]] = {
    "large": large,
    "sharp": sharp,
    "medium": medium,
    "alpha": alpha,
    "animated": animated,
    "huge": huge,
}


def build_all(progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Build every missing image; returns name -> path."""
    CACHE.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, build in IMAGES.items():
        if progress is not None:
            progress(name)
        out[name] = build()
    return out


def main() -> int:
    import time

    start = time.perf_counter()
    paths = build_all(lambda name: print(f"building {name} ...", file=sys.stderr, flush=True))
    for name, path in paths.items():
        print(f"{name:9} {path.relative_to(ROOT)}  {path.stat().st_size / 1e6:7.2f} MB")
    print(f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
