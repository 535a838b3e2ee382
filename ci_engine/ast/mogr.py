"""``imageMogr2`` operations (``imagemogr2.md``), one class per operation.

An :class:`ImageMogr2` step keeps its operations in written order. The modifiers are bound
to the operation they modify by the parser: ``gravity`` to its ``cut``/``crop``, ``pad`` and
``color`` to their ``thumbnail`` (``imagemogr2.md`` section 1.2). Encoding parameters
(``format``, the quality family, ``interlace``, ``strip``, ``size-limit``, ``cgif``, ``egif``)
stay where they were written; the planner applies them once, at encode, the last one
winning.

Numbers keep the value that was written (``thumbnail/12000x`` stays 12000); CI's clamp of
size parameters to 10000 is applied by the planner.
"""

from __future__ import annotations

from typing import ClassVar, Union

from ci_engine import _check
from ci_engine._dc import dataclass
from ci_engine.ast.base import Node, Step
from ci_engine.types import Color, FlipAxis, Gravity, OffsetMode, OutputFormat, SizeUnit

__all__ = [
    "MogrOp",
    "ThumbnailGeometry",
    "ScalePercent",
    "WidthPercent",
    "HeightPercent",
    "FitWidth",
    "FitHeight",
    "FitBox",
    "ShrinkBox",
    "EnlargeBox",
    "CoverBox",
    "ExactSize",
    "MaxArea",
    "Thumbnail",
    "Cut",
    "CropGeometry",
    "CropWidth",
    "CropHeight",
    "CropBox",
    "CropRegion",
    "Crop",
    "IRadius",
    "RRadius",
    "SmartCrop",
    "RatioCrop",
    "Rotate",
    "AutoOrient",
    "Flip",
    "Format",
    "CGif",
    "EGif",
    "Interlace",
    "Quality",
    "RQuality",
    "LQuality",
    "Blur",
    "Sharpen",
    "Strip",
    "Bright",
    "Contrast",
    "Grayscale",
    "SizeLimit",
    "IgnoreError",
    "IndexCrop",
    "Frame",
    "AIGCMetadata",
    "AIGC_KEYS",
    "ImageMogr2",
    "ENCODE_OPS",
]


@dataclass(frozen=True, slots=True)
class MogrOp(Node):
    """Base of the operations of one ``imageMogr2`` step."""


# -- thumbnail ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Geometry(Node):
    """Base of the eleven thumbnail geometries."""


MAX_PERCENT = 1000
"""The largest ``!<S>p`` / ``!<S>px`` / ``!x<S>p`` percentage (CI's pages: 1-1000)."""


def _percent(cls: str, value: object) -> None:
    _check.integer(f"thumbnail {cls}", "percent", value, 1, MAX_PERCENT)


def _side(op: str, name: str, value: object) -> None:
    _check.integer(op, name, value, 1)


@dataclass(frozen=True, slots=True)
class ScalePercent(_Geometry):
    """``!<S>p``: both sides to S %."""

    percent: int

    def __post_init__(self) -> None:
        _percent("!<S>p", self.percent)


@dataclass(frozen=True, slots=True)
class WidthPercent(_Geometry):
    """``!<S>px``: width to S %, height untouched."""

    percent: int

    def __post_init__(self) -> None:
        _percent("!<S>px", self.percent)


@dataclass(frozen=True, slots=True)
class HeightPercent(_Geometry):
    """``!x<S>p``: height to S %, width untouched."""

    percent: int

    def __post_init__(self) -> None:
        _percent("!x<S>p", self.percent)


@dataclass(frozen=True, slots=True)
class FitWidth(_Geometry):
    """``<W>x``: width W, height follows the aspect ratio."""

    width: int

    def __post_init__(self) -> None:
        _side("thumbnail", "width", self.width)


@dataclass(frozen=True, slots=True)
class FitHeight(_Geometry):
    """``x<H>``: height H, width follows the aspect ratio."""

    height: int

    def __post_init__(self) -> None:
        _side("thumbnail", "height", self.height)


@dataclass(frozen=True, slots=True)
class _Box(_Geometry):
    width: int
    height: int

    def __post_init__(self) -> None:
        _side("thumbnail", "width", self.width)
        _side("thumbnail", "height", self.height)


@dataclass(frozen=True, slots=True)
class FitBox(_Box):
    """``<W>x<H>``: fit inside a W x H box, aspect kept, up or down."""


