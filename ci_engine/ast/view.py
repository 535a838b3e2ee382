"""``imageView2``: the quick-thumbnail template (``imageview2.md``)."""

from __future__ import annotations

from typing import ClassVar

from ci_engine import _check
from ci_engine._dc import dataclass
from ci_engine.ast.base import Step
from ci_engine.types import OutputFormat

__all__ = ["ImageView2"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageView2(Step):
    """``imageView2/<mode>/w/<W>/h/<H>/format/<f>/q/<Q>[!]/rq/<r>/lq/<l>``.

    ``mode`` 0..5 (0 is the ancestor's; ``None`` when omitted: geometry untouched).
    Unset keys are ``None``. ``quality_forced`` is the ``!`` of ``q``.
    """

    keyword: ClassVar[str] = "imageView2"
    mode: int | None = None
    width: int | None = None
    height: int | None = None
    format: OutputFormat | None = None
    quality: int | None = None
    quality_forced: bool = False
    rquality: int | None = None
    lquality: int | None = None
    interlace: bool | None = None
    ignore_error_flag: bool = False

    def __post_init__(self) -> None:
        op = "imageView2"
        if self.mode is not None:
            _check.integer(op, "mode", self.mode, 0, 5)
        if self.width is not None:
            _check.integer(op, "w", self.width, 1)
        if self.height is not None:
            _check.integer(op, "h", self.height, 1)
        _check.optional(op, "format", self.format, OutputFormat)
        for name in ("quality", "rquality", "lquality"):
            value = getattr(self, name)
            if value is not None:
                _check.integer(op, {"quality": "q", "rquality": "rq", "lquality": "lq"}[name], value, 0, 100)
        _check.instance(op, "quality_forced", self.quality_forced, bool)
        if self.quality_forced and self.quality is None:
            _check.fail(op, "q", "given when forced with !", None, masked=False)
        _check.optional(op, "interlace", self.interlace, bool)
        _check.instance(op, "ignore_error_flag", self.ignore_error_flag, bool)

    @property
    def ignore_error(self) -> bool:
        return self.ignore_error_flag
