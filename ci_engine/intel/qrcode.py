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
    """What ``QRcode`` found, and the covered image (encoded) when ``cover`` was asked."""

    codes: tuple[Code, ...]
    image: bytes | None = None
    image_format: str | None = None

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


def recognize_pixels(pixels: NDArray[np.uint8], *, bar_type: int = 0) -> tuple[Code, ...]:
    """The symbols in ``(height, width, channels)`` uint8 pixels, in reading order (top to
    bottom, then left to right, by their top-left corner)."""
    import numpy as np
    import zxingcpp

    if bar_type not in (0, 1, 2):
        raise ValueError(f"bar_type must be 0, 1 or 2, got {bar_type!r}")
    channels = pixels.shape[2]
    if channels in (1, 2):
        grey = np.ascontiguousarray(pixels[..., 0])
    else:
        rgb = pixels[..., :3].astype(np.uint16)
        grey = ((rgb[..., 0] * 77 + rgb[..., 1] * 150 + rgb[..., 2] * 29 + 128) >> 8).astype(np.uint8)
    found = zxingcpp.read_barcodes(grey, formats=_formats(bar_type), text_mode=zxingcpp.TextMode.Plain)
    codes = []
    for item in found:
        pos = item.position
        corners = (pos.top_left, pos.top_right, pos.bottom_right, pos.bottom_left)
        points = tuple((int(p.x), int(p.y)) for p in corners)
        codes.append(Code(item.text, str(item.format), points))  # type: ignore[arg-type]
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


SCAN_PASSES = 2
"""Pixels of work charged per decoded pixel for a scan (the grey conversion, zxing's
binarisation and search), besides the decode itself."""


def recognize(
    data: bytes,
    *,
    cover: bool = False,
    bar_type: int = 0,
    backend: str = "auto",
    **run: Any,
) -> Recognition:
    """Recognise the codes in the image ``data`` and, with ``cover``, encode the covered
    image in the input's format. ``run`` takes :func:`ci_engine.intel.pixels.decode`'s
    keywords (``pipeline`` for the steps before, ``limits``, ``rules`` ...).

    Raises:
        CIError: the input is not a supported image, or over a limit.
    """
    from ci_engine.intel.pixels import decode, finish

    decoded = decode(data, backend=backend, passes=SCAN_PASSES, encode=cover, what="QRcode: the scan", **run)
    codes = recognize_pixels(decoded.pixels, bar_type=bar_type)
    if not cover:
        return Recognition(codes)
    result = finish(decoded, cover_patches(decoded.pixels, codes))
    return Recognition(codes, result.data, result.format)


def recognition_xml(found: Recognition) -> bytes:
    """The ``<Response>`` body of ``ci-process=QRcode``."""
    children: list[tuple[str, Any]] = [("CodeStatus", found.status)]
    for code in found.codes:
        location = [("Point", f"{x},{y}") for x, y in code.points]
        children.append(("QRcodeInfo", [("CodeUrl", code.text), ("CodeLocation", location)]))
    if found.image is not None:
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
