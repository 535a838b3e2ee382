"""The AI-generated-content label (AIGC metadata) of CI: write it, read it back.

``imageMogr2/AIGCMetadata/Label/<b64>/...`` writes the label into a JPG, PNG or AVIF output
and ``ci-process=ImageAIGCMetadata`` reads it back as ``{"AIGC": {...}}`` (``{}`` when there
is none). CI's pages do not say where in the file the label goes; ci_engine writes it where
the national practice guide for GB 45438-2025 puts it for images (TC260-PG-20259A), so that
other tools (exiftool, the TC260 checkers) read it:

* an XMP packet with the property ``TC260:AIGC`` in the namespace
  ``http://www.tc260.org.cn/ns/AIGC/1.0/``, whose value is the label as compact JSON
  (``{"Label":"1","ContentProducer":"..."}``);
* JPEG: in an ``APP1`` segment ``http://ns.adobe.com/xap/1.0/``;
* PNG: in an ``iTXt`` chunk with the keyword ``XML:com.adobe.xmp``, before the image data;
* AVIF: as an item of type ``mime``, content type ``application/rdf+xml``, described by
  (``cdsc``) the primary image (ISO/IEC 23008-12), its bytes in an ``mdat`` box at the end.

An XMP packet already in the file is kept: the ``TC260:AIGC`` property is replaced or added
(the guide: update the property, never overwrite the packet). The reader also accepts the
label as a PNG text chunk with the keyword ``AIGC`` and the ``{"AIGC": {...}}`` wrapper,
both seen in files in the wild. ``docs/compatibility.md`` has the evidence.

Pure Python on bytes: no imaging library. Every read is bounded by the data's length.
"""

from __future__ import annotations

import html
import json
import re
import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ci_engine.errors import InvalidArgumentError, InvalidImageFormatError, UnsupportedOperationError
from ci_engine.types import ImageFormat

__all__ = ["AIGC_NAMESPACE", "FIELDS", "embed", "label_items", "read_aigc_metadata", "xmp_packet"]

AIGC_NAMESPACE = "http://www.tc260.org.cn/ns/AIGC/1.0/"
FIELDS = ("Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator", "PropagateID", "ReservedCode2")
"""The keys of the label, in CI's order (and the order of its JSON answer)."""

_XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_PNG_KEYWORD = b"XML:com.adobe.xmp"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_JPEG_SEGMENT = 65533  # payload of one APPn segment (the length field counts itself)
_MAX_TEXT = 4 << 20  # the largest XMP packet or text chunk read (bytes, inflated)
_MAX_BOXES = 10_000

_DESCRIPTION = (
    '<rdf:Description rdf:about="" xmlns:TC260="'
    + AIGC_NAMESPACE
    + '"><TC260:AIGC>{value}</TC260:AIGC></rdf:Description>'
)


# -- the XMP packet -------------------------------------------------------------------------------


def _json(items: Sequence[tuple[str, str]]) -> str:
    return json.dumps(dict(items), ensure_ascii=False, separators=(",", ":"))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def xmp_packet(items: Sequence[tuple[str, str]]) -> bytes:
    """A complete XMP packet holding only the label."""
    description = _DESCRIPTION.format(value=_escape(_json(items)))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f"{description}"
        "</rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    ).encode()


_PREFIX = re.compile(r'xmlns:([A-Za-z_][\w.-]*)\s*=\s*["\']' + re.escape(AIGC_NAMESPACE) + r'["\']')


def _merge(existing: bytes, items: Sequence[tuple[str, str]]) -> bytes:
    """``existing`` (an XMP packet) with its AIGC property set to ``items``; a packet that
    cannot be edited safely is replaced by ours."""
    try:
        text = existing.decode("utf-8")
    except UnicodeDecodeError:
        return xmp_packet(items)
    value = _escape(_json(items))
    match = _PREFIX.search(text)
    if match is not None:
        prefix = re.escape(match.group(1))
        element = re.compile(rf"<{prefix}:AIGC\s*>.*?</{prefix}:AIGC\s*>|<{prefix}:AIGC\s*/>", re.DOTALL)
        attribute = re.compile(rf'{prefix}:AIGC\s*=\s*("[^"]*"|\'[^\']*\')')
        if element.search(text):
            return element.sub(lambda _: f"<{match.group(1)}:AIGC>{value}</{match.group(1)}:AIGC>", text, 1).encode()
        if attribute.search(text):
            quoted = value.replace('"', "&quot;")
            return attribute.sub(lambda _: f'{match.group(1)}:AIGC="{quoted}"', text, 1).encode()
    end = text.rfind("</rdf:RDF>")
    if end == -1:
        return xmp_packet(items)
    return (text[:end] + _DESCRIPTION.format(value=value) + text[end:]).encode("utf-8")


