"""What the subcommands share: exit codes, error reports, limit options, rule helpers and
atomic writes.

Exit codes (``docs/usage.md`` has the table):

====  ===========================================================================
0     success
1     ``batch``: at least one file failed (the others were written)
2     usage: bad arguments, or the processing string is invalid (``InvalidArgument``,
      ``InvalidPicOperations``, ``NoSuchStyle``)
3     the image or a file: cannot be read, decoded or written, or over a limit
      (``InvalidImageFormat``, ``ImageTooLarge``, ``ImageResolutionExceed``, ``NoSuchKey``,
      ``AccessDenied``)
4     ci_engine's side: ``InternalError``, a backend failure or an unavailable backend,
      ``NotImplemented``
130   interrupted (Ctrl-C); nothing partial is left behind
====  ===========================================================================
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ci_engine import _dc
from ci_engine import ast as A
from ci_engine.api import Result
from ci_engine.errors import CIError, InternalError, InvalidArgumentError, UnsupportedOperationError
from ci_engine.limits import Limits
from ci_engine.types import ImageFormat, OutputFormat

if TYPE_CHECKING:
    import argparse

__all__ = [
    "EXIT_OK",
    "EXIT_FAILURES",
    "EXIT_USAGE",
    "EXIT_IMAGE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "PROG",
    "SUFFIXES",
    "IMAGE_SUFFIXES",
    "exit_code",
    "report_error",
    "add_limit_options",
    "limits_from",
    "rule_format",
    "suffix_format",
    "with_format",
    "with_ignore_error",
    "parse_rule",
    "original_result",
    "atomic_write",
    "reserve_temp",
    "add_engine_options",
    "Extras",
    "extras_from",
]

PROG = "ci-engine"

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_USAGE = 2
EXIT_IMAGE = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

_RULE_CODES = frozenset({"InvalidArgument", "InvalidPicOperations", "NoSuchStyle"})

SUFFIXES: dict[str, str] = {
    "jpeg": ".jpg",
    "png": ".png",
    "gif": ".gif",
    "webp": ".webp",
    "bmp": ".bmp",
    "heif": ".heic",
    "avif": ".avif",
    "tiff": ".tif",
    "json": ".json",
}
"""The file suffix written for each output format."""

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".bmp", ".heic", ".heif", ".avif", ".tif", ".tiff"}
)
"""Files ``batch`` picks up (case-insensitive)."""

_SUFFIX_ALIASES = {"jpe": "jpg", "jfif": "jpg", "tif": "tiff"}


def exit_code(exc: BaseException) -> int:
    """The exit code for a failure (see the module docstring)."""
    if isinstance(exc, CIError):
        if isinstance(exc, InvalidArgumentError) or exc.code in _RULE_CODES:
            return EXIT_USAGE
        if isinstance(exc, (InternalError, UnsupportedOperationError)):
            return EXIT_INTERNAL
        return EXIT_IMAGE
    if isinstance(exc, OSError):
        return EXIT_IMAGE
    return EXIT_INTERNAL


def report_error(exc: BaseException, *, verbose: bool = False, stream: IO[str] | None = None) -> int:
    """Print ``exc`` the way every subcommand does and return its exit code.

    A :class:`CIError` prints its code, message and column, then the processing string with
    a caret under the offending token; ``verbose`` adds the backend's diagnostics.
    """
    stream = stream or sys.stderr
    if isinstance(exc, CIError):
        print(f"{PROG}: {exc}", file=stream)
        if verbose and exc.detail:
            print(f"detail: {exc.detail}", file=stream)
    elif isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: {where}{exc.strerror or exc}", file=stream)
    else:
        print(f"{PROG}: InternalError: {type(exc).__name__}: {exc}", file=stream)
        if verbose:
            import traceback

            traceback.print_exception(exc, file=stream)
    return exit_code(exc)


# -- limits ------------------------------------------------------------------------------------

_FIELD_HELP = {
    "max_input_bytes": "input file size in bytes (default 32M; k, m, g suffixes are powers of 1024)",
    "max_input_side": "input width or height in px (default 30000)",
    "max_input_pixels": "input width x height (default 250000000)",
    "max_animated_pixels": "width x height x frames of an animation (default 250000000)",
    "max_gif_frames": "frames of a GIF input (default 300)",
    "max_frames": "frames of any input (default 1000)",
    "max_output_side": "output width or height in px (default 9999)",
    "max_steps": "'|' steps in a processing string (default 10)",
    "max_image_watermarks": "image watermarks on one image (default 10)",
    "max_param_value": "width/height-type parameters are clamped to this (default 10000)",
    "max_work_pixels": "per-request work budget: pixels decoded, computed and encoded, nested requests "
    "included (default 1000000000)",
    "max_request_images": "watermark images one request may fetch, nested ones included (default 20)",
    "max_request_bytes": "bytes one request reads: input, watermark images, nested results (default 96M)",
}

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?b)?\s*$", re.IGNORECASE)


def _size(text: str) -> int:
    match = _SIZE.match(text)
    if not match:
        import argparse

        raise argparse.ArgumentTypeError(f"expected an integer (optionally with k, m or g), got {text!r}")
    scale: int = 1024 ** " kmg".index((match.group(2) or " ").lower())
    value = int(match.group(1)) * scale
    if value < 1:
        import argparse

        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def add_limit_options(parser: argparse.ArgumentParser) -> None:
    """One ``--max-...`` option per field of :class:`~ci_engine.limits.Limits`."""
    group = parser.add_argument_group("limits (CI's documented limits by default)")
    for f in _dc.fields(Limits):
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f"limit_{f.name}",
            type=_size,
            metavar="N",
            default=None,
            help=_FIELD_HELP.get(f.name, f.name),
        )


def limits_from(args: argparse.Namespace) -> Limits:
    """The :class:`Limits` the options ask for."""
    overrides: dict[str, Any] = {}
    for f in _dc.fields(Limits):
        value = getattr(args, f"limit_{f.name}", None)
        if value is not None:
            overrides[f.name] = value
    return Limits(**overrides)


# -- watermark resources and styles -----------------------------------------------------------------


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    """``--resources DIR`` (watermark images) and ``--styles FILE`` (style definitions)."""
    parser.add_argument(
        "--resources",
        metavar="DIR",
        help="watermark/1 images: object keys and COS URLs are looked up as files under DIR",
    )
    parser.add_argument(
        "--styles",
        metavar="FILE",
        help='styles for style/<name>: a JSON object {"name": "imageMogr2/...", ...}',
    )


@_dc.dataclass(frozen=True)
class Extras:
    """The options above, in a picklable form (batch workers rebuild the objects)."""

    resources: str | None = None
    styles: tuple[tuple[str, str], ...] = ()

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`ci_engine.process`."""
        out: dict[str, Any] = {}
        if self.resources is not None:
            from ci_engine.watermark import LocalDirectoryResolver

            out["resources"] = LocalDirectoryResolver(self.resources)
        if self.styles:
            from ci_engine.styles import StyleRegistry

            out["styles"] = StyleRegistry(self.styles)
        return out


