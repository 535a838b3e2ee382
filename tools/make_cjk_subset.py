"""Make ci_engine/watermark/_fonts/NotoSansCJKsc-GB2312.otf, the CJK font of last resort.

A text watermark on a host without CJK fonts would otherwise draw boxes (docs/watermarks.md,
"Fonts"). The font is Noto Sans CJK SC Regular (SIL Open Font License 1.1, text in OFL.txt
beside it), cut down to the characters of GB 2312 (6,763 hanzi and 682 symbols), ASCII,
and the CJK and full-width punctuation blocks, without hinting.

    apt-get download fonts-noto-cjk && dpkg-deb -x fonts-noto-cjk_*.deb noto
    pip install fonttools
    python tools/make_cjk_subset.py noto/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
"""

from __future__ import annotations

import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTCollection

TARGET = Path(__file__).resolve().parents[1] / "ci_engine" / "watermark" / "_fonts" / "NotoSansCJKsc-GB2312.otf"
SC_INDEX = 2  # Noto Sans CJK SC in NotoSansCJK-Regular.ttc


def characters() -> list[int]:
    chars = set(range(0x20, 0x7F)) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    chars |= set(range(0x2010, 0x2040)) | {0xA9, 0xAE, 0xB0, 0xB7, 0xD7, 0xF7, 0x2122}
    for high in range(0xA1, 0xF8):
        for low in range(0xA1, 0xFF):
            try:
                chars.add(ord(bytes([high, low]).decode("gb2312")))
            except UnicodeDecodeError:
                pass
    return sorted(chars)


def main(source: str) -> None:
    font = TTCollection(source).fonts[SC_INDEX]
    options = subset.Options()
    options.hinting = False
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=characters())
    subsetter.subset(font)
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    font.save(str(TARGET))
    print(f"{TARGET}: {TARGET.stat().st_size:,} bytes, {len(characters())} characters")


if __name__ == "__main__":
    main(sys.argv[1])
