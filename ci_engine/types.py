"""Shared value objects and enumerations.

Enumerations whose members are written in processing strings carry the CI token as their
value (``Gravity.NORTH_WEST.value == "northwest"``); aliases (``jpeg`` for ``jpg``) are
folded by ``from_token`` once, at the boundary.
"""

from __future__ import annotations

import enum
from typing import Any

from ci_engine._dc import dataclass
from ci_engine.errors import Span, ValueRangeError

__all__ = [
    "Span",
    "Gravity",
    "OutputFormat",
    "FlipAxis",
    "SizeUnit",
    "OffsetMode",
    "ScaleType",
    "BlogoMode",
    "BlindType",
    "Font",
    "MAINLAND_FONT_NAMES",
    "CiProcessName",
    "Color",
    "ImageFormat",
    "ImageHeader",
]


_simple_enum: Any = getattr(enum, "_simple_enum", None)


class _TokenEnumType(enum.EnumType):
    """The metaclass of :class:`_TokenEnum`: a subclass with plain members is made through
    the standard library's own quick path, ``enum._simple_enum`` (what CPython uses for its
    start-up enums), instead of the full class creation, which took about 2.5 times as long
    (ten enums here, at every start). ``tests/unit/test_types.py`` checks each against the
    enum the full path makes, with ``enum._test_simple_enum``. Without ``_simple_enum``
    (another Python), or for anything else, the full path."""

    def __new__(metacls, cls: str, bases: tuple[type, ...], classdict: Any, **kwds: Any) -> Any:
        if (
            _simple_enum is not None
            and not kwds
            and len(bases) == 1
            and bases[0].__name__ == "_TokenEnum"
            and _QUICK
        ):
            plain = type(cls, (), {key: classdict[key] for key in classdict})
            return _simple_enum(bases[0])(plain)
        return super().__new__(metacls, cls, bases, classdict, **kwds)


_QUICK = True
"""Off in the test that builds each enum the full way for comparison."""


class _TokenEnum(enum.Enum, metaclass=_TokenEnumType):
    """An enum whose values are CI tokens; ``from_token`` is case-insensitive."""

    @classmethod
    def from_token(cls, token: str) -> _TokenEnum:
        member = _lookup(cls).get(token.lower())
        if member is None:
            raise ValueError(token)
        return member

    def __str__(self) -> str:
        return str(self.value)


_LOOKUPS: dict[type, dict[str, _TokenEnum]] = {}


def _lookup(cls: type[_TokenEnum]) -> dict[str, _TokenEnum]:
    table = _LOOKUPS.get(cls)
    if table is None:
        table = {str(m.value).lower(): m for m in cls}
        table.update(_ALIASES.get(cls, {}))
        _LOOKUPS[cls] = table
    return table


class Gravity(_TokenEnum):
    """The 3x3 anchor grid of ``crop``/``cut`` and of watermarks."""

    NORTH_WEST = "northwest"
    NORTH = "north"
    NORTH_EAST = "northeast"
    WEST = "west"
    CENTER = "center"
    EAST = "east"
    SOUTH_WEST = "southwest"
    SOUTH = "south"
    SOUTH_EAST = "southeast"

    @property
    def column(self) -> int:
        """0 = left, 1 = centre, 2 = right."""
        return _GRAVITY_CELLS[self][0]

    @property
    def row(self) -> int:
        """0 = top, 1 = middle, 2 = bottom."""
        return _GRAVITY_CELLS[self][1]


_GRAVITY_CELLS = {
    Gravity.NORTH_WEST: (0, 0),
    Gravity.NORTH: (1, 0),
    Gravity.NORTH_EAST: (2, 0),
    Gravity.WEST: (0, 1),
    Gravity.CENTER: (1, 1),
    Gravity.EAST: (2, 1),
    Gravity.SOUTH_WEST: (0, 2),
    Gravity.SOUTH: (1, 2),
    Gravity.SOUTH_EAST: (2, 2),
}