def extras_from(args: argparse.Namespace) -> Extras:
    """Read ``--resources`` and ``--styles`` (a bad styles file is a usage error)."""
    styles: tuple[tuple[str, str], ...] = ()
    if getattr(args, "styles", None):
        import json

        try:
            loaded = json.loads(Path(args.styles).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InvalidArgumentError(f"--styles: {args.styles} is not JSON: {exc}", op="styles") from exc
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise InvalidArgumentError(f"--styles: {args.styles} must hold a JSON object of strings", op="styles")
        styles = tuple((str(k), v) for k, v in loaded.items())
    resources = getattr(args, "resources", None)
    if resources is not None and not Path(resources).is_dir():
        raise InvalidArgumentError(f"--resources: {resources} is not a directory", op="resources")
    return Extras(resources, styles)


# -- rules ---------------------------------------------------------------------------------------


def rule_format(pipeline: A.Pipeline) -> str | None:
    """The output format the processing string asks for (an :class:`ImageFormat` value, or
    ``json`` for information operations), ``None`` when it keeps the input's format.

    The last ``format`` wins, as in :func:`ci_engine.plan.resolve`'s choice of container.
    """
    chosen: OutputFormat | None = None
    for step in pipeline.steps:
        if isinstance(step, (A.ImageInfo, A.Exif, A.ImageAve)):
            return "json"
        if isinstance(step, A.ImageMogr2):
            for op in step.ops:
                if isinstance(op, A.Format):
                    chosen = op.format
        elif isinstance(step, A.ImageView2) and step.format is not None:
            chosen = step.format
    if chosen is None:
        return None
    try:
        return ImageFormat.from_output(chosen).value
    except KeyError:
        return None


def suffix_format(path: str) -> OutputFormat | None:
    """The output format a file name implies (``out.webp`` -> webp), if any."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return None
    try:
        fmt = OutputFormat.from_token(_SUFFIX_ALIASES.get(suffix, suffix))
    except ValueError:
        return None
    assert isinstance(fmt, OutputFormat)
    return fmt


def with_format(pipeline: A.Pipeline, fmt: OutputFormat) -> A.Pipeline:
    """``pipeline`` with ``format/<fmt>`` added to its last ``imageMogr2`` step (or a new
    final step when the last one is something else)."""
    last = pipeline.steps[-1]
    if isinstance(last, A.ImageMogr2):
        step: A.Step = _dc.replace(last, ops=(*last.ops, A.Format(fmt)))
        return _dc.replace(pipeline, steps=(*pipeline.steps[:-1], step))
    return _dc.replace(pipeline, steps=(*pipeline.steps, A.ImageMogr2((A.Format(fmt),))))


def with_ignore_error(pipeline: A.Pipeline) -> A.Pipeline:
    """``pipeline`` with ``ignore-error/1`` (request-wide, so any step may carry it)."""
    if pipeline.ignore_error:
        return pipeline
    steps = list(pipeline.steps)
    for i in range(len(steps) - 1, -1, -1):
        step = steps[i]
        if isinstance(step, A.ImageMogr2):
            steps[i] = _dc.replace(step, ops=(*step.ops, A.IgnoreError()))
            return _dc.replace(pipeline, steps=tuple(steps))
        if isinstance(step, A.ImageView2):
            steps[i] = _dc.replace(step, ignore_error_flag=True)
            return _dc.replace(pipeline, steps=tuple(steps))
    return _dc.replace(pipeline, steps=(*steps, A.ImageMogr2((A.IgnoreError(),))))


def parse_rule(text: str, limits: Limits, *, ignore_error: bool = False) -> tuple[A.Pipeline | None, CIError | None]:
    """Parse ``text`` (with ``ignore_error``, add ``ignore-error/1``).

    Returns ``(pipeline, None)``, or with ``ignore_error`` and a maskable parse-time error
    (a value out of range, too many steps) ``(None, error)``: the caller then keeps the
    original image, as :func:`ci_engine.process` does for ``.../ignore-error/1``.
    """
    from ci_engine.parse import parse

    try:
        pipeline = parse(text, max_steps=limits.max_steps)
    except CIError as exc:
        if ignore_error and exc.maskable:
            exc.ignore_error_requested = True
            return None, exc
        raise
    return (with_ignore_error(pipeline) if ignore_error else pipeline), None


def original_result(data: bytes, masked: CIError) -> Result:
    """The unprocessed input as a :class:`~ci_engine.api.Result` (``masked`` set)."""
    from ci_engine.io import probe

    try:
        header = probe(data)
    except CIError:
        return Result(data, "unknown", 0, 0, 0, None, masked=masked)
    return Result(data, header.format.value, header.width, header.height, header.frames, header.quality, masked=masked)


# -- files ----------------------------------------------------------------------------------------


def reserve_temp(dest: Path, token: str) -> Path:
    """Create (exclusively) the temporary file that will become ``dest``: a hidden file in
    the same directory, so that :func:`os.replace` is atomic."""
    tmp = temp_path(dest, token)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.close(fd)
    return tmp


def temp_path(dest: Path, token: str) -> Path:
    """The temporary name of ``dest`` for the run ``token``."""
    return dest.with_name(f".{dest.name}.ci-engine-{token}.part")


TEMP_GLOB = ".*.ci-engine-*.part"
"""Matches every temporary file :func:`temp_path` makes (stale ones are removed by batch)."""


@contextlib.contextmanager
def _removing(path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def atomic_write(dest: Path, data: bytes, *, make_parents: bool = True) -> None:
    """Write ``data`` to ``dest`` through a temporary file in the same directory and
    :func:`os.replace`: readers see the old file or the whole new one, and an interrupt
    (``KeyboardInterrupt`` included) leaves no partial file. ``make_parents=False``
    (``ci-engine process -o``) refuses a missing folder instead of creating it. A failure
    is an ``OSError`` naming ``dest`` (the user's path), never the temporary file."""
    try:
        if make_parents:
            dest.parent.mkdir(parents=True, exist_ok=True)
        elif not dest.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, f"the folder {str(dest.parent)!r} does not exist", str(dest))
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.ci-engine-", suffix=".part", dir=dest.parent)
        tmp = Path(name)
        with _removing(tmp):
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
    except OSError as exc:
        if exc.filename == str(dest):
            raise
        raise type(exc)(exc.errno, exc.strerror or str(exc), str(dest)) from exc
