"""Render watermark text to an RGBA bitmap with Pillow's FreeType fonts.

Rules (``watermark.md`` section 4, proposals adopted):

- the font pixel size is ``fontsize`` (points at 72 DPI: 1 pt = 1 px);
- lines split on ``\\n`` (``\\r`` dropped), left-aligned, a line height of 1.2 x the pixel size;
- the *box* that ``gravity``/``dx``/``dy`` place is the font-metric box, not the ink: width
  = the advance width of the widest line, height = ascent + descent of one line plus one line
  height per extra line;
- characters the chosen font lacks are drawn with the fallback font (a CJK sans), run by
  run, on the same baseline; only a character no installed font has is drawn as the font's
  missing-glyph box;
- ``fill`` colours the glyphs, alpha = glyph coverage; ``shadow`` (1..100) draws a black
  copy offset ``max(1, round(px / 20))`` px right and down at ``shadow``% opacity under the
  text (``dissolve`` is applied later, to both).

Two steps: :func:`layout_text` measures (no pixels), :meth:`TextLayout.render` draws, all of
the bitmap or only a window of it. The bitmap may extend beyond the box (ink overhang, the
shadow): :class:`Bitmap` says where the box sits in it.
"""

from __future__ import annotations

import math
import threading
import unicodedata
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ci_engine._dc import dataclass
from ci_engine.plan.geometry import round_half_up
from ci_engine.watermark.fonts import FontFace

if TYPE_CHECKING:
    from PIL.ImageFont import FreeTypeFont

__all__ = ["Bitmap", "TextLayout", "layout_text", "layout_runs", "shadow_offset", "LINE_HEIGHT"]

LINE_HEIGHT = Fraction(6, 5)
"""Line height as a multiple of the font pixel size."""

CHUNK = 16
"""Longest piece of a run drawn at once: Pillow renders a whole piece into one mask, so
long lines at large sizes are drawn piece by piece (and only the visible pieces)."""

_LOCK = threading.RLock()
"""FreeType faces are not thread-safe; measuring and drawing are serialised (they take
about a millisecond for a typical watermark)."""


