"""QR codes and barcodes: ``ci-process=QRcode`` / the ``QRcode/...`` rule (recognition, with
``cover``) and ``ci-process=qrcode-generate`` (``extras.md`` section 5).

Recognition runs zxing-cpp on the first frame of the image as decoded by the chosen backend
(after the steps before it, if any). Each symbol gives its text and its four corners in
the decoder's order: the symbol's top-left, top-right, bottom-right, bottom-left (clockwise
in the symbol's own frame, so a code rotated by 90 degrees starts elsewhere on screen),
integer pixels on the outer edge of the symbol. ``cover=1`` pixelates the axis-aligned
bounding box of each symbol (clipped to the image) with square blocks of
``max(8, min(w, h) // 8)`` pixels, each the mean of its pixels, and returns the image in
the input's format, Base64 in ``ResultImage``. ``bar-type``: 0 QR codes and barcodes
(every format zxing-cpp reads), 1 QR codes only (QR, Micro QR, rMQR), 2 barcodes only (the
linear formats). ``segment`` and ``size`` (newer rule form, undocumented) are accepted and
ignored.

Generation: ``mode=0`` a QR code made by segno (error correction M, 4-module quiet zone),
``mode=1`` a Code 128 barcode made by zxing-cpp; ``width`` pixels wide (QR: square; barcode:
height ``width // 2``), modules scaled by the largest integer that fits and centred on white,
returned as a Base64 PNG in ``ResultImage``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ci_engine._dc import dataclass
from ci_engine.errors import InvalidArgumentError, ValueRangeError
from ci_engine.intel._xml import response

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ci_engine.plan.steps import Composite

__all__ = [
    "Code",
    "Recognition",
    "recognize_pixels",
    "small_candidates",
    "recognize",
    "cover_patches",
    "recognition_xml",
    "generate",
    "generate_xml",
    "MAX_GENERATE_WIDTH",
]

MAX_GENERATE_WIDTH = 4096
"""Largest ``width`` of ``qrcode-generate`` (not documented by CI; a bound on the work)."""


@dataclass(frozen=True, slots=True)
class Code:
    """One recognised symbol: its text, its format name (zxing-cpp's) and its corners
    ``((x, y) * 4)`` clockwise from the symbol's top-left."""

    text: str
    format: str
    points: tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of the corners (right and bottom exclusive)."""
        xs = [x for x, _ in self.points]
        ys = [y for _, y in self.points]
        return min(xs), min(ys), max(xs) + 1, max(ys) + 1


@dataclass(frozen=True, slots=True)
class Recognition:
    """What ``QRcode`` found, and the image (encoded) when it was asked: the covered image
    with ``cover`` (``covered``), else the image as the steps before ``QRcode`` made it."""

    codes: tuple[Code, ...]
    image: bytes | None = None
    image_format: str | None = None
    covered: bool = False

    @property
    def status(self) -> int:
        """``CodeStatus``: 1 when at least one code was found."""
        return 1 if self.codes else 0


def _formats(bar_type: int) -> Any:
    import zxingcpp

    if bar_type == 1:
        return zxingcpp.barcode_formats_from_str("QRCode,MicroQRCode,RMQRCode")
    if bar_type == 2:
        return zxingcpp.BarcodeFormat.AllLinear
    return zxingcpp.BarcodeFormat.All


SMALL_BLOCK = 8
"""Side of the blocks of the small-code search (pixels of the input)."""

SMALL_CONTRAST = 40.0
"""Smallest standard deviation (grey levels) of a block that may belong to a small code."""

SMALL_MAX_BLOCKS = 20
"""Largest side (blocks) of a small-code candidate: codes of 160 px and more are read by the
first pass (zxing-cpp's own pyramid handles the large ones)."""

SMALL_MAX_CANDIDATES = 48
"""At most this many candidate regions are rescanned, the most contrasted first."""

SMALL_UPSCALE = (2, 3)
"""The factors a candidate region is enlarged by (bicubic) before it is scanned again, the
next one only when the one before read nothing there."""


def _grey(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    import numpy as np

    channels = pixels.shape[2]
    if channels in (1, 2):
        return np.ascontiguousarray(pixels[..., 0])
    rgb = pixels[..., :3].astype(np.uint16)
    return ((rgb[..., 0] * 77 + rgb[..., 1] * 150 + rgb[..., 2] * 29 + 128) >> 8).astype(np.uint8)


def _read(grey: NDArray[np.uint8], formats: Any, scale: float = 1.0, left: int = 0, top: int = 0) -> list[Code]:
    """zxing-cpp on ``grey``; corners mapped back by ``input = left/top + (p + 0.5) / scale - 0.5``."""
    import zxingcpp

    out = []
    for item in zxingcpp.read_barcodes(grey, formats=formats, text_mode=zxingcpp.TextMode.Plain):
        pos = item.position
        corners = (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
        points = tuple(
            (round(left + (p.x + 0.5) / scale - 0.5), round(top + (p.y + 0.5) / scale - 0.5)) for p in corners
        )
        out.append(Code(item.text, str(item.format), points))  # type: ignore[arg-type]
    return out


def small_candidates(grey: NDArray[np.uint8]) -> list[tuple[int, int, int, int]]:
    """Regions ``(left, top, width, height)`` that may hold a code too small for one scan
    (modules of 1-2 px): compact blobs of :data:`SMALL_BLOCK` px blocks whose grey levels
    spread by at least :data:`SMALL_CONTRAST`, between 3 and :data:`SMALL_MAX_BLOCKS` blocks
    on a side, at least 30 % filled (a code turned 45 degrees fills half its box), not longer
    than 2.2 times their width; most contrasted first, at most :data:`SMALL_MAX_CANDIDATES`."""
    import cv2
    import numpy as np

    b = SMALL_BLOCK
    rows, cols = grey.shape[0] // b, grey.shape[1] // b
    if rows < 3 or cols < 3:
        return []
    std = np.empty((rows, cols), np.float32)
    strip = 64  # block rows at a time: float copies of at most 512 pixel rows
    for r0 in range(0, rows, strip):
        r1 = min(rows, r0 + strip)
        g = grey[r0 * b : r1 * b, : cols * b].astype(np.float32)
        mean = cv2.resize(g, (cols, r1 - r0), interpolation=cv2.INTER_AREA)
        square = cv2.resize(g * g, (cols, r1 - r0), interpolation=cv2.INTER_AREA)
        std[r0:r1] = np.sqrt(np.maximum(square - mean * mean, 0))
    mask = cv2.morphologyEx((std >= SMALL_CONTRAST).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    found = []
    for i in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[i])
        if not (3 <= w <= SMALL_MAX_BLOCKS and 3 <= h <= SMALL_MAX_BLOCKS):
            continue
        if area < 0.3 * w * h or max(w, h) > 2.2 * min(w, h):
            continue
        found.append((float(std[labels == i].mean()), (x * b, y * b, w * b, h * b)))
    found.sort(key=lambda item: -item[0])
    return [box for _, box in found[:SMALL_MAX_CANDIDATES]]


def _overlaps(box: tuple[int, int, int, int], code: Code) -> bool:
    left, top, right, bottom = code.box
    x, y, w, h = box
    return x < right and left < x + w and y < bottom and top < y + h


def _small_codes(grey: NDArray[np.uint8], formats: Any, found: Sequence[Code]) -> list[Code]:
    """The multi-scale pass: each candidate region of :func:`small_candidates` that no code
    found so far covers, with a margin of half its side (the quiet zone), enlarged by the
    factors of :data:`SMALL_UPSCALE` and scanned again; at most twice the input's pixels in
    all.
    A code already known (same text, centre within half its side) is not repeated."""
    import cv2
    import numpy as np

    height, width = grey.shape
    budget = 2 * width * height
    out: list[Code] = []
    for box in small_candidates(grey):
        if any(_overlaps(box, code) for code in (*found, *out)):
            continue
        x, y, w, h = box
        margin = max(8, max(w, h) // 2)
        left, top = max(0, x - margin), max(0, y - margin)
        right, bottom = min(width, x + w + margin), min(height, y + h + margin)
        for factor in SMALL_UPSCALE:
            cost = (right - left) * (bottom - top) * factor * factor
            if cost > budget:
                return out
            budget -= cost
            view = cv2.resize(grey[top:bottom, left:right], None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
            codes = _read(np.asarray(view, np.uint8), formats, factor, left, top)
            for code in codes:
                if not any(_same(code, other) for other in (*found, *out)):
                    out.append(code)
            if codes:
                break
    return out


def _same(a: Code, b: Code) -> bool:
    if a.text != b.text:
        return False
    ax, ay = sum(x for x, _ in a.points) / 4, sum(y for _, y in a.points) / 4
    bx, by = sum(x for x, _ in b.points) / 4, sum(y for _, y in b.points) / 4
    left, top, right, bottom = b.box
    return abs(ax - bx) + abs(ay - by) < max(right - left, bottom - top)


def recognize_pixels(pixels: NDArray[np.uint8], *, bar_type: int = 0, multiscale: bool = True) -> tuple[Code, ...]:
    """The symbols in ``(height, width, channels)`` uint8 pixels, in reading order (top to
    bottom, then left to right, by their top-left corner).

    One scan of the whole image (zxing-cpp also scans its own downscaled copies, which reads
    codes too large for one view); with ``multiscale`` (the default) the regions that may
    hold a code too small for it are enlarged and scanned again (:func:`small_candidates`),
    their corners mapped back to the input's pixels, duplicates dropped."""
    if bar_type not in (0, 1, 2):
        raise ValueError(f"bar_type must be 0, 1 or 2, got {bar_type!r}")
    grey = _grey(pixels)
    formats = _formats(bar_type)
    codes = _read(grey, formats)
    if multiscale and bar_type != 2:  # the candidates are square: 2D codes, not linear barcodes
        codes += _small_codes(grey, formats, codes)
    codes.sort(key=lambda c: (min(y for _, y in c.points), min(x for x, _ in c.points)))
    return tuple(codes)


def cover_patches(pixels: NDArray[np.uint8], codes: Sequence[Code]) -> list[Composite]:
    """The mosaic over each code's bounding box, as opaque ``composite`` steps."""
    import numpy as np

    from ci_engine.intel.pixels import patch

    height, width = pixels.shape[:2]
    colours = 1 if pixels.shape[2] in (1, 2) else 3
    out = []
    for code in codes:
        left, top, right, bottom = code.box
        left, top = max(0, left), max(0, top)
        right, bottom = min(width, right), min(height, bottom)
        if right <= left or bottom <= top:
            continue
        region = pixels[top:bottom, left:right, :colours].astype(np.float64)
        block = max(8, min(right - left, bottom - top) // 8)
        mosaic = np.empty_like(region)
        for y in range(0, bottom - top, block):
            for x in range(0, right - left, block):
                cell = region[y : y + block, x : x + block]
                mosaic[y : y + block, x : x + block] = cell.mean(axis=(0, 1))
        out.append(patch(left, top, np.rint(mosaic).astype(np.uint8)))
    return out


SCAN_PASSES = 4
"""Pixels of work charged per decoded pixel for a scan (the grey conversion, zxing's
binarisation and search, and the multi-scale pass: at most twice the pixels), besides the
decode itself."""


def recognize(
    data: bytes,
    *,
    cover: bool = False,
    bar_type: int = 0,
    backend: str = "auto",
    image: bool = False,
    **run: Any,
) -> Recognition:
    """Recognise the codes in the image ``data`` and, with ``cover``, encode the covered
    image in the input's format; with ``image`` (and no ``cover``) encode the image as the
    steps before made it, from the same decode (what a ``Pic-Operations`` rule stores).
    ``run`` takes :func:`ci_engine.intel.pixels.decode`'s keywords (``pipeline`` for the
    steps before, ``limits``, ``rules`` ...).

    Raises:
        CIError: the input is not a supported image, or over a limit.
    """
    from ci_engine.intel.pixels import decode, finish

    encode = cover or image
    decoded = decode(data, backend=backend, passes=SCAN_PASSES, encode=encode, what="QRcode: the scan", **run)
    codes = recognize_pixels(decoded.pixels, bar_type=bar_type)
    if not encode:
        return Recognition(codes)
    result = finish(decoded, cover_patches(decoded.pixels, codes) if cover else ())
    return Recognition(codes, result.data, result.format, covered=cover)


def recognition_xml(found: Recognition) -> bytes:
    """The ``<Response>`` body of ``ci-process=QRcode``."""
    children: list[tuple[str, Any]] = [("CodeStatus", found.status)]
    for code in found.codes:
        location = [("Point", f"{x},{y}") for x, y in code.points]
        children.append(("QRcodeInfo", [("CodeUrl", code.text), ("CodeLocation", location)]))
    if found.covered and found.image is not None:
        children.append(("ResultImage", base64.b64encode(found.image).decode("ascii")))
    return response(children)


def _scaled(matrix: NDArray[np.bool_], width: int, height: int) -> bytes:
    import numpy as np
    from PIL import Image

    rows, cols = matrix.shape
    scale = min(width // cols, height // rows)
    if scale < 1:
        raise ValueRangeError(
            f"qrcode-generate: width {width} is too small for a code of {cols} modules",
            op="qrcode-generate",
            field="width",
        )
    canvas = np.full((height, width), 255, np.uint8)
    code = np.where(np.kron(matrix, np.ones((scale, scale), bool)), 0, 255).astype(np.uint8)
    top, left = (height - rows * scale) // 2, (width - cols * scale) // 2
    canvas[top : top + rows * scale, left : left + cols * scale] = code
    buf = io.BytesIO()
    Image.fromarray(canvas, "L").save(buf, "PNG", optimize=True)
    return buf.getvalue()


def generate(content: str, *, mode: int = 0, width: int = 300) -> bytes:
    """A PNG of ``content`` as a QR code (``mode=0``) or a Code 128 barcode (``mode=1``),
    ``width`` pixels wide.

    Raises:
        InvalidArgumentError: empty content, content a code cannot hold, a bad mode.
        ValueRangeError: ``width`` outside 1..:data:`MAX_GENERATE_WIDTH`, or too small for
            the code's modules.
    """
    import numpy as np

    if not isinstance(content, str):
        raise TypeError(f"content must be str, got {type(content).__name__}")
    if not content:
        raise InvalidArgumentError("qrcode-generate: qrcode-content must not be empty", op="qrcode-generate")
    if mode not in (0, 1):
        raise InvalidArgumentError(f"qrcode-generate: mode must be 0 or 1, got {mode}", op="qrcode-generate")
    if not 1 <= width <= MAX_GENERATE_WIDTH:
        raise ValueRangeError(
            f"qrcode-generate: width must be between 1 and {MAX_GENERATE_WIDTH}, got {width}",
            op="qrcode-generate",
            field="width",
        )
    if mode == 0:
        import segno

        try:
            qr = segno.make_qr(content, error="m")
        except segno.DataOverflowError as exc:
            raise InvalidArgumentError(f"qrcode-generate: {exc}", op="qrcode-generate") from exc
        matrix = np.array([[bool(v) for v in row] for row in qr.matrix_iter(scale=1, border=4)], bool)
        return _scaled(matrix, width, width)
    import zxingcpp

    try:
        barcode = zxingcpp.create_barcode(content, zxingcpp.BarcodeFormat.Code128)
    except Exception as exc:  # zxing-cpp raises ValueError/RuntimeError for content Code 128 cannot hold
        raise InvalidArgumentError(
            f"qrcode-generate: cannot make a Code 128 barcode: {exc}", op="qrcode-generate"
        ) from exc
    image = np.asarray(barcode.to_image(scale=1, add_quiet_zones=True, add_hrt=False))
    bars = image[image.shape[0] // 2] < 128
    height = max(1, width // 2)
    cols = bars.shape[0]
    scale = width // cols
    if scale < 1:
        raise ValueRangeError(
            f"qrcode-generate: width {width} is too small for a barcode of {cols} modules",
            op="qrcode-generate",
            field="width",
        )
    quiet = max(1, height // 10)
    matrix = np.repeat(bars[np.newaxis, :], max(1, (height - 2 * quiet) // scale), axis=0)
    return _scaled(matrix, width, height)


def generate_xml(content: str, *, mode: int = 0, width: int = 300) -> bytes:
    """The ``<Response>`` body of ``ci-process=qrcode-generate``."""
    png = generate(content, mode=mode, width=width)
    return response([("ResultImage", base64.b64encode(png).decode("ascii"))])
