"""Photographs with QR codes placed in them, for the QR tests and ``benchmarks/intel_qr.py``."""

from __future__ import annotations

import io
import math

from PIL import Image


def place(
    base: Image.Image, text: str, symbol: float, angle: float, where: tuple[float, float]
) -> tuple[bytes, list[tuple[float, float]]]:
    """``base`` with a QR code of ``text`` whose symbol (without quiet zone) is ``symbol`` px
    wide, turned ``angle`` degrees counter-clockwise, at ``where`` (fractions of the free
    space), as JPEG q85; and the symbol's four corners (top-left, top-right, bottom-right,
    bottom-left of the symbol) in the result."""
    import segno

    qr = segno.make_qr(text, error="m")
    modules = qr.symbol_size(scale=1, border=0)[0]
    buf = io.BytesIO()
    qr.save(buf, kind="png", scale=10, border=4)
    side = round(symbol * (modules + 8) / modules)
    code = Image.open(buf).convert("RGB").resize((side, side), Image.LANCZOS)
    rotated = code.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=(255, 255, 255))
    mask = Image.new("L", code.size, 255).rotate(angle, resample=Image.BICUBIC, expand=True)
    left = int(where[0] * max(0, base.size[0] - rotated.size[0]))
    top = int(where[1] * max(0, base.size[1] - rotated.size[1]))
    image = base.copy()
    image.paste(rotated, (left, top), mask)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    b, n, c = 4 * side / (modules + 8), side * modules / (modules + 8), side / 2
    cx, cy = left + rotated.size[0] / 2, top + rotated.size[1] / 2
    t = math.radians(angle)
    corners = []
    for x, y in ((b, b), (b + n, b), (b + n, b + n), (b, b + n)):
        dx, dy = x - c, y - c
        corners.append((cx + dx * math.cos(t) + dy * math.sin(t), cy - dx * math.sin(t) + dy * math.cos(t)))
    return out.getvalue(), corners