def _label_from_xmp(packet: bytes) -> dict[str, str] | None:
    text = packet.decode("utf-8", "replace")
    match = _PREFIX.search(text)
    if match is None:
        return None
    prefix = re.escape(match.group(1))
    found = re.search(rf"<{prefix}:AIGC\s*>(.*?)</{prefix}:AIGC\s*>", text, re.DOTALL)
    if found is None:
        found = re.search(rf'{prefix}:AIGC\s*=\s*(?:"([^"]*)"|\'([^\']*)\')', text)
        if found is None:
            return None
        raw = found.group(1) if found.group(1) is not None else found.group(2)
    else:
        raw = found.group(1)
    return _label_from_json(html.unescape(raw.strip()))


def _label_from_json(text: str) -> dict[str, str] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if isinstance(value, dict) and isinstance(value.get("AIGC"), dict):
        value = value["AIGC"]  # the {"AIGC": {...}} wrapper
    if not isinstance(value, dict):
        return None
    label = {key: _text(value[key]) for key in FIELDS if key in value and value[key] is not None}
    return label or None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# -- writing ---------------------------------------------------------------------------------------


def embed(data: bytes, fmt: ImageFormat, items: Sequence[tuple[str, str]]) -> bytes:
    """``data`` (an encoded ``fmt`` image) with the label ``items`` written into it.

    Raises:
        InvalidArgumentError: ``fmt`` cannot carry the label (only JPEG, PNG and AVIF can).
        InvalidImageFormatError: ``data`` is not a well-formed file of its format.
        UnsupportedOperationError: an AVIF image sequence (``moov``), which this writer
            does not rewrite.
    """
    if not items or items[0][0] != "Label":
        raise ValueError("embed: items must start with ('Label', value)")
    if fmt is ImageFormat.JPEG:
        return _embed_jpeg(data, items)
    if fmt is ImageFormat.PNG:
        return _embed_png(data, items)
    if fmt is ImageFormat.AVIF:
        return _embed_avif(data, items)
    raise InvalidArgumentError(
        f"AIGCMetadata: the label can be written into JPG, PNG or AVIF only, not {fmt.value}",
        op="AIGCMetadata",
        field="format",
    )


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, segment start, segment end) of the segments before the image data."""
    if data[:2] != b"\xff\xd8":
        raise InvalidImageFormatError("jpeg: no SOI marker")
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise InvalidImageFormatError(f"jpeg: no marker at offset {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA or marker == 0xD9:  # start of scan, end of image: stop
            return
        length = struct.unpack_from(">H", data, pos + 2)[0]
        end = pos + 2 + length
        if length < 2 or end > len(data):
            raise InvalidImageFormatError(f"jpeg: segment at offset {pos} runs past the end")
        yield marker, pos, end
        pos = end
    raise InvalidImageFormatError("jpeg: no image data")


def _embed_jpeg(data: bytes, items: Sequence[tuple[str, str]]) -> bytes:
    insert_at = 2
    packet = None
    drop: tuple[int, int] | None = None
    for marker, start, end in _jpeg_segments(data):
        payload = data[start + 4 : end]
        if marker == 0xE1 and payload.startswith(_XMP_JPEG_HEADER) and drop is None:
            packet = payload[len(_XMP_JPEG_HEADER) :]
            drop = (start, end)
            continue
        if marker == 0xE0 or (marker == 0xE1 and payload.startswith(b"Exif\x00")):
            if drop is None:
                insert_at = end  # after JFIF and EXIF, where readers look for XMP
            continue
        break
    new = _merge(packet, items) if packet is not None else xmp_packet(items)
    if len(_XMP_JPEG_HEADER) + len(new) > _MAX_JPEG_SEGMENT:
        new = xmp_packet(items)  # an existing packet too large to extend: ours alone
        if len(_XMP_JPEG_HEADER) + len(new) > _MAX_JPEG_SEGMENT:
            raise InvalidArgumentError("AIGCMetadata: the label is too long for a JPEG XMP segment (64 KB)")
    payload = _XMP_JPEG_HEADER + new
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    if drop is not None:
        start, end = drop
        at = start if insert_at <= start else insert_at
        rest = data[:start] + data[end:]
        if at > start:
            at -= end - start
        return rest[:at] + segment + rest[at:]
    return data[:insert_at] + segment + data[insert_at:]


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, chunk start, chunk end) of every chunk (CRCs are not checked)."""
    if not data.startswith(_PNG_SIGNATURE):
        raise InvalidImageFormatError("png: no signature")
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length = struct.unpack_from(">I", data, pos)[0]
        end = pos + 12 + length
        if end > len(data):
            raise InvalidImageFormatError(f"png: chunk at offset {pos} runs past the end")
        kind = bytes(data[pos + 4 : pos + 8])
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end
    raise InvalidImageFormatError("png: no IEND chunk")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _itxt(body: bytes) -> tuple[bytes, bytes] | None:
    """(keyword, text) of an iTXt chunk body, inflated when compressed."""
    keyword, sep, rest = body.partition(b"\x00")
    if not sep or len(rest) < 2:
        return None
    compressed, rest = rest[0], rest[2:]
    _lang, sep1, rest = rest.partition(b"\x00")
    _translated, sep2, text = rest.partition(b"\x00")
    if not (sep1 and sep2):
        return None
    if compressed:
        try:
            inflater = zlib.decompressobj()
            text = inflater.decompress(text, _MAX_TEXT)
        except zlib.error:
            return None
    return keyword, text


