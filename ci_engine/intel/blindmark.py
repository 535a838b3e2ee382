"""Blind watermarks: ``watermark/3`` (embed) and ``watermark/4`` (extract), types 1, 2, 3
(``extras.md`` section 4). CI's algorithm is not public; this is ci_engine's own, so marks
are not interchangeable with CI's.

**The mark.** A payload of :data:`PAYLOAD_BYTES` bytes (type 3: the UTF-8 text, zero-padded;
types 1 and 2: a 12 x 8 one-bit fingerprint of the mark image) and a 24-bit check of it
(:data:`CRC_BITS`) are convolutionally encoded (constraint length 7, rate 1/2,
:data:`POLYNOMIALS`): :data:`CODE_BITS` = 252 bits. A square tile of :data:`TILE` px holds
32 x 32 cells of 4 x 4 px; each cell carries a fixed pseudo-random sign (seeded, the same
for every image). :data:`SYNC_CELLS` cells, chosen by the same seed, carry only their sign
(the synchronisation pattern); the other 768 carry their sign times one code bit (each bit
on 3 cells, 12 of them on 4, spread over the tile). The tile repeats over the whole image.

**Embedding** adds the tiled pattern to the luminance (the same amount to R, G and B),
shaped by a texture mask (local standard deviation over 9 x 9 px, relative to its mean,
clipped to 0.3-3: more where the picture is busy, less on flat areas), scaled to an RMS of
:data:`STRENGTH` grey levels for the level asked, and checked: the embedding alone keeps
PSNR >= 40 dB against the input (the strength is lowered until it does). Transparent
pixels are left alone.

**Extraction** needs nothing but the suspect image (type 1 also uses the original when the
suspect has its size: the difference then removes the picture itself):

1. the residual: luminance minus its 5 x 5 median (a prediction of the picture that the
   4 px cells hardly move), divided by its local standard deviation (Gaussian, sigma 1: a
   matched filter for the masked pattern);
2. the period: the autocorrelation of the residual (whitened spectrum) peaks at the tile
   period along both axes; the best lag in 40 .. min(w, h) / 2 (refined to a fraction of a
   pixel; a peak at twice the period halved) gives the scale the image went through (0.5
   after a 50 % downscale); when the sync (step 4) is not found there and the image is
   under 512 px a side, the scales 1, 0.5 and half the found one are tried as well and the
   best kept;
3. the residual is rescaled so the period is :data:`TILE` again and folded: every tile
   summed into one (a crop from any side only shifts the fold cyclically);
4. the shift: circular cross-correlation of the folded tile with the synchronisation
   pattern; its peak, in standard deviations over all 16,384 shifts, is the detection
   score ``z`` (unmarked photographs: 3-5; marked ones after the issue's attacks: 10 and more);
5. the bits: at that shift, each code bit's soft value is the signed sum of its cells;
   soft-decision Viterbi decoding; the payload counts only when its check matches.

``WatermarkStatus`` (0-100) is ``clamp(25 * (z - 4))``: above 75 present, 60-75
suspected, below 60 absent (CI's bands). A text is reported only when the status is at
least 60 and the decoded check matches; otherwise the answer is "no watermark", never a guess.
Measured figures: ``docs/intel.md``.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

from ci_engine import ast as A
from ci_engine._dc import dataclass
from ci_engine.errors import UnsupportedForInputError, UnsupportedOperationError
from ci_engine.limits import Limits, current_budget
from ci_engine.types import BlindType

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ci_engine.plan.steps import Composite

__all__ = [
    "Extraction",
    "TILE",
    "PAYLOAD_BYTES",
    "CODE_BITS",
    "SYNC_CELLS",
    "STRENGTH",
    "MIN_SIDE",
    "payload_for_text",
    "fingerprint",
    "embed_pixels",
    "embed_patches",
    "extract_pixels",
    "status_of",
    "embed",
    "extract",
    "extraction_xml",
]

TILE = 128
CELL = 4
GRID = TILE // CELL
SYNC_CELLS = 256
PAYLOAD_BYTES = 12
CRC_BITS = 24
"""The check on the payload: the low 24 bits of its CRC-32 (a wrong decode passes with
probability 2^-24)."""
CONSTRAINT = 7
POLYNOMIALS = (0o171, 0o133)
"""The convolutional code: constraint length 7, rate 1/2, the generators of the NASA /
CCSDS standard code (free distance 10), decoded by soft-decision Viterbi."""
INFO_BITS = PAYLOAD_BYTES * 8 + CRC_BITS
CODE_BITS = (INFO_BITS + CONSTRAINT - 1) * len(POLYNOMIALS)
"""252 code bits for the 768 data cells of a tile (3 cells each, 12 of them 4)."""
SEED = 0x0C1_2026
MIN_SIDE = 256
"""Shorter side, in pixels, an image needs to carry a blind watermark (two tiles)."""
STRENGTH = {0: 2.0, 1: 2.2, 2: 2.3, 3: 2.4}
"""RMS of the added pattern, in grey levels, per ``level`` (no level: 3)."""
MIN_PSNR = 40.0
PRESENT, SUSPECTED = 75, 60


@dataclass(frozen=True, slots=True)
class Extraction:
    """What ``watermark/4`` found: the detection score ``z``, the ``status`` 0-100 and the
    decoded payload (``None`` when absent or undecodable)."""

    z: float
    status: int
    payload: bytes | None
    scale: float

    @property
    def text(self) -> str | None:
        """The type-3 text, or ``None`` ("no watermark")."""
        if self.payload is None:
            return None
        raw = self.payload.rstrip(b"\x00")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return None


class _Layout:
    def __init__(self) -> None:
        import numpy as np

        rng = np.random.default_rng(SEED)
        order = rng.permutation(GRID * GRID)
        self.sync = order[:SYNC_CELLS]
        self.data = order[SYNC_CELLS:]
        self.signs = rng.choice(np.array([-1.0, 1.0]), GRID * GRID)
        self.bit_of_cell = np.arange(len(self.data)) % CODE_BITS
        sync_cells = np.zeros(GRID * GRID)
        sync_cells[self.sync] = self.signs[self.sync]
        self.sync_tile = np.kron(sync_cells.reshape(GRID, GRID), np.ones((CELL, CELL)))
        self.sync_spectrum = np.conj(np.fft.rfft2(self.sync_tile))

    def tile(self, bits: NDArray[np.uint8]) -> NDArray[np.float64]:
        import numpy as np

        cells = self.signs.copy()
        cells[self.data] *= np.where(bits[self.bit_of_cell] > 0, 1.0, -1.0)
        tile: NDArray[np.float64] = np.kron(cells.reshape(GRID, GRID), np.ones((CELL, CELL)))
        return tile


_LAYOUT: _Layout | None = None


def _layout() -> _Layout:
    global _LAYOUT
    if _LAYOUT is None:
        _LAYOUT = _Layout()
    return _LAYOUT


def _crc(payload: bytes) -> int:
    import zlib

    return zlib.crc32(payload) & ((1 << CRC_BITS) - 1)


def _parity(value: int) -> int:
    return bin(value).count("1") & 1


class _Trellis:
    """The convolutional code's state machine: 64 states (the last 6 input bits), for each
    next state its two predecessors and the code bits (+-1) of the two transitions."""

    def __init__(self) -> None:
        import numpy as np

        states = 1 << (CONSTRAINT - 1)
        registers = (np.arange(states)[:, None] << 1) | np.arange(2)[None, :]  # (next state, lsb)
        self.previous = registers & (states - 1)
        self.outputs = np.stack(
            [np.vectorize(lambda r, g=g: 2.0 * _parity(int(r) & g) - 1.0)(registers) for g in POLYNOMIALS], axis=-1
        )
        self.states = states


_TRELLIS: _Trellis | None = None


def _trellis() -> _Trellis:
    global _TRELLIS
    if _TRELLIS is None:
        _TRELLIS = _Trellis()
    return _TRELLIS


def code_bits(payload: bytes) -> NDArray[np.uint8]:
    """The :data:`CODE_BITS` code bits of a payload: its bits and its CRC, convolutionally
    encoded (the encoder starts and, after 6 zero tail bits, ends in state 0)."""
    import numpy as np

    crc = _crc(payload).to_bytes(CRC_BITS // 8, "big")
    info = [int(b) for b in np.unpackbits(np.frombuffer(payload + crc, np.uint8))]
    state, out = 0, list[int]()
    for bit in info + [0] * (CONSTRAINT - 1):
        register = (bit << (CONSTRAINT - 1)) | state
        out.extend(_parity(register & g) for g in POLYNOMIALS)
        state = register >> 1
    return np.array(out, np.uint8)


def _viterbi(soft: NDArray[np.float64]) -> bytes:
    """The most likely payload + CRC bytes for the soft code bits (positive: 1)."""
    import numpy as np

    trellis = _trellis()
    rate = len(POLYNOMIALS)
    steps = len(soft) // rate
    metric = np.full(trellis.states, -np.inf)
    metric[0] = 0.0
    decisions = np.zeros((steps, trellis.states), np.int8)
    pairs = soft.reshape(steps, rate)
    for t in range(steps):
        branch = metric[trellis.previous] + trellis.outputs @ pairs[t]
        choice = np.argmax(branch, axis=1)
        decisions[t] = choice
        metric = branch[np.arange(trellis.states), choice]
    state, bits = 0, []
    for t in range(steps - 1, -1, -1):
        bits.append(state >> (CONSTRAINT - 2))
        state = ((state << 1) | int(decisions[t, state])) & (trellis.states - 1)
    info = np.array(bits[::-1][:INFO_BITS], np.uint8)
    return bytes(np.packbits(info))


def payload_for_text(text: str) -> bytes:
    """The payload of a type-3 text: its UTF-8 bytes, zero-padded.

    Raises:
        UnsupportedOperationError: more than :data:`PAYLOAD_BYTES` bytes, or a NUL.
    """
    raw = text.encode("utf-8")
    if len(raw) > PAYLOAD_BYTES or b"\x00" in raw or not raw:
        raise UnsupportedOperationError(
            f"watermark/3: ci_engine's blind watermark carries 1 to {PAYLOAD_BYTES} bytes of UTF-8 text "
            f"without NUL, got {len(raw)} bytes",
        )
    return raw.ljust(PAYLOAD_BYTES, b"\x00")


def fingerprint(mark: bytes) -> bytes:
    """The payload of an image mark: the mark in grey, reduced to 12 x 8 px (area
    average), each pixel 1 when brighter than the mean (a white-on-black mark, as CI
    recommends, gives its shape)."""
    import numpy as np
    from PIL import Image

    from ci_engine.errors import InvalidImageFormatError

    try:
        with Image.open(io.BytesIO(mark)) as img:
            img.load()
            grey = img.convert("L").resize((12, 8), Image.Resampling.BOX)
    except Exception as exc:  # Pillow raises several types for undecodable files
        raise InvalidImageFormatError("watermark: the mark image does not decode") from exc
    values = np.asarray(grey, np.float64)
    bits = (values > values.mean()).astype(np.uint8).ravel()
    return bytes(np.packbits(bits))


def _luma(pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
    import numpy as np

    if pixels.shape[2] in (1, 2):
        return pixels[..., 0].astype(np.float64)
    rgb = pixels[..., :3].astype(np.float64)
    luma: NDArray[np.float64] = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
    return luma


def _psnr(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    import numpy as np

    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * float(np.log10(255.0**2 / mse))


def embed_pixels(pixels: NDArray[np.uint8], payload: bytes, *, level: int | None = None) -> NDArray[np.uint8]:
    """``pixels`` (``(h, w, c)`` uint8) with ``payload`` embedded; the colour channels
    change, alpha does not.

    Raises:
        UnsupportedForInputError: shorter side below :data:`MIN_SIDE`.
    """
    import cv2
    import numpy as np

    if len(payload) != PAYLOAD_BYTES:
        raise ValueError(f"payload must be {PAYLOAD_BYTES} bytes, got {len(payload)}")
    height, width, channels = pixels.shape
    if min(height, width) < MIN_SIDE:
        raise UnsupportedForInputError(
            f"watermark/3: a blind watermark needs an image of at least {MIN_SIDE}x{MIN_SIDE} px, got {width}x{height}",
            op="watermark/3",
        )
    layout = _layout()
    tile = layout.tile(code_bits(payload))
    pattern = np.tile(tile, (height // TILE + 1, width // TILE + 1))[:height, :width]
    luma = _luma(pixels)
    mean = cv2.blur(luma, (9, 9))
    var = cv2.blur(luma * luma, (9, 9)) - mean * mean
    activity = np.sqrt(np.maximum(var, 0.0)) + 2.0
    mask = np.clip(activity / activity.mean(), 0.3, 3.0)
    delta = pattern * mask
    colours = 3 if channels >= 3 else 1
    opaque = np.ones((height, width), bool) if channels in (1, 3) else pixels[..., -1] == 255
    base = pixels[..., :colours].astype(np.float64)
    rms = STRENGTH[3 if level is None else level]
    delta *= rms / float(np.sqrt(np.mean(delta * delta)))
    for _ in range(8):
        marked = np.where(opaque[..., None], np.clip(np.rint(base + delta[..., None]), 0, 255), base)
        if _psnr(marked, base) >= MIN_PSNR + 0.05:
            break
        delta *= 0.95
    out = pixels.copy()
    out[..., :colours] = marked.astype(np.uint8)
    return out


def embed_patches(pixels: NDArray[np.uint8], payload: bytes, *, level: int | None = None) -> list[Composite]:
    """:func:`embed_pixels` as ``composite`` steps for the backends (one opaque overlay
    over the opaque pixels; transparent ones are not touched)."""
    import numpy as np

    from ci_engine.intel.pixels import patch

    marked = embed_pixels(pixels, payload, level=level)
    channels = pixels.shape[2]
    colours = marked[..., :3] if channels >= 3 else marked[..., :1]
    alpha = None if channels in (1, 3) else np.where(pixels[..., -1] == 255, 255, 0).astype(np.uint8)
    return [patch(0, 0, colours, alpha=alpha)]


def _residual(luma: NDArray[np.float64]) -> NDArray[np.float64]:
    import cv2
    import numpy as np

    grey = np.clip(np.rint(luma), 0, 255).astype(np.uint8)
    r = luma - cv2.medianBlur(grey, 5).astype(np.float64)
    sd = np.sqrt(cv2.GaussianBlur(r * r, (0, 0), 1)) + 1.0
    out: NDArray[np.float64] = r / sd
    return out - float(out.mean())


def _period(residual: NDArray[np.float64]) -> float:
    import numpy as np

    spectrum = np.fft.rfft2(residual)
    auto = np.fft.irfft2(np.abs(spectrum), s=residual.shape)
    height, width = residual.shape
    high = min(height, width) // 2 + 1  # a lag of half the side: two periods in the image
    if high <= 41:
        return float(TILE)
    lags = np.arange(40, high)
    score = auto[0, lags] + auto[lags, 0]
    best = int(lags[int(np.argmax(score))])
    half = round(best / 2)  # the peak at twice the period can be the higher one
    if half >= 40 and max(auto[0, p] + auto[p, 0] for p in (best // 2, half)) > 0.6 * score.max():
        best = max((best // 2, half), key=lambda p: float(auto[0, p] + auto[p, 0]))

    def at(p: int) -> float:
        return float(auto[0, p] + auto[p, 0])

    if best + 1 >= high:
        return float(best)
    den = at(best - 1) - 2 * at(best) + at(best + 1)
    return best + (0.5 * (at(best - 1) - at(best + 1)) / den if den != 0 else 0.0)


def status_of(z: float) -> int:
    """``WatermarkStatus`` 0-100 of a detection score."""
    return int(max(0, min(100, round(25 * (z - 4)))))


def extract_pixels(
    pixels: NDArray[np.uint8], *, original: NDArray[np.uint8] | None = None
) -> tuple[Extraction, NDArray[np.float64]]:
    """Look for a mark in ``pixels``; also return the soft code bits (for type 2's
    comparison with a known mark). ``original`` (type 1): the unmarked image; used when
    it has the suspect's size."""
    import cv2
    import numpy as np

    layout = _layout()
    luma = _luma(pixels)
    residual: NDArray[np.float64]
    if original is not None and original.shape[:2] == pixels.shape[:2]:
        difference = luma - _luma(original)
        sd = np.sqrt(cv2.GaussianBlur(difference * difference, (0, 0), 4)) + 0.5
        residual = difference / sd
    else:
        residual = _residual(luma)
    period = _period(residual)
    z, folded, shift = _fold(residual, period)
    if status_of(z) < SUSPECTED and min(residual.shape) < 4 * TILE:
        # the autocorrelation can miss the period when the image holds only two or three
        # tiles a side (a small image, or one halved): the scales 1 and 0.5 are tried too
        for other in (float(TILE), TILE / 2, period / 2):
            if abs(other - period) > 1 and other >= 32:
                found = _fold(residual, other)
                if found[0] > z:
                    (z, folded, shift), period = found, other
    aligned = np.roll(folded, (-shift[0], -shift[1]), axis=(0, 1))
    cells = aligned.reshape(GRID, CELL, GRID, CELL).sum(axis=(1, 3)).ravel()
    soft = np.zeros(CODE_BITS)
    np.add.at(soft, layout.bit_of_cell, layout.signs[layout.data] * cells[layout.data])
    status = status_of(z)
    payload = _decode(soft) if status >= SUSPECTED else None
    return Extraction(z, status, payload, period / TILE), soft