@dataclass(frozen=True, slots=True)
class _OneWayBox(_Geometry):
    """A box that only shrinks or only enlarges; one side may be left out (``None``):
    ``450x>`` limits the width alone, ``x300<`` the height alone."""

    width: int | None
    height: int | None

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            _check.fail("thumbnail", "size", "a width or a height", None, masked=False)
        if self.width is not None:
            _side("thumbnail", "width", self.width)
        if self.height is not None:
            _side("thumbnail", "height", self.height)


@dataclass(frozen=True, slots=True)
class ShrinkBox(_OneWayBox):
    """``<W>x<H>>``: like :class:`FitBox` but only ever shrinks. ``<W>x>`` and ``x<H>>``
    (one side ``None``): scale to that side only when the image is larger on it."""


@dataclass(frozen=True, slots=True)
class EnlargeBox(_OneWayBox):
    """``<W>x<H><``: like :class:`FitBox` but only ever enlarges. ``<W>x<`` and ``x<H><``
    (one side ``None``): scale to that side only when the image is smaller on it."""


@dataclass(frozen=True, slots=True)
class CoverBox(_Box):
    """``!<W>x<H>r``: cover a W x H box (both sides at least the box), no crop."""


@dataclass(frozen=True, slots=True)
class ExactSize(_Box):
    """``<W>x<H>!``: exactly W x H, aspect ignored."""


@dataclass(frozen=True, slots=True)
class MaxArea(_Geometry):
    """``<Area>@``: aspect kept, at most ``area`` pixels (a cap, never an enlargement)."""

    area: int

    def __post_init__(self) -> None:
        _check.integer("thumbnail", "area", self.area, 1)


ThumbnailGeometry = Union[
    ScalePercent,
    WidthPercent,
    HeightPercent,
    FitWidth,
    FitHeight,
    FitBox,
    ShrinkBox,
    EnlargeBox,
    CoverBox,
    ExactSize,
    MaxArea,
]

_BOX_PAD_FORMS = (FitBox, ShrinkBox, EnlargeBox)


@dataclass(frozen=True, slots=True)
class Thumbnail(MogrOp):
    """``thumbnail/<geometry>`` with its ``pad`` and ``color`` modifiers.

    ``pad``/``color`` are ``None`` when not written. Padding applies only to the box forms
    (``<W>x<H>``, ``>``, ``<``); on other forms it is accepted and has no effect
    (``imagemogr2.md`` section 2.1).
    """

    keyword: ClassVar[str] = "thumbnail"
    geometry: ThumbnailGeometry
    pad: bool | None = None
    color: Color | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, _Geometry):
            _check.instance("thumbnail", "geometry", self.geometry, _Geometry)
        if self.pad is not None or self.color is not None:
            _check.optional("thumbnail", "pad", self.pad, bool)
            _check.optional("thumbnail", "color", self.color, Color)

    @property
    def pads(self) -> bool:
        """``True`` when the result is padded to the box (``pad/1`` on a two-sided box
        form; a one-sided ``450x>`` has no box to pad to)."""
        g = self.geometry
        if not self.pad or not isinstance(g, _BOX_PAD_FORMS):
            return False
        return g.width is not None and g.height is not None


# -- cut and crop -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cut(MogrOp):
    """``cut/<w>x<h>x<dx>x<dy>``: a rectangle at an offset, anchored by ``gravity``
    (``cut/<w>x<h>`` is the same with both offsets 0)."""

    keyword: ClassVar[str] = "cut"
    width: int
    height: int
    dx: int
    dy: int
    gravity: Gravity | None = None

    def __post_init__(self) -> None:
        _side("cut", "width", self.width)
        _side("cut", "height", self.height)
        _check.integer("cut", "dx", self.dx, 0)
        _check.integer("cut", "dy", self.dy, 0)
        _check.optional("cut", "gravity", self.gravity, Gravity)


@dataclass(frozen=True, slots=True)
class _CropGeometry(Node):
    """Base of the crop geometries."""


@dataclass(frozen=True, slots=True)
class CropWidth(_CropGeometry):
    """``crop/<W>x``: keep W columns at the gravity anchor, no scaling."""

    width: int

    def __post_init__(self) -> None:
        _side("crop", "width", self.width)


@dataclass(frozen=True, slots=True)
class CropHeight(_CropGeometry):
    """``crop/x<H>``: keep H rows at the gravity anchor, no scaling."""

    height: int

    def __post_init__(self) -> None:
        _side("crop", "height", self.height)