class OutputFormat(_TokenEnum):
    """Output format names of ``imageMogr2/format`` and ``imageView2/format``.

    ``jpeg`` and ``yjpeg`` are aliases of ``jpg``; ``heic`` of ``heif``
    (``imagemogr2.md`` section 13).
    """

    JPG = "jpg"
    PNG = "png"
    BMP = "bmp"
    GIF = "gif"
    WEBP = "webp"
    HEIF = "heif"
    AVIF = "avif"
    TPG = "tpg"
    SVGC = "svgc"
    APNG = "apng"
    TIFF = "tiff"
    PSD = "psd"
    ASTC = "astc"


_ALIASES: dict[type, dict[str, _TokenEnum]] = {
    OutputFormat: {"jpeg": OutputFormat.JPG, "yjpeg": OutputFormat.JPG, "heic": OutputFormat.HEIF},
}


class FlipAxis(_TokenEnum):
    """``flip/vertical`` mirrors top and bottom; ``flip/horizontal`` left and right."""

    VERTICAL = "vertical"
    HORIZONTAL = "horizontal"


class SizeUnit(_TokenEnum):
    """Unit of ``size-limit``: ``k`` = 1024 bytes, ``m`` = 1024 * 1024 bytes."""

    K = "k"
    M = "m"

    @property
    def bytes(self) -> int:
        return 1024 if self is SizeUnit.K else 1024 * 1024


class OffsetMode(_TokenEnum):
    """Legacy ``crop/!WxHaXaY`` offsets: ``a`` moves the region, ``-`` shrinks it."""

    MOVE = "a"
    SHRINK = "-"


class ScaleType(_TokenEnum):
    """``scatype`` of watermarks: size relative to the base width, height or area."""

    WIDTH = "1"
    HEIGHT = "2"
    AREA = "3"


class BlogoMode(_TokenEnum):
    """``blogo`` of image watermarks: fit an oversized logo by scaling or by cropping."""

    SCALE = "1"
    CROP = "2"


class BlindType(_TokenEnum):
    """``type`` of blind watermarks: semi-blind image, blind image, text."""

    SEMI_BLIND = "1"
    BLIND = "2"
    TEXT = "3"


class Font(_TokenEnum):
    """The documented text-watermark fonts (``watermark.md`` section 4.2) and the default
    ``tahoma.ttf``. Matching ignores case, spaces, hyphens and underscores."""

    SIMFANG = "simfang.ttf"
    SIMHEI = "simhei.ttf"
    SIMKAI = "simkai.ttf"
    SIMSUN = "simsun.ttc"
    STHEITI_LIGHT = "STHeiti Light.ttc"
    STHEITI_MEDIUM = "STHeiti Medium.ttc"
    YOUYUAN = "YouYuan.ttf"
    AHRONBD = "ahronbd.ttf"
    ARIAL = "arial.ttf"
    ARIBLK = "ariblk.ttf"
    HELVETICA = "Helvetica.dfont"
    HELVETICA_NEUE = "HelveticaNeue.dfont"
    TAHOMA = "tahoma.ttf"

    @classmethod
    def from_name(cls, name: str) -> Font:
        """Find the documented font for a file name as users write it: the international
        list's spelling (``simhei.ttf``) or the mainland list's, Chinese part included
        (``simhei黑体.ttf``, :data:`MAINLAND_FONT_NAMES`)."""
        key = _font_key(name)
        member = _font_keys().get(key)
        if member is None:
            raise ValueError(name)
        return member


MAINLAND_FONT_NAMES: dict[str, str] = {
    "simfang仿宋.ttf": "simfang.ttf",
    "tahoma.ttf": "tahoma.ttf",
    "simhei黑体.ttf": "simhei.ttf",
    "simkai楷体.ttf": "simkai.ttf",
    "simsun宋体.ttc": "simsun.ttc",
    "STHeiti Light华文黑体.ttc": "STHeiti Light.ttc",
    "STHeiti Medium.ttc": "STHeiti Medium.ttc",
    "幼圆.TTF": "YouYuan.ttf",
    "ahronbd.ttf": "ahronbd.ttf",
    "arial.ttf": "arial.ttf",
    "ariblk.ttf": "ariblk.ttf",
    "Helvetica.dfont": "Helvetica.dfont",
    "HelveticaNeue.dfont": "HelveticaNeue.dfont",
}
"""The mainland font list as CI's page spells it (https://cloud.tencent.com/document/api/460/19568,
"支持字体列表") -> the :class:`Font` value it names. The international page drops the
Chinese part of the names and ``tahoma.ttf``; both spellings are accepted."""


