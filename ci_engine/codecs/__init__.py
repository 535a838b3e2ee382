"""Codecs that libvips lacks or runs slowly here, shared by both backends.

- BMP: libvips has no BMP loader or saver; Pillow's BMP plugin reads and writes it.
- HEIF/HEIC: the pyvips-binary wheel has no HEVC codec; pillow-heif (libheif with
  libde265 and x265) decodes and encodes it.
- GIF output: libvips 8.18's ``gifsave`` builds a palette per frame with libimagequant, and
  on a 24-frame 640x360 animation scaled to 50 % it costs 0.6-2.5 s here; Pillow's
  fast-octree quantiser and LZW writer take 0.07 s for the same frames with a comparable
  error (benchmarks/README.md). Both backends write GIF through :func:`gif.encode`.

Frames travel as :class:`Frames`: ``pixels`` is ``(n, height, width, channels)`` uint8 with
1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels, plus per-frame delays in
milliseconds and the loop count as libvips counts it: the number of times the animation
*plays*, 0 meaning forever (a GIF's NETSCAPE value n means n + 1 plays). Decoders here
never see untrusted sizes: the header has been probed and the limits checked before any of
them runs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from ci_engine._dc import dataclass, field

__all__ = ["Frames"]


@dataclass
class Frames:
    """Decoded or to-be-encoded frames (see the module docstring)."""

    pixels: NDArray[np.uint8]
    delays: list[int] = field(default_factory=list)
    loop: int = 0
    exif: bytes | None = None
    icc: bytes | None = None

    @property
    def count(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[3])
