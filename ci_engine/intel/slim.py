"""``imageSlim``: the same format, a smaller file, no visible change (``extras.md`` section 3).

A candidate is accepted only when it keeps :data:`MIN_SSIM` (the issue's 0.98) against the
input on the **whole image**, under both common SSIM windows (:func:`similarity`: the
Gaussian window of Wang et al., sigma 1.5, and the 7 x 7 uniform window of scikit-image's
default), on the luminance and on alpha when there is one; a candidate that coarsens the
chroma must also keep each chroma plane at :data:`MIN_CHROMA_SSIM`. The search for the
setting runs on the whole image up to 2 MP and on a 0.59 MP mosaic of 8 x 8 tiles spread
over a larger one; the smallest setting found is then encoded at full size and checked on
the whole image, stepping the quality up when the check fails (at most :data:`MAX_FINAL`
full-size encodes in all). When no passing candidate is smaller than the input, the input bytes come
back unchanged (``X-Slimflag: 2``), never a larger file.

* **JPEG** (libvips, whose bundled libjpeg is mozjpeg): trellis quantisation, optimised
  Huffman tables, a progressive scan order, EXIF, ICC profile and the other metadata kept.
  Two quantisation tables are searched, the JPEG standard's (Annex K) and the one tuned for
  MS-SSIM (libvips ``quant_table`` 2), each with its quality bisected. Chroma is subsampled
  4:2:0 (kept at 4:4:4 when that would drop a chroma plane of a 4:4:4 or 4:2:2 input below
  :data:`MIN_CHROMA_SSIM`). Pillow's candidates compete with these (and are the only ones
  without libvips or with ``backend="pillow"``): the Annex K tables, the luminance quality
  bisected, then chroma 4:2:0 and chroma tables 15 or 30 quality steps coarser tried at that
  quality (libvips cannot set the chroma quality apart; inputs already at q70-90 gain from
  it). Up to 8 MP the two best candidates are both encoded at full size and the smaller
  passing one kept, then a lower quality tried (:attr:`Candidate.lower`).
* **PNG**: lossless recompression (libvips: zlib level 9 with every row filter tried;
  Pillow's ``optimize`` when libvips is absent or ``backend="pillow"``), and a 256-colour
  palette (libimagequant through libvips; on Pillow libimagequant when built in, else
  median cut / fast octree; no dithering) only where it passes the SSIM bound on the whole
  image, i.e. where it is visually lossless (graphics, smooth artwork; rarely photographs).
* **WebP**: a lossless file is re-encoded losslessly at the slowest, densest setting; a
  lossy one gets its quality bisected (method 6).
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

__all__ = ["Slimmed", "slim", "ssim", "ssim_box", "similarity", "MIN_SSIM", "COMPRESSED", "NOT_COMPRESSED"]

MIN_SSIM = 0.98
"""Lowest SSIM of the luminance (and alpha) against the input a slimmed image may have, on
the whole image and under both windows of :func:`similarity` (the issue's bound)."""
SEARCH_MARGIN = 0.002
"""Added to :data:`MIN_SSIM` while searching on a mosaic (a sample of a large image): the
whole-image check then passes at the first try more often."""
MIN_CHROMA_SSIM = 0.95
"""Lowest SSIM of each chroma plane (Cb, Cr) when the chroma is coarsened beyond what the
luminance quality implies (4:2:0 from 4:4:4 or 4:2:2, coarser chroma tables): a guard against
visible colour damage on top of the luminance bound."""
_ROUNDING = 0.0002
"""Added to :data:`MIN_SSIM` in the whole-image check: the SSIM here is computed in float32,
so an independent float64 implementation may read up to ~1e-5 lower."""
COMPRESSED, NOT_COMPRESSED = 1, 2
"""``X-Slimflag`` values (CI: 0 failed, 1 compressed, 2 not compressed, original returned)."""


@dataclass(frozen=True, slots=True)
class Slimmed:
    """The output of :func:`slim`: its bytes, format, ``X-Slimflag`` and SSIM (the lower of
    :func:`similarity`'s two windows; 1.0 when the input came back)."""

    data: bytes
    format: str
    flag: int
    ssim: float


_Blur = Callable[[Any], Any]


def _gaussian(v: Any) -> Any:
    import cv2

    return cv2.GaussianBlur(v, (0, 0), 1.5)


def _uniform(v: Any) -> Any:
    import cv2

    return cv2.blur(v, (7, 7))


_STRIP = 256
_HALO = 8
"""The SSIM maps are computed in strips of 256 rows (plus 8 rows either side, more than the
Gaussian's 6 px and the uniform window's 3 px reach): the same mean as on the whole image,
in a few tens of MB whatever the image's height."""


def _ssims(a: NDArray[Any], b: NDArray[Any], windows: tuple[tuple[_Blur, int], ...]) -> list[float]:
    """Mean SSIM of ``a`` and ``b`` under each (blur, border trimmed) window; the products
    are computed once for all windows, in float32, strip by strip (:data:`_STRIP`)."""
    import numpy as np

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    height, width = a.shape
    totals = [0.0] * len(windows)
    counts = [0] * len(windows)
    for top in range(0, height, _STRIP):
        bottom = min(height, top + _STRIP)
        low, high = max(0, top - _HALO), min(height, bottom + _HALO)
        x = a[low:high].astype(np.float32)
        y = b[low:high].astype(np.float32)
        xx, yy, xy = x * x, y * y, x * y
        for i, (blur, trim) in enumerate(windows):
            mx, my = blur(x), blur(y)
            mxy = mx * my
            num = (2 * mxy + c1) * (2 * (blur(xy) - mxy) + c2)
            mx *= mx
            my *= my
            den = (mx + my + c1) * (blur(xx) - mx + blur(yy) - my + c2)
            index = (num / den)[top - low : bottom - low]
            if trim and min(height, width) > 2 * trim:  # the windows that fit inside the image
                first, last = max(0, trim - top), (bottom - top) - max(0, bottom - (height - trim))
                index = index[first:last, trim : width - trim]
            totals[i] += float(index.sum(dtype=np.float64))
            counts[i] += index.size
    return [total / count for total, count in zip(totals, counts, strict=True)]


def ssim(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004; Gaussian window sigma 1.5,
    K1 = 0.01, K2 = 0.03, L = 255)."""
    return _ssims(a, b, ((_gaussian, 0),))[0]


def ssim_box(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Mean SSIM of two single-channel images with a 7 x 7 uniform window over the windows
    that fit inside the image (scikit-image's ``structural_similarity`` default)."""
    return _ssims(a, b, ((_uniform, 3),))[0]


def similarity(a: NDArray[Any], b: NDArray[Any]) -> float:
    """The lower of :func:`ssim` and :func:`ssim_box`: the bound holds whichever of the two
    usual implementations measures it (they differ by up to ~0.003 near 0.98, the uniform
    window being harsher on smooth areas)."""
    return min(_ssims(a, b, ((_gaussian, 0), (_uniform, 3))))


Planes = tuple[Any, Any | None, Any | None]


_SAMPLE_ABOVE = 2_000_000
"""Images with more pixels than this are searched on a mosaic of tiles (:class:`_View`);
smaller ones on the whole image. Every output is checked on the whole image."""
_MOSAIC_GRID = 8
_MOSAIC_TILE = 96
"""The search mosaic: an 8 x 8 grid of 96 x 96 px tiles (0.59 MP), each cut at a multiple of
16 px (the JPEG MCU) so its blocks are quantised as in the whole image."""
MAX_SEARCH = 6
"""Encodes of one quality bisection at most (on the search image)."""
MAX_FINAL = 4
"""Full-size encodes at most: the best candidates (a higher quality when one fails the
whole-image check), then a lower quality (:attr:`Candidate.lower`)."""
_LOWER_UP_TO = 8_000_000
"""Images of up to this many pixels get :attr:`Candidate.lower` (another mosaic bisection,
full-size encode and whole-image check: seconds on a larger image, for a few per cent)."""
_STEPS = (0, 2, 5)
"""Quality steps above the one the search found, tried at full size in turn."""


def work(width: int, height: int) -> int:
    """Pixels of work charged for slimming a ``width`` x ``height`` image: the decode and
    reference planes (2 passes), :data:`MAX_FINAL` full-size encodes each decoded and scored
    under two windows (4 passes each), and the search: 2 x :data:`MAX_SEARCH` + 4 encodes of
    the search image (the whole image up to 2 MP; else the 0.59 MP mosaic, and another
    bisection there for the lower quality), each decoded and scored."""
    pixels = width * height
    if pixels <= _SAMPLE_ABOVE:
        return pixels * (2 + 4 * MAX_FINAL) + pixels * 4 * (2 * MAX_SEARCH + 4)
    search = (_MOSAIC_GRID * _MOSAIC_TILE) ** 2
    return pixels * (2 + 4 * MAX_FINAL) + search * 4 * (3 * MAX_SEARCH + 4)


@dataclass(frozen=True, slots=True)
class _View:
    """What the search judges candidates on: the whole image when small, else a ``grid`` x
    ``grid`` mosaic of ``tile`` px tiles spread over it (each centred in its cell, cut at a
    multiple of 16 px)."""

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

    @property
    def target(self) -> float:
        """The bound a candidate must reach on this view during the search."""
        return MIN_SSIM if self.whole else MIN_SSIM + SEARCH_MARGIN


WHOLE = _View(0, 0, True)


def _planes_of(img: Any, *, chroma: bool = True) -> Planes:
    """Luminance (Pillow's ``L``, ITU-R 601 weights), chroma (``(Cb, Cr)``; ``None`` for
    grey or without ``chroma``) and alpha (or ``None``) of a decoded PIL image."""
    import numpy as np

    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    alpha = np.asarray(img.getchannel("A")) if "A" in img.getbands() else None
    if img.mode in ("L", "LA", "I", "I;16", "1"):
        return np.asarray(img.convert("L")), None, alpha
    rgb = img.convert("RGB")
    if not chroma:
        return np.asarray(rgb.convert("L")), None, alpha
    _, cb, cr = (np.asarray(band) for band in rgb.convert("YCbCr").split())
    return np.asarray(rgb.convert("L")), (cb, cr), alpha


def _score(reference: Planes, candidate: bytes, *, chroma: bool = False) -> float:
    """The lowest :func:`similarity` over luminance and alpha of ``candidate`` (an encoding
    of the image ``reference`` holds the planes of); with ``chroma``, 0 unless both chroma
    planes score :data:`MIN_CHROMA_SSIM` or more."""
    from PIL import Image

    with Image.open(io.BytesIO(candidate)) as opened:
        opened.load()
        luma, colour, alpha = _planes_of(opened, chroma=chroma)
    if luma.shape != reference[0].shape:
        return 0.0
    value = similarity(reference[0], luma)
    if chroma and reference[1] is not None and value >= MIN_SSIM:
        if colour is None:
            return 0.0
        worst = min(ssim(reference[1][0], colour[0]), ssim(reference[1][1], colour[1]))
        if worst < MIN_CHROMA_SSIM:
            return 0.0
    if reference[2] is not None and value >= MIN_SSIM:
        if alpha is None:
            return 0.0
        value = min(value, similarity(reference[2], alpha))
    return value


@dataclass(frozen=True, slots=True)
class Candidate:
    """A passing setting found on the search image (a coarser chroma judged on chroma too,
    there): its encoded size there (the ranking) and the full-size encodes to try in turn
    (the setting found, then higher qualities)."""

    size: int
    encodes: tuple[Callable[[], bytes], ...]
    lower: Callable[[float], Callable[[], bytes] | None] | None = None
    """After a mosaic search, given the whole-image SSIM of the first full-size encode: a
    full-size encode at the lower quality the mosaic then predicts to pass, if any."""


Encoder = Callable[[Any, int], bytes]
"""Encode an image (the search image or the whole one) at a quality."""


def _bisect(
    encode: Encoder, search: Any, reference: Planes, target: float, low: int, high: int, *, chroma: bool = False
) -> list[tuple[int, int, float]]:
    """(size on ``search``, quality, SSIM) of every quality the bisection for the lowest one
    in ``low..high`` reaching ``target`` (``chroma``: with the chroma guard) found passing,
    at most :data:`MAX_SEARCH` encodes, lowest first."""
    passing: list[tuple[int, int, float]] = []
    for _ in range(MAX_SEARCH):
        if low > high:
            break
        mid = (low + high) // 2
        data = encode(search, mid)
        score = _score(reference, data, chroma=chroma)
        if score >= target:
            passing.append((len(data), mid, score))
            high = mid - 1
        else:
            low = mid + 1
    return sorted(passing, key=lambda item: item[1])


def _lower(
    encode: Encoder,
    full: Callable[[int], bytes],
    search: Any,
    reference: Planes,
    view: _View,
    found: tuple[int, float],
    *,
    chroma: bool = False,
) -> Callable[[float], Callable[[], bytes] | None] | None:
    """:attr:`Candidate.lower` for a setting found at quality ``found[0]`` with SSIM
    ``found[1]`` on a mosaic: the mosaic's SSIM plus the offset the whole image showed at
    that quality predicts the whole image's at lower qualities; another bisection on the
    mosaic finds the lowest predicted to pass (without the search margin: the full-size
    encode is checked on the whole image, and the first one kept when it fails)."""
    if view.whole:
        return None
    quality, score = found

    def lower(whole: float) -> Callable[[], bytes] | None:
        target = MIN_SSIM + _ROUNDING - (whole - score)
        if target >= view.target:
            return None  # the mosaic judged no harder than the whole image
        passing = _bisect(encode, search, reference, target, 30, quality - 1, chroma=chroma)
        if not passing:
            return None
        q = passing[0][1]
        return lambda: full(q)

    return lower


def _ladder(encode: Callable[[int], bytes], quality: int, top: int) -> tuple[Callable[[], bytes], ...]:
    """Full-size encodes at ``quality`` and the :data:`_STEPS` above it (up to ``top``)."""
    qualities = dict.fromkeys(min(top, quality + step) for step in _STEPS)
    return tuple((lambda q=q: encode(q)) for q in qualities)  # type: ignore[misc]


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


_VIPS_TABLES = (0, 2)
"""libvips ``quant_table`` values searched: 0 the JPEG standard's (Annex K), 2 the tables
tuned for MS-SSIM (mozjpeg's set). Table 3 (ImageMagick) and the others measured smaller only
occasionally and never by much on the benchmark's photographs; each table costs a bisection."""


def _vips_of(image: Any) -> Any:
    """A PIL image (``L`` or ``RGB``) as a libvips image (for the search mosaic)."""
    import numpy as np
    import pyvips

    pixels = np.ascontiguousarray(np.asarray(image))
    bands = 1 if pixels.ndim == 2 else pixels.shape[2]
    out = pyvips.Image.new_from_memory(pixels.tobytes(), image.size[0], image.size[1], bands, "uchar")
    return out.copy(interpretation="b-w" if bands == 1 else "srgb")


def _jpeg_vips(data: bytes, img: Any, sampling: int, quality: int | None) -> list[Candidate] | None:
    """The libvips (mozjpeg) search; ``None`` when libvips cannot load ``data`` here."""
    try:
        import pyvips

        whole = pyvips.Image.new_from_buffer(data, "")
    except Exception:  # pyvips missing or unable to load: Pillow instead
        return None
    if whole.bands != (1 if img.mode == "L" else 3):
        return None
    colour = img.mode == "RGB"

    def encoder(table: int, subsample: str, final: bool = False) -> Encoder:
        def encode(image: Any, q: int) -> bytes:
            options: dict[str, Any] = dict(Q=q, optimize_coding=True, trellis_quant=True, quant_table=table)
            if colour:
                options["subsample_mode"] = subsample
            # the search ranks settings only: baseline scans, no metadata (cheaper; the
            # progressive order shrinks every setting alike)
            if final:
                options["interlace"] = True
            else:
                options["keep"] = "none"
            blob: bytes = image.jpegsave_buffer(**options)
            return blob

        return encode

    view = _View.of(img.size, _MOSAIC_GRID, _MOSAIC_TILE)
    search_pil = view(img)
    search = _vips_of(search_pil)
    reference = _planes_of(search_pil)
    top = min(98, (quality or 90) + 3)
    found: list[tuple[int, int, float, int]] = []  # (size on the search image, quality, SSIM, table)
    first = _bisect(encoder(0, "on"), search, reference, view.target, 30, top)
    if first:
        found.append((*first[0], 0))
    for table in _VIPS_TABLES[1:]:
        # the other tables need a similar quality: a narrower bisection around the first
        centre = first[0][1] if first else top
        low, high = max(30, centre - 4), min(top, centre + 12)
        passing = _bisect(encoder(table, "on"), search, reference, view.target, low, high)
        if passing:
            found.append((*passing[0], table))
    if not found:
        return []
    found.sort()
    subsample = "on"
    if colour and sampling != 2:  # 4:2:0 coarsens a 4:4:4 or 4:2:2 input's chroma
        _, q, _, table = found[0]
        if _score(reference, encoder(table, "on")(search, q), chroma=True) < view.target:
            subsample = "off"  # and the ranking by the sizes at 4:4:4
            found = [(len(encoder(t, "off")(search, q)), q, score, t) for _, q, score, t in found]

    def full(table: int) -> Callable[[int], bytes]:
        return lambda q: encoder(table, subsample, final=True)(whole, q)

    return [
        Candidate(
            size,
            _ladder(full(table), q, top),
            _lower(
                encoder(table, subsample), full(table), search, reference, view, (q, score), chroma=subsample == "on"
            ),
        )
        for size, q, score, table in found
    ]


def _jpeg(data: bytes, img: Any, sampling: int, quality: int | None, backend: str) -> list[Candidate]:
    """``img``: the decoded input (its ``info`` holds EXIF and ICC profile); ``sampling``:
    its chroma subsampling as Pillow numbers it (-1 unknown). libvips' candidates (unless
    ``backend`` is ``"pillow"`` or libvips cannot load ``data``) and Pillow's."""
    if img.mode not in ("L", "RGB"):
        return []  # CMYK and other modes: left alone
    found = _jpeg_vips(data, img, sampling, quality) if backend != "pillow" else None
    # Pillow's candidates compete with libvips' (the smaller on the search image first):
    # without trellis, but with chroma tables coarser than the luminance's, which libvips
    # cannot set; they win on inputs already at q70-90 (measured on the real photographs)
    return (found or []) + _jpeg_pillow(img, sampling, quality)


def _jpeg_pillow(img: Any, sampling: int, quality: int | None) -> list[Candidate]:
    """Pillow (libjpeg-turbo) with the Annex K tables: the luminance quality bisected, then
    coarser chroma variants at that quality."""
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
    passing = _bisect(encoder(same, lambda q: q), search, reference, view.target, 30, top)
    if not passing:
        return []

    def final(subsampling: int, offset: int) -> Callable[[int], bytes]:
        return lambda q: encoder(subsampling, lambda lq: max(30, lq - offset), final=True)(img, q)

    def coarser(subsampling: int, offset: int) -> Encoder:
        return encoder(subsampling, lambda lq: max(30, lq - offset))

    size, q, score = passing[0]
    out = [
        Candidate(
            size,
            _ladder(final(same, 0), q, top),
            _lower(coarser(same, 0), final(same, 0), search, reference, view, (q, score)),
        )
    ]
    # 2. at that quality, coarser chroma, most aggressive first: the first that passes
    #    (4:2:0 and chroma tables 30, then 15 quality steps coarser; the input's sampling)
    variants = [] if not colour else [(2, 30), (2, 15), (same, 15), (2, 0)]
    for subsampling, offset in dict.fromkeys(v for v in variants if v != (same, 0)):
        candidate = coarser(subsampling, offset)(search, q)
        score = _score(reference, candidate, chroma=True)
        if score >= view.target:
            lower = _lower(
                coarser(subsampling, offset),
                final(subsampling, offset),
                search,
                reference,
                view,
                (q, score),
                chroma=True,
            )
            out.append(Candidate(len(candidate), _ladder(final(subsampling, offset), q, top), lower))
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
    return _score(_planes_of(sample), buf.getvalue()) >= MIN_SSIM


def _png(data: bytes, img: Any, reference: Planes, backend: str) -> list[Candidate]:
    encoded = _png_encodings(data, reference, backend, try_palette=_palette_may_pass(img))
    return [Candidate(len(blob), ((lambda blob=blob: blob),)) for blob in encoded]  # type: ignore[misc]


def _png_encodings(data: bytes, reference: Planes, backend: str, *, try_palette: bool = True) -> list[bytes]:
    out: list[bytes] = []
    vips = None
    if backend != "pillow":
        try:
            import pyvips

            vips = pyvips.Image.new_from_buffer(data, "")
        except Exception:  # pyvips missing or unable to load: Pillow below
            vips = None
    if vips is not None:
        lossless = vips.pngsave_buffer(compression=9, filter="all", effort=10)
        out.append(lossless)
        palette = None
        if try_palette:
            try:
                palette = vips.pngsave_buffer(compression=9, palette=True, Q=100, dither=0.0, effort=7)
            except Exception:  # built without a quantiser
                palette = None
        if palette is not None and len(palette) < len(lossless) and _score(reference, palette) >= MIN_SSIM:
            out.append(palette)
        return out
    from PIL import Image, features

    with Image.open(io.BytesIO(data)) as img:
        img.load()
        buf = io.BytesIO()
        extra = {k: img.info[k] for k in ("icc_profile", "transparency") if k in img.info}
        img.save(buf, "PNG", optimize=True, **extra)
        out.append(buf.getvalue())
        if try_palette and img.mode in ("RGB", "RGBA"):
            if features.check_feature("libimagequant"):
                method = Image.Quantize.LIBIMAGEQUANT
            else:
                method = Image.Quantize.FASTOCTREE if img.mode == "RGBA" else Image.Quantize.MEDIANCUT
            quantised = img.quantize(256, method=method, dither=Image.Dither.NONE)
            buf = io.BytesIO()
            quantised.save(buf, "PNG", optimize=True, **{k: v for k, v in extra.items() if k == "icc_profile"})
            palette = buf.getvalue()
            if len(palette) < len(out[0]) and _score(reference, palette) >= MIN_SSIM:
                out.append(palette)
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
        return [Candidate(len(blob), ((lambda: blob),))]

    def encode(image: Any, q: int) -> bytes:
        buf = io.BytesIO()
        image.save(buf, "WEBP", quality=q, method=6, **extra)
        return buf.getvalue()

    view = _View.of(img.size, _MOSAIC_GRID, _MOSAIC_TILE)
    search = view(img)
    top = min(95, quality or 90)
    reference = _planes_of(search)
    passing = _bisect(encode, search, reference, view.target, 30, top)
    if not passing:
        return []
    size, q, score = passing[0]

    def full(q: int) -> bytes:
        return encode(img, q)

    return [Candidate(size, _ladder(full, q, top), _lower(encode, full, search, reference, view, (q, score)))]


def slim(data: bytes, *, backend: str = "auto", quality: int | None = None, limits: Limits | None = None) -> Slimmed:
    """Slim the image ``data``. ``backend``: ``"pillow"`` keeps libvips out (as does a
    machine without it, or ``CI_ENGINE_BACKEND=pillow`` with ``"auto"``). ``quality``: the
    input's estimated quality (``q0``), the upper end of the search (probed when ``None``).
    The work (:func:`work`) is charged to the request's budget before any decode.

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

    backend = _backend_name(backend)
    sampling = -1
    try:  # one decode: the reference planes and the image every candidate is encoded from
        img = Image.open(io.BytesIO(data))
        img.load()  # keeps info (EXIF, ICC profile)
        if fmt == "jpeg":
            from PIL import JpegImagePlugin

            sampling = JpegImagePlugin.get_sampling(img)
        reference = _planes_of(img, chroma=False)  # the chroma guard runs in the search
    except Exception as exc:  # Pillow raises several types for a damaged file
        raise InvalidImageFormatError(f"imageSlim: the {fmt} image does not decode") from exc
    if fmt == "jpeg":
        candidates = _jpeg(data, img, sampling, quality, backend)
    elif fmt == "png":
        candidates = _png(data, img, reference, backend)
    else:
        candidates = _webp(data, img, quality)
    return _final(data, fmt, reference, candidates, thorough=header.width * header.height <= _LOWER_UP_TO)


def _final(data: bytes, fmt: str, reference: Planes, candidates: list[Candidate], *, thorough: bool) -> Slimmed:
    """Encode candidates at full size, smallest on the search image first, and keep the
    smallest that passes on the whole image (never one larger than ``data``); at most
    :data:`MAX_FINAL` full-size encodes. ``thorough`` (images up to :data:`_LOWER_UP_TO`):
    the two best candidates' passing encodes are compared (the search image's sizes rank
    two encoders only roughly, a mosaic's even less) and :attr:`Candidate.lower` is tried."""
    bound = MIN_SSIM + _ROUNDING
    tried = 0
    passed: list[tuple[Slimmed, Candidate | None]] = []  # with the candidate when at its found quality
    for candidate in sorted(candidates, key=lambda c: c.size):
        for step, encode in enumerate(candidate.encodes):
            if tried == MAX_FINAL:
                break
            encoded = encode()
            tried += 1
            if len(encoded) >= len(data):
                break  # a higher quality is larger still: the next candidate
            score = _score(reference, encoded)  # the chroma guard was applied in the search
            if score >= bound:
                passed.append((Slimmed(encoded, fmt, COMPRESSED, score), candidate if step == 0 else None))
                break
        if tried == MAX_FINAL or len(passed) == (2 if thorough else 1):
            break
    if not passed:
        return Slimmed(data, fmt, NOT_COMPRESSED, 1.0)
    best, found = min(passed, key=lambda item: len(item[0].data))
    if thorough and found is not None and found.lower is not None and tried < MAX_FINAL:
        lower = found.lower(best.ssim)
        if lower is not None:  # the mosaic judged harder than the whole image: a lower quality
            smaller = lower()
            if len(smaller) < len(best.data):
                score = _score(reference, smaller)
                if score >= bound:
                    best = Slimmed(smaller, fmt, COMPRESSED, score)
    return best


def _backend_name(backend: str) -> str:
    """``"vips"`` or ``"pillow"``: the backend ``backend`` names (``"auto"`` resolved as the
    rest of ci_engine resolves it)."""
    from ci_engine.backends import get_backend
    from ci_engine.errors import BackendUnavailableError

    try:
        return get_backend(backend).name
    except BackendUnavailableError:
        return "pillow"