def _font_key(name: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch not in " -_")


_FONT_KEYS: dict[str, Font] = {}


def _font_keys() -> dict[str, Font]:
    """Folded spelling -> font, made on first use (a string without ``text`` never needs it)."""
    if not _FONT_KEYS:
        keys = {_font_key(member.value): member for member in Font}
        keys.update({_font_key(mainland): Font(value) for mainland, value in MAINLAND_FONT_NAMES.items()})
        _FONT_KEYS.update(keys)
    return _FONT_KEYS


class CiProcessName(_TokenEnum):
    """The ``ci-process=<Name>`` operations of ``extras.md``."""

    QRCODE = "QRcode"
    QRCODE_GENERATE = "qrcode-generate"
    ASSESS_QUALITY = "AssessQuality"
    DETECT_LABEL = "detect-label"
    DETECT_FACE = "DetectFace"
    OCR = "OCR"
    IMAGE_SEARCH = "ImageSearch"
    IMAGE_REPAIR = "ImageRepair"
    AI_PIC_MATTING = "AIPicMatting"
    AI_PORTRAIT_MATTING = "AIPortraitMatting"
    GOODS_MATTING = "GoodsMatting"
    AI_SUPER_RESOLUTION = "AISuperResolution"
    AI_IMAGE_COLORING = "AIImageColoring"
    AI_ENHANCE_IMAGE = "AIEnhanceImage"
    AI_IMAGE_CROP = "AIImageCrop"
    RECOGNIZE_LOGO = "RecognizeLogo"
    IMAGE_AIGC_METADATA = "ImageAIGCMetadata"
    IMAGE_INSPECT = "ImageInspect"
    DETECT_CAR = "DetectCar"
    DETECT_PET = "detect-pet"
    AI_LICENSE_REC = "AILicenseRec"
    ID_CARD_OCR = "IDCardOCR"
    FACE_EFFECT = "face-effect"
    AI_BODY_RECOGNITION = "AIBodyRecognition"
    AI_GAME_REC = "AIGameRec"
    AI_RECOGNITION = "ai-recognition"
    AI_IMAGE_ANALYSIS = "AIImageAnalysis"


