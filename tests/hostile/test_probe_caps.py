"""Issue 12, classes 1 and 2: every header loop has a per-file cap, a size over the limits is
refused before the rest of the file is walked, and the limits hold on the sizes decoders
really allocate (``docs/security.md``, "Round 2").

Each class is tested with several crafted variants (the generators of
``tests/fixtures/bombs/make_bombs.py``), each next to the legal file closest to it, which
must still be read. Costs are measured by ``test_bombs.py`` (the same files through
``process()`` in a subprocess); here the outcomes, the messages and the sizes are checked.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from pathlib import Path

import pytest

import ci_engine
from ci_engine.backends import available_backends
from ci_engine.errors import ImageResolutionExceedError, InvalidImageFormatError
from ci_engine.io import probe
from ci_engine.limits import Limits
from ci_engine.store import MemoryStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "bombs"))
import make_bombs as mb

BACKENDS = available_backends()
LIMITS = Limits()
MB = mb.MB


def refused(data: bytes, message: str, *, limits: Limits | None = None) -> None:
    with pytest.raises(InvalidImageFormatError, match=message):
        probe(data, limits=limits)


def over_limits(data: bytes, kind: str, limits: Limits = LIMITS) -> ImageResolutionExceedError:
    with pytest.raises(ImageResolutionExceedError) as info:
        probe(data, limits=limits)
    assert info.value.kind == kind
    return info.value


# -- class 1: loops with a per-file cap ------------------------------------------------------------


def test_jpeg_fill_and_stray_bytes_are_capped_per_file() -> None:
    message = "more than 65536 stray or fill bytes"
    refused(mb.jpeg_padding(30 * MB), message)  # one run of fill bytes
    refused(mb.jpeg_padding(70_000, before=b"\xff\xfe\x00\x02", fill=b"\x00"), message)  # stray bytes
    refused(mb.jpeg_fill_segments(700, 100), message)  # many short runs: per file, not per run
    refused(mb.jpeg_fill_segments(10, 6_600), message)
    # what libjpeg accepts and real files hold: a few fill bytes before markers
    assert probe(mb.jpeg_fill_segments(10, 100)).width == 16
    assert probe(mb.jpeg_padding(65_000)).width == 16
    assert probe(mb.jpeg_padding(60_000, before=b"\xff\xfe\x00\x02", fill=b"\x00")).width == 16


def test_jpeg_quantisation_tables_are_capped_per_file() -> None:
    table = b"\x00" + bytes([1] * 64)
    refused(mb.jpeg_with(mb.jpeg_segment(0xDB, table * 1_008) * 490), "more than 64 quantisation tables")
    refused(mb.jpeg_with(mb.jpeg_segment(0xDB, table) * 64), "more than 64 quantisation tables")  # with TINY_JPEG's
    assert probe(mb.jpeg_with(mb.jpeg_segment(0xDB, table) * 63)).width == 16


@pytest.mark.parametrize("backend", BACKENDS)
def test_fill_bytes_under_the_cap_still_decode(backend: str) -> None:
    result = ci_engine.process(mb.jpeg_fill_segments(10, 100), "imageMogr2/format/png", backend=backend)
    assert (result.format, result.width, result.height) == ("png", 16, 16)


def test_gif_blocks_and_sub_blocks_are_capped_per_file() -> None:
    refused(mb.gif_flood(b"\x21\xfe\x00", 10_000_000), "more than 16384 extension blocks")
    refused(mb.gif_flood(b"\x21\xfe\x00", 1_000_000, after=True), "more than 16384 extension blocks")
    refused(mb.gif_subblock_flood(15_000_000, in_extension=True), "more than 16384 extension blocks")
    refused(mb.gif_subblock_flood(15_000_000), "more than 65536 short image data sub-blocks")
    refused(mb.gif_subblock_flood(70_000), "more than 65536 short image data sub-blocks")
    assert probe(mb.gif_subblock_flood(60_000)).frames == 1
    assert probe(mb.gif_flood(b"\x21\xfe\x00", 8_000)).frames == 1  # 16,000 blocks and sub-blocks


def test_gif_runs_of_full_sub_blocks_are_skipped_exactly() -> None:
    """The strided skip over 255-byte sub-blocks lands where the one-by-one walk does: frames
    of 0 to 5,000 full sub-blocks and a short last one, truncated anywhere."""

    def frame(full: int, last: int) -> bytes:
        data = (b"\xff" + bytes(255)) * full + (bytes((last,)) + bytes(last) if last else b"") + b"\x00"
        return b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02" + data

    for full in (0, 1, 2, 4095, 4096, 4097, 5000):
        frames = frame(full, 7) + frame(full, 0) + frame(1, 254)
        data = mb.gif(1, 1, frames)
        assert probe(data).frames == 3, full
        assert probe(data[: len(data) - 3]).frames == 2, full  # the third frame is cut
    # a 255 in the image data is only a length where a sub-block starts
    tricky = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00\x02" + b"\x03\xff\xff\xff" + b"\x00"
    assert probe(mb.gif(1, 1, tricky * 2)).frames == 2


def test_webp_chunks_are_counted_whatever_their_type() -> None:
    refused(mb.webp_junk(3_000_000), "more than 10000 chunks besides the frames")
    refused(mb.webp_junk(20_000, animated=True), "more than 10000 chunks besides the frames")
    assert probe(mb.webp_junk(9_999)).frames == 1
    assert probe(mb.webp_junk(9_990, animated=True)).frames == 2


def test_png_compressed_metadata_is_capped_per_file() -> None:
    message = "the compressed metadata inflates to more than 4194304 bytes"
    for kind in (b"zTXt", b"iTXt", b"iCCP"):
        assert probe(mb.png_metadata_flood(4, kind)).width == 1  # 4 MiB: the budget exactly
        refused(mb.png_metadata_flood(5, kind), message)
    refused(mb.png_metadata_flood(8_000), message)
    refused(mb.png_metadata_flood(5, after=True), message)  # after the image data too
    one_each = mb.png_metadata_flood(2) + b""
    data = one_each[:-12] + mb.png_chunk(b"zTXt", b"c\x00\x00" + zlib.compress(bytes(3 * MB))) + one_each[-12:]
    refused(data, "zTXt chunk inflates to more than 1048576 bytes")  # the per-chunk cap holds


def test_png_chunks_after_the_image_data_are_counted() -> None:
    base = mb.png(1, 1)
    text = mb.png_chunk(b"tEXt", b"a\x00b")
    assert probe(base[:-12] + text * 9_990 + base[-12:]).width == 1
    refused(base[:-12] + text * 10_001 + base[-12:], "more than 10000 chunks besides the image data")
    # a tail cut short or garbled is the decoders' business
    assert probe(base[:-12] + text * 3 + b"\x00\x00").width == 1


def test_tiff_directories_are_capped_at_libtiffs_4096_entries() -> None:
    for bigtiff in (False, True):
        assert probe(mb.tiff_entries(4_096, bigtiff=bigtiff)).width == 16
        refused(mb.tiff_entries(4_097, bigtiff=bigtiff), "declares 4097 entries, more than 4096")
    refused(mb.tiff_entries(1_500_000, bigtiff=True), "declares 1500000 entries")
    # an EXIF directory past the cap is unreadable EXIF: the defaults, not a failure
    exif = b"Exif\x00\x00" + mb.tiff_entries(5_000)
    assert probe(mb.jpeg_with(mb.jpeg_segment(0xE1, exif))).orientation == 1


def test_heif_boxes_and_entries_are_capped_per_file() -> None:
    refused(mb.heif_box_flood(), "more than 20000 boxes in the file")
    refused(mb.heif_ipma_flood(), "more than 100000 ipma entries in the file")
    refused(mb.heif_ipma_flood(boxes=1, entries=500), "more than 100000 ipma entries in the file")
    refused(mb.heif_iref_flood(), "more than 100000 iref entries in the file")
    refused(mb.heif_iref_flood(2), "more than 100000 iref entries in the file")
    assert probe(mb.heif_box_flood(per_container=4_000)).width == 16
    # the largest shape read: a grid of 99 x 100 tiles (9,901 items of the 10,000 a container
    # may hold; 60,000 ipma, iref and iloc entries)
    grid = probe(mb.heif_real_grid(99, 100))
    assert (grid.width, grid.height) == (101_376, 102_400)


# -- a size over the limits is refused before the rest is walked ---------------------------------------

_EARLY = {
    "jpeg": (mb.jpeg(65_535, 65_535, body=b"\xff" * (1 << 17) + mb._SOS_ZEROS), "input_side"),
    "gif": (mb.gif_flood(b"\x21\xfe\x00", 100_000, width=65_535, height=65_535), "input_side"),
    "webp": (mb.webp_junk(20_000, side=100_000), "input_side"),
    "png": (mb.png_metadata_flood(5, side=100_000), "input_side"),
    "apng": (
        mb.png(100, 100, chunks=mb.png_chunk(b"acTL", struct.pack(">II", 5_000, 0)))[:-12]
        + mb.png_chunk(b"tEXt", b"a\x00b") * 10_001
        + mb.png_chunk(b"IEND", b""),
        "frames",
    ),
    "tiff": (mb.tiff(100_000, 100_000, ifds=1_200), "input_side"),
}


@pytest.mark.parametrize("name", sorted(_EARLY))
def test_a_size_over_the_limits_is_refused_before_the_rest_is_walked(name: str) -> None:
    """Each file is refused as malformed when walked to the end (without limits), and as over
    the limits with them: the limit check came first."""
    data, kind = _EARLY[name]
    with pytest.raises(InvalidImageFormatError):
        probe(data)
    over_limits(data, kind)


def test_the_limits_given_are_the_ones_checked() -> None:
    photo = mb.png(64, 48)
    assert probe(photo, limits=Limits(max_input_side=64)).width == 64
    over_limits(photo, "input_side", Limits(max_input_side=63))
    over_limits(photo, "input_pixels", Limits(max_input_pixels=64 * 48 - 1))
    frames = mb.gif(10, 10, mb._GIF_FRAME_1X1 * 40)
    assert probe(frames, limits=Limits(max_gif_frames=40)).frames == 40
    assert over_limits(frames, "frames", Limits(max_gif_frames=39)).actual == 40  # counted to the limit + 1


# -- class 2: headers that lie ----------------------------------------------------------------------


def test_heif_clap_does_not_hide_the_decoded_size() -> None:
    for data in (
        mb.heif_real_grid(20, 20, grid_props=(mb.clap(16, 16),)),
        mb.heif(1, 1, items=((1, b"hvc1", (mb.ispe(20_000, 20_000), mb._HVCC, mb.clap(16, 16))),)),
        mb.heif(1, 1, items=((1, b"hvc1", (mb.ispe(10, 40_000), mb._HVCC, mb.clap(8, 8))),)),
    ):
        header = probe(data)  # without limits: the size delivered, after the crop
        assert (header.width, header.height) in ((16, 16), (8, 8))
        over_limits(data, "input_pixels" if header.width == 16 else "input_side")
    loose = Limits(max_input_pixels=500_000_000)
    assert probe(mb.heif_real_grid(20, 20, grid_props=(mb.clap(16, 16),)), limits=loose).width == 16


def test_heif_ambiguity_is_refused() -> None:
    refused(mb.heif_real_grid(20, 20, small=True, pitm=(1, 2)), "two pitm boxes .two primary items.: ambiguous")
    refused(mb.heif_real_grid(1, 1, small=True, pitm=(2, 2)), "two pitm boxes")
    refused(mb.heif_twice("item"), "item 1 is declared twice: ambiguous")
    refused(mb.heif_twice("ipma"), "item 1 has two ipma entries: ambiguous")
    refused(mb.heif_twice("meta"), "two meta boxes")
    refused(mb.insert_into(mb.heif(16, 16), (b"meta", b"iprp"), mb.box(b"ipco", b"")), "two ipco boxes")
    with_iref = mb.heif(16, 16, refs=mb.box(b"cdsc", struct.pack(">HHH", 1, 1, 1)), idat=b"\x00")
    for single in (b"hdlr", b"iinf", b"iloc", b"iref", b"iprp", b"idat"):
        data = mb.insert_into(with_iref, (b"meta",), mb.full_box(single, 0, b"\x00" * 8))
        refused(data, f"two {single.decode()} boxes")


def test_heif_grids_must_tile_their_size() -> None:
    refused(mb.heif_real_grid(16, 16, output=(1_024, 1_024)), "16 x 16 tiles of 1024x1024 do not tile the 1024x1024")
    refused(mb.heif_real_grid(2, 2, output=(2_048, 1_024)), "do not tile")
    refused(mb.heif_grid((16, 16), (16, 16), tiles=2), "do not tile")
    refused(mb.heif_grid((1, 1), (30_000, 30_000)), "30000x30000 by its descriptor, 1x1 by its ispe")
    over_limits(mb.heif_grid((16, 16), (16, 16), tile=(20_000, 20_000)), "input_pixels")
    assert probe(mb.heif_grid((2, 1), (2, 1), tiles=2)).width == 2
    assert probe(mb.heif_real_grid(2, 2)).width == 2_048
    assert probe(mb.heif_real_grid(2, 1, output=(1_500, 1_024))).width == 1_500  # a partial column


def test_heif_tiles_of_different_sizes_are_refused() -> None:
    items: list[tuple[int, bytes, tuple[bytes, ...]]] = [(1, b"grid", (mb.ispe(2, 1),))]
    items += [(2, b"hvc1", (mb.ispe(1, 1), mb._HVCC)), (3, b"hvc1", (mb.ispe(5_000, 5_000), mb._HVCC))]
    refs = mb.box(b"dimg", struct.pack(">HHHH", 1, 2, 2, 3))
    descriptor = bytes((0, 1, 0, 1)) + struct.pack(">II", 2, 1)
    entries = struct.pack(">HHHHII", 1, 1, 0, 1, 0, len(descriptor))
    iloc = mb.full_box(b"iloc", 1, b"\x44\x00" + struct.pack(">H", 1) + entries)
    data = mb.heif(2, 1, items=tuple(items), refs=refs, idat=descriptor, iloc=iloc)
    refused(data, "not all of one size")


def test_heif_alpha_plane_is_held_to_the_limits() -> None:
    data = mb.heif_alpha_lie()
    header = probe(data)
    assert (header.width, header.height, header.has_alpha) == (16, 16, True)
    over_limits(data, "input_pixels")


@pytest.mark.parametrize("backend", BACKENDS)
def test_real_grids_still_decode_with_their_clap(backend: str) -> None:
    """libheif decodes what the probe accepts: a 2 x 2 grid of real tiles, cropped by clap."""
    plain = ci_engine.process(mb.heif_real_grid(2, 2), "imageMogr2/format/png", backend=backend)
    assert (plain.width, plain.height) == (2_048, 2_048)
    cropped = mb.heif_real_grid(2, 2, grid_props=(mb.clap(100, 60),))
    assert (probe(cropped).width, probe(cropped).height) == (100, 60)
    result = ci_engine.process(cropped, "imageMogr2/format/png", backend=backend)
    assert (result.width, result.height) == (100, 60)


def test_gif_frames_larger_than_the_screen_are_refused() -> None:
    refused(mb.gif_big_frames(100, [(0, 0, 13_000, 13_000)]), "frame 1 is 13000x13000, larger than the 100x100")
    refused(mb.gif_big_frames(100, [(0, 0, 100, 100), (0, 0, 65_535, 1)]), "frame 2 is 65535x1")
    refused(mb.gif_big_frames(100, [(0, 0, 100, 101)]), "frame 1 is 100x101")
    # a frame that fits the screen but is placed partly outside it is clipped, as libnsgif does
    assert probe(mb.gif_big_frames(100, [(0, 0, 100, 100), (90, 90, 20, 20)])).frames == 2


def gif_with_frame_at(left: int, top: int) -> bytes:
    """A real 100 x 100 two-frame GIF (Pillow) whose second frame, 20 x 20, is moved to
    (``left``, ``top``)."""
    from PIL import Image

    first, second = Image.new("P", (100, 100), 1), Image.new("P", (20, 20), 2)
    for image in (first, second):
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
    out, one = io.BytesIO(), io.BytesIO()
    first.save(out, "GIF")
    second.save(one, "GIF")
    frame = one.getvalue()
    pos = 13 + (3 << ((frame[10] & 7) + 1) if frame[10] & 0x80 else 0)
    while frame[pos] == 0x21:  # extensions: label, then sub-blocks
        pos += 2
        while frame[pos]:
            pos += frame[pos] + 1
        pos += 1
    frame = frame[pos:-1]  # the image descriptor and its data
    frame = frame[:1] + struct.pack("<HH", left, top) + frame[5:]
    return out.getvalue()[:-1] + frame + b"\x3b"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_frame_placed_partly_outside_is_clipped_alike(backend: str) -> None:
    data = gif_with_frame_at(90, 90)
    assert probe(data).frames == 2
    result = ci_engine.process(data, "imageMogr2/format/png", backend=backend)
    assert (result.width, result.height, result.frames) == (100, 100, 1)
    assert probe(result.data).width == 100


def test_webp_frames_must_stay_on_the_canvas() -> None:
    refused(mb.webp_frame_outside(0, 0, 13_000, 13_000), "frame 1 .13000x13000 at 0,0. leaves the 100x100 canvas")
    refused(mb.webp_frame_outside(60, 60, 50, 50), "leaves the 100x100 canvas")
    refused(mb.webp_frame_outside(0, 0, 100, 101), "leaves")
    assert probe(mb.webp_frame_outside(50, 50, 50, 50)).frames == 1


def test_tiff_samples_times_bits_are_checked() -> None:
    for samples in (7, 16, 255):
        refused(mb.tiff_samples(16, 16, samples), f"{samples} samples per pixel .at most 6")
    assert probe(mb.tiff_samples(16, 16, 6)).width == 16
    refused(mb.tiff_samples(16, 16, 1, 128, data=False), "128 bits per sample")
    big = mb.tiff_samples(8_000, 8_000, 6, 64, data=False)  # 64 MP x 48 bytes: 3 GB
    assert probe(big).width == 8_000
    error = over_limits(big, "input_pixels")
    assert "6 samples of 64 bits" in error.message
    assert probe(big, limits=Limits(max_input_pixels=400_000_000)).width == 8_000
    assert probe(mb.tiff_samples(8_000, 8_000, 4, 16, data=False), limits=LIMITS).width == 8_000  # 16-bit RGBA


def test_tiff_tiles_no_larger_than_the_image_needs() -> None:
    refused(mb.tiff_tiled(16, 16, 16_384, data=False), "tiles of 16384x16384 for a 16x16 image")
    refused(mb.tiff_tiled(3_000, 2_000, 4_096, data=False), "tiles of 4096x4096 for a 3000x2000 image")
    assert probe(mb.tiff_tiled(16, 16, 1_024, data=False)).width == 16  # a fixed tile size on a small image
    assert probe(mb.tiff_tiled(3_000, 3_000, 3_008, data=False)).width == 3_000  # one tile, rounded up to 16


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tiled_tiff_still_decodes(backend: str) -> None:
    result = ci_engine.process(mb.tiff_tiled(100, 60, 256), "imageMogr2/format/png", backend=backend)
    assert (result.width, result.height) == (100, 60)


def test_the_scan_cap_holds_for_sequential_jpegs() -> None:
    assert probe(mb.jpeg_sequential_scans(128, 100)).width == 128
    refused(mb.jpeg_sequential_scans(128, 101), "more than 100 scans")
    refused(mb.jpeg_sequential_scans(1_024, 7_500), "more than 100 scans")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sequential_jpeg_of_one_scan_decodes(backend: str) -> None:
    result = ci_engine.process(mb.jpeg_sequential_scans(128, 1), "imageMogr2/format/png", backend=backend)
    assert (result.width, result.height) == (128, 128)


# -- every entry point checks the limits while probing --------------------------------------------------


def test_every_entry_point_refuses_the_lying_header() -> None:
    lie = mb.heif_real_grid(20, 20, grid_props=(mb.clap(16, 16),))
    with pytest.raises(ImageResolutionExceedError):
        ci_engine.process(lie, "imageMogr2/thumbnail/8x")
    url = "https://b-1250000000.cos.ap-guangzhou.myqcloud.com/logo.heic"
    import base64

    rule = "watermark/1/image/" + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    with pytest.raises(ImageResolutionExceedError):
        ci_engine.process(mb.png(64, 64), rule, resources={url: lie})
    header = json.dumps({"is_pic_info": 0, "rules": [{"fileid": "t.png", "rule": "imageMogr2/thumbnail/8x"}]})
    with pytest.raises(ImageResolutionExceedError):
        ci_engine.persist("lie.heic", lie, header, MemoryStore())
