"""Issue 12, classes 3-5: the per-request work budget, legal but ruinous inputs, and the line
between programming errors and request errors.

* The work bombs of ``tests/fixtures/bombs/work`` run through ``process()`` on both backends in
  a subprocess (``work_figures.py``) that measures each: a request the budget refuses costs
  what a header refusal costs (< 50 ms, < 100 MB); an accepted input under 1 MB stays under
  300 MB of peak RSS, and the inputs whose cost was a slow path (EXIF, RLE, PNG trailers)
  under 1 s of CPU.
* In process: the budget's accounting (shared by nested requests, checked before the fetch,
  tunable through ``Limits``), the parse cache's size bound, the exactness of the paths that
  replaced slow ones (windowed tile rotation, strip compositing, the RLE expander), and the
  exceptions of class 5.
"""

from __future__ import annotations

import io
import random
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ci_engine as ce
from ci_engine.backends import available_backends
from ci_engine.errors import ImageResolutionExceedError, ImageTooLargeError, InternalError
from ci_engine.limits import Limits, WorkBudget, request_budget
from ci_engine.store import MemoryStore
from tests.hostile.work_figures import measure_many

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "bombs"))
import make_work_bombs as W

BACKENDS = available_backends()
FAST = [bomb for bomb in W.WORK_BOMBS if bomb.fast]
BY_NAME = {bomb.name: bomb for bomb in W.WORK_BOMBS}
SLOW_PATHS = {"exif-172-floats.jpg", "bmp-rle8-4000-eol.bmp", "bmp-rle4-4000-eol.bmp",
              "png-9000-text-after-idat.png"}  # fmt: skip
"""Inputs whose cost was a slow path of ours or of a decoder, not output pixels: 1 s of CPU."""
MS_PER_ALLOWED_IMAGE = 10
"""CPU allowed per watermark image a request fetches before the one over its limit (an
8 x 8 logo, its nested request: 1-3 ms measured)."""
UPSCALE_BYTES_PER_PIXEL = 10
"""Peak RSS per output pixel of the 1 x 1 -> 5,000 x 5,000 upscale (docs/backends.md: the
Pillow backend holds the output, one copy for the encoder and a few MB of bands)."""


def test_the_work_corpus_is_what_the_generator_writes() -> None:
    assert W.main(["--check"]) == 0, "run python tests/fixtures/bombs/make_work_bombs.py"
    for bomb in W.WORK_BOMBS:
        if bomb.committed:
            assert (W.OUT / bomb.name).stat().st_size < 2**20, bomb.name


@pytest.mark.parametrize("backend", BACKENDS)
def test_work_bombs_on_both_backends(backend: str) -> None:
    reports = measure_many([bomb.name for bomb in FAST], backend)
    failures = []
    for bomb in FAST:
        report = reports[bomb.name]
        problems = []
        if report["outcome"] != bomb.expected:
            problems.append(f"outcome {report['outcome']!r}, expected {bomb.expected}")
        elif bomb.kind is not None and report["kind"] != bomb.kind:
            problems.append(f"limit {report['kind']!r}, expected {bomb.kind!r}")
        rss = report["rss_mb"] or 0.0
        if bomb.expected != W.OK:  # refused by the budget or the probe, before the work
            # a refusal for the 21st logo comes after the 20 allowed ones were processed
            allowed = MS_PER_ALLOWED_IMAGE * Limits().max_request_images if bomb.kind == "request_images" else 0
            if report["cpu_ms"] >= 50 + allowed or rss >= 100:
                problems.append(f"refusal cost {report['cpu_ms']:.0f} ms, {rss:.0f} MB")
        elif bomb.name == "png-1x1-upscale-5000.png":
            if rss * 2**20 >= UPSCALE_BYTES_PER_PIXEL * 5000 * 5000:
                problems.append(f"{rss:.0f} MB for a 25 MP upscale")
        elif rss >= 300:
            problems.append(f"{rss:.0f} MB of peak RSS")
        if bomb.name in SLOW_PATHS and report["cpu_ms"] >= 1000:
            problems.append(f"{report['cpu_ms']:.0f} ms of CPU")
        if problems:
            failures.append(f"{bomb.name}: {'; '.join(problems)}")
    assert not failures, f"{backend}:\n" + "\n".join(failures)


