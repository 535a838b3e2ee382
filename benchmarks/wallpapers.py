"""Real photographs (and real PNG files) for the codec benchmarks, taken byte for byte from
Debian 12 (bookworm) packages and cached in ``benchmarks/_cache/wallpapers/`` (git-ignored).

The synthetic photographs of ``benchmarks/images.py`` are upscales plus Gaussian grain:
good for sizes and timing, misleading for a codec (the grain is incompressible detail that
SSIM counts). These are the files as their authors published them (camera JPEGs at the
qualities they chose, PNGs as shipped). :func:`fetch` downloads the packages with
``apt-get download`` (no installation, no root needed beyond what apt-get asks) and
extracts the listed files with ``dpkg-deb``, checking each file's SHA-256:

    python benchmarks/wallpapers.py          # fetch (about 170 MB of packages) and list

Sources and licences (each package's ``/usr/share/doc/<package>/copyright``; the path in
the package and the SHA-256 of each file are in :data:`FILES`):

* ``kleiber.jpg`` 6028 x 3391, lomiri-wallpapers-20.04 20.04.0-2 (``Kleiber_by_Lukas_Baubkus.jpg``):
  Lukas Baubkus, 2021, CC-BY-SA-3.0.
* mate-backgrounds 1.26.0-1 (``/usr/share/backgrounds/mate/nature/``), GPL-2+:
  ``aqua.jpg`` 2560 x 1600, ``garden.jpg`` 2560 x 1600, ``ladybird.jpg`` 2560 x 1600 (Charles
  Barbin, 2008); ``twowings.jpg`` 2560 x 1600 (Charles Barbin, Hylke Bons, 2008); ``dune.jpg``
  1680 x 1050 (Marco Cogoni 2007, Hylke Bons 2008); ``raindrops.jpg`` 1920 x 1200
  ("blackcombwhistler07", 2008); ``storm.jpg`` 1920 x 1280 (Sergey Nazarov, 2008).
* plasma-workspace-wallpapers 4:5.27.5-2 (``/usr/share/wallpapers/<Name>/contents/images/``),
  KDE Visual Design Group, 2014, GPL-2+: the photographs ``coldripple.jpg``,
  ``eveningglow.jpg``, ``fallenleaf.jpg``, ``onestandsout.jpg``, ``path.jpg`` (2560 x 1600
  each) and the digital artworks ``altai.png``, ``milkyway.png`` (1080 x 1920 PNG).
* python3-skimage 0.19.3-8 (``skimage/data/``), CC0: ``coffee.png`` 600 x 400 (photograph by
  Rachel Michetti), ``chelsea.png`` 451 x 300 (photograph by Stefan van der Walt).

The PNG photographs are rare in packages: the two skimage ones are real photographs saved as
PNG; the two Plasma ones are smooth digital artwork (what PNG wallpapers usually are).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / "_cache" / "wallpapers"

PACKAGES = {
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "mate-backgrounds": "1.26.0-1",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
    "python3-skimage": "0.19.3-8",
}
_MATE = "usr/share/backgrounds/mate/nature/"
_PLASMA = "usr/share/wallpapers/"
_SKIMAGE = "usr/lib/python3/dist-packages/skimage/data/"
FILES: dict[str, tuple[str, str, str]] = {
    # name: (package, path in the package, sha256)
    "kleiber.jpg": (
        "lomiri-wallpapers-20.04",
        "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
        "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7",
    ),
    "aqua.jpg": (
        "mate-backgrounds",
        _MATE + "Aqua.jpg",
        "5c30118205982da441bf7e6a1ada636a8a0be879408140b3148280c665ed6bce",
    ),
    "dune.jpg": (
        "mate-backgrounds",
        _MATE + "Dune.jpg",
        "8a67c2cb0be8c46b70c237311a4fa4d2b4ac7d39568135384787801fa5cc9a91",
    ),
    "garden.jpg": (
        "mate-backgrounds",
        _MATE + "Garden.jpg",
        "d3095ee09d425ef23d27155412136cf14fc3c9af76ca58b452f55e23da324e78",
    ),
    "ladybird.jpg": (
        "mate-backgrounds",
        _MATE + "LadyBird.jpg",
        "e35a9a4126ef969c90b29c038058c5a575a20eadd84106a37bf1fa9931e7b61d",
    ),
    "raindrops.jpg": (
        "mate-backgrounds",
        _MATE + "RainDrops.jpg",
        "3e4ea9671c28c90a86cf67b3db9daf18c4741587c596333a7529ca589aaa0c16",
    ),
    "storm.jpg": (
        "mate-backgrounds",
        _MATE + "Storm.jpg",
        "77ca53077831d3237f73393a91fc879158abc046d852941c26e90de336356957",
    ),
    "twowings.jpg": (
        "mate-backgrounds",
        _MATE + "TwoWings.jpg",
        "665e5abf8a5399070a91a9a8e455fe071e5b61697ff78fdeda4e9843ef545aeb",
    ),
    "coldripple.jpg": (
        "plasma-workspace-wallpapers",
        _PLASMA + "ColdRipple/contents/images/2560x1600.jpg",
        "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f",
    ),
    "eveningglow.jpg": (
        "plasma-workspace-wallpapers",
        _PLASMA + "EveningGlow/contents/images/2560x1600.jpg",
        "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a",
    ),
    "fallenleaf.jpg": (
        "plasma-workspace-wallpapers",
        _PLASMA + "FallenLeaf/contents/images/2560x1600.jpg",
        "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de",
    ),
    "onestandsout.jpg": (
        "plasma-workspace-wallpapers",
        _PLASMA + "OneStandsOut/contents/images/2560x1600.jpg",
        "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd",
    ),
    "path.jpg": (
        "plasma-workspace-wallpapers",
        _PLASMA + "Path/contents/images/2560x1600.jpg",
        "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
    ),
    "altai.png": (
        "plasma-workspace-wallpapers",
        _PLASMA + "Altai/contents/images/1080x1920.png",
        "7b992ad9ced46a85e4f3178a458d887c63df2995a92ec8199a222667fe23bb4c",
    ),
    "milkyway.png": (
        "plasma-workspace-wallpapers",
        _PLASMA + "MilkyWay/contents/images/1080x1920.png",
        "bccfdb78f772cf60f986275570bc52e6750186055b208c56dbbc7329698b0b14",
    ),
    "coffee.png": (
        "python3-skimage",
        _SKIMAGE + "coffee.png",
        "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
    ),
    "chelsea.png": (
        "python3-skimage",
        _SKIMAGE + "chelsea.png",
        "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
    ),
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch() -> dict[str, Path]:
    """Every file of :data:`FILES` in the cache (downloading the packages that hold missing
    ones); name -> path.

    Raises:
        RuntimeError: apt-get or dpkg-deb failed, or a file's SHA-256 differs.
    """
    CACHE.mkdir(parents=True, exist_ok=True)
    out = {name: CACHE / name for name in FILES}
    missing = {FILES[name][0] for name, path in out.items() if not path.exists()}
    for package in sorted(missing):
        with tempfile.TemporaryDirectory() as tmp:
            spec = f"{package}={PACKAGES[package]}"
            done = subprocess.run(["apt-get", "download", spec], cwd=tmp, capture_output=True, text=True)
            debs = list(Path(tmp).glob("*.deb"))
            if done.returncode != 0 or not debs:
                raise RuntimeError(f"apt-get download {spec} failed: {done.stderr.strip()[-300:]}")
            root = Path(tmp) / "x"
            subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
            for name, (owner, inner, digest) in FILES.items():
                if owner != package:
                    continue
                source = root / inner
                if _sha256(source) != digest:
                    raise RuntimeError(f"{name}: {package} {inner} is not the file this benchmark was measured on")
                out[name].write_bytes(source.read_bytes())
    for name, path in out.items():
        if _sha256(path) != FILES[name][2]:
            raise RuntimeError(f"{path}: SHA-256 differs from the listed one; delete it and fetch again")
    return out


def main() -> int:
    for name, path in fetch().items():
        print(f"{name:18s} {path.stat().st_size:>10,} bytes  {FILES[name][0]}: /{FILES[name][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
