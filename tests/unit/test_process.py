"""Images as users have them, through ``process()`` on every backend available here: EXIF
orientations, CMYK, 16-bit, palette, alpha, animations, every format, encoder options,
metadata, and the limits on both sides of each boundary."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

import ci_engine as ce
from ci_engine.backends import available_backends
from ci_engine.limits import MB, Limits
from tests.support.images import animated, assert_similar, encode, frames_of, gradient, sample, to_array

# Tolerances of this module; they move into tests/support/tolerances.py (the one table)
# when it lands.
TOLERANCES: dict[str, dict[str, float]] = {
    # quality 88 JPEG/WebP/HEIF/AVIF and a 256-colour GIF of a photo vs the PNG of the same
    # pixels: typical PSNR 33-40 dB.
    "codec_lossy": {"min_psnr": 28.0},
    # BMP/TIFF/PNG are lossless: exact.
    "codec_lossless": {"max_mean": 0.0},
}

BACKENDS = available_backends()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def run(data: bytes, rule: str, backend: str, **kw: object) -> ce.Result:
    return ce.process(data, rule, backend=backend, **kw)  # type: ignore[arg-type]


def detected(data: bytes) -> str:
    from ci_engine.io import sniff

    return sniff(data).value


# -- EXIF orientation ----------------------------------------------------------------------------

_TO_STORED = {  # transform that turns the upright image into the stored one, per tag
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented_jpeg(orientation: int) -> tuple[bytes, np.ndarray]:
    upright = gradient(64, 40, seed=orientation)
    upright[:10, :16] = (255, 0, 0)  # a red top-left marker tells orientations apart
    stored = Image.fromarray(upright)
    if _TO_STORED[orientation] is not None:
        stored = stored.transpose(_TO_STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    stored.save(out, "JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue(), upright


@pytest.mark.parametrize("orientation", range(1, 9))
def test_auto_orient_makes_every_exif_orientation_upright(backend: str, orientation: int) -> None:
    data, _ = oriented_jpeg(orientation)
    result = run(data, "imageMogr2/auto-orient/format/png", backend)
    assert (result.width, result.height) == (64, 40)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert_similar(to_array(result.data), reference, name=f"orient{orientation}-{backend}", max_mean=1.5)
    assert to_array(result.data)[2:8, 2:12, 0].mean() > 200  # the red marker is top-left


@pytest.mark.parametrize("orientation", [3, 6])
def test_orientation_tag_is_reset_after_auto_orient_and_kept_otherwise(backend: str, orientation: int) -> None:
    data, _ = oriented_jpeg(orientation)
    upright = run(data, "imageMogr2/auto-orient", backend)
    assert Image.open(io.BytesIO(upright.data)).getexif().get(0x0112, 1) == 1
    kept = run(data, "imageMogr2/thumbnail/!50p", backend)
    assert Image.open(io.BytesIO(kept.data)).getexif().get(0x0112) == orientation


# -- colour spaces and depths ---------------------------------------------------------------------


def test_cmyk_jpeg_is_converted_to_srgb(backend: str) -> None:
    cyan = Image.new("CMYK", (32, 24), (255, 0, 0, 0))
    out = io.BytesIO()
    cyan.save(out, "JPEG", quality=95)
    result = run(out.getvalue(), "imageMogr2/thumbnail/16x", backend)
    pixels = to_array(result.data)
    assert (result.width, result.height) == (16, 12) and pixels.shape[2] == 3
    r, g, b = pixels.reshape(-1, 3).mean(axis=0)
    assert r < 120 and g > 120 and b > 180, (r, g, b)  # cyan, not inverted


def test_sixteen_bit_png_becomes_eight_bit(backend: str) -> None:
    import pyvips

    ramp = np.tile(np.linspace(0, 65535, 32, dtype=np.uint16), (8, 1))
    data = pyvips.Image.new_from_array(ramp).copy(interpretation="grey16").pngsave_buffer()
    result = run(data, "imageMogr2/format/png", backend)
    out = np.asarray(frames_of(result.data)[0])
    assert out.dtype == np.uint8 and out.shape[:2] == (8, 32)
    assert abs(int(out[0, -1]) - 255) <= 1 and int(out[0, 0]) <= 1


def test_palette_png_with_transparency_keeps_its_alpha(backend: str) -> None:
    image = Image.new("P", (20, 10))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (10, 0, 20, 10))
    out = io.BytesIO()
    image.save(out, "PNG", transparency=1)
    result = run(out.getvalue(), "imageMogr2/format/png", backend)
    rgba = to_array(result.data, "RGBA")
    assert tuple(rgba[5, 2]) == (255, 0, 0, 255) and rgba[5, 15, 3] == 0


def test_alpha_survives_webp_and_is_flattened_on_white_for_jpeg(backend: str) -> None:
    pixels = gradient(40, 30, channels=4)
    pixels[:, :10, 3] = 0
    data = encode(pixels, "PNG")
    webp = run(data, "imageMogr2/format/webp", backend)
    assert detected(webp.data) == "webp" and to_array(webp.data, "RGBA")[15, 5, 3] == 0
    jpeg = run(data, "imageMogr2/format/jpg", backend)
    assert detected(jpeg.data) == "jpeg"
    assert to_array(jpeg.data)[15, 3].min() > 240  # transparent became white


# -- animations ---------------------------------------------------------------------------------


def _frames(n: int, w: int = 48, h: int = 32) -> list[np.ndarray]:
    return [gradient(w, h, seed=i) for i in range(n)]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_keeps_frames_delays_and_loop_through_a_thumbnail(backend: str, fmt: str) -> None:
    delays = [100, 200, 300, 400, 500]
    data = animated(_frames(5), fmt, duration=delays, loop=3)
    result = run(data, "imageMogr2/thumbnail/24x", backend)
    assert (result.format, result.width, result.height, result.frames) == (fmt.lower(), 24, 16, 5)
    frames = frames_of(result.data)
    assert len(frames) == 5
    got = [f.info.get("duration") for f in frames]
    assert got == delays
    assert Image.open(io.BytesIO(result.data)).info.get("loop") == 3


def test_animated_gif_is_not_enlarged_and_static_output_keeps_the_first_frame(backend: str) -> None:
    data = animated(_frames(4), "GIF")
    bigger = run(data, "imageMogr2/thumbnail/200x", backend)
    assert (bigger.width, bigger.height, bigger.frames) == (48, 32, 4)
    still = run(data, "imageMogr2/format/png", backend)
    assert (still.format, still.frames) == ("png", 1)


def test_frames_that_become_identical_merge_and_the_result_says_so(backend: str) -> None:
    # Flat colours survive any palette exactly: the first two frames differ only in their
    # right half.
    first = np.zeros((16, 32, 3), np.uint8)
    first[:, :16] = (200, 30, 30)
    first[:, 16:] = (30, 200, 30)
    second = first.copy()
    second[:, 16:] = (30, 30, 200)
    last = np.full((16, 32, 3), 90, np.uint8)
    data = animated([first, second, last], "GIF", duration=100)
    assert len(frames_of(data)) == 3
    result = run(data, "imageMogr2/cut/16x16x0x0", backend)  # keep the left half
    written = frames_of(result.data)
    assert result.frames == len(written) == 2
    assert [f.info.get("duration") for f in written] == [200, 100]


def test_cgif_keeps_sampled_frames_with_summed_delays(backend: str) -> None:
    data = animated(_frames(6, 16, 16), "GIF", duration=100)
    result = run(data, "imageMogr2/cgif/3", backend)
    frames = frames_of(result.data)
    assert result.frames == 3 and [f.info.get("duration") for f in frames] == [200, 200, 200]


def test_iradius_on_gif_is_refused_and_masked_by_ignore_error(backend: str) -> None:
    data = animated(_frames(2), "GIF")
    with pytest.raises(ce.UnsupportedForInputError):
        run(data, "imageMogr2/iradius/10", backend)
    masked = run(data, "imageMogr2/iradius/10/ignore-error/1", backend)
    assert masked.data == data and masked.masked is not None


# -- formats and encoder options ----------------------------------------------------------------------

OUTPUTS = ["jpg", "png", "webp", "gif", "bmp", "heif", "avif", "tiff"]


@pytest.mark.parametrize("fmt", OUTPUTS)
def test_every_output_format(backend: str, fmt: str) -> None:
    # Photographic content: codec losses on tiny saturated synthetic images say nothing.
    data = sample()
    rule = "imageMogr2/thumbnail/96x"
    result = run(data, f"{rule}/format/{fmt}", backend)
    container = {"jpg": "jpeg"}.get(fmt, fmt)
    assert (result.format, detected(result.data), result.width, result.height) == (container, container, 96, 54)
    lossy = container in ("jpeg", "webp", "heif", "avif")
    assert (result.quality is not None) is lossy
    lossless = to_array(run(data, f"{rule}/format/png", backend).data)
    bound = TOLERANCES["codec_lossy" if lossy or container == "gif" else "codec_lossless"]
    assert_similar(to_array(result.data), lossless, name=f"format-{fmt}-{backend}", **bound)


INPUTS = {
    "jpeg": lambda px: encode(px, "JPEG", quality=92),
    "png": lambda px: encode(px, "PNG"),
    "webp": lambda px: encode(px, "WEBP", quality=92),
    "gif": lambda px: encode(px, "GIF"),
    "bmp": lambda px: encode(px, "BMP"),
    "tiff": lambda px: encode(px, "TIFF"),
}


@pytest.mark.parametrize("fmt", [*INPUTS, "heif", "avif"])
def test_every_input_format(backend: str, fmt: str) -> None:
    pixels = gradient(40, 30)
    if fmt == "heif":
        import pillow_heif

        heif = pillow_heif.from_bytes(mode="RGB", size=(40, 30), data=pixels.tobytes())
        out = io.BytesIO()
        heif.save(out, quality=95)
        data = out.getvalue()
    elif fmt == "avif":
        import pyvips

        data = pyvips.Image.new_from_array(pixels).copy(interpretation="srgb").heifsave_buffer(compression="av1", Q=95)
    else:
        data = INPUTS[fmt](pixels)
    result = run(data, "imageMogr2/thumbnail/20x/format/png", backend)
    assert (result.width, result.height) == (20, 15)
    expected = np.asarray(Image.fromarray(pixels).resize((20, 15), Image.Resampling.LANCZOS))
    # Lossy WebP at 40x30 carries a codec error of mean ~4.6 after a full decode (libvips with
    # rules=(): 4.63); libwebp's scaled decode (libvips' shrink-on-load) lands at 3.2, the
    # Pillow backend's emulation of it (full decode, area average: no scaled WebP decode in
    # Pillow) at 5.5.
    bound = 6.0 if fmt in ("gif", "webp") else 3.5
    assert_similar(to_array(result.data), expected, name=f"input-{fmt}-{backend}", max_mean=bound)


def test_progressive_jpeg_interlaced_png_and_gif(backend: str) -> None:
    data = encode(gradient(32, 32), "PNG")
    jpeg = run(data, "imageMogr2/format/jpg/interlace/1", backend).data
    assert b"\xff\xc2" in jpeg and b"\xff\xc0" not in jpeg
    assert b"\xff\xc0" in run(data, "imageMogr2/format/jpg", backend).data
    png = run(data, "imageMogr2/format/png/interlace/1", backend).data
    assert png[28] == 1  # IHDR interlace method: Adam7
    from ci_engine.io import probe

    assert probe(run(data, "imageMogr2/format/gif/interlace/1", backend).data).progressive
    assert not probe(run(data, "imageMogr2/format/gif", backend).data).progressive


def test_strip_drops_exif_and_icc_and_otherwise_they_are_kept(backend: str) -> None:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "ci_engine test camera"
    out = io.BytesIO()
    Image.fromarray(gradient(32, 32)).save(out, "JPEG", exif=exif.tobytes(), icc_profile=icc)
    kept = Image.open(io.BytesIO(run(out.getvalue(), "imageMogr2/thumbnail/16x", backend).data))
    assert kept.getexif().get(0x010F) == "ci_engine test camera" and kept.info.get("icc_profile")
    stripped = Image.open(io.BytesIO(run(out.getvalue(), "imageMogr2/thumbnail/16x/strip", backend).data))
    assert not stripped.getexif() and not stripped.info.get("icc_profile")


def test_quality_reaches_the_encoder(backend: str) -> None:
    data = sample()
    low = run(data, "imageMogr2/thumbnail/300x/quality/20", backend)
    high = run(data, "imageMogr2/thumbnail/300x/quality/95!", backend)
    assert (low.quality, high.quality) == (20, 95)
    assert len(low.data) * 2 < len(high.data)
    from ci_engine.io import probe

    assert abs((probe(low.data).quality or 0) - 20) <= 1 and abs((probe(high.data).quality or 0) - 95) <= 1


def test_size_limit_searches_the_quality(backend: str) -> None:
    result = run(sample(), "imageMogr2/size-limit/30k", backend)
    assert result.format == "jpeg" and len(result.data) <= 30 * 1024
    assert result.quality is not None and result.quality < 88
    kept = run(sample(), "imageMogr2/size-limit/500k!", backend)
    assert kept.data == sample()


# -- limits ---------------------------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` and whose IDAT is a few bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def gif_header(width: int, height: int, frames: int) -> bytes:
    """A GIF whose screen is ``width`` x ``height`` with ``frames`` 1x1 frames."""
    head = b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + frame * frames + b"\x3b"


@pytest.mark.parametrize(
    "data,kind",
    [
        (png_header(30_001, 1), "input_side"),
        (png_header(1, 30_001), "input_side"),
        (png_header(25_001, 10_000), "input_pixels"),
        (gif_header(1, 1, 301), "frames"),
        (gif_header(1000, 1000, 251), "animated_pixels"),
        (png_header(100_000, 100_000), "input_side"),
    ],
)
def test_input_limits_are_checked_on_the_header(data: bytes, kind: str) -> None:
    with pytest.raises(ce.ImageResolutionExceedError) as info:
        ce.process(data, "imageMogr2/thumbnail/10x")
    assert info.value.kind == kind and info.value.x_errno == -447


def test_limits_pass_exactly_at_the_boundary() -> None:
    from ci_engine.limits import check_header
    from ci_engine.types import ImageFormat, ImageHeader

    limits = Limits()
    check_header(ImageHeader(ImageFormat.PNG, 30_000, 8_333), limits)
    check_header(ImageHeader(ImageFormat.PNG, 25_000, 10_000), limits)
    check_header(ImageHeader(ImageFormat.GIF, 1000, 1000, frames=250), limits)
    check_header(ImageHeader(ImageFormat.GIF, 1, 1, frames=300), limits)
    one = png_header(30_000, 1)
    with pytest.raises(ce.InvalidImageFormatError):  # passes the limits, then fails to decode its fake IDAT
        ce.process(one, "imageMogr2/thumbnail/10x")


def test_input_byte_limit_both_sides() -> None:
    with pytest.raises(ce.ImageTooLargeError) as info:
        ce.process(b"\0" * (32 * MB + 1), "imageMogr2/thumbnail/10x")
    assert info.value.x_errno == -167 and info.value.status == 400
    small = Limits(max_input_bytes=len(sample()))
    assert ce.process(sample(), "imageMogr2/thumbnail/10x", limits=small).width == 10
    with pytest.raises(ce.ImageTooLargeError):
        ce.process(sample(), "imageMogr2/thumbnail/10x", limits=Limits(max_input_bytes=len(sample()) - 1))


def test_output_side_limit_both_sides(backend: str) -> None:
    data = encode(gradient(100, 1), "PNG")
    assert run(data, "imageMogr2/thumbnail/9999x/format/png", backend).width == 9999
    with pytest.raises(ce.ImageResolutionExceedError) as info:
        run(data, "imageMogr2/thumbnail/10000x/format/png", backend)
    assert info.value.kind == "output_side" and info.value.x_errno == -442


def test_a_huge_declared_image_is_refused_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_engine import execute

    calls: list[object] = []
    monkeypatch.setattr(execute, "decode", lambda *a, **k: calls.append(a))
    with pytest.raises(ce.ImageResolutionExceedError):
        ce.process(png_header(100_000, 100_000), "imageMogr2/thumbnail/10x")
    assert calls == []


def test_ignore_error_returns_the_original_for_masked_failures() -> None:
    data = png_header(30_001, 1)
    result = ce.process(data, "imageMogr2/thumbnail/10x/ignore-error/1")
    assert result.data == data and result.masked is not None and result.masked.code == "ImageResolutionExceed"
    with pytest.raises(ce.ParseError):  # syntax errors are never masked
        ce.process(data, "imageMogr2/thumbnial/10x/ignore-error/1")


def test_undecodable_input_is_invalid_image_format(backend: str) -> None:
    for data in (b"", b"not an image at all", sample()[:200], b"\x89PNG\r\n\x1a\n" + b"\0" * 40):
        with pytest.raises(ce.InvalidImageFormatError):
            run(data, "imageMogr2/thumbnail/10x", backend)
