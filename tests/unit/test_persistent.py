"""Persistent processing: the Pic-Operations header, fileid resolution, the shared decode,
the stored results, UploadResult XML and the failure semantics (persistent-processing.md)."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import ci_engine
from ci_engine.backends import available_backends, get_backend
from ci_engine.errors import (
    ImageResolutionExceedError,
    ImageTooLargeError,
    InternalError,
    InvalidArgumentError,
    InvalidImageFormatError,
    InvalidPicOperationsError,
    NoSuchKeyError,
    NoSuchStyleError,
    ParseError,
)
from ci_engine.io import probe
from ci_engine.limits import Limits
from ci_engine.persistent import (
    MAX_RULES,
    ImageInfo,
    OriginalInfo,
    ProcessResult,
    UploadResult,
    parse_pic_operations,
    persist,
    resolve_fileid,
)
from ci_engine.store import LocalStore, MemoryStore, md5_etag
from ci_engine.styles import StyleRegistry

PHOTO_PATH = Path(__file__).resolve().parents[2] / "docs" / "samples" / "kleiber.jpg"
BUCKET = "demo-1250000000"
REGION = "ap-guangzhou"

ORIGINAL_INFO = ["Key", "Location", "ETag", "ImageInfo"]
IMAGE_INFO = ["Format", "Width", "Height", "Quality", "Ave", "Orientation", "FrameCount"]
OBJECT = ["Key", "Location", "Format", "Width", "Height", "Size", "Quality", "ETag", "FrameCount"]


@pytest.fixture(scope="module")
def photo() -> bytes:
    return PHOTO_PATH.read_bytes()


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "bucket", fsync=False)


def header(*rules: tuple[str, str], is_pic_info: int = 0) -> str:
    return json.dumps({"is_pic_info": is_pic_info, "rules": [{"fileid": f, "rule": r} for f, r in rules]})


def leftovers(store: LocalStore) -> list[str]:
    return [p.name for p in store.root.rglob(".ci-tmp-*")]


class DecodeCounter:
    """Counts the backend's decodes (every decode of ``persist`` goes through it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, backend: str = "vips") -> None:
        self.engine = get_backend(backend)
        self.calls: list[Any] = []
        original = self.engine.decode

        def counting(data: bytes, spec: Any, image_header: Any) -> Any:
            self.calls.append(spec)
            return original(data, spec, image_header)

        # In the instance's __dict__, removed afterwards: monkeypatch.setattr on an instance
        # would leave the bound method behind as an instance attribute on undo, and that
        # would hide any later patch of the class (test_info's counter) from this instance.
        monkeypatch.setitem(vars(self.engine), "decode", counting)


def gif(colors: list[tuple[int, int, int]], size: tuple[int, int] = (64, 48)) -> bytes:
    """An animated GIF, one flat colour per frame."""
    frames = [Image.new("RGB", size, c) for c in colors]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return out.getvalue()


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


# -- fileid ----------------------------------------------------------------------------------------------

FILEIDS = [
    # (source key, fileid, result key)
    ("shop/items/42.jpg", "small/42.webp", "shop/items/small/42.webp"),  # the spec's example
    ("shop/items/42.jpg", "/cdn/42.webp", "cdn/42.webp"),  # the spec's example
    ("42.jpg", "small/42.webp", "small/42.webp"),  # source at the root
    ("42.jpg", "42.webp", "42.webp"),
    ("a/b/c/d.jpg", "x/y/z.png", "a/b/c/x/y/z.png"),  # nested
    ("a/b/c/d.jpg", "/x/y/z.png", "x/y/z.png"),
    ("a/b.jpg", "x//y.png", "a/x/y.png"),  # // normalised
    ("a/b.jpg", "//abs.png", "abs.png"),
    ("a/b.jpg", "x%2Fy%20z.png", "a/x/y z.png"),  # percent-decoded
    ("a/b.jpg", "%2Froot.png", "root.png"),
    ("a/b.jpg", "%E4%B8%AD.png", "a/中.png"),
    ("a/b.jpg", "b.jpg", "a/b.jpg"),  # overwrites the source
    ("a/b.jpg", "a..b.png", "a/a..b.png"),  # dots inside a name are fine
    ("a/b.jpg", "%252e%252e/x.png", "a/%2e%2e/x.png"),  # decoded once only: a literal name
]