def _embed_png(data: bytes, items: Sequence[tuple[str, str]]) -> bytes:
    out = bytearray(data[: len(_PNG_SIGNATURE)])
    packet = None
    written = False
    chunks = list(_png_chunks(data))
    for kind, start, end in chunks:
        if kind == b"iTXt":
            parsed = _itxt(data[start + 8 : end - 4])
            if parsed is not None and parsed[0] == _XMP_PNG_KEYWORD:
                if packet is None:
                    packet = parsed[1]
                continue  # replaced by the chunk written before IDAT
        if kind in (b"IDAT", b"IEND") and not written:
            new = _merge(packet, items) if packet is not None else xmp_packet(items)
            out += _png_chunk(b"iTXt", _XMP_PNG_KEYWORD + b"\x00\x00\x00\x00\x00" + new)
            written = True
        out += data[start:end]
    if packet is not None and not written:  # unreachable: IEND always comes
        raise InvalidImageFormatError("png: no image data")
    return bytes(out)


# -- ISO-BMFF (AVIF) --------------------------------------------------------------------------------


def _boxes(data: bytes, pos: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of the boxes in ``data[pos:end]``."""
    count = 0
    while pos < end:
        count += 1
        if count > _MAX_BOXES or pos + 8 > end:
            raise InvalidImageFormatError(f"avif: bad box structure at offset {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                raise InvalidImageFormatError(f"avif: truncated box at offset {pos}")
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise InvalidImageFormatError(f"avif: box {kind!r} at offset {pos} has a bad size")
        yield kind, pos, pos + header, pos + size
        pos += size


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags) + payload)


def _uint(data: bytes, pos: int, size: int) -> int:
    if size == 0:
        return 0
    if pos + size > len(data):
        raise InvalidImageFormatError("avif: truncated iloc box")
    return int.from_bytes(data[pos : pos + size], "big")


class _Iloc:
    """A parsed ``iloc`` box: entries of (item id, construction method, data reference
    index, base offset, [(extent index, offset, length)])."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.version = data[start]
        sizes = data[start + 4]
        self.offset_size, self.length_size = sizes >> 4, sizes & 15
        sizes = data[start + 5]
        self.base_offset_size = sizes >> 4
        self.index_size = sizes & 15 if self.version in (1, 2) else 0
        pos = start + 6
        count_size = 4 if self.version == 2 else 2
        count = _uint(data, pos, count_size)
        pos += count_size
        self.entries: list[tuple[int, int, int, int, list[tuple[int, int, int]]]] = []
        id_size = 4 if self.version == 2 else 2
        for _ in range(count):
            item = _uint(data, pos, id_size)
            pos += id_size
            method = 0
            if self.version in (1, 2):
                method = _uint(data, pos, 2) & 15
                pos += 2
            reference = _uint(data, pos, 2)
            base = _uint(data, pos + 2, self.base_offset_size)
            pos += 2 + self.base_offset_size
            extent_count = _uint(data, pos, 2)
            pos += 2
            extents = []
            for _ in range(extent_count):
                index = _uint(data, pos, self.index_size)
                pos += self.index_size
                offset = _uint(data, pos, self.offset_size)
                pos += self.offset_size
                length = _uint(data, pos, self.length_size)
                pos += self.length_size
                extents.append((index, offset, length))
            self.entries.append((item, method, reference, base, extents))
            if pos > end:
                raise InvalidImageFormatError("avif: truncated iloc box")

    def build(self) -> bytes:
        version = self.version
        out = bytearray(struct.pack(">I", version << 24))
        out += bytes([self.offset_size << 4 | self.length_size, self.base_offset_size << 4 | self.index_size])
        count_size = id_size = 4 if version == 2 else 2
        out += len(self.entries).to_bytes(count_size, "big")
        for item, method, reference, base, extents in self.entries:
            out += item.to_bytes(id_size, "big")
            if version in (1, 2):
                out += method.to_bytes(2, "big")
            out += reference.to_bytes(2, "big") + base.to_bytes(self.base_offset_size, "big")
            out += len(extents).to_bytes(2, "big")
            for index, offset, length in extents:
                out += index.to_bytes(self.index_size, "big") if self.index_size else b""
                out += offset.to_bytes(self.offset_size, "big") + length.to_bytes(self.length_size, "big")
        return _box(b"iloc", bytes(out))


def _infe(data: bytes, payload: int, end: int) -> tuple[int, bytes, bytes]:
    """(item id, item type, content type) of an ``infe`` box (version 2 or 3)."""
    version = data[payload]
    if version < 2:
        return -1, b"", b""
    id_size = 2 if version == 2 else 4
    item = _uint(data, payload + 4, id_size)
    pos = payload + 4 + id_size + 2
    kind = bytes(data[pos : pos + 4])
    content = b""
    if kind == b"mime":
        name_end = data.find(b"\x00", pos + 4, end)
        if name_end != -1:
            type_end = data.find(b"\x00", name_end + 1, end)
            content = bytes(data[name_end + 1 : type_end if type_end != -1 else end])
    return item, kind, content


def _meta(data: bytes) -> tuple[int, int, int]:
    """(box start, payload start, box end) of the top-level ``meta`` box."""
    for kind, start, payload, end in _boxes(data, 0, len(data)):
        if kind == b"meta":
            return start, payload, end
    raise InvalidImageFormatError("avif: no meta box")


def _embed_avif(data: bytes, items: Sequence[tuple[str, str]]) -> bytes:
    top = list(_boxes(data, 0, len(data)))
    if any(kind == b"moov" for kind, *_ in top):
        raise UnsupportedOperationError("AIGCMetadata: AVIF image sequences cannot be labelled here")
    meta_start, meta_payload, meta_end = _meta(data)
    children = list(_boxes(data, meta_payload + 4, meta_end))
    primary = None
    iloc = None
    existing_xmp: bytes | None = None
    xmp_item = None
    infes: list[tuple[int, bytes, bytes]] = []
    iinf_version = 0
    for kind, _start, payload, end in children:
        if kind == b"pitm":
            primary = _uint(data, payload + 4, 2 if data[payload] == 0 else 4)
        elif kind == b"iloc":
            iloc = _Iloc(data, payload, end)
        elif kind == b"iinf":
            iinf_version = data[payload]
            first = payload + 4 + (2 if iinf_version == 0 else 4)
            infes = [_infe(data, p, e) for k, _, p, e in _boxes(data, first, end) if k == b"infe"]
    if primary is None or iloc is None or not infes:
        raise InvalidImageFormatError("avif: meta lacks pitm, iloc or iinf")
    for item, kind, content in infes:
        if kind == b"mime" and b"rdf+xml" in content:
            xmp_item = item
    if xmp_item is not None:
        existing_xmp = _item_bytes(data, iloc, xmp_item, children)
    packet = _merge(existing_xmp, items) if existing_xmp is not None else xmp_packet(items)
    new_item = xmp_item if xmp_item is not None else max(item for item, _, _ in infes) + 1
    if new_item > 0xFFFF:
        raise UnsupportedOperationError("AIGCMetadata: AVIF item ids above 65535 are not supported here")
    # Rebuild meta: the new infe and cdsc reference, and iloc with every file offset that
    # points past meta moved by the growth of meta (the XMP bytes go in a final mdat box).
    iloc.offset_size = max(iloc.offset_size, 4)
    iloc.length_size = max(iloc.length_size, 4)
    entries = [e for e in iloc.entries if e[0] != new_item]
    entries.append((new_item, 0, 0, 0, [(0, 0, len(packet))]))
    iloc.entries = entries
    parts: list[tuple[bytes, bytes]] = []  # (type, built box) in the original order
    have_iref = False
    for kind, start, payload, end in children:
        if kind == b"iinf" and xmp_item is None:
            body = data[payload + 4 + (2 if iinf_version == 0 else 4) : end]
            count = len(infes) + 1
            infe = _full_box(
                b"infe", 2, 0, struct.pack(">HH4s", new_item, 0, b"mime") + b"XMP\x00application/rdf+xml\x00"
            )
            head = count.to_bytes(2 if iinf_version == 0 else 4, "big")
            parts.append((kind, _full_box(b"iinf", iinf_version, 0, head + body + infe)))
        elif kind == b"iref" and xmp_item is None:
            have_iref = True
            version = data[payload]
            ids = ">HHH" if version == 0 else ">IHI"
            ref = _box(b"cdsc", struct.pack(ids, new_item, 1, primary))
            parts.append((kind, _full_box(b"iref", version, 0, data[payload + 4 : end] + ref)))
        elif kind == b"iloc":
            parts.append((kind, b""))  # built last, once the growth is known
        else:
            parts.append((kind, data[start:end]))
    if xmp_item is None and not have_iref:
        ref = _box(b"cdsc", struct.pack(">HHH", new_item, 1, primary))
        parts.append((b"iref", _full_box(b"iref", 0, 0, ref)))
    iloc_size = len(iloc.build())
    meta_body = sum(len(box) for _, box in parts) + iloc_size
    meta_header = data[meta_payload : meta_payload + 4]
    new_meta_size = 8 + 4 + meta_body
    growth = new_meta_size - (meta_end - meta_start)
    moved = []
    for item, method, reference, base, extents in iloc.entries:
        if item == new_item:
            offset = len(data) + growth + 8  # the payload of the mdat box appended below
            moved.append((item, method, reference, base, [(0, offset, len(packet))]))
            continue
        if method != 0 or reference != 0:
            moved.append((item, method, reference, base, extents))
            continue
        if iloc.base_offset_size:
            base = base + growth if base >= meta_end else base
            moved.append((item, method, reference, base, extents))
        else:
            shifted = [(i, o + growth if o >= meta_end else o, n) for i, o, n in extents]
            moved.append((item, method, reference, base, shifted))
    iloc.entries = moved
    built_iloc = iloc.build()
    assert len(built_iloc) == iloc_size
    meta = struct.pack(">I4s", new_meta_size, b"meta") + meta_header
    meta += b"".join(built_iloc if kind == b"iloc" else box for kind, box in parts)
    # An XMP item already there now points at the new packet; its old bytes stay unused.
    return data[:meta_start] + meta + data[meta_end:] + _box(b"mdat", packet)


def _item_bytes(data: bytes, iloc: _Iloc, item: int, children: Sequence[tuple[bytes, int, int, int]]) -> bytes | None:
    idat = next(((payload, end) for kind, _, payload, end in children if kind == b"idat"), None)
    for entry_item, method, _reference, base, extents in iloc.entries:
        if entry_item != item:
            continue
        out = bytearray()
        for _index, offset, length in extents:
            if method == 0:
                start = base + offset
                limit = len(data)
            elif method == 1 and idat is not None:
                start = idat[0] + base + offset
                limit = idat[1]
            else:
                return None
            if length == 0:
                length = limit - start
            if start < 0 or start + length > limit or len(out) + length > _MAX_TEXT:
                return None
            out += data[start : start + length]
        return bytes(out)
    return None


# -- reading -----------------------------------------------------------------------------------------


def _xmp_packets(data: bytes, fmt: ImageFormat) -> Iterator[bytes]:
    if fmt is ImageFormat.JPEG:
        for marker, start, end in _jpeg_segments(data):
            payload = data[start + 4 : end]
            if marker == 0xE1 and payload.startswith(_XMP_JPEG_HEADER):
                yield payload[len(_XMP_JPEG_HEADER) :]
    elif fmt is ImageFormat.PNG:
        for kind, start, end in _png_chunks(data):
            if kind == b"iTXt":
                parsed = _itxt(data[start + 8 : end - 4])
                if parsed is not None and parsed[0] == _XMP_PNG_KEYWORD:
                    yield parsed[1]
    elif fmt in (ImageFormat.AVIF, ImageFormat.HEIF):
        _, meta_payload, meta_end = _meta(data)
        children = list(_boxes(data, meta_payload + 4, meta_end))
        iloc = None
        xmp_items = []
        for box, _box_start, box_payload, box_end in children:
            if box == b"iloc":
                iloc = _Iloc(data, box_payload, box_end)
            elif box == b"iinf":
                first = box_payload + 4 + (2 if data[box_payload] == 0 else 4)
                for k, _, p, e in _boxes(data, first, box_end):
                    if k == b"infe":
                        item, item_type, content = _infe(data, p, e)
                        if item_type == b"mime" and b"rdf+xml" in content:
                            xmp_items.append(item)
        if iloc is not None:
            for item in xmp_items:
                packet = _item_bytes(data, iloc, item, children)
                if packet is not None:
                    yield packet


def _png_text_label(data: bytes) -> dict[str, str] | None:
    """The label as a PNG text chunk with the keyword ``AIGC`` (tEXt, zTXt or iTXt)."""
    for kind, start, end in _png_chunks(data):
        body = data[start + 8 : end - 4]
        text: bytes | None = None
        if kind == b"tEXt" and body.startswith(b"AIGC\x00"):
            text = body[5:]
        elif kind == b"zTXt" and body.startswith(b"AIGC\x00") and len(body) > 6:
            try:
                text = zlib.decompressobj().decompress(body[6:], _MAX_TEXT)
            except zlib.error:
                text = None
        elif kind == b"iTXt":
            parsed = _itxt(body)
            if parsed is not None and parsed[0] == b"AIGC":
                text = parsed[1]
        if text is not None:
            label = _label_from_json(text.decode("utf-8", "replace"))
            if label is not None:
                return label
    return None


def read_aigc_metadata(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """The AIGC label of an image as CI's ``ci-process=ImageAIGCMetadata`` answers it:
    ``{"AIGC": {"Label": ..., "ContentProducer": ..., ...}}`` with the keys the file holds,
    in CI's order, or ``{}`` when the image has no label.

    Raises:
        TypeError: ``data`` is not bytes-like.
        InvalidImageFormatError: ``data`` is not an image, or a JPG/PNG/AVIF too damaged
            to walk.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_aigc_metadata: data must be bytes-like, got {type(data).__name__}")
    from ci_engine.io import sniff

    raw = bytes(data)
    fmt = sniff(raw)
    if fmt not in (ImageFormat.JPEG, ImageFormat.PNG, ImageFormat.AVIF, ImageFormat.HEIF):
        return {}
    for packet in _xmp_packets(raw, fmt):
        label = _label_from_xmp(packet)
        if label is not None:
            return {"AIGC": label}
    if fmt is ImageFormat.PNG:
        label = _png_text_label(raw)
        if label is not None:
            return {"AIGC": label}
    return {}


def label_items(label: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``(key, value)`` pairs of a label mapping in CI's key order (unknown keys dropped)."""
    return tuple((key, label[key]) for key in FIELDS if key in label)