@dataclass(frozen=True, slots=True)
class CropBox(_CropGeometry):
    """``crop/<W>x<H>``: cover-scale to W x H, then take W x H at the anchor."""

    width: int
    height: int

    def __post_init__(self) -> None:
        _side("crop", "width", self.width)
        _side("crop", "height", self.height)


@dataclass(frozen=True, slots=True)
class CropRegion(_CropGeometry):
    """Legacy ``crop/!<W>x<H>a<dx>a<dy>``: a plain crop moved (``a``) or shrunk (``-``)
    from the anchor. ``width`` or ``height`` may be omitted (the whole side)."""

    width: int | None
    height: int | None
    dx: int
    dy: int
    dx_mode: OffsetMode = OffsetMode.MOVE
    dy_mode: OffsetMode = OffsetMode.MOVE

    def __post_init__(self) -> None:
        if self.width is None and self.height is None:
            _check.fail("crop", "size", "a width or a height", None, masked=False)
        if self.width is not None:
            _side("crop", "width", self.width)
        if self.height is not None:
            _side("crop", "height", self.height)
        _check.integer("crop", "dx", self.dx, 0)
        _check.integer("crop", "dy", self.dy, 0)
        _check.instance("crop", "dx_mode", self.dx_mode, OffsetMode)
        _check.instance("crop", "dy_mode", self.dy_mode, OffsetMode)


CropGeometry = Union[CropWidth, CropHeight, CropBox, CropRegion]


@dataclass(frozen=True, slots=True)
class Crop(MogrOp):
    """``crop/<geometry>`` with its ``gravity`` (default ``northwest``)."""

    keyword: ClassVar[str] = "crop"
    geometry: CropGeometry
    gravity: Gravity | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.geometry, _CropGeometry):
            _check.instance("crop", "geometry", self.geometry, _CropGeometry)
        if self.gravity is not None and type(self.gravity) is not Gravity:
            _check.instance("crop", "gravity", self.gravity, Gravity)


# -- shape ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IRadius(MogrOp):
    """``iradius/<r>``: the inscribed circle of radius r around the centre."""

    keyword: ClassVar[str] = "iradius"
    radius: int

    def __post_init__(self) -> None:
        _check.integer("iradius", "radius", self.radius, 1)


@dataclass(frozen=True, slots=True)
class RRadius(MogrOp):
    """``rradius/<r>``: rounded corners of radius r."""

    keyword: ClassVar[str] = "rradius"
    radius: int

    def __post_init__(self) -> None:
        _check.integer("rradius", "radius", self.radius, 1)


@dataclass(frozen=True, slots=True)
class SmartCrop(MogrOp):
    """``scrop/<W>x<H>``: scale and crop to W x H around the subject."""

    keyword: ClassVar[str] = "scrop"
    width: int
    height: int

    def __post_init__(self) -> None:
        _side("scrop", "width", self.width)
        _side("scrop", "height", self.height)


@dataclass(frozen=True, slots=True)
class RatioCrop(MogrOp):
    """``rcrop/<min>x<max>``: centre-crop so that width/height lies in [min, max]."""

    keyword: ClassVar[str] = "rcrop"
    min_ratio: float
    max_ratio: float

    def __post_init__(self) -> None:
        _check.number("rcrop", "min_ratio", self.min_ratio, 0, 10000, lo_open=True)
        _check.number("rcrop", "max_ratio", self.max_ratio, 0, 10000, lo_open=True)
        if self.min_ratio > self.max_ratio:
            _check.fail("rcrop", "min_ratio", f"at most max_ratio ({self.max_ratio})", self.min_ratio)


@dataclass(frozen=True, slots=True)
class Rotate(MogrOp):
    """``rotate/<deg>``: clockwise, 0..360."""

    keyword: ClassVar[str] = "rotate"
    degrees: int

    def __post_init__(self) -> None:
        _check.integer("rotate", "degrees", self.degrees, 0, 360)


@dataclass(frozen=True, slots=True)
class AutoOrient(MogrOp):
    """``auto-orient``: apply the EXIF orientation."""

    keyword: ClassVar[str] = "auto-orient"


@dataclass(frozen=True, slots=True)
class Flip(MogrOp):
    """``flip/<vertical|horizontal>``."""

    keyword: ClassVar[str] = "flip"
    axis: FlipAxis

    def __post_init__(self) -> None:
        _check.instance("flip", "axis", self.axis, FlipAxis)


# -- encoding -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Format(MogrOp):
    """``format/<name>``: the output format."""

    keyword: ClassVar[str] = "format"
    format: OutputFormat

    def __post_init__(self) -> None:
        _check.instance("format", "format", self.format, OutputFormat)