# -- the budget --------------------------------------------------------------------------------


def test_budget_counts_and_refuses_with_the_limit() -> None:
    budget = WorkBudget(Limits(max_work_pixels=1000, max_request_images=2, max_request_bytes=10))
    budget.charge_pixels(600, "a")
    with pytest.raises(ImageResolutionExceedError) as info:
        budget.charge_pixels(401, "the next step")
    assert (info.value.kind, info.value.limit, info.value.actual) == ("work_pixels", 1000, 1001)
    assert "the next step" in info.value.message and info.value.maskable
    assert budget.pixels == 600  # a refused charge is not counted
    budget.count_image("one")
    budget.count_image("two")
    with pytest.raises(ImageResolutionExceedError) as images:
        budget.count_image("three")
    assert images.value.kind == "request_images"
    with pytest.raises(ImageTooLargeError) as size:
        budget.charge_bytes(11, "input")
    assert size.value.kind == "request_bytes"


def test_nested_requests_share_the_budget() -> None:
    with request_budget(Limits()) as outer, request_budget(Limits(max_work_pixels=1)) as inner:
        assert inner is outer
    with request_budget(Limits()) as fresh:
        assert fresh is not outer


def test_logo_fetches_stop_at_the_request_limit_before_fetching() -> None:
    fetched: list[str] = []
    logo = W.png_rgb(8, 8)

    def resolver(url: str) -> bytes:
        fetched.append(url)
        return logo

    base = W.png_rgb(64, 64)
    with pytest.raises(ImageResolutionExceedError) as info:
        ce.process(base, W.logo_tree(10, 10), resources=resolver)
    assert info.value.kind == "request_images"
    assert len(fetched) == Limits().max_request_images  # the 21st was never fetched
    fetched.clear()
    result = ce.process(base, W.logo_tree(3, 10), resources=resolver, limits=Limits(max_request_images=33))
    assert (result.width, result.height, len(fetched)) == (64, 64, 33)


def test_the_budget_is_charged_before_the_work() -> None:
    photo = W.png_rgb(100, 100)
    # decode 10,000 + resize 2,500 + encode 2,500
    assert ce.process(photo, "imageMogr2/thumbnail/50x", limits=Limits(max_work_pixels=15_000)).width == 50
    with pytest.raises(ImageResolutionExceedError) as info:
        ce.process(photo, "imageMogr2/thumbnail/50x", limits=Limits(max_work_pixels=14_999))
    assert info.value.actual == 15_000
    masked = ce.process(photo, "imageMogr2/thumbnail/50x/ignore-error/1", limits=Limits(max_work_pixels=10))
    assert masked.masked is not None and masked.data == photo


def test_persist_counts_every_rule_against_one_budget() -> None:
    photo = W.png_rgb(100, 100)
    rules = [{"fileid": f"o{i}.png", "rule": "imageMogr2/thumbnail/50x"} for i in range(3)]
    import json

    header = json.dumps({"rules": rules})
    store = MemoryStore()
    ce.persist("a.png", photo, header, store, limits=Limits(max_work_pixels=45_000))
    with pytest.raises(ImageResolutionExceedError):
        ce.persist("b.png", photo, header, MemoryStore(), limits=Limits(max_work_pixels=44_999))


def test_a_tile_larger_than_the_canvas_is_cut_before_rotation() -> None:
    bomb = BY_NAME["tile-rotated-1000-chars.png"]
    result = ce.process(W.load(bomb), bomb.rule, backend="pillow")
    assert (result.width, result.height) == (1000, 1000)
    composite = [s for s in result.plan.steps if s.method == "composite"] if result.plan else []
    assert composite and composite[0].overlay_size == (1000, 1000)  # not the 42,000 px box


