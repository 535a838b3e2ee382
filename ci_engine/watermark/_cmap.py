"""Which code points a TrueType/OpenType font (or one face of a collection) maps to a glyph.

A minimal reader of the ``cmap`` table (subtable formats 4 and 12, the ones Unicode fonts
carry), enough to pick a fallback font for characters the requested font lacks. No
dependency: Pillow does not expose the character map. A font that cannot be read (a Mac
``.dfont``, a broken file) has *unknown* coverage, reported as ``None``.
"""

from __future__ import annotations

import bisect
import struct
from functools import lru_cache

from ci_engine._dc import dataclass

__all__ = ["Coverage", "coverage"]


@dataclass(frozen=True, slots=True)
class Coverage:
    """Sorted, disjoint inclusive ranges ``(first, last)`` of mapped code points."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def __contains__(self, codepoint: object) -> bool:
        if not isinstance(codepoint, int):
            return False
        i = bisect.bisect_right(self.starts, codepoint) - 1
        return i >= 0 and codepoint <= self.ends[i]

    def covers(self, char: str) -> bool:
        return ord(char) in self


def _ranges(pairs: list[tuple[int, int]]) -> Coverage:
    pairs.sort()
    merged: list[list[int]] = []
    for first, last in pairs:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return Coverage(tuple(p[0] for p in merged), tuple(p[1] for p in merged))


def _format12(table: bytes, offset: int) -> list[tuple[int, int]]:
    (count,) = struct.unpack_from(">I", table, offset + 12)
    groups = struct.unpack_from(f">{3 * count}I", table, offset + 16)
    out = []
    for i in range(count):
        first, last, glyph = groups[3 * i : 3 * i + 3]
        if glyph == 0:
            first += 1  # the first code point maps to .notdef
        if first <= last:
            out.append((first, min(last, 0x10FFFF)))
    return out


def _format4(table: bytes, offset: int) -> list[tuple[int, int]]:
    (seg_x2,) = struct.unpack_from(">H", table, offset + 6)
    n = seg_x2 // 2
    ends = struct.unpack_from(f">{n}H", table, offset + 14)
    starts = struct.unpack_from(f">{n}H", table, offset + 16 + seg_x2)
    range_at = offset + 16 + 3 * seg_x2
    range_offsets = struct.unpack_from(f">{n}H", table, range_at)
    out: list[tuple[int, int]] = []
    for i in range(n):
        first, last = starts[i], ends[i]
        if first == 0xFFFF or first > last:
            continue
        if range_offsets[i] == 0:
            out.append((first, last))
            continue
        # Glyph ids come from glyphIdArray; 0 means "not mapped".
        base = range_at + 2 * i + range_offsets[i]
        for c in range(first, last + 1):
            at = base + 2 * (c - first)
            if at + 2 <= len(table) and struct.unpack_from(">H", table, at)[0] != 0:
                out.append((c, c))
    return out


def _read_cmap(path: str, index: int) -> Coverage | None:
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12:
            return None
        start = 0
        if head[:4] == b"ttcf":
            (count,) = struct.unpack_from(">I", head, 8)
            if not 0 <= index < count:
                return None
            fh.seek(12 + 4 * index)
            (start,) = struct.unpack(">I", fh.read(4))
        fh.seek(start)
        directory = fh.read(12)
        if len(directory) < 12 or directory[:4] not in (b"\x00\x01\x00\x00", b"OTTO", b"true"):
            return None
        (num_tables,) = struct.unpack_from(">H", directory, 4)
        records = fh.read(16 * num_tables)
        for i in range(num_tables):
            tag, _, offset, length = struct.unpack_from(">4sIII", records, 16 * i)
            if tag == b"cmap":
                fh.seek(offset)
                table = fh.read(length)
                break
        else:
            return None
    (_, count) = struct.unpack_from(">HH", table, 0)
    subtables: dict[tuple[int, int], int] = {}
    for i in range(count):
        platform, encoding, offset = struct.unpack_from(">HHI", table, 4 + 8 * i)
        subtables[(platform, encoding)] = offset
    for key in ((3, 10), (0, 6), (0, 4), (3, 1), (0, 3), (0, 2), (0, 1), (0, 0)):
        offset_or_none = subtables.get(key)
        if offset_or_none is None:
            continue
        (fmt,) = struct.unpack_from(">H", table, offset_or_none)
        if fmt == 12:
            return _ranges(_format12(table, offset_or_none))
        if fmt == 4:
            return _ranges(_format4(table, offset_or_none))
    return None


@lru_cache(maxsize=64)
def coverage(path: str, index: int = 0) -> Coverage | None:
    """The code points face ``index`` of the font file at ``path`` maps, or ``None`` when
    the file cannot be read this way (coverage unknown)."""
    try:
        return _read_cmap(path, index)
    except (OSError, struct.error, ValueError):
        return None
