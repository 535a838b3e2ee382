"""AIGC metadata (issue 14, list 2): ``imageMogr2/AIGCMetadata/...`` writes the label where
the TC260 practice guide puts it (an XMP ``TC260:AIGC`` property), and
``ci-process=ImageAIGCMetadata`` / ``ci_engine.read_aigc_metadata`` read it back. Other
tools must read what we write: Pillow (libjpeg/libpng/libavif) and libvips (libheif) are
the independent readers here."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import ci_engine
from ci_engine import ast as A
from ci_engine.aigc import AIGC_NAMESPACE, embed, read_aigc_metadata
from ci_engine.backends import available_backends
from ci_engine.errors import InvalidArgumentError, InvalidImageFormatError, ParseError, UnsupportedForInputError
from ci_engine.parse import parse
from ci_engine.render import render
from ci_engine.types import ImageFormat
from tests.support.images import encode, gradient, to_array

BACKENDS = available_backends()


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


LABEL = {"Label": "1", "ContentProducer": "001191110102MACQD9K64010000", "ProduceID": "生成-42"}
RULE = "imageMogr2/AIGCMetadata/" + "/".join(f"{k}/{b64(v)}" for k, v in LABEL.items())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _xmp_json(packet: bytes) -> dict[str, str]:
    """What an XMP reader finds in the TC260:AIGC property (namespace checked)."""
    text = packet.decode("utf-8")
    assert f'xmlns:TC260="{AIGC_NAMESPACE}"' in text
    found = re.search(r"<TC260:AIGC>(.*?)</TC260:AIGC>", text, re.DOTALL)
    assert found is not None, text
    assert len(re.findall(r"<TC260:AIGC>", text)) == 1
    return dict(json.loads(found.group(1)))


def _pillow_xmp(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        info = image.info
    value = info.get("xmp") or info.get("XML:com.adobe.xmp")
    assert value is not None, sorted(info)
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


# -- the AST and the grammar ------------------------------------------------------------------------


def test_parse_and_render_round_trip() -> None:
    pipeline = parse(RULE + "/format/png")
    op = pipeline.steps[0].ops[0]  # type: ignore[attr-defined]
    assert op == A.AIGCMetadata(label="1", content_producer=LABEL["ContentProducer"], produce_id="生成-42")
    assert op.items() == tuple(LABEL.items())
    assert render(pipeline) == RULE + "/format/png"
    assert parse(render(pipeline)) == pipeline


def test_all_seven_keys_in_ci_order() -> None:
    keys = (
        "Label",
        "ContentProducer",
        "ProduceID",
        "ReservedCode1",
        "ContentPropagator",
        "PropagateID",
        "ReservedCode2",
    )
    text = "imageMogr2/AIGCMetadata/" + "/".join(f"{k}/{b64(k.lower())}" for k in reversed(keys))
    op = parse(text).steps[0].ops[0]  # type: ignore[attr-defined]
    assert [k for k, _ in op.items()] == list(keys)
    assert render(parse(text)) == "imageMogr2/AIGCMetadata/" + "/".join(f"{k}/{b64(k.lower())}" for k in keys)


def test_label_is_required() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse(f"imageMogr2/AIGCMetadata/ContentProducer/{b64('x')}")
    assert "the Label parameter is required; write AIGCMetadata/Label/" in info.value.message
    assert info.value.column == 12


def test_value_must_be_base64_of_utf8() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        parse("imageMogr2/AIGCMetadata/Label/MQ/ProduceID/_w")
    assert "ProduceID must be URL-safe Base64 of UTF-8 text" in info.value.message
    assert info.value.column == 44


def test_unknown_key_is_a_syntax_error() -> None:
    with pytest.raises(ParseError) as info:
        parse("imageMogr2/AIGCMetadata/Label/MQ/Producer/MQ")
    assert info.value.column == 34 and "unexpected 'Producer'" in info.value.message


# -- writing, read back by other tools ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jpg", "png", "avif"])
def test_label_is_written_where_other_tools_read_it(backend: str, fmt: str) -> None:
    source = encode(gradient(64, 48), "PNG")
    plain = ci_engine.process(source, f"imageMogr2/format/{fmt}", backend=backend)
    labelled = ci_engine.process(source, f"{RULE}/format/{fmt}", backend=backend)
    assert (labelled.width, labelled.height) == (64, 48)
    assert _xmp_json(_pillow_xmp(labelled.data)) == LABEL
    assert read_aigc_metadata(labelled.data) == {"AIGC": LABEL}
    assert read_aigc_metadata(plain.data) == {}
    # The label changes no pixel: the image is the unlabelled encoding plus the XMP.
    assert np.array_equal(to_array(labelled.data), to_array(plain.data))
    if backend == "vips":
        import pyvips

        image = pyvips.Image.new_from_buffer(labelled.data, "")
        assert _xmp_json(bytes(image.get("xmp-data"))) == LABEL


def test_jpeg_segment_order_and_size() -> None:
    source = encode(gradient(32, 32), "JPEG", quality=80)
    out = embed(source, ImageFormat.JPEG, tuple(LABEL.items()))
    assert out[:2] == b"\xff\xd8"
    # JFIF first, then the XMP APP1 segment.
    assert out[2:4] == b"\xff\xe0"
    jfif_end = 4 + struct.unpack(">H", out[4:6])[0]
    assert out[jfif_end : jfif_end + 2] == b"\xff\xe1"
    assert out[jfif_end + 4 : jfif_end + 33] == b"http://ns.adobe.com/xap/1.0/\x00"
    assert out.endswith(source[jfif_end:])


def test_png_chunk_is_itxt_before_idat() -> None:
    source = encode(gradient(16, 16), "PNG")
    out = embed(source, ImageFormat.PNG, (("Label", "1"),))
    kinds = []
    pos = 8
    while pos < len(out):
        length = struct.unpack(">I", out[pos : pos + 4])[0]
        kind = out[pos + 4 : pos + 8]
        body = out[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", out[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(kind + body)
        kinds.append((kind, body[:18]))
        pos += 12 + length
    names = [k for k, _ in kinds]
    assert names.index(b"iTXt") < names.index(b"IDAT")
    assert (b"iTXt", b"XML:com.adobe.xmp\x00") in kinds


def test_an_existing_xmp_packet_is_kept_and_the_label_replaced() -> None:
    other = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>image/png</dc:format>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    image = Image.fromarray(gradient(16, 16))
    buffer = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", other)
    image.save(buffer, "PNG", pnginfo=info)
    first = embed(buffer.getvalue(), ImageFormat.PNG, (("Label", "1"),))
    second = embed(first, ImageFormat.PNG, (("Label", "2"), ("ProduceID", "p")))
    packet = _pillow_xmp(second)
    assert b"<dc:format>image/png</dc:format>" in packet
    assert _xmp_json(packet) == {"Label": "2", "ProduceID": "p"}
    assert second.count(b"XML:com.adobe.xmp") == 1


def test_relabelling_an_avif_reuses_its_xmp_item(backend: str) -> None:
    source = encode(gradient(32, 24), "PNG")
    once = ci_engine.process(source, f"{RULE}/format/avif", backend=backend).data
    twice = embed(once, ImageFormat.AVIF, (("Label", "3"),))
    assert read_aigc_metadata(twice) == {"AIGC": {"Label": "3"}}
    assert twice.count(b"application/rdf+xml") == 1
    assert _xmp_json(_pillow_xmp(twice)) == {"Label": "3"}
    assert np.array_equal(to_array(twice), to_array(once))


def test_strip_does_not_remove_the_label(backend: str) -> None:
    result = ci_engine.process(encode(gradient(16, 16), "JPEG"), f"imageMogr2/strip/{RULE[11:]}", backend=backend)
    assert read_aigc_metadata(result.data) == {"AIGC": LABEL}


def test_other_outputs_are_refused_with_what_to_write() -> None:
    source = encode(gradient(16, 16), "PNG")
    with pytest.raises(UnsupportedForInputError) as info:
        ci_engine.process(source, f"{RULE}/format/webp")
    message = info.value.message
    assert "JPG, PNG or AVIF output only, not webp; add format/png, format/jpg or format/avif" in message
    assert info.value.column == 12
    masked = ci_engine.process(source, f"{RULE}/format/webp/ignore-error/1")
    assert masked.data == source and isinstance(masked.masked, UnsupportedForInputError)


# -- reading ---------------------------------------------------------------------------------------------


def test_ci_process_answers_the_label_as_json() -> None:
    labelled = ci_engine.process(encode(gradient(16, 16), "PNG"), RULE)
    result = ci_engine.process(labelled.data, "ci-process=ImageAIGCMetadata")
    assert result.format == "json"
    assert json.loads(result.data) == {"AIGC": LABEL}
    assert list(json.loads(result.data)["AIGC"]) == ["Label", "ContentProducer", "ProduceID"]
    plain = ci_engine.process(encode(gradient(16, 16), "JPEG"), "ci-process=ImageAIGCMetadata")
    assert plain.data == b"{}"
    assert ci_engine.read_aigc_metadata(labelled.data) == {"AIGC": LABEL}


def test_png_text_chunk_and_wrapper_forms_are_read() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("AIGC", json.dumps({"AIGC": {"Label": "1", "ContentPropagator": "x", "Other": 5}}))
    buffer = io.BytesIO()
    Image.fromarray(gradient(8, 8)).save(buffer, "PNG", pnginfo=info)
    assert read_aigc_metadata(buffer.getvalue()) == {"AIGC": {"Label": "1", "ContentPropagator": "x"}}


def test_escaped_xmp_written_by_other_tools_is_read() -> None:
    packet = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:AI="{AIGC_NAMESPACE}">'
        "<AI:AIGC>{&quot;Label&quot;:&quot;1&quot;,&quot;ContentProducer&quot;:&quot;BYTEDANCE001&quot;}</AI:AIGC>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    jpeg = encode(gradient(8, 8), "JPEG")
    segment = b"\xff\xe1" + struct.pack(">H", 2 + 29 + len(packet)) + b"http://ns.adobe.com/xap/1.0/\x00" + packet
    data = jpeg[:2] + segment + jpeg[2:]
    assert read_aigc_metadata(data) == {"AIGC": {"Label": "1", "ContentProducer": "BYTEDANCE001"}}


def test_reader_errors() -> None:
    with pytest.raises(TypeError):
        read_aigc_metadata("not bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidImageFormatError):
        read_aigc_metadata(b"plain text, not an image")
    assert read_aigc_metadata(encode(gradient(8, 8), "GIF")) == {}
    jpeg = encode(gradient(8, 8), "JPEG")
    with pytest.raises(InvalidImageFormatError):
        read_aigc_metadata(jpeg[:2] + b"\xff\xe1\xff\xff" + jpeg[2:40])


def test_size_limit_keeping_the_original_keeps_the_label() -> None:
    jpeg = encode(gradient(64, 48), "JPEG", quality=5)
    result = ci_engine.process(jpeg, "imageMogr2/format/jpg/size-limit/100k!/AIGCMetadata/Label/MQ")
    assert read_aigc_metadata(result.data) == {"AIGC": {"Label": "1"}}
    assert np.array_equal(to_array(result.data), to_array(jpeg))  # the original's pixels, labelled
    webp = encode(gradient(64, 48), "WEBP", quality=10)  # an original that cannot carry it
    result = ci_engine.process(webp, "imageMogr2/format/jpg/size-limit/1k!/AIGCMetadata/Label/MQ")
    assert result.format == "jpeg" and read_aigc_metadata(result.data) == {"AIGC": {"Label": "1"}}