# -- exactness of the replacements -------------------------------------------------------------


@pytest.mark.parametrize("degree", [30, 45, 137, 200, 315])
def test_a_rotation_window_is_the_corner_of_the_whole_rotation(degree: int) -> None:
    from ci_engine.watermark.prepare import _rotate

    rng = np.random.default_rng(degree)
    pixels = rng.integers(0, 256, (37, 90, 4), dtype=np.uint8)
    whole = _rotate(pixels, degree)
    window = _rotate(pixels, degree, (41, 23))
    assert window.shape == (23, 41, 4)
    diff = np.abs(window.astype(int) - whole[:23, :41].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01  # the same up to float accumulation


def test_tiles_composited_in_strips_equal_one_tiled_overlay(monkeypatch: pytest.MonkeyPatch) -> None:
    from ci_engine.plan.steps import Composite
    from ci_engine.watermark import blend

    monkeypatch.setattr(blend, "STRIP_PIXELS", 97)  # many strips, phases that do not align
    rng = np.random.default_rng(3)
    tile = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    frames = rng.integers(0, 256, (1, 40, 33, 3), dtype=np.uint8)
    step = Composite(tile, (5, 7), ((0, 0),), 0.8, tile=True, grey=False, key="t")
    got = blend.composite_frames(frames, step)
    reference = np.tile(tile, (6, 7, 1))[:40, :33]
    assert np.array_equal(got[0], blend.over(frames[0], reference, 0.8))


def _bmp(width: int, height: int, rle4: bool, body: bytes, colors: int, grey: bool, top_down: bool) -> bytes:
    bits, compression = (4, 2) if rle4 else (8, 1)
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits, compression,
                       len(body), 2835, 2835, colors, 0)  # fmt: skip
    if grey:
        palette = b"".join(bytes([i * 255 // (colors - 1)] * 3) + b"\0" for i in range(colors))
    else:
        palette = b"".join(bytes([(i * 37) % 256, (i * 91) % 256, (i * 13) % 256, 0]) for i in range(colors))
    offset = 14 + 40 + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + body


def test_the_rle_expander_matches_pillows_decoder() -> None:
    from PIL import BmpImagePlugin

    from ci_engine.codecs import bmp

    rng = random.Random(12)
    compared = 0
    for _ in range(300):
        rle4 = rng.random() < 0.5
        colors = rng.choice([2, 16] if rle4 else [2, 16, 256])
        width, height = rng.randint(1, 40), rng.randint(1, 40)
        body = bytearray()
        for _ in range(rng.randint(0, 200)):
            r = rng.random()
            if r < 0.5:
                body += bytes([rng.randint(1, 60), rng.randint(0, 255)])
            elif r < 0.6:
                body += b"\x00\x00"
            elif r < 0.65:
                body += b"\x00\x02" + bytes([rng.randint(0, 10), rng.randint(0, 3)])
            elif r < 0.67:
                body += b"\x00\x01"
            else:
                k = rng.randint(3, 40)
                body += bytes([0, k]) + bytes(rng.randint(0, 255) for _ in range(rng.randint(0, k)))
        data = _bmp(width, height, rle4, bytes(body), colors, rng.random() < 0.3, rng.random() < 0.3)
        reference: Any
        try:
            with BmpImagePlugin.BmpImageFile(io.BytesIO(data)) as image:
                reference = np.asarray(image.convert("RGB"))
        except ValueError:
            reference = None
        try:
            got: Any = bmp.decode(data).pixels[0]
        except ce.InvalidImageFormatError:
            got = None
        if reference is None or got is None:
            assert reference is None and got is None
        else:
            assert np.array_equal(got, reference)
            compared += 1
    assert compared > 30


def test_png_chunks_after_the_image_data_are_cut_on_pillow() -> None:
    from ci_engine.backends.pillow import PNG_TRAILING_CHUNKS, _png_trailer_cut

    data = W.png_text_after_idat(1000)
    cut = _png_trailer_cut(data)
    assert cut.endswith(b"IEND\xaeB`\x82") and cut.count(b"tEXt") == PNG_TRAILING_CHUNKS
    few = W.png_text_after_idat(10)
    assert _png_trailer_cut(few) == few
    assert (
        ce.process(data, "imageMogr2/format/png", backend="pillow").data
        == ce.process(few, "imageMogr2/format/png", backend="pillow").data
    )


def test_exif_values_are_capped_in_total() -> None:
    import json

    body = ce.process(W.load(BY_NAME["exif-172-floats.jpg"]), "exif").data
    assert len(body) < 1_000_000
    tags = json.loads(body)
    assert 0 < len(tags) < 172  # the first ones are rendered whole, the rest skipped
    first = next(iter(tags.values()))["val"]
    assert len(first.split(" ")) == 15_000


def test_the_parse_cache_is_bounded_by_size() -> None:
    from ci_engine.parse import CACHE_MAX_CHARS, CACHE_MAX_TOTAL_CHARS, _parse_cached

    _parse_cached.cache_clear()
    long_rule = "imageMogr2/thumbnail/100x" + "/quality/80" * (CACHE_MAX_CHARS // 11 + 1)
    assert len(long_rule) > CACHE_MAX_CHARS
    ce.parse(long_rule)
    assert _parse_cached.cache_info() == (0, 0)  # parsed, not kept
    short = "imageMogr2/thumbnail/100x"
    assert ce.parse(short) is ce.parse(short)
    for i in range(CACHE_MAX_TOTAL_CHARS // 4000 + 10):
        ce.parse(f"imageMogr2/thumbnail/{i + 1}x" + "/quality/80" * 360)
    entries, chars = _parse_cached.cache_info()
    assert chars <= CACHE_MAX_TOTAL_CHARS and entries < CACHE_MAX_TOTAL_CHARS // 3960
    _parse_cached.cache_clear()


# -- class 5: programming errors and request errors ------------------------------------------------


def test_programming_errors_are_raised_at_the_call() -> None:
    photo = W.png_rgb(8, 8)
    released = memoryview(bytearray(photo))
    released.release()
    with pytest.raises(ValueError, match="data: operation forbidden on released memoryview"):
        ce.process(released, "imageMogr2/thumbnail/4x")
    with pytest.raises(ValueError, match="released"):
        ce.persist("k.png", released, "{}", MemoryStore())
    with pytest.raises(TypeError, match="data must be bytes"):
        ce.process("text", "imageMogr2/thumbnail/4x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limits must be"):
        ce.process(photo, "imageInfo", limits={"max_steps": 3})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="processing string must be str or bytes"):
        ce.process(photo, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="resources must be"):  # before any logo is needed
        ce.process(photo, "imageInfo", resources=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fonts must be"):
        ce.process(photo, "imageInfo", fonts="tahoma.ttf")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="styles must be"):
        ce.persist("k.png", photo, "{}", MemoryStore(), styles={"card": "imageInfo"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend must be"):
        ce.process(photo, "imageInfo", backend=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="header: operation forbidden"):
        ce.explain("imageInfo", released)


@pytest.mark.parametrize(
    "resources",
    [{"logo.png": "not bytes"}, lambda url: "not bytes", {"logo.png": 3}],
    ids=["mapping-str", "callable-str", "mapping-int"],
)
def test_a_resolvers_wrong_answer_is_an_internal_error(resources: Any) -> None:
    rule = f"watermark/1/image/{W.b64('logo.png')}"
    with pytest.raises(InternalError) as info:
        ce.process(W.png_rgb(16, 16), rule, resources=resources)
    assert info.value.status == 500 and "not bytes" in info.value.message


def test_a_resolver_may_answer_with_a_memoryview() -> None:
    logo = W.png_rgb(4, 4)
    rule = f"watermark/1/image/{W.b64('logo.png')}"
    out = ce.process(W.png_rgb(16, 16), rule, resources={"logo.png": memoryview(logo)})
    assert (out.width, out.height) == (16, 16)