BAD_FILEIDS = [
    "",
    "dir/",  # trailing slash: no file name
    "/",
    "dir%2F",  # trailing slash after decoding
    "../x.png",  # escape attempts
    "a/../../x.png",
    "/../x.png",
    "%2e%2e/x.png",
    "..%2Fx.png",
    "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "./x.png",
    "a/./x.png",
    "a/..",
    "x%00y.png",  # NUL
    "x%0Ay.png",  # newline
    "%ff.png",  # not UTF-8
    "x" * 900,  # over 850 bytes
]


@pytest.mark.parametrize("source, fileid, expected", FILEIDS)
def test_fileid_resolution(source: str, fileid: str, expected: str) -> None:
    assert resolve_fileid(source, fileid) == expected


@pytest.mark.parametrize("fileid", BAD_FILEIDS, ids=lambda f: repr(f[:24]))
def test_bad_fileids_are_refused(fileid: str) -> None:
    with pytest.raises(InvalidPicOperationsError) as info:
        resolve_fileid("shop/items/42.jpg", fileid)
    assert (info.value.status, info.value.code, info.value.x_errno) == (400, "InvalidPicOperations", -60998)


@pytest.mark.parametrize("fileid", ["../escape.jpg", "dir/"])
def test_a_bad_fileid_stores_nothing(photo: bytes, store: LocalStore, fileid: str) -> None:
    with pytest.raises(InvalidPicOperationsError):
        persist(
            "a/b.jpg",
            photo,
            header(("ok.jpg", "imageMogr2/thumbnail/10x"), (fileid, "imageMogr2/thumbnail/20x")),
            store,
        )
    assert store.keys() == []
    assert not (store.root.parent / "escape.jpg").exists()


# -- the header --------------------------------------------------------------------------------------------


def test_header_fields() -> None:
    ops = parse_pic_operations(
        '{"is_pic_info": 1, "unknown": [1], "rules": [{"fileid": "a.jpg", "rule": "imageMogr2/thumbnail/10x",'
        ' "bucket": "dest-1250000000", "extra": true}, {"fileid": "b.jpg", "rule": "imageView2/2/w/5", "bucket": ""}]}'
    )
    assert ops.is_pic_info
    assert [(r.index, r.fileid, r.bucket) for r in ops.rules] == [(0, "a.jpg", "dest-1250000000"), (1, "b.jpg", None)]
    assert ops.rules[0].pipeline == ci_engine.parse("imageMogr2/thumbnail/10x")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{}", (False, 0)),
        ('{"rules": null}', (False, 0)),
        ('{"rules": []}', (False, 0)),
        ('{"is_pic_info": true}', (True, 0)),
        ('{"is_pic_info": false}', (False, 0)),
        ('{"is_pic_info": 0}', (False, 0)),
        ({"is_pic_info": 1, "rules": [{"fileid": "a", "rule": "imageMogr2/rotate/90"}]}, (True, 1)),
        (b'{"is_pic_info": 1}', (True, 0)),
    ],
)
def test_header_variants(text: Any, expected: tuple[bool, int]) -> None:
    ops = parse_pic_operations(text)
    assert (ops.is_pic_info, len(ops.rules)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        '{"rules": [}',
        "[]",
        '"text"',
        '{"is_pic_info": 2}',
        '{"is_pic_info": "1"}',
        '{"is_pic_info": NaN}',
        '{"rules": {}}',
        '{"rules": ["imageMogr2/rotate/90"]}',
        '{"rules": [{"rule": "imageMogr2/rotate/90"}]}',  # fileid missing
        '{"rules": [{"fileid": "", "rule": "imageMogr2/rotate/90"}]}',
        '{"rules": [{"fileid": 5, "rule": "imageMogr2/rotate/90"}]}',
        '{"rules": [{"fileid": "a.jpg"}]}',  # rule missing
        '{"rules": [{"fileid": "a.jpg", "rule": " "}]}',
        '{"rules": [{"fileid": "a.jpg", "rule": "imageMogr2/rotate/90", "bucket": "Bad_Bucket"}]}',
        '{"rules": [{"fileid": "a.jpg", "rule": "imageMogr2/rotate/90", "bucket": 7}]}',
        b"\xff\xfe",
    ],
)
def test_malformed_headers(text: Any) -> None:
    with pytest.raises(InvalidPicOperationsError) as info:
        parse_pic_operations(text)
    assert (info.value.status, info.value.x_errno) == (400, -60998)


