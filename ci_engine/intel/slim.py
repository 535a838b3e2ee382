"""``imageSlim``: the same format, a smaller file, no visible change (``extras.md`` section 3).

Candidates are judged by SSIM against the input (Gaussian window, sigma 1.5, the standard
constants) on the luminance and on alpha when there is one, and accepted only at
:data:`MIN_SSIM` or more; a candidate that coarsens the chroma must also keep each chroma
plane at :data:`MIN_CHROMA_SSIM`. During the search a large image (over 2 MP) is judged on
16 tiles of 256 x 256 px spread over it; the smallest candidate that then passes on the
whole image at full resolution wins; when none is smaller than the input, the input bytes come
back unchanged (``X-Slimflag: 2``), never a larger file.

* **JPEG**: re-encoded with optimised Huffman tables and a progressive scan order, EXIF and
  ICC profile kept. The luminance quality is the lowest in 30 .. min(q0, 95) (``q0`` the
  input's estimated quality) whose luminance SSIM passes, found by bisection (SSIM grows
  with the quality); at that quality, the input's chroma subsampling, 4:2:0, and chroma
  tables 15 or 30 quality steps coarser are tried, each kept only when the SSIM of Cb and
  Cr passes :data:`MIN_CHROMA_SSIM` too (the better quantisation choice: colour detail is where photographs hide
  the most bits the eye does not miss).
* **PNG**: lossless recompression (libvips: zlib level 9 with every row filter tried;
  Pillow's ``optimize`` when libvips is absent or ``backend="pillow"``), and a 256-colour
  palette (libimagequant through libvips; on Pillow libimagequant when built in, else
  median cut / fast octree; no dithering) only where it passes the SSIM bound, i.e. where
  it is visually lossless (graphics, screenshots; rarely photographs).
* **WebP**: a lossless file is re-encoded losslessly at the slowest, densest setting; a
  lossy one gets the JPEG treatment (quality bisection, method 6).
* Other formats (GIF, BMP, HEIF, AVIF, TIFF) come back unchanged (``X-Slimflag: 2``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ci_engine._dc import dataclass
from ci_engine.errors import InvalidImageFormatError
from ci_engine.limits import Limits, current_budget

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["Slimmed", "slim", "ssim", "MIN_SSIM", "COMPRESSED", "NOT_COMPRESSED"]

MIN_SSIM = 0.985
"""Lowest luminance SSIM against the input a slimmed image may have (the issue asks for
0.98; the margin absorbs the difference between SSIM implementations)."""
MIN_CHROMA_SSIM = 0.95
"""Lowest SSIM of each chroma plane (Cb, Cr) when the chroma is coarsened beyond what the
luminance quality implies (4:2:0 from 4:4:4, coarser chroma tables): a guard against
visible colour damage on top of the luminance bound."""
COMPRESSED, NOT_COMPRESSED = 1, 2
"""``X-Slimflag`` values (CI: 0 failed, 1 compressed, 2 not compressed, original returned)."""


@dataclass(frozen=True, slots=True)
class Slimmed:
    """The output of :func:`slim`: its bytes, format, ``X-Slimflag`` and SSIM (1.0 when the
    input came back)."""

    data: bytes
    format: str
    flag: int
    ssim: float


def ssim(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004; Gaussian window sigma 1.5,
    K1 = 0.01, K2 = 0.03, L = 255)."""
    import cv2
    import numpy as np

    x = a.astype(np.float32)
    y = b.astype(np.float32)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(v: Any) -> Any:
        return cv2.GaussianBlur(v, (0, 0), 1.5)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cov = blur(x * y) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(index.mean())


Planes = tuple[Any, Any | None, Any | None]


_SAMPLE_ABOVE = 2_000_000
"""Images with more pixels than this are searched on a mosaic of tiles (:class:`_View`) and
the winner is checked on another mosaic of the whole encoding; smaller ones on the whole image."""
_TILE = 256
_MOSAIC_GRID = 8
_MOSAIC_TILE = 96
"""The search mosaic: an 8 x 8 grid of 96 x 96 px tiles (0.59 MP), each cut at a multiple of
16 px (the JPEG MCU) so its blocks are quantised as in the whole image."""
MAX_SEARCH = 6
"""Encodes of the quality bisection at most (on the mosaic)."""
MAX_FINAL = 2
"""Full-size encodes at most: the best candidate, then the next when it fails the check."""


