"""CI font names -> real font files on this host.

``watermark/2/font/<b64 name>`` names one of CI's documented font *files*
(:class:`~ci_engine.types.Font`: ``simhei.ttf``, ``arial.ttf`` ...), which a Linux host
does not have. :class:`FontLibrary` maps each to a file that exists here:

1. a file in the font directory (``FontLibrary(font_dir=...)``, else the
   ``CI_ENGINE_FONT_DIR`` environment variable) whose name is the CI file name (matched
   like CI's names: case, spaces, hyphens, underscores and the extension ignored, so
   ``SimHei.TTF`` serves ``simhei.ttf``): drop the real font there to use it;
2. otherwise the first installed family of the name's substitute list (:data:`SUBSTITUTES`:
   the Windows/macOS family itself, then freely licensed look-alikes: Noto CJK, WenQuanYi,
   AR PL for Chinese, Liberation, Nimbus, DejaVu for Latin), searched among the fonts in
   the font directory and the host's fonts (``fc-list`` when fontconfig is installed, else a
   scan of the usual font directories).

A documented name with no match raises :class:`FontNotFoundError` (501 ``NotImplemented``,
not masked: the request is valid CI, this host lacks a resource, like a missing plug-in in
``limits-and-errors.md`` section 5.4); the message names the font, what was searched and the
remedy. Characters the chosen font lacks are drawn with :meth:`FontLibrary.fallback`, the
first installed CJK sans.

The default font (``tahoma.ttf``) maps to a font with CJK glyphs.

Last of all comes the CJK font shipped with ci_engine (:data:`BUNDLED_CJK`: Noto Sans CJK
SC Regular cut down to GB 2312, ASCII and CJK punctuation, SIL OFL 1.1, 2.9 MB), so that
Chinese text draws real glyphs after a plain ``pip install`` on a host without CJK fonts.
A character that no face here has (outside GB 2312 on such a host, an emoji, ...) is never
drawn as a box: :func:`check_coverage` raises :class:`FontNotFoundError` naming it and the
fix.

This module imports no imaging library at import time (Pillow only to scan font files
when fontconfig is missing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from ci_engine._dc import dataclass
from ci_engine.errors import UnsupportedOperationError
from ci_engine.types import Font
from ci_engine.watermark._cmap import Coverage, coverage

__all__ = [
    "BUNDLED_CJK",
    "check_coverage",
    "FONT_DIR_ENV",
    "FontFace",
    "FontLibrary",
    "FontNotFoundError",
    "SUBSTITUTES",
    "CJK_SANS",
    "default_library",
]

FONT_DIR_ENV = "CI_ENGINE_FONT_DIR"
FONT_EXTENSIONS = (".ttf", ".ttc", ".otf", ".otc", ".dfont")
SYSTEM_FONT_DIRS = (
    "/usr/share/fonts",
    "/usr/local/share/fonts",
    "~/.local/share/fonts",
    "~/.fonts",
    "/Library/Fonts",
    "/System/Library/Fonts",
    "C:/Windows/Fonts",
)

REGULAR = ("Regular", "Book", "Normal", "Roman", "Medium", "W3", "W4")
BOLD = ("Bold", "Semibold", "SemiBold", "DemiBold", "Heavy", "Black", "Medium", "W6", "W7", "Regular", "Book")

CJK_SANS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Noto Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Droid Sans Fallback",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
    "Hiragino Sans GB",
)
"""Chinese sans families, best first: the Hei substitutes and the glyph fallback."""

CJK_SERIF = (
    "Noto Serif CJK SC",
    "Source Han Serif SC",
    "Source Han Serif CN",
    "Noto Serif SC",
    "AR PL UMing CN",
    "AR PL SungtiL GB",
    "SimSun",
    "Songti SC",
)
LATIN_SANS = ("Liberation Sans", "Arimo", "Nimbus Sans", "Nimbus Sans L", "TeX Gyre Heros", "FreeSans", "DejaVu Sans")
HELVETICA_LIKE = (
    "Nimbus Sans",
    "Nimbus Sans L",
    "TeX Gyre Heros",
    "Liberation Sans",
    "Arimo",
    "FreeSans",
    "DejaVu Sans",
)


@dataclass(frozen=True, slots=True)
class _Wanted:
    families: tuple[str, ...]
    styles: tuple[str, ...]
    description: str


SUBSTITUTES: dict[Font, _Wanted] = {
    Font.SIMFANG: _Wanted(("FangSong", "STFangsong", *CJK_SERIF, *CJK_SANS), REGULAR, "FangSong, a Chinese serif"),
    Font.SIMHEI: _Wanted(("SimHei", *CJK_SANS), REGULAR, "HeiTi, a Chinese sans"),
    Font.SIMKAI: _Wanted(
        ("KaiTi", "SimKai", "STKaiti", "AR PL UKai CN", "AR PL KaitiM GB", *CJK_SERIF, *CJK_SANS),
        REGULAR,
        "KaiTi, a Chinese brush script",
    ),
    Font.SIMSUN: _Wanted(("SimSun", "NSimSun", *CJK_SERIF, *CJK_SANS), REGULAR, "SongTi, a Chinese serif"),
    Font.STHEITI_LIGHT: _Wanted(
        ("STHeiti", "Heiti SC", *CJK_SANS), ("Light", "DemiLight", "Thin", *REGULAR), "STHeiti Light, a Chinese sans"
    ),
    Font.STHEITI_MEDIUM: _Wanted(
        ("STHeiti", "Heiti SC", *CJK_SANS), ("Medium", *BOLD), "STHeiti Medium, a Chinese sans"
    ),
    Font.YOUYUAN: _Wanted(("YouYuan", *CJK_SANS), REGULAR, "YouYuan, a rounded Chinese sans"),
    Font.AHRONBD: _Wanted(("Aharoni", *LATIN_SANS), BOLD, "Aharoni Bold, a Latin/Hebrew bold sans"),
    Font.ARIAL: _Wanted(("Arial", *LATIN_SANS), REGULAR, "Arial, a Latin sans"),
    Font.ARIBLK: _Wanted(("Arial Black", *LATIN_SANS), ("Black", "Heavy", *BOLD), "Arial Black, a Latin heavy sans"),
    Font.HELVETICA: _Wanted(("Helvetica", *HELVETICA_LIKE), REGULAR, "Helvetica, a Latin sans"),
    Font.HELVETICA_NEUE: _Wanted(("Helvetica Neue", "Helvetica", *HELVETICA_LIKE), REGULAR, "Helvetica Neue"),
    Font.TAHOMA: _Wanted(("Tahoma", *CJK_SANS, *LATIN_SANS), REGULAR, "the default font (a sans with CJK glyphs)"),
}
"""For each CI font: the families to look for, best first, and the preferred styles."""

_FILE_ALIASES: dict[Font, tuple[str, ...]] = {
    Font.STHEITI_LIGHT: ("STHeiti Light", "STHeiti-Light", "STHeitiLight", "华文细黑"),
    Font.STHEITI_MEDIUM: ("STHeiti Medium", "STHeiti-Medium", "STHeitiMedium", "华文黑体"),
    Font.YOUYUAN: ("YouYuan", "幼圆"),
    Font.SIMSUN: ("simsun", "宋体"),
    Font.SIMHEI: ("simhei", "黑体"),
    Font.SIMKAI: ("simkai", "楷体"),
    Font.SIMFANG: ("simfang", "仿宋"),
}


def _key(name: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch not in " -_")


def _stem_key(file_name: str) -> str:
    stem, ext = os.path.splitext(file_name)
    return _key(stem if ext.lower() in FONT_EXTENSIONS else file_name)


class FontNotFoundError(UnsupportedOperationError):
    """A documented CI font has no file on this host (501 ``NotImplemented``, not masked).
    ``font`` is the CI name; ``searched`` the families looked for."""

    def __init__(self, message: str, *, font: str, searched: Sequence[str], **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.font = font
        self.searched = tuple(searched)


@dataclass(frozen=True, slots=True)
class FontFace:
    """One face of a font file: ``path`` and the face ``index`` inside a collection."""

    path: str
    index: int
    family: str
    style: str

    @property
    def coverage(self) -> Coverage | None:
        """Mapped code points (``None``: unknown, assume everything)."""
        return coverage(self.path, self.index)

    def covers(self, char: str) -> bool:
        cov = self.coverage
        return cov is None or cov.covers(char)


BUNDLED_CJK = FontFace(
    str(Path(__file__).resolve().parent / "_fonts" / "NotoSansCJKsc-GB2312.otf"), 0, "Noto Sans CJK SC", "Regular"
)
"""The CJK font shipped with ci_engine, searched after every other font
(``tools/make_cjk_subset.py`` makes it; ``_fonts/OFL.txt`` is its licence)."""


def _visible(char: str) -> bool:
    import unicodedata

    if unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"):
        return False
    return not 0xFE00 <= ord(char) <= 0xFE0F


def check_coverage(text: str, primary: FontFace, fallback: FontFace | None) -> None:
    """Raise :class:`FontNotFoundError` when a visible character of ``text`` is in neither
    face: it would be drawn as a box. The message names the characters and the fix."""
    missing: list[str] = []
    for char in dict.fromkeys(text):
        if _visible(char) and not primary.covers(char) and (fallback is None or not fallback.covers(char)):
            missing.append(char)
    if not missing:
        return
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:10]) + (" ..." if len(missing) > 10 else "")
    raise FontNotFoundError(
        f"watermark/2: no font on this host draws {shown}: the text would show boxes. Install fonts "
        f"that have them (Debian: apt-get install fonts-noto-cjk fonts-noto-color-emoji) or put such a "
        f"font in a font directory (FontLibrary(font_dir=...) or the {FONT_DIR_ENV} environment variable)",
        font=primary.family,
        searched=(primary.family, *((fallback.family,) if fallback is not None else ())),
    )


def _fc_list() -> list[FontFace] | None:
    """Every face fontconfig knows, or ``None`` without fontconfig."""
    exe = shutil.which("fc-list")
    if exe is None:
        return None
    try:
        result = subprocess.run(  # noqa: S603 (fixed arguments, no shell)
            [exe, "--format", "%{file}\t%{index}\t%{family}\t%{style}\n"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    faces = []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or not parts[0]:
            continue
        path, index, family, style = parts
        try:
            idx = int(index or 0)
        except ValueError:
            continue
        faces.append(FontFace(path, idx, family.replace("\\,", "\u0000"), style.replace("\\,", "\u0000")))
    return faces


def _scan(dirs: Iterable[str | os.PathLike[str]]) -> list[FontFace]:
    """Faces of the font files under ``dirs``, named with Pillow (FreeType)."""
    from PIL import ImageFont

    faces: list[FontFace] = []
    for base in dirs:
        root = Path(base).expanduser()
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in FONT_EXTENSIONS or not path.is_file():
                continue
            for index in range(64):
                try:
                    font = ImageFont.truetype(str(path), size=12, index=index)
                except OSError:
                    break
                family, style = font.getname()
                faces.append(FontFace(str(path), index, family or path.stem, style or "Regular"))
                if path.suffix.lower() not in (".ttc", ".otc"):
                    break
    return faces


def _names(field: str) -> list[str]:
    return [n.replace("\u0000", ",").strip() for n in field.split(",") if n.strip()]


class FontLibrary:
    """Find font files for CI font names. Thread-safe; the host's font list is read once.

    Args:
        font_dir: a directory searched first (files named like CI's fonts, and any other
            font in it); default: the ``CI_ENGINE_FONT_DIR`` environment variable, if set.
        use_system: also search the host's fonts (fontconfig, else a scan of
            ``system_dirs``).
        system_dirs: the directories scanned when fontconfig is unavailable.
        use_bundled: search the CJK font shipped with ci_engine (:data:`BUNDLED_CJK`)
            after every other one; default: as ``use_system``.
    """

    def __init__(
        self,
        font_dir: str | os.PathLike[str] | None = None,
        *,
        use_system: bool = True,
        system_dirs: Sequence[str | os.PathLike[str]] = SYSTEM_FONT_DIRS,
        use_bundled: bool | None = None,
    ) -> None:
        if font_dir is None:
            font_dir = os.environ.get(FONT_DIR_ENV) or None
        self.font_dir = Path(font_dir).expanduser() if font_dir is not None else None
        self.use_system = use_system
        self.system_dirs = tuple(system_dirs)
        self.use_bundled = use_system if use_bundled is None else use_bundled
        self._lock = threading.Lock()
        self._faces: list[FontFace] | None = None
        self._resolved: dict[Font, FontFace | FontNotFoundError] = {}
        self._fallback: FontFace | bool | None = False

    # -- catalogue ---------------------------------------------------------------------------------
    def faces(self) -> list[FontFace]:
        """Every face searched, font directory first."""
        with self._lock:
            if self._faces is None:
                local = _scan([self.font_dir]) if self.font_dir is not None else []
                system: list[FontFace] = []
                if self.use_system:
                    listed = _fc_list()
                    system = listed if listed is not None else _scan(self.system_dirs)
                bundled = [BUNDLED_CJK] if self.use_bundled and Path(BUNDLED_CJK.path).is_file() else []
                self._faces = local + system + bundled
            return self._faces

    def _by_file_name(self, font: Font) -> FontFace | None:
        if self.font_dir is None or not self.font_dir.is_dir():
            return None
        wanted = {_stem_key(font.value), *(_key(a) for a in _FILE_ALIASES.get(font, ()))}
        for path in sorted(self.font_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in FONT_EXTENSIONS and _stem_key(path.name) in wanted:
                return FontFace(str(path), 0, path.stem, "Regular")
        return None

    def _by_family(self, families: Sequence[str], styles: Sequence[str]) -> FontFace | None:
        faces = self.faces()
        style_rank = {_key(s): i for i, s in enumerate(styles)}
        for family in families:
            wanted = _key(family)
            matches = [f for f in faces if any(_key(n) == wanted for n in _names(f.family))]
            if not matches:
                continue

            def rank(face: FontFace) -> tuple[int, int]:
                names = [_key(s) for s in _names(face.style)] or ["regular"]
                slanted = any(w in n for n in names for w in ("italic", "oblique"))
                best = min((style_rank.get(n, len(style_rank)) for n in names), default=len(style_rank))
                return (1 if slanted else 0, best)

            return min(matches, key=rank)
        return None

    # -- lookups -------------------------------------------------------------------------------------
    def resolve(self, font: Font) -> FontFace:
        """The face that draws ``font``. Raises :class:`FontNotFoundError`."""
        with self._lock:
            cached = self._resolved.get(font)
        if cached is None:
            wanted = SUBSTITUTES[font]
            face = self._by_file_name(font) or self._by_family(wanted.families, wanted.styles)
            cached = face if face is not None else self._not_found(font, wanted)
            with self._lock:
                self._resolved[font] = cached
        if isinstance(cached, FontNotFoundError):
            raise FontNotFoundError(cached.message, font=cached.font, searched=cached.searched)
        return cached

    def _not_found(self, font: Font, wanted: _Wanted) -> FontNotFoundError:
        where = []
        if self.font_dir is not None:
            where.append(f"the font directory {str(self.font_dir)!r}")
        if self.use_system:
            where.append("the host's fonts")
        cjk = any(f in CJK_SANS or f in CJK_SERIF for f in wanted.families)
        install = "fonts-noto-cjk (or fonts-wqy-zenhei)" if cjk else "fonts-liberation2 (or fonts-dejavu-core)"
        message = (
            f"watermark/2: font {font.value!r} ({wanted.description}) is not available on this host: "
            f"none of {', '.join(wanted.families[:6])}{' ...' if len(wanted.families) > 6 else ''} "
            f"was found in {' or '.join(where) or 'no font source'}. Install a substitute "
            f"(Debian: apt-get install {install}) or put a file named {font.value!r} in a font "
            f"directory (FontLibrary(font_dir=...) or the {FONT_DIR_ENV} environment variable)"
        )
        return FontNotFoundError(message, font=font.value, searched=wanted.families)

    def fallback(self) -> FontFace | None:
        """The face that draws characters the chosen font lacks: the first installed CJK
        sans (``None`` when there is none)."""
        with self._lock:
            cached = self._fallback
        if cached is False:
            cached = self._by_family(CJK_SANS, REGULAR)
            with self._lock:
                self._fallback = cached
        assert cached is not True
        return cached

    def table(self) -> dict[Font, FontFace | None]:
        """Every CI font and the face it resolves to here (``None``: missing)."""
        out: dict[Font, FontFace | None] = {}
        for font in Font:
            try:
                out[font] = self.resolve(font)
            except FontNotFoundError:
                out[font] = None
        return out


_DEFAULTS: dict[str | None, FontLibrary] = {}
_DEFAULTS_LOCK = threading.Lock()


def default_library() -> FontLibrary:
    """The library used when ``process`` is given no ``fonts``: the font directory from
    ``CI_ENGINE_FONT_DIR`` (read at each call) plus the host's fonts."""
    font_dir = os.environ.get(FONT_DIR_ENV) or None
    with _DEFAULTS_LOCK:
        library = _DEFAULTS.get(font_dir)
        if library is None:
            library = _DEFAULTS[font_dir] = FontLibrary(font_dir)
        return library