def test_six_rules_are_refused_and_nothing_is_written(photo: bytes, store: LocalStore) -> None:
    rules = [(f"r{i}.jpg", "imageMogr2/thumbnail/50x") for i in range(MAX_RULES + 1)]
    with pytest.raises(InvalidPicOperationsError) as info:
        persist("a.jpg", photo, header(*rules), store)
    assert (info.value.status, info.value.code, info.value.x_errno) == (400, "InvalidPicOperations", -60997)
    assert store.keys() == []  # not even the original
    assert list(store.root.iterdir()) == []
    assert len(persist("a.jpg", photo, header(*rules[:MAX_RULES]), store).process_results) == 5


def test_a_rule_that_does_not_parse_stores_nothing(photo: bytes, store: LocalStore) -> None:
    text = header(("a.webp", "imageMogr2/thumbnail/10x"), ("b.webp", "imageMogr2/thumbnail"))
    with pytest.raises(ParseError) as info:
        persist("x/a.jpg", photo, text, store)
    assert (info.value.status, info.value.code, info.value.x_errno) == (400, "InvalidArgument", -60998)
    assert info.value.message.startswith("rules[1]: ")
    assert store.keys() == []


def test_an_unknown_style_stores_nothing(photo: bytes, store: LocalStore) -> None:
    styles = StyleRegistry({"card": "imageMogr2/thumbnail/100x100"})
    text = header(("a.jpg", "style/card"), ("b.jpg", "style/nope"))
    with pytest.raises(NoSuchStyleError) as info:
        persist("a.jpg", photo, text, store, styles=styles)
    assert (info.value.status, info.value.x_errno) == (404, -60967)
    with pytest.raises(NoSuchStyleError):
        persist("a.jpg", photo, header(("a.jpg", "style/card")), store)  # no registry
    assert store.keys() == []


def test_information_rules_are_refused(photo: bytes, store: LocalStore) -> None:
    with pytest.raises(InvalidArgumentError):
        persist("a.jpg", photo, header(("i.json", "imageInfo")), store)
    assert store.keys() == []


# -- a real upload -------------------------------------------------------------------------------------------

THREE_RULES = (
    ("small/k.webp", "imageMogr2/thumbnail/200x/format/webp"),
    ("/cdn/k.png", "imageMogr2/thumbnail/!50p/format/png"),
    ("k-rotated.jpg", "imageMogr2/rotate/90/quality/80"),
)


