"""Backend-neutral primitive steps, with every size already an integer.

The planner lowers the AST to these, the rewrite rules fuse them, and a backend executes
them one by one through the method named by ``method``. A backend never computes
geometry: it receives boxes and sizes. Colours are ``(r, g, b, a)`` tuples of 0..255.

Frames: every primitive applies to every frame of an animation.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ci_engine._dc import DataclassMeta, dataclass, field
from ci_engine.errors import Span
from ci_engine.types import ImageFormat

__all__ = [
    "RGBA",
    "WHITE",
    "TRANSPARENT",
    "Prim",
    "Resize",
    "Crop",
    "Embed",
    "Rotate90",
    "Rotate",
    "Flip",
    "Blur",
    "Sharpen",
    "Linear",
    "Grayscale",
    "Mask",
    "SmartCrop",
    "Flatten",
    "SelectFrames",
    "DecodeSpec",
    "EncodeSpec",
    "Watermark",
    "Composite",
    "BACKEND_METHODS",
]

RGBA = tuple[int, int, int, int]
WHITE: RGBA = (255, 255, 255, 255)
TRANSPARENT: RGBA = (0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Prim(metaclass=DataclassMeta):
    """Base of the primitives. ``origin`` names the CI operation it came from and
    ``span`` where it was written (for error messages); neither takes part in equality."""

    method: ClassVar[str] = ""
    origin: str = field(default="", compare=False, kw_only=True)
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        """The size this step gives an image of ``width`` x ``height``."""
        return width, height

    def describe(self) -> str:
        """One line for ``explain``: ``resize width=400 height=225  <- thumbnail``."""
        fields = [f"{k}={v}" for k, v in _fields(self).items()]
        tail = f"  <- {self.origin}" if self.origin else ""
        return f"{self.method} {' '.join(fields)}{tail}"


def _fields(prim: Prim) -> dict[str, Any]:
    from ci_engine._dc import fields

    return {f.name: getattr(prim, f.name) for f in fields(prim) if f.compare}


@dataclass(frozen=True, slots=True)
class Resize(Prim):
    """Scale to exactly ``width`` x ``height`` (aspect may change) with Lanczos3, alpha
    premultiplied."""

    method: ClassVar[str] = "resize"
    width: int
    height: int

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class Crop(Prim):
    """Keep the box ``(left, top, width, height)``; always inside the image."""

    method: ClassVar[str] = "crop"
    left: int
    top: int
    width: int
    height: int

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class Embed(Prim):
    """Place the image at ``(left, top)`` on a ``width`` x ``height`` canvas of
    ``background`` (the image always fits)."""

    method: ClassVar[str] = "embed"
    left: int
    top: int
    width: int
    height: int
    background: RGBA

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class Rotate90(Prim):
    """Rotate clockwise by ``turns`` quarter turns (1..3), exactly, without resampling."""

    method: ClassVar[str] = "rotate90"
    turns: int

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.turns % 2 else (width, height)


@dataclass(frozen=True, slots=True)
class Rotate(Prim):
    """Rotate clockwise by ``degrees`` (not a multiple of 90) about the centre onto a
    ``width`` x ``height`` canvas (the rotated bounding box, ``imagemogr2.md`` section 10)
    filled with ``background``."""

    method: ClassVar[str] = "rotate"
    degrees: int
    width: int
    height: int
    background: RGBA

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class Flip(Prim):
    """Mirror left and right (``horizontal``) or top and bottom."""

    method: ClassVar[str] = "flip"
    horizontal: bool


@dataclass(frozen=True, slots=True)
class Blur(Prim):
    """Gaussian blur of standard deviation ``sigma``, kernel truncated at ``radius`` px."""

    method: ClassVar[str] = "blur"
    sigma: float
    radius: int


@dataclass(frozen=True, slots=True)
class Sharpen(Prim):
    """Unsharp mask: ``out = in + amount/100 * (in - gauss(in, sigma))``."""

    method: ClassVar[str] = "sharpen"
    amount: int
    sigma: float = 1.0


@dataclass(frozen=True, slots=True)
class Linear(Prim):
    """``out = slope * in + offset`` on colour channels (0..255 scale), alpha untouched,
    clamped to 0..255 (brightness and contrast)."""

    method: ClassVar[str] = "linear"
    slope: float
    offset: float


@dataclass(frozen=True, slots=True)
class Grayscale(Prim):
    """Luma ``0.299 R + 0.587 G + 0.114 B``; the image becomes one colour channel."""

    method: ClassVar[str] = "grayscale"


@dataclass(frozen=True, slots=True)
class Mask(Prim):
    """Keep a shape and fill the rest with ``background``: ``circle`` is the circle
    inscribed in the image (``iradius``), ``rounded`` rounds the corners with ``radius``
    (``rradius``). Edges are anti-aliased with coverage ``clamp(radius - d + 0.5, 0, 1)``."""

    method: ClassVar[str] = "mask"
    shape: str
    radius: int
    background: RGBA


@dataclass(frozen=True, slots=True)
class SmartCrop(Prim):
    """Keep the ``width`` x ``height`` window with the most interesting content (the
    image is at least that large); the window position is the backend's to find."""

    method: ClassVar[str] = "smartcrop"
    width: int
    height: int

    def out_size(self, width: int, height: int) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True, slots=True)