@dataclass(frozen=True, slots=True)
class Bitmap:
    """A watermark overlay before placement.

    Attributes:
        pixels: ``(h, w, 4)`` uint8 RGBA, straight alpha.
        box: ``(w, h)`` of the box that placement positions.
        origin: ``(x, y)`` of the box's top-left corner relative to ``pixels``' top-left
            (the overlay is drawn at ``box position - origin``; may be negative when the
            bitmap is a window that starts inside the box).
        neutral: every visible pixel has R = G = B (``None``: not known).
    """

    pixels: NDArray[np.uint8]
    box: tuple[int, int]
    origin: tuple[int, int] = (0, 0)
    neutral: bool | None = None

    @property
    def size(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@lru_cache(maxsize=64)
def _font(path: str, index: int, size: int) -> FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.truetype(path, size=size, index=index)


def shadow_offset(px: int) -> int:
    """``max(1, round(px / 20))``, half up.

    >>> shadow_offset(13), shadow_offset(30), shadow_offset(100)
    (1, 2, 5)
    """
    return max(1, round_half_up(Fraction(px, 20)))


def _attaches(char: str) -> bool:
    """Combining marks, joiners and variation selectors stay with the previous character."""
    return unicodedata.category(char) in ("Mn", "Me", "Mc") or char in "\u200c\u200d" or 0xFE00 <= ord(char) <= 0xFE0F


def layout_runs(line: str, primary: FontFace, fallback: FontFace | None) -> list[tuple[str, FontFace]]:
    """Split ``line`` into runs drawn with one face each: the primary face where it has the
    glyph, else the fallback where that has it, else the primary (its missing-glyph box)."""
    runs: list[tuple[str, FontFace]] = []
    for char in line:
        if runs and _attaches(char):
            runs[-1] = (runs[-1][0] + char, runs[-1][1])
            continue
        use_fallback = fallback is not None and not primary.covers(char) and fallback.covers(char)
        face = fallback if use_fallback and fallback is not None else primary
        if runs and runs[-1][1] == face:
            runs[-1] = (runs[-1][0] + char, face)
        else:
            runs.append((char, face))
    return runs


def _pieces(run: str) -> list[str]:
    """``run`` cut into pieces of at most :data:`CHUNK` characters, never before a
    character that attaches to the previous one."""
    pieces: list[str] = []
    current = ""
    for char in run:
        if len(current) >= CHUNK and not _attaches(char):
            pieces.append(current)
            current = ""
        current += char
    if current:
        pieces.append(current)
    return pieces


@dataclass(frozen=True, slots=True)
class _Piece:
    x: float
    baseline: int
    text: str
    font: Any
    ink: tuple[int, int, int, int]  # left, top, right, bottom in box coordinates


@dataclass(frozen=True, slots=True)
class TextLayout:
    """Measured text, ready to draw.

    Attributes:
        box: ``(w, h)``, the font-metric box.
        bounds: ``(left, top, right, bottom)`` of everything drawn (box, ink, shadow) in box
            coordinates; the full bitmap is ``right - left`` x ``bottom - top``.
        fill: the RGB colour; shadow: 0..100; shadow_offset: in px.
    """

    pieces: tuple[_Piece, ...]
    box: tuple[int, int]
    bounds: tuple[int, int, int, int]
    fill: tuple[int, int, int]
    shadow: int
    shadow_offset: int

    @property
    def size(self) -> tuple[int, int]:
        """The full bitmap's ``(w, h)``."""
        left, top, right, bottom = self.bounds
        return right - left, bottom - top

    @property
    def origin(self) -> tuple[int, int]:
        """The box's top-left corner in the full bitmap."""
        return -self.bounds[0], -self.bounds[1]

    def render(self, window: tuple[int, int, int, int] | None = None) -> Bitmap:
        """Draw the bitmap, or only ``window`` = ``(x0, y0, x1, y1)`` of it (full-bitmap
        coordinates, half-open)."""
        from PIL import Image, ImageDraw

        w, h = self.size
        x0, y0, x1, y1 = window if window is not None else (0, 0, w, h)
        off = self.shadow_offset if self.shadow else 0
        # Coverage over the window grown by the shadow offset up and left (the shadow at a
        # pixel is the coverage `off` pixels up and left of it).
        gx0, gy0 = x0 - off, y0 - off
        left, top = self.bounds[0], self.bounds[1]
        canvas = Image.new("L", (x1 - gx0, y1 - gy0), 0)
        draw = ImageDraw.Draw(canvas)
        with _LOCK:
            for piece in self.pieces:
                ink_l, ink_t, ink_r, ink_b = piece.ink
                # skip pieces that miss the (grown) window
                if ink_r - left <= gx0 or ink_l - left >= x1 or ink_b - top <= gy0 or ink_t - top >= y1:
                    continue
                xy = (piece.x - left - gx0, piece.baseline - top - gy0)
                draw.text(xy, piece.text, font=piece.font, fill=255, anchor="ls")
        grown = np.asarray(canvas, dtype=np.uint8)
        pixels = np.empty((y1 - y0, x1 - x0, 4), dtype=np.uint8)
        pixels[..., :3] = self.fill
        if not self.shadow:
            pixels[..., 3] = grown
        else:
            # Text (fill, coverage c) over a black shadow (coverage s shifted, times the
            # shadow strength k): alpha = c + k s (1 - c), colour = fill * c / alpha.
            c = grown[off:, off:].astype(np.float32) * np.float32(1 / 255)
            s = grown[: grown.shape[0] - off, : grown.shape[1] - off].astype(np.float32)
            s *= np.float32(self.shadow / 25500)
            alpha = c + s * (1 - c)
            ratio = np.divide(c, alpha, out=np.zeros_like(alpha), where=alpha > 0)
            for channel in range(3):
                if self.fill[channel]:
                    pixels[..., channel] = np.rint(ratio * np.float32(self.fill[channel]))
            pixels[..., 3] = np.rint(alpha * np.float32(255))
        ox, oy = self.origin
        neutral = self.fill[0] == self.fill[1] == self.fill[2]
        return Bitmap(pixels, self.box, (ox - x0, oy - y0), neutral)


def layout_text(
    text: str,
    primary: FontFace,
    fallback: FontFace | None,
    *,
    px: int,
    fill: tuple[int, int, int],
    shadow: int = 0,
) -> TextLayout:
    """Measure ``text`` at ``px`` pixels per em (see the module docstring for the rules)."""
    lines = text.replace("\r\n", "\n").replace("\r", "").split("\n")
    off = shadow_offset(px) if shadow else 0
    pieces: list[_Piece] = []
    widths: list[float] = []
    with _LOCK:
        main = _font(primary.path, primary.index, px)
        ascent, descent = main.getmetrics()
        for i, line in enumerate(lines):
            baseline = ascent + (round_half_up(LINE_HEIGHT * px * i) if i else 0)
            x = 0.0
            for run, face in layout_runs(line, primary, fallback):
                font = main if face == primary else _font(face.path, face.index, px)
                for chunk in _pieces(run):
                    if chunk.strip():
                        bl, bt, br, bb = font.getbbox(chunk, anchor="ls")
                        ink = (
                            math.floor(x + bl),
                            baseline + int(bt),
                            math.ceil(x + br) + 1,
                            baseline + int(bb) + 1,
                        )
                        pieces.append(_Piece(x, baseline, chunk, font, ink))
                    x += font.getlength(chunk)
            widths.append(x)
    box_w = max(1, round_half_up(Fraction(max(widths)).limit_denominator(64)))
    extra = round_half_up(LINE_HEIGHT * px * (len(lines) - 1)) if len(lines) > 1 else 0
    box_h = max(1, ascent + descent + extra)
    left, top, right, bottom = 0, 0, box_w, box_h
    for piece in pieces:
        ink_l, ink_t, ink_r, ink_b = piece.ink
        left, top = min(left, ink_l), min(top, ink_t)
        right, bottom = max(right, ink_r + off), max(bottom, ink_b + off)
    return TextLayout(tuple(pieces), (box_w, box_h), (left, top, right, bottom), fill, shadow, off)