@dataclass(frozen=True, slots=True)
class CGif(MogrOp):
    """``cgif/<N>``: reduce an animated GIF to N frames (1 = the first 30)."""

    keyword: ClassVar[str] = "cgif"
    frames: int

    def __post_init__(self) -> None:
        _check.integer("cgif", "frames", self.frames, 1, 100)


@dataclass(frozen=True, slots=True)
class EGif(MogrOp):
    """``egif/<interval>``: keep every interval-th frame of an animation."""

    keyword: ClassVar[str] = "egif"
    interval: int

    def __post_init__(self) -> None:
        _check.integer("egif", "interval", self.interval, 1, 300)


@dataclass(frozen=True, slots=True)
class Interlace(MogrOp):
    """``interlace/<0|1>``: progressive JPEG (interlaced PNG/GIF)."""

    keyword: ClassVar[str] = "interlace"
    enabled: bool

    def __post_init__(self) -> None:
        _check.instance("interlace", "enabled", self.enabled, bool)


@dataclass(frozen=True, slots=True)
class Quality(MogrOp):
    """``quality/<Q>``: at most Q (``min(q0, Q)``); ``quality/<Q>!``: exactly Q."""

    keyword: ClassVar[str] = "quality"
    value: int
    forced: bool = False

    def __post_init__(self) -> None:
        _check.integer("quality", "value", self.value, 0, 100)
        _check.instance("quality", "forced", self.forced, bool)


@dataclass(frozen=True, slots=True)
class RQuality(MogrOp):
    """``rquality/<r>``: ``q0 * r / 100``."""

    keyword: ClassVar[str] = "rquality"
    value: int

    def __post_init__(self) -> None:
        _check.integer("rquality", "value", self.value, 0, 100)


@dataclass(frozen=True, slots=True)
class LQuality(MogrOp):
    """``lquality/<l>``: at least l (``max(q0, l)``)."""

    keyword: ClassVar[str] = "lquality"
    value: int

    def __post_init__(self) -> None:
        _check.integer("lquality", "value", self.value, 0, 100)


# -- filters --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blur(MogrOp):
    """``blur/<radius>x<sigma>``: Gaussian blur."""

    keyword: ClassVar[str] = "blur"
    radius: int
    sigma: float

    def __post_init__(self) -> None:
        _check.integer("blur", "radius", self.radius, 1, 50)
        _check.number("blur", "sigma", self.sigma, 0, 50, lo_open=True)


@dataclass(frozen=True, slots=True)
class Sharpen(MogrOp):
    """``sharpen/<v>``: unsharp mask, 10..300 (70 recommended)."""

    keyword: ClassVar[str] = "sharpen"
    amount: int

    def __post_init__(self) -> None:
        _check.integer("sharpen", "amount", self.amount, 10, 300)


@dataclass(frozen=True, slots=True)
class Strip(MogrOp):
    """``strip``: drop metadata (EXIF, XMP, ICC, comments)."""

    keyword: ClassVar[str] = "strip"


@dataclass(frozen=True, slots=True)
class Bright(MogrOp):
    """``bright/<v>``: brightness, -100..100."""

    keyword: ClassVar[str] = "bright"
    value: int

    def __post_init__(self) -> None:
        _check.integer("bright", "value", self.value, -100, 100)


@dataclass(frozen=True, slots=True)
class Contrast(MogrOp):
    """``contrast/<v>``: contrast, -100..100."""

    keyword: ClassVar[str] = "contrast"
    value: int

    def __post_init__(self) -> None:
        _check.integer("contrast", "value", self.value, -100, 100)


@dataclass(frozen=True, slots=True)
class Grayscale(MogrOp):
    """``grayscale/<0|1>``."""

    keyword: ClassVar[str] = "grayscale"
    enabled: bool

    def __post_init__(self) -> None:
        _check.instance("grayscale", "enabled", self.enabled, bool)


@dataclass(frozen=True, slots=True)
class SizeLimit(MogrOp):
    """``size-limit/<n><k|m>[!]``: cap the JPEG output size; ``!`` returns the original
    when the result is not smaller."""

    keyword: ClassVar[str] = "size-limit"
    size: int
    unit: SizeUnit
    keep_smaller: bool = False

    def __post_init__(self) -> None:
        _check.integer("size-limit", "size", self.size, 1)
        _check.instance("size-limit", "unit", self.unit, SizeUnit)
        _check.instance("size-limit", "keep_smaller", self.keep_smaller, bool)

    @property
    def bytes(self) -> int:
        return self.size * self.unit.bytes


