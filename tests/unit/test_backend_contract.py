"""The backend contract, one suite run on every backend that loads here.

For every primitive: the exact output size, frame count and channel layout on synthetic
images; exact pixels where the primitive copies pixels (crop, flip, quarter turns, embed,
frame selection); the documented formulas (linear, grayscale, mask coverage, flatten) checked
against numpy on known pixels; and the decoders and encoders on every format the backend
claims. Handles are never mutated.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from ci_engine.backends import available_backends, get_backend
from ci_engine.backends.base import Backend
from ci_engine.io import probe
from ci_engine.plan import steps as P
from ci_engine.types import ImageFormat

BACKENDS = available_backends()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend[Any]:
    return get_backend(str(request.param))


# -- helpers ------------------------------------------------------------------------------------------


def smooth(height: int, width: int, channels: int, seed: int = 0) -> NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    out = np.empty((height, width, channels))
    for k in range(channels):
        a, b, phase = rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(0, 6.28)
        out[..., k] = 127.5 + 120 * np.sin(a * x + b * y + phase)
    if channels in (2, 4):
        out[..., -1] = np.linspace(40, 255, width)[np.newaxis, :]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def png(pixels: NDArray[np.uint8]) -> bytes:
    channels = pixels.shape[2]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, MODES[channels])
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def load(backend: Backend[Any], data: bytes, *, frames: int = 1, shrink: int = 1) -> Any:
    header = probe(data)
    return backend.decode(data, P.DecodeSpec(header.format, shrink=shrink, frames=frames), header)


def image_of(backend: Backend[Any], pixels: NDArray[np.uint8]) -> Any:
    """A handle holding exactly ``pixels`` (decoded from a lossless PNG)."""
    handle = load(backend, png(pixels))
    assert np.array_equal(backend.to_array(handle)[0], pixels)
    return handle


def animation(frames: list[NDArray[np.uint8]], fmt: str, delays: list[int]) -> bytes:
    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    options: dict[str, Any] = {"lossless": True} if fmt == "WEBP" else {}
    images[0].save(out, fmt, save_all=True, append_images=images[1:], duration=delays, loop=0, **options)
    return out.getvalue()


CHANNELS = [1, 2, 3, 4]


# -- contract basics ---------------------------------------------------------------------------------------


def test_every_primitive_is_implemented_and_declared(backend: Backend[Any]) -> None:
    assert P.BACKEND_METHODS <= backend.capabilities.methods
    for method in backend.capabilities.methods:  # nothing is claimed that is not there
        assert callable(getattr(backend, method, None)), method
    assert backend.capabilities.animated
    assert ImageFormat.JPEG in backend.capabilities.shrink_on_load


def test_capabilities_are_honest_about_avif(backend: Backend[Any]) -> None:
    caps = backend.capabilities
    if ImageFormat.AVIF not in caps.saves:
        return
    data = backend.encode(image_of(backend, smooth(16, 16, 3)), P.EncodeSpec(ImageFormat.AVIF, quality=60))
    assert probe(data).format is ImageFormat.AVIF


@pytest.mark.parametrize("channels", CHANNELS)
def test_decode_keeps_the_band_layout(backend: Backend[Any], channels: int) -> None:
    pixels = smooth(9, 13, channels)
    handle = load(backend, png(pixels))
    array = backend.to_array(handle)
    assert array.dtype == np.uint8 and array.shape == (1, 9, 13, channels)
    assert backend.size(handle) == (13, 9, 1)
    assert np.array_equal(array[0], pixels)


def test_palette_png_with_transparency_decodes_to_rgba(backend: Backend[Any]) -> None:
    image = Image.new("P", (6, 4))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.paste(1, (3, 0, 6, 4))
    out = io.BytesIO()
    image.save(out, "PNG", transparency=0)
    array = backend.to_array(load(backend, out.getvalue()))
    assert array.shape == (1, 4, 6, 4)
    assert array[0, 0, 0, 3] == 0 and tuple(array[0, 0, 5]) == (200, 100, 50, 255)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animations_decode_frame_by_frame(backend: Backend[Any], fmt: str) -> None:
    frames = [smooth(10, 12, 3, seed=i) for i in range(3)]
    data = animation(frames, fmt, [40, 80, 120])
    all_frames = load(backend, data, frames=3)
    assert backend.size(all_frames) == (12, 10, 3)
    first = load(backend, data, frames=1)
    assert backend.size(first) == (12, 10, 1)
    if fmt == "WEBP":  # lossless: exact
        assert np.array_equal(backend.to_array(all_frames)[..., :3], np.stack(frames))


def test_jpeg_shrink_on_load_gives_the_floored_size(backend: Backend[Any]) -> None:
    out = io.BytesIO()
    Image.fromarray(smooth(75, 101, 3)).save(out, "JPEG", quality=90)
    for shrink in (2, 4, 8):
        handle = load(backend, out.getvalue(), shrink=shrink)
        assert backend.size(handle) == (101 // shrink, 75 // shrink, 1)


def test_handles_are_never_mutated(backend: Backend[Any]) -> None:
    pixels = smooth(20, 30, 4)
    handle = image_of(backend, pixels)
    for step in (
        P.Crop(1, 2, 10, 10),
        P.Flip(True),
        P.Rotate90(1),
        P.Resize(7, 9),
        P.Linear(2.0, -10),
        P.Grayscale(),
        P.Mask("rounded", 4, P.TRANSPARENT),
        P.Blur(2.0, 3),
        P.Flatten(P.WHITE),
    ):
        backend.apply(handle, step)
    assert np.array_equal(backend.to_array(handle)[0], pixels)


# -- geometry: exact pixels ------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", CHANNELS)
def test_crop_is_exact(backend: Backend[Any], channels: int) -> None:
    pixels = smooth(20, 30, channels)
    out = backend.to_array(backend.crop(image_of(backend, pixels), P.Crop(3, 4, 11, 7)))
    assert np.array_equal(out[0], pixels[4:11, 3:14])


@pytest.mark.parametrize("horizontal", [True, False])
def test_flip_is_exact(backend: Backend[Any], horizontal: bool) -> None:
    pixels = smooth(9, 14, 4)
    out = backend.to_array(backend.flip(image_of(backend, pixels), P.Flip(horizontal)))
    assert np.array_equal(out[0], pixels[:, ::-1] if horizontal else pixels[::-1])


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_quarter_turns_are_exact_and_clockwise(backend: Backend[Any], turns: int) -> None:
    pixels = smooth(9, 14, 3)
    out = backend.to_array(backend.rotate90(image_of(backend, pixels), P.Rotate90(turns)))
    assert np.array_equal(out[0], np.rot90(pixels, k=-turns))


@pytest.mark.parametrize(
    ("channels", "background", "out_channels"),
    [(3, (10, 20, 30, 255), 3), (4, (10, 20, 30, 255), 4), (3, (0, 0, 0, 0), 4), (1, (255, 0, 0, 255), 1)],
)
def test_embed_is_exact(backend: Backend[Any], channels: int, background: P.RGBA, out_channels: int) -> None:
    pixels = smooth(6, 8, channels)
    out = backend.to_array(backend.embed(image_of(backend, pixels), P.Embed(2, 3, 13, 11, background)))
    assert out.shape == (1, 11, 13, out_channels)
    inner = out[0, 3:9, 2:10]
    assert np.array_equal(inner[..., :channels], pixels)
    if out_channels > channels:
        assert (inner[..., -1] == 255).all()
    r, g, b, a = background
    fill = [r, g, b] if out_channels >= 3 else [round(0.299 * r + 0.587 * g + 0.114 * b)]
    fill += [a] if out_channels in (2, 4) else []
    assert out[0, 0, 0].tolist() == fill and out[0, -1, -1].tolist() == fill


def test_select_frames_keeps_frames_and_sums_delays(backend: Backend[Any]) -> None:
    frames = [smooth(8, 8, 3, seed=i) for i in range(4)]
    handle = load(backend, animation(frames, "WEBP", [10, 20, 30, 40]), frames=4)
    out = backend.select_frames(handle, P.SelectFrames(((0, 1), (2, 3))))
    assert backend.size(out) == (8, 8, 2)
    array = backend.to_array(out)
    assert np.array_equal(array[1, ..., :3], frames[2])
    data = backend.encode(out, P.EncodeSpec(ImageFormat.WEBP, quality=90))
    with Image.open(io.BytesIO(data)) as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            image.load()
            durations.append(image.info["duration"])
    assert durations == [30, 70]


# -- geometry: sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(7, 9), (40, 30), (61, 45), (1, 1), (30, 3), (100, 13)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_resize_gives_the_exact_size(backend: Backend[Any], size: tuple[int, int], channels: int) -> None:
    pixels = smooth(30, 40, channels)
    out = backend.to_array(backend.resize(image_of(backend, pixels), P.Resize(*size)))
    assert out.shape == (1, size[1], size[0], channels)
    if min(size) >= 8 and (size[0] <= 40) == (size[1] <= 30):  # a Lanczos resize keeps the picture
        reference = np.asarray(Image.fromarray(pixels[..., :3] if channels >= 3 else pixels[..., 0]).resize(size))
        reference = reference.reshape(size[1], size[0], -1)
        assert np.abs(out[0, ..., : reference.shape[2]].astype(float) - reference).mean() < 6


def test_resize_applies_to_every_frame(backend: Backend[Any]) -> None:
    frames = [smooth(12, 16, 3, seed=i) for i in range(3)]
    handle = load(backend, animation(frames, "WEBP", [10, 10, 10]), frames=3)
    assert backend.size(backend.resize(handle, P.Resize(8, 6))) == (8, 6, 3)


@pytest.mark.parametrize("degrees", [1, 30, 45, 137, 200, 359])
@pytest.mark.parametrize("background", [P.WHITE, P.TRANSPARENT])
def test_rotate_fills_the_planned_box(backend: Backend[Any], degrees: int, background: P.RGBA) -> None:
    from ci_engine.plan.geometry import rotated_size

    pixels = np.full((20, 30, 3), 90, np.uint8)
    width, height = rotated_size(30, 20, degrees)
    out = backend.to_array(backend.rotate(image_of(backend, pixels), P.Rotate(degrees, width, height, background)))
    assert out.shape == (1, height, width, 4 if background[3] < 255 else 3)
    centre = out[0, height // 2, width // 2]
    assert abs(int(centre[0]) - 90) <= 1
    if 10 < degrees % 90 < 80:  # the corners are outside the rotated image
        assert out[0, 0, 0].tolist() == list(background[: out.shape[3]])


def test_rotate_is_clockwise(backend: Backend[Any]) -> None:
    pixels = np.zeros((21, 21, 3), np.uint8)
    pixels[:10, 8:13] = 255  # the upper half of a vertical bar
    out = backend.to_array(backend.rotate(image_of(backend, pixels), P.Rotate(45, 29, 29, P.TRANSPARENT)))[0]
    lit = out[..., 0].astype(float) * out[..., 3] / 255
    # clockwise: the bar's top moves to the upper right
    assert lit[:14, 15:].mean() > 4 * max(lit[:14, :14].mean(), lit[15:, 15:].mean(), 1.0)


@pytest.mark.parametrize("size", [(5, 5), (20, 8), (30, 20)])
def test_smartcrop_gives_the_size(backend: Backend[Any], size: tuple[int, int]) -> None:
    out = backend.smartcrop(image_of(backend, smooth(20, 30, 3)), P.SmartCrop(*size))
    assert backend.size(out) == (size[0], size[1], 1)


def test_smartcrop_finds_the_interesting_patch(backend: Backend[Any]) -> None:
    pixels = np.full((120, 160, 3), 128, np.uint8)
    rng = np.random.default_rng(7)
    pixels[80:110, 110:150] = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)  # detail, colour
    out = backend.to_array(backend.smartcrop(image_of(backend, pixels), P.SmartCrop(60, 60)))[0]
    # the window must hold most of the patch: few flat-grey pixels
    flat = (np.abs(out.astype(int) - 128).max(axis=2) == 0).mean()
    assert flat < 0.75, flat


# -- filters and formulas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", CHANNELS)
def test_linear_formula(backend: Backend[Any], channels: int) -> None:
    pixels = smooth(16, 16, channels)
    slope, offset = 1.3, -20.5
    out = backend.to_array(backend.linear(image_of(backend, pixels), P.Linear(slope, offset)))[0]
    colour = channels - (1 if channels in (2, 4) else 0)
    expected = np.clip(
        np.trunc(pixels[..., :colour].astype(np.float32) * np.float32(slope) + np.float32(offset)), 0, 255
    )
    assert np.array_equal(out[..., :colour], expected.astype(np.uint8))
    assert np.array_equal(out[..., colour:], pixels[..., colour:])  # alpha untouched


@pytest.mark.parametrize("channels", [3, 4])
def test_grayscale_formula(backend: Backend[Any], channels: int) -> None:
    pixels = smooth(16, 16, channels)
    out = backend.to_array(backend.grayscale(image_of(backend, pixels), P.Grayscale()))[0]
    rgb = pixels[..., :3].astype(np.float64)
    luma = np.rint((0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]).astype(np.float32))
    assert out.shape[2] == channels - 2
    assert np.array_equal(out[..., 0], luma.astype(np.uint8))
    if channels == 4:
        assert np.array_equal(out[..., 1], pixels[..., 3])


def _coverage(shape: str, radius: int, width: int, height: int) -> NDArray[np.float64]:
    x = np.arange(width)[np.newaxis, :] + 0.5
    y = np.arange(height)[:, np.newaxis] + 0.5
    if shape == "circle":
        dx, dy = x - width / 2, y - height / 2
    else:
        dx = x - np.clip(x, radius, width - radius)
        dy = y - np.clip(y, radius, height - radius)
    return np.clip(radius + 0.5 - np.sqrt(dx * dx + dy * dy), 0, 1)


@pytest.mark.parametrize(("shape", "radius", "size"), [("circle", 10, (20, 20)), ("rounded", 6, (30, 20))])
@pytest.mark.parametrize("background", [P.WHITE, P.TRANSPARENT])
def test_mask_coverage_formula(
    backend: Backend[Any], shape: str, radius: int, size: tuple[int, int], background: P.RGBA
) -> None:
    width, height = size
    pixels = smooth(height, width, 3)
    out = backend.to_array(backend.mask(image_of(backend, pixels), P.Mask(shape, radius, background)))[0]
    cov = _coverage(shape, radius, width, height)[..., np.newaxis]
    if background[3] < 255:
        assert out.shape[2] == 4
        assert np.array_equal(out[..., :3], pixels)
        assert np.abs(out[..., 3:].astype(float) - np.rint(255 * cov)).max() <= 1
    else:
        expected = np.rint(pixels * cov + 255 * (1 - cov))
        assert np.abs(out.astype(float) - expected).max() <= 1
        assert (out[0, 0] == 255).all() and np.array_equal(
            out[height // 2, width // 2], pixels[height // 2, width // 2]
        )


@pytest.mark.parametrize("background", [(255, 255, 255, 255), (10, 200, 30, 255)])
def test_flatten_formula(backend: Backend[Any], background: P.RGBA) -> None:
    pixels = smooth(10, 12, 4)
    out = backend.to_array(backend.flatten(image_of(backend, pixels), P.Flatten(background)))[0]
    alpha = pixels[..., 3:].astype(np.int64)
    bg = np.asarray(background[:3], np.int64)
    expected = (pixels[..., :3].astype(np.int64) * alpha + bg * (255 - alpha)) // 255
    assert out.shape[2] == 3 and np.array_equal(out, expected.astype(np.uint8))


def test_flatten_of_an_opaque_image_is_the_identity(backend: Backend[Any]) -> None:
    pixels = smooth(10, 12, 3)
    out = backend.to_array(backend.flatten(image_of(backend, pixels), P.Flatten(P.WHITE)))[0]
    assert np.array_equal(out, pixels)


@pytest.mark.parametrize("channels", CHANNELS)
def test_blur_keeps_flat_images_and_the_mean(backend: Backend[Any], channels: int) -> None:
    flat = np.full((15, 17, channels), 77, np.uint8)
    out = backend.to_array(backend.blur(image_of(backend, flat), P.Blur(2.0, 4)))[0]
    assert np.abs(out.astype(int) - 77).max() <= 1
    pixels = smooth(24, 24, channels)
    blurred = backend.to_array(backend.blur(image_of(backend, pixels), P.Blur(3.0, 6)))[0]
    assert blurred.shape == pixels.shape
    assert blurred[..., 0].std() < pixels[..., 0].std()  # smoother


def test_blur_radius_truncates_the_kernel(backend: Backend[Any]) -> None:
    impulse = np.zeros((1, 41, 1), np.uint8)
    impulse[0, 20, 0] = 255
    out = backend.to_array(backend.blur(image_of(backend, impulse), P.Blur(5.0, 3)))[0, 0, :, 0]
    assert (out[:17] == 0).all() and (out[24:] == 0).all() and out[17:24].min() > 0


def test_sharpen_formula_on_an_edge(backend: Backend[Any]) -> None:
    flat = np.full((9, 9, 3), 100, np.uint8)
    assert np.array_equal(backend.to_array(backend.sharpen(image_of(backend, flat), P.Sharpen(200)))[0], flat)
    edge = np.zeros((1, 12, 1), np.uint8)
    edge[0, 6:] = 200
    out = backend.to_array(backend.sharpen(image_of(backend, edge), P.Sharpen(100)))[0, 0, :, 0].astype(float)
    # in + k (in - gauss(in)), gauss with libvips' 3-tap sigma-1 mask (min_ampl 0.2)
    w = math.exp(-0.5)
    line = edge[0, :, 0].astype(float)
    padded = np.pad(line, 1, mode="edge")
    blurred = (w * padded[:-2] + padded[1:-1] + w * padded[2:]) / (1 + 2 * w)
    expected = np.clip(np.rint(line * 2 - blurred), 0, 255)
    assert np.array_equal(out, expected)


# -- encoders ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(ImageFormat))
@pytest.mark.parametrize("channels", [3, 4])
def test_every_encoder_writes_its_format(backend: Backend[Any], fmt: ImageFormat, channels: int) -> None:
    if fmt not in backend.capabilities.saves:
        pytest.skip(f"{backend.name} does not save {fmt.value} here")
    handle = image_of(backend, smooth(12, 16, channels))
    if not fmt.alpha_capable and channels == 4:
        handle = backend.flatten(handle, P.Flatten(P.WHITE))
    data = backend.encode(handle, P.EncodeSpec(fmt, quality=80 if fmt.lossy else None))
    header = probe(data)
    assert (header.format, header.width, header.height) == (fmt, 16, 12)


def test_interlaced_png_and_progressive_jpeg(backend: Backend[Any]) -> None:
    pixels = smooth(23, 37, 4)
    handle = image_of(backend, pixels)
    data = backend.encode(handle, P.EncodeSpec(ImageFormat.PNG, progressive=True))
    assert data[28] == 1  # IHDR interlace method: Adam7
    with Image.open(io.BytesIO(data)) as image:
        assert np.array_equal(np.asarray(image), pixels)
    jpeg = backend.encode(backend.flatten(handle, P.Flatten(P.WHITE)), P.EncodeSpec(ImageFormat.JPEG, 80, True))
    assert b"\xff\xc2" in jpeg


def test_quality_reaches_the_jpeg_encoder(backend: Backend[Any]) -> None:
    handle = image_of(backend, smooth(64, 64, 3))
    low = backend.encode(handle, P.EncodeSpec(ImageFormat.JPEG, 90), quality=20)
    high = backend.encode(handle, P.EncodeSpec(ImageFormat.JPEG, 90))
    assert abs((probe(low).quality or 0) - 20) <= 1 and abs((probe(high).quality or 0) - 90) <= 1


def test_strip_and_orientation_reset(backend: Backend[Any]) -> None:
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "contract"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = io.BytesIO()
    Image.fromarray(smooth(16, 16, 3)).save(out, "JPEG", exif=exif.tobytes(), icc_profile=icc)
    handle = load(backend, out.getvalue())
    kept = Image.open(io.BytesIO(backend.encode(handle, P.EncodeSpec(ImageFormat.JPEG, 80))))
    assert kept.getexif().get(0x0112) == 6 and kept.info.get("icc_profile")
    reset = Image.open(io.BytesIO(backend.encode(handle, P.EncodeSpec(ImageFormat.JPEG, 80, reset_orientation=True))))
    assert reset.getexif().get(0x0112, 1) == 1 and reset.getexif().get(0x010F) == "contract"
    stripped = Image.open(io.BytesIO(backend.encode(handle, P.EncodeSpec(ImageFormat.JPEG, 80, strip=True))))
    assert not stripped.getexif() and not stripped.info.get("icc_profile")