def work(width: int, height: int) -> int:
    """Pixels of work charged for slimming a ``width`` x ``height`` image: the decode and
    reference planes (2 passes), :data:`MAX_FINAL` full-size encodes each decoded and scored
    (3 passes each), and the search: :data:`MAX_SEARCH` + 4 encodes of the search image (the
    whole image up to 2 MP, else the 0.59 MP mosaic), each decoded and scored."""
    pixels = width * height
    search = pixels if pixels <= _SAMPLE_ABOVE else (_MOSAIC_GRID * _MOSAIC_TILE) ** 2
    return pixels * (2 + 3 * MAX_FINAL) + search * 3 * (MAX_SEARCH + 4)


@dataclass(frozen=True, slots=True)
class _View:
    """What a candidate is judged on: the whole image when small, else a ``grid`` x ``grid``
    mosaic of ``tile`` px tiles spread over it (each centred in its cell, cut at a multiple
    of 16 px)."""

    grid: int
    tile: int
    whole: bool

    @staticmethod
    def of(size: tuple[int, int], grid: int, tile: int) -> _View:
        width, height = size
        return _View(grid, tile, width * height <= _SAMPLE_ABOVE or min(width, height) < grid * tile)

    def __call__(self, image: Any) -> Any:
        from PIL import Image

        if self.whole:
            return image
        width, height = image.size
        grid, tile = self.grid, self.tile
        out = Image.new(image.mode, (grid * tile, grid * tile))
        for row in range(grid):
            for col in range(grid):
                top = max(0, ((2 * row + 1) * height // (2 * grid) - tile // 2) // 16 * 16)
                left = max(0, ((2 * col + 1) * width // (2 * grid) - tile // 2) // 16 * 16)
                out.paste(image.crop((left, top, left + tile, top + tile)), (col * tile, row * tile))
        return out

    def ssim(self, a: Any, b: Any) -> float:
        """Mean SSIM of two planes of this view's image (a mosaic is judged whole: both
        sides hold the same seams, and each tile's blocks are its own)."""
        return ssim(a, b)


WHOLE = _View(0, 0, True)


def _planes_of(img: Any) -> Planes:
    """Luminance, chroma (``(Cb, Cr)`` or ``None`` for grey) and alpha (or ``None``) of a
    decoded PIL image."""
    import numpy as np

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    alpha = np.asarray(img.getchannel("A")) if "A" in img.getbands() else None
    if img.mode in ("L", "LA", "I", "I;16", "1"):
        return np.asarray(img.convert("L")), None, alpha
    y, cb, cr = (np.asarray(band) for band in img.convert("RGB").convert("YCbCr").split())
    return y, (cb, cr), alpha


def _score(
    reference: Planes, candidate: bytes, *, chroma: bool = False, view: _View = WHOLE, cut: bool = False
) -> float:
    """The lowest SSIM over luminance and alpha; with ``chroma``, 0 unless both chroma
    planes score :data:`MIN_CHROMA_SSIM` or more. ``reference``: the planes of ``view``'s
    image; ``cut``: ``candidate`` is the whole image, cut to ``view`` here (else it is an
    encoding of ``view``'s image itself)."""
    from PIL import Image

    with Image.open(io.BytesIO(candidate)) as opened:
        opened.load()
        luma, colour, alpha = _planes_of(view(opened) if cut else opened)
    if luma.shape != reference[0].shape:
        return 0.0
    value = view.ssim(reference[0], luma)
    if chroma and reference[1] is not None and value >= MIN_SSIM:
        if colour is None:
            return 0.0
        worst = min(view.ssim(reference[1][0], colour[0]), view.ssim(reference[1][1], colour[1]))
        if worst < MIN_CHROMA_SSIM:
            return 0.0
    if reference[2] is not None and value >= MIN_SSIM:
        if alpha is None:
            return 0.0
        value = min(value, view.ssim(reference[2], alpha))
    return value


@dataclass(frozen=True, slots=True)
class Candidate:
    """A passing setting found on the search image: its encoded size there (the ranking),
    whether it coarsens the chroma (judged on chroma too), and how to encode the whole image."""

    size: int
    chroma: bool
    encode: Callable[[], bytes]


Encoder = Callable[[Any, int], bytes]
"""Encode a PIL image at a quality."""


def _bisect(encode: Encoder, search: Any, reference: Planes, view: _View, low: int, high: int) -> list[tuple[int, int]]:
    """(size on ``search``, quality) of every quality the bisection for the lowest passing
    one in ``low..high`` found passing, at most :data:`MAX_SEARCH` encodes, lowest first."""
    passing: list[tuple[int, int]] = []
    for _ in range(MAX_SEARCH):
        if low > high:
            break
        mid = (low + high) // 2
        data = encode(search, mid)
        if _score(reference, data, view=view) >= MIN_SSIM:
            passing.append((len(data), mid))
            high = mid - 1
        else:
            low = mid + 1
    return sorted(passing, key=lambda item: item[1])


_LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip
_CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32),
)  # fmt: skip


def _table(base: tuple[int, ...], quality: int) -> list[int]:
    """The JPEG standard (Annex K) table scaled to ``quality`` as libjpeg does."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [max(1, min(255, (value * scale + 50) // 100)) for value in base]


def _jpeg(img: Any, sampling: int, quality: int | None) -> list[Candidate]:
    """``img``: the decoded input (its ``info`` holds EXIF and ICC profile); ``sampling``:
    its chroma subsampling as Pillow numbers it (-1 unknown)."""
    if img.mode not in ("L", "RGB"):
        return []  # CMYK and other modes: left alone
    extra: dict[str, Any] = {}
    for key in ("exif", "icc_profile"):
        if img.info.get(key):
            extra[key] = img.info[key]
    colour = img.mode == "RGB"

    def encoder(subsampling: int, chroma_quality: Callable[[int], int], final: bool = False) -> Encoder:
        def encode(image: Any, q: int) -> bytes:
            buf = io.BytesIO()
            # the search's sizes rank candidates only: Huffman optimisation everywhere (its
            # sizes follow the final ones), the progressive scan order and metadata at the end
            options: dict[str, Any] = dict(optimize=True, **(dict(progressive=True, **extra) if final else {}))
            if colour:
                options["qtables"] = [_table(_LUMA_TABLE, q), _table(_CHROMA_TABLE, chroma_quality(q))]
                options["subsampling"] = subsampling
            else:
                options["qtables"] = [_table(_LUMA_TABLE, q)]
            image.save(buf, "JPEG", **options)
            return buf.getvalue()

        return encode

    view = _View.of(img.size, _MOSAIC_GRID, _MOSAIC_TILE)
    search = view(img)
    reference = _planes_of(search)
    top = min(95, quality or 90)
    same = sampling if sampling >= 0 else 2
    # 1. the luminance quality, judged on luminance alone (the chroma tables follow it)
    passing = _bisect(encoder(same, lambda q: q), search, reference, view, 30, top)
    if not passing:
        return []

    def final(subsampling: int, offset: int, q: int) -> Callable[[], bytes]:
        return lambda: encoder(subsampling, lambda lq: max(30, lq - offset), final=True)(img, q)

    out = [Candidate(size, False, final(same, 0, q)) for size, q in passing]
    q = passing[0][1]
    # 2. at that quality, coarser chroma, most aggressive first: the first that passes
    #    (4:2:0 and chroma tables 30, then 15 quality steps coarser; the input's sampling)
    variants = [] if not colour else [(2, 30), (2, 15), (same, 15), (2, 0)]
    for subsampling, offset in dict.fromkeys(v for v in variants if v != (same, 0)):
        candidate = encoder(subsampling, lambda lq, o=offset: max(30, lq - o))(search, q)  # type: ignore[misc]
        if _score(reference, candidate, chroma=True, view=view) >= MIN_SSIM:
            out.append(Candidate(len(candidate), True, final(subsampling, offset, q)))
            break
    return out


def _palette_may_pass(img: Any) -> bool:
    """Whether a 256-colour palette may pass the SSIM bound: one of a 4 x 4 mosaic of 64 px
    tiles (64 k pixels; fewer colours than the whole image, so an easier test) must pass
    first. Quantising the whole image costs seconds per megapixel (libimagequant); a
    photograph fails here in milliseconds."""
    from PIL import Image

    if img.mode not in ("RGB", "RGBA", "P", "L", "LA"):
        return True
    view = _View(4, 64, min(img.size) < 256)
    sample = view(img.convert("RGBA" if "A" in img.getbands() or img.mode == "P" else "RGB"))
    method = Image.Quantize.FASTOCTREE if sample.mode == "RGBA" else Image.Quantize.MEDIANCUT
    quantised = sample.quantize(256, method=method, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    quantised.save(buf, "PNG", compress_level=1)
    return _score(_planes_of(sample), buf.getvalue(), view=view) >= MIN_SSIM


def _png(data: bytes, img: Any, reference: Planes, view: _View, backend: str) -> list[Candidate]:
    encoded = _png_encodings(data, reference, view, backend, try_palette=_palette_may_pass(img))
    return [Candidate(len(blob), chroma, lambda blob=blob: blob) for blob, chroma in encoded]  # type: ignore[misc]


def _png_encodings(
    data: bytes, reference: Planes, view: _View, backend: str, *, try_palette: bool = True
) -> list[tuple[bytes, bool]]:
    out: list[tuple[bytes, bool]] = []
    vips = None
    if backend != "pillow":
        try:
            import pyvips

            vips = pyvips.Image.new_from_buffer(data, "")
        except Exception:  # pyvips missing or unable to load: Pillow below
            vips = None
    if vips is not None:
        lossless = vips.pngsave_buffer(compression=9, filter="all", effort=10)
        out.append((lossless, False))
        palette = None
        if try_palette:
            try:
                palette = vips.pngsave_buffer(compression=9, palette=True, Q=100, dither=0.0, effort=7)
            except Exception:  # built without a quantiser
                palette = None
        if (
            palette is not None
            and len(palette) < len(lossless)
            and _score(reference, palette, view=view, cut=True) >= MIN_SSIM
        ):
            out.append((palette, True))
        return out
    from PIL import Image, features

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        buf = io.BytesIO()
        extra = {k: img.info[k] for k in ("icc_profile", "transparency") if k in img.info}
        img.save(buf, "PNG", optimize=True, **extra)
        out.append((buf.getvalue(), False))
        if try_palette and img.mode in ("RGB", "RGBA"):
            if features.check_feature("libimagequant"):
                method = Image.Quantize.LIBIMAGEQUANT
            else:
                method = Image.Quantize.FASTOCTREE if img.mode == "RGBA" else Image.Quantize.MEDIANCUT
            quantised = img.quantize(256, method=method, dither=Image.Dither.NONE)
            buf = io.BytesIO()
            quantised.save(buf, "PNG", optimize=True, **{k: v for k, v in extra.items() if k == "icc_profile"})
            palette = buf.getvalue()
            if len(palette) < len(out[0][0]) and _score(reference, palette, view=view, cut=True) >= MIN_SSIM:
                out.append((palette, True))
    return out


def _webp(data: bytes, img: Any, quality: int | None) -> list[Candidate]:
    lossless = b"VP8L" in data[12:16] or b"VP8L" in data[:4096]
    if getattr(img, "n_frames", 1) > 1:
        return []
    extra = {k: img.info[k] for k in ("exif", "icc_profile") if img.info.get(k)}
    if lossless:
        buf = io.BytesIO()
        img.save(buf, "WEBP", lossless=True, quality=100, method=6, **extra)
        blob = buf.getvalue()
        return [Candidate(len(blob), False, lambda: blob)]

    def encode(image: Any, q: int) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "WEBP", quality=q, method=6, **extra)
        return buf.getvalue()

    view = _View.of(img.size, _MOSAIC_GRID, _MOSAIC_TILE)
    search = view(img)
    passing = _bisect(encode, search, _planes_of(search), view, 30, min(95, quality or 90))
    return [Candidate(size, False, lambda q=q: encode(img, q)) for size, q in passing]  # type: ignore[misc]


def slim(data: bytes, *, backend: str = "auto", quality: int | None = None, limits: Limits | None = None) -> Slimmed:
    """Slim the image ``data``. ``quality``: the input's estimated quality (``q0``), the
    upper end of the search (probed when ``None``). The work (:func:`work`) is charged to
    the request's budget before any decode.

    Raises:
        InvalidImageFormatError: ``data`` is not a decodable image.
        ImageResolutionExceedError: over ``limits`` or the request's work budget.
    """
    from ci_engine.io import probe

    limits = limits or Limits()
    header = probe(data, limits=limits)
    fmt = header.format.value
    if quality is None:
        quality = header.quality
    if fmt not in ("jpeg", "png", "webp") or header.frames > 1:
        return Slimmed(data, fmt, NOT_COMPRESSED, 1.0)
    current_budget(limits).charge_pixels(work(header.width, header.height), "imageSlim: the search")
    from PIL import Image

    sampling = -1
    try:  # one decode: the reference planes and the image every candidate is encoded from
        img = Image.open(io.BytesIO(data))
        img.load()  # keeps info (EXIF, ICC profile)
        if fmt == "jpeg":
            from PIL import JpegImagePlugin

            sampling = JpegImagePlugin.get_sampling(img)
        check = _View.of(img.size, 4, _TILE)  # the final check's view (the search saw other tiles)
        reference = _planes_of(check(img))
    except Exception as exc:  # Pillow raises several types for a damaged file
        raise InvalidImageFormatError(f"imageSlim: the {fmt} image does not decode") from exc
    if fmt == "jpeg":
        candidates = _jpeg(img, sampling, quality)
    elif fmt == "png":
        candidates = _png(data, img, reference, check, backend)
    else:
        candidates = _webp(data, img, quality)
    tried = 0
    for candidate in sorted(candidates, key=lambda c: c.size):
        if tried == MAX_FINAL:
            break
        encoded = candidate.encode()
        tried += 1
        if len(encoded) >= len(data):
            continue
        score = _score(reference, encoded, chroma=candidate.chroma, view=check, cut=True)
        if score >= MIN_SSIM:
            return Slimmed(encoded, fmt, COMPRESSED, score)
    return Slimmed(data, fmt, NOT_COMPRESSED, 1.0)
