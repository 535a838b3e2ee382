"""``watermark/1..4`` (``watermark.md``; blind watermarks in ``extras.md`` section 4).

Base64 payloads are decoded by the parser: ``image`` is the watermark URL as text,
``text`` the UTF-8 text, ``font`` a documented :class:`~ci_engine.types.Font`, ``fill`` a
:class:`~ci_engine.types.Color`. Unset keys are ``None``; the documented defaults are in
the ``effective_*`` properties.
"""

from __future__ import annotations

from typing import ClassVar

from ci_engine import _check
from ci_engine._dc import dataclass
from ci_engine.ast.base import Step
from ci_engine.types import BlindType, BlogoMode, Color, Font, Gravity, ScaleType

__all__ = [
    "ImageWatermark",
    "TextWatermark",
    "BlindWatermark",
    "ExtractBlindWatermark",
    "MAX_TEXT_LENGTH",
]

MAX_TEXT_LENGTH = 1000
"""Longest accepted watermark text, in characters (``watermark.md`` section 4)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Watermark(Step):
    """Placement, opacity, tiling and sizing shared by image and text watermarks."""

    keyword: ClassVar[str] = "watermark"
    mode: ClassVar[int] = 0
    gravity: Gravity | None = None
    dx: int | None = None
    dy: int | None = None
    dissolve: int | None = None
    batch: bool | None = None
    degree: int | None = None
    spacing: int | None = None
    scatype: ScaleType | None = None
    spcent: int | None = None

    def _check_common(self, op: str) -> None:
        _check.optional(op, "gravity", self.gravity, Gravity)
        for name in ("dx", "dy"):
            value = getattr(self, name)
            if value is not None:
                _check.integer(op, name, value)
        if self.dissolve is not None:
            _check.integer(op, "dissolve", self.dissolve, 1, 100)
        _check.optional(op, "batch", self.batch, bool)
        if self.degree is not None:
            _check.integer(op, "degree", self.degree, 0, 360)
        if self.spacing is not None:
            _check.integer(op, "spacing", self.spacing, 0, 100)
        _check.optional(op, "scatype", self.scatype, ScaleType)
        if (self.scatype is None) != (self.spcent is None):
            # A missing half of a pair is a malformed string, not a value out of range
            # (watermark.md section 3.2): never masked.
            _check.fail(op, "scatype/spcent", "given together", "only one of them", masked=False)
        if self.spcent is not None:
            top = 250 if self.scatype is ScaleType.AREA else 1000
            _check.integer(op, "spcent", self.spcent, 1, top)

    @property
    def effective_gravity(self) -> Gravity:
        return self.gravity or Gravity.SOUTH_EAST

    @property
    def effective_dissolve(self) -> int:
        return 90 if self.dissolve is None else self.dissolve

    @property
    def effective_spacing(self) -> int:
        return 10 if self.spacing is None else self.spacing


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageWatermark(_Watermark):
    """``watermark/1/image/<b64 url>/...``: an image (logo) watermark."""

    mode: ClassVar[int] = 1
    image: str
    blogo: BlogoMode | None = None

    def __post_init__(self) -> None:
        _check.text("watermark/1", "image", self.image, max_length=4096)
        _check.optional("watermark/1", "blogo", self.blogo, BlogoMode)
        self._check_common("watermark/1")


@dataclass(frozen=True, slots=True, kw_only=True)
class TextWatermark(_Watermark):
    """``watermark/2/text/<b64 text>/...``: a text watermark."""

    mode: ClassVar[int] = 2
    text: str
    font: Font | None = None
    fontsize: int | None = None
    fill: Color | None = None
    shadow: int | None = None

    def __post_init__(self) -> None:
        op = "watermark/2"
        _check.text(op, "text", self.text, max_length=MAX_TEXT_LENGTH)
        _check.optional(op, "font", self.font, Font)
        if self.fontsize is not None:
            _check.integer(op, "fontsize", self.fontsize, 1, 1000)
        _check.optional(op, "fill", self.fill, Color)
        if self.shadow is not None:
            _check.integer(op, "shadow", self.shadow, 0, 100)
        self._check_common(op)

    @property
    def effective_font(self) -> Font:
        return self.font or Font.TAHOMA

    @property
    def effective_fontsize(self) -> int:
        return 13 if self.fontsize is None else self.fontsize

    @property
    def effective_fill(self) -> Color:
        return self.fill or Color(0x3D, 0x3D, 0x3D)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Blind(Step):
    keyword: ClassVar[str] = "watermark"
    mode: ClassVar[int] = 0
    type: BlindType
    image: str | None = None
    text: str | None = None
    version: str | None = None

    def _check_blind(self, op: str) -> None:
        _check.instance(op, "type", self.type, BlindType)
        if self.image is not None:
            _check.text(op, "image", self.image, max_length=4096)
        if self.text is not None:
            _check.text(op, "text", self.text, max_length=MAX_TEXT_LENGTH)
        versions = BLIND_VERSIONS[self.type]
        if self.version is not None:
            _check.text(op, "version", self.version)
            if self.version not in versions:
                expected = (
                    " or ".join(versions) + f" for type {self.type.value}"
                    if versions
                    else f"absent for type {self.type.value} (it has no versions)"
                )
                _check.fail(op, "version", expected, self.version)
        if self.type is BlindType.TEXT and self.text is not None:
            if self.effective_version == "1.0" and not (self.text.isascii() and self.text.isalnum()):
                _check.fail(
                    op,
                    "text",
                    "ASCII letters and digits for version 1.0 (write version/3.0 for any text)",
                    self.text,
                    masked=False,
                )
            if len(self.text) > MAX_BLIND_TEXT:
                _check.fail(op, "text", f"at most {MAX_BLIND_TEXT} characters", len(self.text), masked=False)

    @property
    def effective_version(self) -> str | None:
        """The version written, else 1.0 for types 2 and 3 (type 1 has none)."""
        if self.version is not None:
            return self.version
        return "1.0" if self.type is not BlindType.SEMI_BLIND else None


BLIND_VERSIONS: dict[BlindType, tuple[str, ...]] = {
    BlindType.SEMI_BLIND: (),
    BlindType.BLIND: ("1.0", "2.0"),
    BlindType.TEXT: ("1.0", "2.0", "3.0"),
}
"""The versions of each blind-watermark type (CI's "图片盲水印" page, 2025-09)."""

BLIND_LEVELS: dict[BlindType, tuple[str, ...]] = {
    BlindType.SEMI_BLIND: (),
    BlindType.BLIND: ("1.0",),
    BlindType.TEXT: ("2.0", "3.0"),
}
"""The versions that take a ``level`` (0-3) per type; the others have no strength."""

MAX_BLIND_TEXT = 256
"""Longest text of a text blind watermark (type 3), in characters."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BlindWatermark(_Blind):
    """``watermark/3/type/<1|2|3>/...``: embed an invisible watermark. ``version``: type 3
    takes 1.0 (ASCII letters and digits only, the default), 2.0 or 3.0 (any text up to 256
    characters); type 2 takes 1.0 (default) or 2.0; type 1 none. ``level`` 0-3 exists for
    type 3 versions 2.0/3.0 and type 2 version 1.0."""

    mode: ClassVar[int] = 3
    level: int | None = None

    def __post_init__(self) -> None:
        op = "watermark/3"
        self._check_blind(op)
        if self.level is not None:
            _check.integer(op, "level", self.level, 0, 3)
            with_level = BLIND_LEVELS[self.type]
            if self.effective_version not in with_level:
                where = f"type {self.type.value} version " + " or ".join(with_level) if with_level else "other types"
                _check.fail(
                    op,
                    "level",
                    f"absent for type {self.type.value} version {self.effective_version or '(none)'} "
                    f"(a level exists for {where})",
                    self.level,
                )
        if self.type is BlindType.TEXT:
            if self.text is None:
                _check.fail(op, "text", "given for type 3", None, masked=False)
        elif self.image is None:
            _check.fail(op, "image", f"given for type {self.type.value}", None, masked=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtractBlindWatermark(_Blind):
    """``watermark/4/type/<1|2|3>/...``: extract a blind watermark (persistent only)."""

    mode: ClassVar[int] = 4

    def __post_init__(self) -> None:
        op = "watermark/4"
        self._check_blind(op)
        if self.type is not BlindType.TEXT and self.image is None:
            _check.fail(op, "image", f"given for type {self.type.value}", None, masked=False)
