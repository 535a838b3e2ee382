"""The backend contract: one method per primitive, geometry always given, never computed.

A backend decodes once (honouring the plan's :class:`~ci_engine.plan.steps.DecodeSpec`),
applies primitives that each return a *new* handle (handles are never mutated, so one
decoded image can feed several plans), and encodes once. Frames: every primitive applies to
every frame of an animation. ``to_array`` exists for tests and for information operations.

Backends import the plan's step types and the shared types, never the AST or the parser.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from ci_engine._dc import dataclass
from ci_engine.plan import steps as P
from ci_engine.types import ImageFormat, ImageHeader

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Backend", "Capabilities", "H"]

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend can do here (tests skip on it; the executor refuses, never degrades).

    Attributes:
        loads: formats it decodes.
        saves: formats it encodes.
        shrink_on_load: formats it can decode at 1/2, 1/4, 1/8.
        animated: it keeps every frame of GIF/WebP animations.
        methods: the primitives it implements (``Prim.method`` names).
    """

    loads: frozenset[ImageFormat]
    saves: frozenset[ImageFormat]
    shrink_on_load: frozenset[ImageFormat]
    animated: bool
    methods: frozenset[str]


class Backend(ABC, Generic[H]):
    """Base class of the backends; ``H`` is the backend's opaque image handle."""

    name: ClassVar[str] = ""

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    # -- decode / encode ------------------------------------------------------------------------
    @abstractmethod
    def decode(self, data: bytes, spec: P.DecodeSpec, header: ImageHeader) -> H:
        """Decode ``data`` to 8-bit sRGB (grey stays grey; alpha kept), at the spec's shrink
        factor, with ``spec.frames`` frames. Raises ``InvalidImageFormatError``."""

    @abstractmethod
    def encode(self, image: H, spec: P.EncodeSpec, *, quality: int | None = None) -> bytes:
        """Encode to ``spec``; ``quality`` overrides ``spec.quality`` (size-limit search)."""

    @abstractmethod
    def size(self, image: H) -> tuple[int, int, int]:
        """(width, height, frames) of ``image``."""

    @abstractmethod
    def to_array(self, image: H) -> NDArray[np.uint8]:
        """All frames as ``(frames, height, width, channels)`` uint8."""

    # -- primitives --------------------------------------------------------------------------------
    @abstractmethod
    def resize(self, image: H, step: P.Resize) -> H: ...

    @abstractmethod
    def crop(self, image: H, step: P.Crop) -> H: ...

    @abstractmethod
    def embed(self, image: H, step: P.Embed) -> H: ...

    @abstractmethod
    def rotate90(self, image: H, step: P.Rotate90) -> H: ...

    @abstractmethod
    def rotate(self, image: H, step: P.Rotate) -> H: ...

    @abstractmethod
    def flip(self, image: H, step: P.Flip) -> H: ...

    @abstractmethod
    def blur(self, image: H, step: P.Blur) -> H: ...

    @abstractmethod
    def sharpen(self, image: H, step: P.Sharpen) -> H: ...

    @abstractmethod
    def linear(self, image: H, step: P.Linear) -> H: ...

    @abstractmethod
    def grayscale(self, image: H, step: P.Grayscale) -> H: ...

    @abstractmethod
    def mask(self, image: H, step: P.Mask) -> H: ...

    @abstractmethod
    def smartcrop(self, image: H, step: P.SmartCrop) -> H: ...

    @abstractmethod
    def flatten(self, image: H, step: P.Flatten) -> H: ...

    @abstractmethod
    def select_frames(self, image: H, step: P.SelectFrames) -> H: ...

    @abstractmethod
    def composite(self, image: H, step: P.Composite) -> H:
        """Draw ``step.overlay`` over every frame at each placement (clipped at the edges),
        alpha times ``step.opacity``; the reference is ``ci_engine.watermark.blend``."""

    def materialize(self, image: H) -> H:
        """Compute ``image`` once so that it can be encoded several times cheaply (lazy
        backends override this; eager ones already hold pixels)."""
        return image

    def apply(self, image: H, step: P.Prim) -> H:
        """Run one primitive (dispatch on ``step.method``)."""
        method = getattr(self, step.method)
        return method(image, step)  # type: ignore[no-any-return]