@dataclass(frozen=True, slots=True)
class IgnoreError(MogrOp):
    """``ignore-error/1``: return the original instead of a maskable error (request-wide)."""

    keyword: ClassVar[str] = "ignore-error"


@dataclass(frozen=True, slots=True)
class IndexCrop(MogrOp):
    """``indexcrop/width/<W>[/index/<i>]`` or ``indexcrop/height/<H>[/index/<i>]``: cut
    the image into slices W wide (or H high) from the left (top) and keep slice ``index``
    (from 0; default 0). An index past the last slice keeps the image unchanged."""

    keyword: ClassVar[str] = "indexcrop"
    width: int | None
    height: int | None
    index: int = 0

    def __post_init__(self) -> None:
        if (self.width is None) == (self.height is None):
            _check.fail(
                "indexcrop", "size", "a width or a height (one of them)", (self.width, self.height), masked=False
            )
        if self.width is not None:
            _side("indexcrop", "width", self.width)
        if self.height is not None:
            _side("indexcrop", "height", self.height)
        _check.integer("indexcrop", "index", self.index, 0)


@dataclass(frozen=True, slots=True)
class Frame(MogrOp):
    """``frame/<N>``: keep frame N (from 1) of an animated image; past the last frame, the
    last one. A static image is unchanged."""

    keyword: ClassVar[str] = "frame"
    number: int

    def __post_init__(self) -> None:
        _check.integer("frame", "number", self.number, 1)


AIGC_KEYS: tuple[tuple[str, str], ...] = (
    ("Label", "label"),
    ("ContentProducer", "content_producer"),
    ("ProduceID", "produce_id"),
    ("ReservedCode1", "reserved_code1"),
    ("ContentPropagator", "content_propagator"),
    ("PropagateID", "propagate_id"),
    ("ReservedCode2", "reserved_code2"),
)
"""The ``AIGCMetadata`` keys as CI writes them, in CI's order, and the field of each."""

MAX_AIGC_VALUE = 1000
"""Longest ``AIGCMetadata`` value, in characters (ours: CI states none)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AIGCMetadata(MogrOp):
    """``AIGCMetadata/Label/<b64>[/ContentProducer/<b64>]...``: write the
    AI-generated-content label (GB 45438-2025, TC260 XMP) into a JPG, PNG or AVIF output.
    Values are the decoded text; ``label`` is required, the rest optional
    (``docs/compatibility.md``)."""

    keyword: ClassVar[str] = "AIGCMetadata"
    label: str
    content_producer: str | None = None
    produce_id: str | None = None
    reserved_code1: str | None = None
    content_propagator: str | None = None
    propagate_id: str | None = None
    reserved_code2: str | None = None

    def __post_init__(self) -> None:
        for key, name in AIGC_KEYS:
            value = getattr(self, name)
            if value is None and name != "label":
                continue
            _check.instance("AIGCMetadata", key, value, str)
            if not 1 <= len(value) <= MAX_AIGC_VALUE:
                _check.fail("AIGCMetadata", key, f"1-{MAX_AIGC_VALUE} characters", len(value))

    def items(self) -> tuple[tuple[str, str], ...]:
        """The written ``(key, value)`` pairs in CI's key order (``Label`` first)."""
        return tuple((key, getattr(self, name)) for key, name in AIGC_KEYS if getattr(self, name) is not None)


ENCODE_OPS: tuple[type[MogrOp], ...] = (
    AIGCMetadata,
    Format,
    CGif,
    EGif,
    Interlace,
    Quality,
    RQuality,
    LQuality,
    Strip,
    SizeLimit,
)
"""Operations applied once, at encode, wherever they are written (last one wins)."""


@dataclass(frozen=True, slots=True)
class ImageMogr2(Step):
    """``imageMogr2/<op>/<value>/...``: one step of advanced processing."""

    keyword: ClassVar[str] = "imageMogr2"
    ops: tuple[MogrOp, ...] = ()

    def __post_init__(self) -> None:
        if type(self.ops) is not tuple:
            _check.instance("imageMogr2", "ops", self.ops, tuple)
        for op in self.ops:
            if not isinstance(op, MogrOp):
                _check.instance("imageMogr2", "ops", op, MogrOp)

    @property
    def ignore_error(self) -> bool:
        return any(isinstance(op, IgnoreError) for op in self.ops)