def _fold(residual: NDArray[np.float64], period: float) -> tuple[float, NDArray[np.float64], tuple[int, int]]:
    """Rescale ``residual`` so that ``period`` becomes :data:`TILE`, fold every tile into
    one and find the sync pattern's shift: the detection score ``z``, the folded tile and
    the shift (rows, columns)."""
    import cv2
    import numpy as np

    scale = TILE / period
    height, width = residual.shape
    if abs(scale - 1) > 0.004:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        residual = np.asarray(cv2.resize(residual, size, interpolation=cv2.INTER_LINEAR), np.float64)
        height, width = residual.shape
    rows, cols = -(-height // TILE), -(-width // TILE)
    padded = np.zeros((rows * TILE, cols * TILE))
    padded[:height, :width] = residual
    folded: NDArray[np.float64] = padded.reshape(rows, TILE, cols, TILE).sum(axis=(0, 2))
    correlation = np.fft.irfft2(np.fft.rfft2(folded) * _layout().sync_spectrum, s=(TILE, TILE))
    spread = float(correlation.std())
    z = 0.0 if spread == 0 else float((correlation.max() - correlation.mean()) / spread)
    dy, dx = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    return z, folded, (int(dy), int(dx))


def _decode(soft: NDArray[np.float64]) -> bytes | None:
    """The payload when the Viterbi decoding's CRC checks, else ``None``."""
    decoded = _viterbi(soft)
    payload, crc = decoded[:PAYLOAD_BYTES], int.from_bytes(decoded[PAYLOAD_BYTES:], "big")
    return payload if _crc(payload) == crc else None


# -- bytes in, bytes out ----------------------------------------------------------------------------


def _mark_payload(step: A.BlindWatermark | A.ExtractBlindWatermark, resolver: Any) -> bytes:
    if step.type is BlindType.TEXT:
        assert step.text is not None
        return payload_for_text(step.text)
    assert step.image is not None
    return fingerprint(resolver.fetch(step.image))


EMBED_PASSES = 16
"""Pixels of work charged per pixel for embedding (float64 luma, activity mask, pattern and
up to 8 strength adjustments), besides the decode and the encode."""
EXTRACT_PASSES = 12
"""Pixels of work charged per pixel for an extraction (residual, two FFTs, resize, fold)."""


def embed(data: bytes, step: A.BlindWatermark, *, backend: str = "auto", **run: Any) -> Any:
    """Run ``step`` (``watermark/3``) on the image ``data`` after ``run["pipeline"]`` (the
    steps before it) and return the :class:`~ci_engine.api.Result`, in the plan's format.
    ``run`` takes :func:`ci_engine.intel.pixels.decode`'s keywords; ``resources`` resolves
    the mark image of types 1 and 2."""
    from ci_engine.intel.pixels import decode, finish
    from ci_engine.watermark.resources import as_resolver

    payload = _mark_payload(step, as_resolver(run.get("resources")))
    decoded = decode(data, backend=backend, passes=EMBED_PASSES, encode=True, what="watermark/3: embedding", **run)
    if decoded.resolved.frames > 1:
        raise UnsupportedForInputError("watermark/3: not for animated images", op="watermark/3", span=step.span)
    return finish(decoded, embed_patches(decoded.pixels, payload, level=step.level))


def extract(
    data: bytes, step: A.ExtractBlindWatermark, *, backend: str = "auto", **run: Any
) -> tuple[Extraction, bytes | None]:
    """Run ``step`` (``watermark/4``) on ``data`` (after ``run["pipeline"]``): the
    extraction, and for types 1 and 2 the recovered mark as a PNG (the bits as read when the
    code does not decode: the status says whether a mark is there).
    Type 2's status also requires the recovered bits to match the given mark (a different
    mark scores below 60); type 1 uses the original image given by ``image``."""
    import numpy as np

    from ci_engine.intel.pixels import decode
    from ci_engine.watermark.resources import as_resolver

    decoded = decode(data, backend=backend, passes=EXTRACT_PASSES, what="watermark/4: extracting", **run)
    resolver = as_resolver(run.get("resources"))
    original = None
    expected = None
    if step.type is BlindType.SEMI_BLIND:
        assert step.image is not None
        original_data = resolver.fetch(step.image)
        current_budget(run.get("limits") or Limits()).charge_bytes(len(original_data), "watermark/4: the original")
        original = decode(
            original_data, backend=backend, limits=run.get("limits"), passes=1, what="watermark/4: the original"
        ).pixels
    elif step.type is BlindType.BLIND:
        expected = fingerprint(resolver.fetch(step.image or ""))
    found, soft = extract_pixels(decoded.pixels, original=original)
    if expected is not None:
        want = code_bits(expected).astype(bool)
        agreement = float(np.mean((soft > 0) == want))
        if found.payload != expected and agreement < 0.8:
            found = Extraction(found.z, min(found.status, SUSPECTED - 1), None, found.scale)
    if step.type is BlindType.TEXT:
        if found.text is None:
            found = Extraction(found.z, min(found.status, SUSPECTED - 1), None, found.scale)
        return found, None
    if found.payload is None:  # what the image holds, as read: CI writes the recovered image anyway
        return found, _mark_png(_viterbi(soft)[:PAYLOAD_BYTES])
    return found, _mark_png(found.payload)


def _mark_png(payload: bytes) -> bytes:
    import numpy as np
    from PIL import Image

    bits = np.unpackbits(np.frombuffer(payload, np.uint8))[:96].reshape(8, 12)
    image = Image.fromarray((bits * 255).astype(np.uint8), "L").resize((192, 128), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def extraction_xml(step: A.ExtractBlindWatermark, found: Extraction, mark_png: bytes | None) -> bytes:
    """ci_engine's answer to ``watermark/4`` outside a ``Pic-Operations`` request: a
    ``<Response>`` with the fields CI puts in ``ProcessResults`` (type 3: ``Text``, empty
    when there is no watermark, and ``WatermarkStatus``; types 1 and 2:
    ``WatermarkStatus`` and the recovered mark as a Base64 PNG in ``ResultImage``)."""
    from ci_engine.intel._xml import response

    children: list[tuple[str, Any]] = []
    if step.type is BlindType.TEXT:
        children.append(("Text", found.text or ""))
    children.append(("WatermarkStatus", found.status))
    if mark_png is not None:
        children.append(("ResultImage", base64.b64encode(mark_png).decode("ascii")))
    return response(children)