class Flatten(Prim):
    """Composite the image over an opaque ``background`` and drop alpha."""

    method: ClassVar[str] = "flatten"
    background: RGBA


@dataclass(frozen=True, slots=True)
class SelectFrames(Prim):
    """Keep some frames of an animation: output frame ``i`` is input frame
    ``groups[i][0]`` shown for the summed delays of ``groups[i]``."""

    method: ClassVar[str] = "select_frames"
    groups: tuple[tuple[int, ...], ...]


@dataclass(frozen=True, slots=True)
class DecodeSpec:
    """How to decode: ``shrink`` is the shrink-on-load factor (1, 2, 4 or 8; JPEG DCT
    scaling or the format's equivalent), ``frames`` how many frames to read (1 or all),
    ``sequential`` whether every step reads top to bottom (libvips may then stream)."""

    format: ImageFormat
    shrink: int = 1
    frames: int = 1
    sequential: bool = False


@dataclass(frozen=True, slots=True)
class EncodeSpec:
    """How to encode.

    Attributes:
        format: the container to write.
        quality: encoder quality for lossy formats (None for the others).
        progressive: progressive JPEG, interlaced PNG/GIF.
        strip: drop EXIF, XMP, ICC and comments.
        reset_orientation: set the EXIF orientation to 1 (after ``auto-orient``).
        size_limit: JPEG byte budget (``size-limit``), or None.
        keep_smaller: with ``size_limit``: return the original bytes unless smaller.
        aigc: the ``AIGCMetadata`` label to write into the output, as ``(key, value)``
            pairs in CI's key order (empty: none); ``ci_engine.aigc`` writes it.
    """

    format: ImageFormat
    quality: int | None = None
    progressive: bool = False
    strip: bool = False
    reset_orientation: bool = False
    size_limit: int | None = None
    keep_smaller: bool = False
    aigc: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Watermark(Prim):
    """A ``watermark/1`` or ``watermark/2`` step on a ``width`` x ``height`` base, before its
    overlay exists. The overlay's size is only known once the text is rendered or the logo
    decoded, so ``ci_engine.watermark.prepare`` turns this into a :class:`Composite` just
    before execution; no backend implements it (``docs/watermarks.md``, two phases).
    ``mark`` is the AST node (``ImageWatermark`` or ``TextWatermark``)."""

    method: ClassVar[str] = "watermark"
    mark: Any
    width: int
    height: int

    def describe(self) -> str:
        tail = f"  <- {self.origin}" if self.origin else ""
        return f"watermark (overlay prepared before execution) on {self.width}x{self.height}{tail}"


@dataclass(frozen=True, slots=True)
class Composite(Prim):
    """Draw ``overlay`` "over" the image at each of ``placements`` (top-left corners, any
    integer: what falls outside the canvas is clipped), its alpha multiplied by ``opacity``
    (0..1), on every frame.

    ``overlay`` is an ``(h, w, 4)`` uint8 RGBA array with straight alpha, prepared once
    (``ci_engine.watermark``); it takes no part in equality, ``overlay_size`` ``(w, h)`` and
    ``key`` (a digest of its pixels) do. ``tile``: the overlay repeats with a period of its
    own size, from each placement to the right and bottom edges of the canvas (tiled
    watermarks). ``grey``: the overlay is neutral (R = G = B), so a grey image stays grey;
    otherwise a grey image becomes sRGB first. Over, with ``a = alpha * opacity / 255``:
    ``out_a = a + a_b (1 - a)``, ``out_c = (c a + c_b a_b (1 - a)) / out_a``."""

    method: ClassVar[str] = "composite"
    overlay: Any = field(compare=False, repr=False)
    overlay_size: tuple[int, int]
    placements: tuple[tuple[int, int], ...]
    opacity: float
    tile: bool = False
    grey: bool = False
    key: str = ""

    def describe(self) -> str:
        w, h = self.overlay_size
        where = ", ".join(f"({x},{y})" for x, y in self.placements[:4])
        more = f" +{len(self.placements) - 4} more" if len(self.placements) > 4 else ""
        tail = f"  <- {self.origin}" if self.origin else ""
        tiled = " tiled" if self.tile else ""
        return f"composite overlay={w}x{h}{tiled} at {where}{more} opacity={self.opacity:g}{tail}"


BACKEND_METHODS: frozenset[str] = frozenset(
    prim.method
    for prim in (
        Resize,
        Crop,
        Embed,
        Rotate90,
        Rotate,
        Flip,
        Blur,
        Sharpen,
        Linear,
        Grayscale,
        Mask,
        SmartCrop,
        Flatten,
        SelectFrames,
        Composite,
    )
)
"""The methods every backend implements: one per primitive the executor runs (every
primitive but :class:`Watermark`, which becomes a :class:`Composite` before execution)."""