def test_three_rules_one_decode(photo: bytes, store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = DecodeCounter(monkeypatch)
    result = persist(
        "shop/items/k.jpg",
        photo,
        header(*THREE_RULES, is_pic_info=1),
        store,
        bucket=BUCKET,
        region=REGION,
        backend="vips",
    )
    assert len(counter.calls) == 1  # one decode for three rules and ImageInfo's Ave
    assert counter.calls[0].shrink == 1 and counter.calls[0].frames == 1

    keys = ["shop/items/small/k.webp", "cdn/k.png", "shop/items/k-rotated.jpg"]
    assert store.keys() == sorted([*keys, "shop/items/k.jpg"])
    assert store.get("shop/items/k.jpg") == photo
    for obj, key, (_, rule) in zip(result.process_results, keys, THREE_RULES):
        stored = store.get(key)
        alone = ci_engine.process(photo, rule, backend="vips")
        assert obj.key == key
        assert obj.location == f"{BUCKET}.cos.{REGION}.myqcloud.com/{key}"
        assert obj.size == len(stored)
        assert obj.etag == md5_etag(stored) == store.etag(key)
        assert (obj.format, obj.width, obj.height, obj.frame_count) == (alone.format, alone.width, alone.height, 1)
        assert probe(stored).format.value == obj.format
        assert (probe(stored).width, probe(stored).height) == (obj.width, obj.height)
        assert obj.masked is None
    assert [(o.width, o.height) for o in result.process_results] == [(200, 113), (600, 338), (675, 1200)]
    assert [o.quality for o in result.process_results][1:] == [100, 80]
    # The shared decode gives the same pixels as process() on its own (same plan, full decode).
    assert store.get("shop/items/k-rotated.jpg") == ci_engine.process(photo, THREE_RULES[2][1], backend="vips").data

    info = result.original_info
    assert info.key == "shop/items/k.jpg"
    assert info.etag == md5_etag(photo)
    assert info.image_info is not None
    assert (info.image_info.format, info.image_info.width, info.image_info.height) == ("JPEG", 1200, 675)
    assert info.image_info.frame_count == 1
    assert info.image_info.ave.startswith("0x") and len(info.image_info.ave) == 8
    assert info.image_info.quality == probe(photo).quality


@pytest.mark.parametrize("backend", available_backends())
def test_ave_from_the_shared_decode_is_what_image_ave_reports(photo: bytes, backend: str) -> None:
    # The rotation makes the shared decode full size; Ave reduces it to imageAve's 1/8 size.
    result = persist("k.jpg", photo, header(*THREE_RULES, is_pic_info=1), MemoryStore(), backend=backend)
    assert result.original_info.image_info is not None
    shared = bytes.fromhex(result.original_info.image_info.ave[2:])
    alone = bytes.fromhex(json.loads(ci_engine.process(photo, "imageAve", backend=backend).data)["RGB"][2:])
    # Tolerance: one level per channel (means of differently rounded reductions).
    assert max(abs(a - b) for a, b in zip(shared, alone)) <= 1


@pytest.mark.parametrize("backend", available_backends())
def test_every_backend_decodes_once(photo: bytes, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    counter = DecodeCounter(monkeypatch, backend)
    store = MemoryStore()
    result = persist("k.jpg", photo, header(*THREE_RULES, is_pic_info=1), store, backend=backend)
    assert len(counter.calls) == 1
    for obj, (_, rule) in zip(result.process_results, THREE_RULES):
        alone = ci_engine.process(photo, rule, backend=backend)
        assert (obj.format, obj.width, obj.height) == (alone.format, alone.width, alone.height)
        assert obj.size == len(store.get(obj.key))


def test_upload_result_xml(photo: bytes, store: LocalStore) -> None:
    result = persist(
        "shop/items/k.jpg", photo, header(*THREE_RULES, is_pic_info=1), store, bucket=BUCKET, region=REGION
    )
    body = result.to_xml()
    assert body.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<UploadResult>')
    root = ET.fromstring(body.encode("utf-8"))
    assert root.tag == "UploadResult"
    assert [c.tag for c in root] == ["OriginalInfo", "ProcessResults"]
    original = root.find("OriginalInfo")
    assert original is not None
    assert [c.tag for c in original] == ORIGINAL_INFO
    image_info = original.find("ImageInfo")
    assert image_info is not None and [c.tag for c in image_info] == IMAGE_INFO
    assert original.findtext("Location") == f"{BUCKET}.cos.{REGION}.myqcloud.com/shop/items/k.jpg"
    assert original.findtext("ETag") == f'"{md5_etag(photo)}"'
    objects = root.findall("ProcessResults/Object")
    assert len(objects) == 3
    for element, obj in zip(objects, result.process_results):
        assert [c.tag for c in element] == OBJECT
        assert element.findtext("Key") == obj.key
        assert element.findtext("Size") == str(obj.size)
        assert element.findtext("ETag") == f'"{obj.etag}"'
        assert element.findtext("Format") == obj.format
    assert "<ETag>&quot;" in body and '"' not in body.split("?>", 1)[1]  # quotes as &quot;


def test_without_is_pic_info_there_is_no_image_info(photo: bytes, store: LocalStore) -> None:
    result = persist("k.jpg", photo, header(THREE_RULES[0]), store)
    assert result.original_info.image_info is None
    original = ET.fromstring(result.to_xml()).find("OriginalInfo")
    assert original is not None and [c.tag for c in original] == ["Key", "Location", "ETag"]


def test_xml_by_hand() -> None:
    result = UploadResult(
        OriginalInfo("a&b.jpg", "b-1.cos.r.myqcloud.com/a&b.jpg", "abc", ImageInfo("PNG", 1, 2, 100, "0x010203", 0, 1)),
        (ProcessResult("c.png", "b-1.cos.r.myqcloud.com/c.png", "png", 3, 4, 5, 100, "def"),),
    )
    assert result.to_xml(declaration=False) == "\n".join(
        [
            "<UploadResult>",
            "  <OriginalInfo>",
            "    <Key>a&amp;b.jpg</Key>",
            "    <Location>b-1.cos.r.myqcloud.com/a&amp;b.jpg</Location>",
            "    <ETag>&quot;abc&quot;</ETag>",
            "    <ImageInfo>",
            "      <Format>PNG</Format>",
            "      <Width>1</Width>",
            "      <Height>2</Height>",
            "      <Quality>100</Quality>",
            "      <Ave>0x010203</Ave>",
            "      <Orientation>0</Orientation>",
            "      <FrameCount>1</FrameCount>",
            "    </ImageInfo>",
            "  </OriginalInfo>",
            "  <ProcessResults>",
            "    <Object>",
            "      <Key>c.png</Key>",
            "      <Location>b-1.cos.r.myqcloud.com/c.png</Location>",
            "      <Format>png</Format>",
            "      <Width>3</Width>",
            "      <Height>4</Height>",
            "      <Size>5</Size>",
            "      <Quality>100</Quality>",
            "      <ETag>&quot;def&quot;</ETag>",
            "      <FrameCount>1</FrameCount>",
            "    </Object>",
            "  </ProcessResults>",
            "</UploadResult>",
        ]
    )


def test_no_rules_stores_the_original_only(photo: bytes, store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    counter = DecodeCounter(monkeypatch)
    result = persist("/a/b.jpg", photo, "{}", store, backend="vips")
    assert store.keys() == ["a/b.jpg"]
    assert result.process_results == ()
    assert counter.calls == []  # nothing to decode
    assert "<ProcessResults>\n  </ProcessResults>" in result.to_xml()


def test_overwriting_the_source_reports_the_result_etag(photo: bytes, store: LocalStore) -> None:
    result = persist("a/b.jpg", photo, header(("b.jpg", "imageMogr2/thumbnail/100x")), store)
    assert store.keys() == ["a/b.jpg"]
    assert store.get("a/b.jpg") != photo
    assert result.original_info.etag == result.process_results[0].etag == store.etag("a/b.jpg")


def test_in_cloud_reads_the_source_from_the_store(photo: bytes, store: LocalStore) -> None:
    store.put("in/cloud.jpg", photo)
    before = (store.root / "in" / "cloud.jpg").stat().st_ino
    result = persist(
        "in/cloud.jpg", None, header(("t.webp", "imageMogr2/thumbnail/64x/format/webp")), store, in_cloud=True
    )
    assert (store.root / "in" / "cloud.jpg").stat().st_ino == before  # the original was not rewritten
    assert result.original_info.etag == md5_etag(photo)
    assert store.keys() == ["in/cloud.jpg", "in/t.webp"]
    assert result.process_results[0].width == 64
    with pytest.raises(NoSuchKeyError) as info:
        persist("in/missing.jpg", None, header(("t.webp", "imageMogr2/thumbnail/64x")), store, in_cloud=True)
    assert info.value.status == 404
    with pytest.raises(ValueError):
        persist("in/cloud.jpg", photo, "{}", store, in_cloud=True)


def test_other_destination_buckets(photo: bytes, store: LocalStore, tmp_path: Path) -> None:
    other = LocalStore(tmp_path / "other", fsync=False)
    text = json.dumps(
        {"rules": [{"bucket": "other-1250000000", "fileid": "t.jpg", "rule": "imageMogr2/thumbnail/32x"}]}
    )
    result = persist("a/b.jpg", photo, text, store, bucket=BUCKET, buckets={"other-1250000000": other})
    assert other.keys() == ["a/t.jpg"]  # relative to the source's folder, in the other bucket
    assert store.keys() == ["a/b.jpg"]
    assert result.process_results[0].location == f"other-1250000000.cos.{REGION}.myqcloud.com/a/t.jpg"
    with pytest.raises(InvalidPicOperationsError):
        persist("a/c.jpg", photo, text, store, bucket=BUCKET)
    assert not store.exists("a/c.jpg")


def test_style_rules(photo: bytes, store: LocalStore) -> None:
    styles = StyleRegistry({"card": "imageMogr2/thumbnail/!300x300r/gravity/center/crop/300x300"})
    result = persist(
        "a.jpg", photo, header(("c.webp", "style/card|imageMogr2/format/webp")), store, styles=styles, backend="vips"
    )
    assert (result.process_results[0].width, result.process_results[0].height, result.process_results[0].format) == (
        300,
        300,
        "webp",
    )


# -- failures ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [1, 3])
def test_a_rule_failing_mid_way_leaves_nothing_partial(
    photo: bytes, store: LocalStore, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    engine = get_backend("vips")
    original = engine.encode
    calls: list[int] = []

    def failing(image: Any, spec: Any, *, quality: int | None = None) -> bytes:
        calls.append(1)
        if spec.format.value == "png":
            raise RuntimeError("disk on fire")
        return original(image, spec, quality=quality)

    monkeypatch.setitem(vars(engine), "encode", failing)  # see DecodeCounter
    text = header(*THREE_RULES)
    with pytest.raises(InternalError) as info:
        persist("shop/k.jpg", photo, text, store, backend="vips", workers=workers)
    assert info.value.message.startswith("rules[1]: ")
    # The original and the first result stay (upload semantics); the failed rule and the
    # ones after it left nothing, not even a temporary file.
    assert store.keys() == ["shop/k.jpg", "shop/small/k.webp"]
    assert leftovers(store) == []
    if workers == 1:
        assert len(calls) == 2  # stopped at the failing rule


@pytest.mark.requires_vips  # backend='vips': BackendUnavailableError is an InternalError too
def test_a_store_failing_mid_write_leaves_nothing_partial(
    photo: bytes, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    real_replace = os.replace
    writes: list[str] = []

    def flaky_replace(src: str, dst: str) -> None:
        writes.append(str(dst))
        if str(dst).endswith("k.png"):
            # the temporary file is fully written at this point: fail the commit
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(InternalError):
        persist("shop/k.jpg", photo, header(*THREE_RULES), store, backend="vips")
    monkeypatch.undo()
    assert store.keys() == ["shop/k.jpg", "shop/small/k.webp"]
    assert leftovers(store) == []
    assert not (store.root / "cdn").exists() or list((store.root / "cdn").iterdir()) == []


def test_an_output_over_the_limit_fails_before_any_result_is_written(photo: bytes, store: LocalStore) -> None:
    text = header(("ok.jpg", "imageMogr2/thumbnail/100x"), ("huge.jpg", "imageMogr2/thumbnail/20000x"))
    with pytest.raises(ImageResolutionExceedError) as info:
        persist("a/b.jpg", photo, text, store)
    assert info.value.x_errno == -442
    assert store.keys() == ["a/b.jpg"]  # the original stays; no result was written


def test_ignore_error_stores_the_source_at_the_fileid(photo: bytes, store: LocalStore) -> None:
    text = header(("ok.jpg", "imageMogr2/thumbnail/100x"), ("huge.jpg", "imageMogr2/thumbnail/20000x/ignore-error/1"))
    result = persist("a/b.jpg", photo, text, store, backend="vips")
    assert store.keys() == ["a/b.jpg", "a/huge.jpg", "a/ok.jpg"]
    assert store.get("a/huge.jpg") == photo
    masked = result.process_results[1]
    assert isinstance(masked.masked, ImageResolutionExceedError)
    assert (masked.format, masked.width, masked.height, masked.size) == ("jpeg", 1200, 675, len(photo))
    assert masked.etag == md5_etag(photo)


def test_ignore_error_masks_the_eleventh_step(photo: bytes, store: LocalStore) -> None:
    steps = "|".join(["imageMogr2/rotate/90"] * 11)
    result = persist("a.jpg", photo, header(("m.jpg", steps + "/ignore-error/1")), store, backend="vips")
    assert store.get("m.jpg") == photo
    assert result.process_results[0].masked is not None


def test_a_source_over_the_byte_limit(photo: bytes, store: LocalStore) -> None:
    limits = Limits(max_input_bytes=len(photo) - 1)
    with pytest.raises(ImageTooLargeError) as info:
        persist("a.jpg", photo, header(("t.jpg", "imageMogr2/thumbnail/10x")), store, limits=limits)
    assert (info.value.code, info.value.x_errno) == ("ImageTooLarge", -60996)
    assert store.keys() == ["a.jpg"]
    text = header(("t.jpg", "imageMogr2/thumbnail/10x/ignore-error/1"))
    result = persist("b.jpg", photo, text, store, limits=limits)
    assert store.get("t.jpg") == photo and isinstance(result.process_results[0].masked, ImageTooLargeError)


def test_an_undecodable_source(store: LocalStore) -> None:
    with pytest.raises(InvalidImageFormatError) as info:
        persist("a.jpg", b"not an image at all", header(("t.jpg", "imageMogr2/thumbnail/10x")), store)
    assert (info.value.code, info.value.x_errno) == ("InvalidImageFormat", -62999)
    assert store.keys() == ["a.jpg"]  # upload semantics: the object is stored, processing failed


def test_a_non_image_without_rules_is_just_stored(store: LocalStore) -> None:
    result = persist("notes.txt", b"hello", "{}", store)
    assert store.get("notes.txt") == b"hello"
    assert result.original_info.etag == md5_etag(b"hello")


def test_data_must_be_bytes(store: LocalStore) -> None:
    with pytest.raises(TypeError):  # a programming error (docs/errors.md)
        persist("a.jpg", "text", "{}", store)  # type: ignore[arg-type]
    released = memoryview(b"x")
    released.release()
    with pytest.raises(ValueError, match="released"):
        persist("a.jpg", released, "{}", store)
    with pytest.raises(TypeError):
        persist(b"a.jpg", b"x", "{}", store)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        persist("a/../b.jpg", b"x", "{}", store)
    assert store.keys() == []


# -- the shared decode ------------------------------------------------------------------------------------


def test_animated_source_static_and_animated_rules(store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> None:
    colors = [(250, 10, 10), (10, 250, 10), (10, 10, 250)]
    data = gif(colors)
    counter = DecodeCounter(monkeypatch)
    text = header(
        ("anim.gif", "imageMogr2/thumbnail/32x"),  # GIF -> GIF: every frame
        ("first.png", "imageMogr2/format/png"),  # a still output: frame 0
        ("first.jpg", "imageMogr2/thumbnail/16x/format/jpg"),
        is_pic_info=1,
    )
    result = persist("g/a.gif", data, text, store, backend="vips")
    assert len(counter.calls) == 1 and counter.calls[0].frames == 3  # one decode, every frame
    anim, png, jpg = result.process_results
    assert (anim.format, anim.width, anim.height, anim.frame_count) == ("gif", 32, 24, 3)
    assert probe(store.get("g/anim.gif")).frames == 3
    assert (png.format, png.frame_count, jpg.frame_count) == ("png", 1, 1)
    assert np.abs(decoded(store.get("g/first.png")) - np.array(colors[0])).max() <= 2
    assert np.abs(decoded(store.get("g/first.jpg")) - np.array(colors[0])).max() <= 12
    # Same bytes as process() on its own, which decodes frame 0 only.
    assert store.get("g/first.png") == ci_engine.process(data, "imageMogr2/format/png", backend="vips").data
    info = result.original_info.image_info
    assert info is not None and (info.format, info.frame_count) == ("GIF", 3)


def test_thumbnails_only_share_a_shrunk_decode(
    photo: bytes, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = DecodeCounter(monkeypatch)
    rules = (
        ("a.jpg", "imageMogr2/thumbnail/500x"),  # allows 1/2
        ("b.jpg", "imageMogr2/thumbnail/250x"),  # allows 1/4
        ("c.jpg", "imageMogr2/thumbnail/120x"),  # allows 1/8
    )
    result = persist("k.jpg", photo, header(*rules), store, backend="vips")
    assert len(counter.calls) == 1 and counter.calls[0].shrink == 2  # the largest factor all allow
    for obj, (_, rule) in zip(result.process_results, rules):
        alone = ci_engine.process(photo, rule, backend="vips")
        assert (obj.width, obj.height) == (alone.width, alone.height)
        diff = np.abs(decoded(store.get(obj.key)) - decoded(alone.data)).mean()
        assert diff < 3.0, (rule, diff)


def test_a_full_resolution_rule_disables_the_shrink(
    photo: bytes, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = DecodeCounter(monkeypatch)
    persist("k.jpg", photo, header(("a.jpg", "imageMogr2/thumbnail/120x"), ("b.jpg", "imageMogr2/rotate/90")), store)
    assert [spec.shrink for spec in counter.calls] == [1]


def test_rules_that_allow_a_shrink_read_a_reduced_level(
    photo: bytes, store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full-resolution rule makes the decode full size, but a rule that process() would run
    from a 1/4 decode still rotates a quarter-size image, not the full one."""
    engine = get_backend("vips")
    rotated: list[tuple[int, int]] = []
    original = engine.rotate90

    def recording(image: Any, step: Any) -> Any:
        rotated.append(engine.size(image)[:2])
        return original(image, step)

    monkeypatch.setitem(vars(engine), "rotate90", recording)  # see DecodeCounter
    counter = DecodeCounter(monkeypatch)
    rule = "imageMogr2/rotate/90|imageMogr2/thumbnail/150x"
    result = persist("k.jpg", photo, header(("a.jpg", "imageMogr2/cut/600x300x10x10"), ("b.jpg", rule)), store)
    assert [spec.shrink for spec in counter.calls] == [1]
    assert rotated == [(300, 168)]  # 1200x675 at 1/4, not 1200x675
    alone = ci_engine.process(photo, rule, backend="vips")
    obj = result.process_results[1]
    assert (obj.width, obj.height) == (alone.width, alone.height) == (150, 267)
    assert np.abs(decoded(store.get("b.jpg")) - decoded(alone.data)).mean() < 3.0


def test_workers_do_not_change_the_results(photo: bytes, tmp_path: Path) -> None:
    outputs = []
    for workers in (1, 4):
        store = MemoryStore()
        result = persist("k.jpg", photo, header(*THREE_RULES), store, backend="vips", workers=workers)
        outputs.append(([o.etag for o in result.process_results], store.keys()))
    assert outputs[0] == outputs[1]
    with pytest.raises(ValueError):
        persist("k.jpg", photo, "{}", MemoryStore(), workers=0)


# -- error bodies ----------------------------------------------------------------------------------------


def test_error_bodies() -> None:
    error = InvalidPicOperationsError("Pic-Operations: at most 5 rules are allowed, got 6", x_errno=-60997)
    root = ET.fromstring(error.to_xml(resource="demo-1250000000.cos.ap-guangzhou.myqcloud.com/a.jpg", request_id=None))
    assert [c.tag for c in root] == ["Code", "Message", "Resource", "RequestId", "TraceId"]
    assert root.findtext("Code") == "InvalidPicOperations"
    first = root.findtext("RequestId")
    second = ET.fromstring(error.to_xml(request_id=None)).findtext("RequestId")
    assert first and second and first != second
    assert ET.fromstring(error.to_xml(request_id="abc")).findtext("RequestId") == "abc"
