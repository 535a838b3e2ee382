"""Bare-keyword steps (``info.md``, ``extras.md``), style references, QR code rules and
``ci-process`` requests."""

from __future__ import annotations

import re
from typing import ClassVar

from ci_engine import _check
from ci_engine._dc import dataclass
from ci_engine.ast.base import Step
from ci_engine.types import CiProcessName

__all__ = [
    "ImageInfo",
    "Exif",
    "ImageAve",
    "ImageSlim",
    "ImageInspect",
    "StyleRef",
    "QRCode",
    "CiProcess",
    "STYLE_NAME_RE",
]


@dataclass(frozen=True, slots=True)
class ImageInfo(Step):
    """``imageInfo``: basic information as JSON (format, size, md5, ...)."""

    keyword: ClassVar[str] = "imageInfo"


@dataclass(frozen=True, slots=True)
class Exif(Step):
    """``exif``: the EXIF tags as JSON."""

    keyword: ClassVar[str] = "exif"


@dataclass(frozen=True, slots=True)
class ImageAve(Step):
    """``imageAve``: the average colour as JSON."""

    keyword: ClassVar[str] = "imageAve"


@dataclass(frozen=True, slots=True)
class ImageSlim(Step):
    """``imageSlim``: smart slimming (same format, smaller file)."""

    keyword: ClassVar[str] = "imageSlim"


@dataclass(frozen=True, slots=True)
class ImageInspect(Step):
    """``imageInspect``: abnormal-image detection (data appended after the image)."""

    keyword: ClassVar[str] = "imageInspect"


STYLE_NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Allowed style names (``styles.md`` section 1, proposal)."""


@dataclass(frozen=True, slots=True)
class StyleRef(Step):
    """``style/<name>``: a saved style, expanded before execution."""

    keyword: ClassVar[str] = "style"
    name: str

    def __post_init__(self) -> None:
        _check.instance("style", "name", self.name, str)
        if not STYLE_NAME_RE.fullmatch(self.name):
            _check.fail("style", "name", "1-64 characters from A-Z a-z 0-9 . _ -", self.name, masked=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class QRCode(Step):
    """``QRcode/cover/<0|1>/bar-type/<0|1|2>/segment/<0|1>/size/<n>``: QR/barcode
    recognition rule (``size`` at least 500, default 1000)."""

    keyword: ClassVar[str] = "QRcode"
    cover: bool | None = None
    bar_type: int | None = None
    segment: int | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        _check.optional("QRcode", "cover", self.cover, bool)
        if self.bar_type is not None:
            _check.integer("QRcode", "bar-type", self.bar_type, 0, 2)
        if self.segment is not None:
            _check.integer("QRcode", "segment", self.segment, 0, 1)
        if self.size is not None:
            _check.integer("QRcode", "size", self.size, MIN_QR_SIZE)


MIN_QR_SIZE = 500
"""Smallest ``QRcode/size`` (CI's page: at least 500; 1000 when not written)."""


@dataclass(frozen=True, slots=True)
class CiProcess(Step):
    """``ci-process=<Name>&<key>=<value>...``: a query-parameter style request.

    ``params`` keeps the (decoded) parameters in written order; a key written without
    ``=`` has the value ``None``. Never part of a ``|`` pipeline.
    """

    keyword: ClassVar[str] = "ci-process"
    name: CiProcessName
    params: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        _check.instance("ci-process", "name", self.name, CiProcessName)
        _check.instance("ci-process", "params", self.params, tuple)
        for item in self.params:
            _check.instance("ci-process", "params", item, tuple)
            if len(item) != 2 or not isinstance(item[0], str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", item[0]):
                _check.fail("ci-process", "params", "(key, value) pairs with simple keys", item, masked=False)
            if item[1] is not None:
                _check.instance("ci-process", item[0], item[1], str)
                try:
                    item[1].encode("utf-8")
                except UnicodeEncodeError:
                    _check.fail("ci-process", item[0], "valid Unicode text", item[1], masked=False)

    def param(self, key: str) -> str | None:
        """The last value given for ``key`` (``None`` if absent or without a value)."""
        for name, value in reversed(self.params):
            if name == key:
                return value
        return None

    @property
    def ignore_error(self) -> bool:
        return self.param("ignore-error") == "1"