@dataclass(frozen=True, slots=True)
class Color:
    """An opaque sRGB colour. ``Color.parse`` accepts ``#RRGGBB``, ``RRGGBB``, ``#RGB`` and
    CSS colour names, case-insensitively (``watermark.md`` section 4.1)."""

    red: int
    green: int
    blue: int

    def __post_init__(self) -> None:
        red, green, blue = self.red, self.green, self.blue
        if (
            type(red) is int
            and type(green) is int
            and type(blue) is int
            and 0 <= red <= 255
            and 0 <= green <= 255
            and 0 <= blue <= 255
        ):
            return
        for name in ("red", "green", "blue"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 255:
                raise ValueRangeError(
                    f"color: {name} must be an integer between 0 and 255, got {value!r}",
                    op="color",
                    field=name,
                    expected="0..255",
                    actual=value,
                )

    @classmethod
    def parse(cls, text: str) -> Color:
        """Parse a colour as CI users write it; raises ``ValueError`` if it is none."""
        value = text.strip().lower()
        from ci_engine._colors import CSS_COLORS

        named = CSS_COLORS.get(value)
        if named is not None:
            value = named
        digits = value[1:] if value.startswith("#") else value
        if len(digits) == 3 and value.startswith("#"):
            digits = "".join(ch * 2 for ch in digits)
        if len(digits) != 6 or digits.strip("0123456789abcdef"):  # a character outside the set
            raise ValueError(text)
        rgb = int(digits, 16)  # six hex digits, checked above
        return cls(rgb >> 16, (rgb >> 8) & 0xFF, rgb & 0xFF)

    @property
    def hex(self) -> str:
        """``#RRGGBB`` in upper case, the form ci_engine writes."""
        return f"#{self.red:02X}{self.green:02X}{self.blue:02X}"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return (self.red, self.green, self.blue)


WHITE = Color(255, 255, 255)
"""Default ``pad`` colour (``imagemogr2.md`` section 2.1)."""


class ImageFormat(_TokenEnum):
    """Container formats ci_engine reads and writes, named as CI's ``imageInfo`` names them
    (``jpeg``, not ``jpg``). ``OutputFormat`` tokens map onto these with
    ``ImageFormat.from_output``."""

    JPEG = "jpeg"
    PNG = "png"
    GIF = "gif"
    WEBP = "webp"
    BMP = "bmp"
    HEIF = "heif"
    AVIF = "avif"
    TIFF = "tiff"

    @classmethod
    def from_output(cls, fmt: OutputFormat) -> ImageFormat:
        """The container an output token writes; raises ``KeyError`` for formats with no
        container here (``tpg``, ``svgc``, ``psd``, ``astc``, ``apng``)."""
        return _OUTPUT_CONTAINERS[fmt]

    @property
    def animated_capable(self) -> bool:
        """Formats that can carry several frames (GIF, WebP; AVIF sequences are read as
        their first frame)."""
        return self in (ImageFormat.GIF, ImageFormat.WEBP)

    @property
    def alpha_capable(self) -> bool:
        return self not in (ImageFormat.JPEG, ImageFormat.BMP)

    @property
    def lossy(self) -> bool:
        """Formats whose encoder takes a quality (``imagemogr2.md`` section 16)."""
        return self in (ImageFormat.JPEG, ImageFormat.WEBP, ImageFormat.HEIF, ImageFormat.AVIF)


_OUTPUT_CONTAINERS: dict[OutputFormat, ImageFormat] = {
    OutputFormat.JPG: ImageFormat.JPEG,
    OutputFormat.PNG: ImageFormat.PNG,
    OutputFormat.GIF: ImageFormat.GIF,
    OutputFormat.WEBP: ImageFormat.WEBP,
    OutputFormat.BMP: ImageFormat.BMP,
    OutputFormat.HEIF: ImageFormat.HEIF,
    OutputFormat.AVIF: ImageFormat.AVIF,
    OutputFormat.TIFF: ImageFormat.TIFF,
}


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the container's header says, read without decoding any pixel
    (``ci_engine.io.probe``). Limits are checked on it before anything is decoded.

    Attributes:
        format: the container format, found by content sniffing.
        width, height: the stored size of one frame, before EXIF orientation.
        frames: number of frames (1 for still images).
        orientation: EXIF orientation 1..8 (1 when absent).
        has_alpha: the image carries an alpha channel (or a transparent palette entry).
        bit_depth: bits per sample as stored (8, 16; palette PNG: the index depth).
        color_space: ``"srgb"``, ``"gray"``, ``"cmyk"``, ``"ycck"`` or ``"other"``.
        quality: estimated JPEG quality (IJG scale) from the quantisation tables, else None.
        progressive: JPEG progressive / PNG Adam7 / GIF interlaced.
        icc: the file carries an ICC profile.
        exif: the file carries EXIF metadata.
        dpi: (horizontal, vertical) dots per inch when the file states them.
        loop: animation loop count (0 = forever) when stated.
        dynamic_range: ``imageInfo``'s ``dynamic_range`` as the container signals it
            (``info.md`` section 1.1): ``"hdr"`` (PQ/HLG transfer), ``"gainmap hdr"``,
            ``"sdr"`` (an explicit SDR transfer) or ``"unknow"`` (sic) when nothing says.
    """

    format: ImageFormat
    width: int
    height: int
    frames: int = 1
    orientation: int = 1
    has_alpha: bool = False
    bit_depth: int = 8
    color_space: str = "srgb"
    quality: int | None = None
    progressive: bool = False
    icc: bool = False
    exif: bool = False
    dpi: tuple[float, float] | None = None
    loop: int | None = None
    dynamic_range: str = "unknow"

    @property
    def animated(self) -> bool:
        return self.frames > 1

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) after applying the EXIF orientation."""
        return (self.height, self.width) if self.orientation >= 5 else (self.width, self.height)
