"""The public entry points that touch pixels: :func:`process` and :func:`explain`.

The flow (imgproxy's ``ProcessImage`` order):

1. parse the rule (unless a :class:`~ci_engine.ast.Pipeline` is given);
2. check the byte limit, probe the header in pure Python (:func:`ci_engine.io.probe`) and
   check the input limits: nothing has been decoded yet;
3. plan, then resolve the plan for this header (integer geometry, output limits);
4. execute on the backend: one decode, the primitives, one encode.

A failure that ``ignore-error/1`` masks (``limits-and-errors.md`` section 5.4) gives the
original bytes back, with the error in :attr:`Result.masked`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ci_engine import ast as A
from ci_engine._dc import dataclass
from ci_engine.errors import CIError
from ci_engine.limits import Limits, WorkBudget, check_input_bytes, request_budget
from ci_engine.parse import parse
from ci_engine.plan import RULES, Plan, ResolvedPlan, Rule, plan, resolve
from ci_engine.types import ImageHeader

if TYPE_CHECKING:
    from ci_engine.styles import StyleRegistry
    from ci_engine.watermark import FontLibrary, Resources

__all__ = ["Result", "process", "process_url", "read_input", "explain", "MIME_TYPES"]

MIME_TYPES = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "bmp": "image/bmp",
    "heif": "image/heic",
    "avif": "image/avif",
    "tiff": "image/tiff",
    "json": "application/json",
    "xml": "application/xml",
}


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of :func:`process`.

    Attributes:
        data: the output bytes (an image, or JSON for information operations).
        format: ``jpeg``, ``png``, ``gif``, ``webp``, ``bmp``, ``heif``, ``avif``, ``tiff``
            or ``json``.
        width, height, frames: the output geometry (0 for JSON).
        quality: the encoder quality actually used (after ``quality``/``rquality``/
            ``lquality``/``size-limit``), ``None`` for formats without one.
        plan: the resolved plan that ran (``None`` when the original was returned).
        masked: the error ``ignore-error/1`` masked, when the original was returned.
        slim_flag: see below.
    """

    data: bytes
    format: str
    width: int
    height: int
    frames: int
    quality: int | None
    plan: ResolvedPlan | None = None
    masked: CIError | None = None
    slim_flag: int | None = None
    """``imageSlim``'s ``X-Slimflag`` (1 compressed, 2 the input returned), else ``None``."""

    @property
    def mime_type(self) -> str:
        return MIME_TYPES.get(self.format, "application/octet-stream")

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :attr:`data` to ``path`` (the image, or the JSON of an information
        operation), replacing the file. The folder must exist."""
        with open(path, "wb") as handle:
            handle.write(self.data)


def _pipeline(rule: str | A.Pipeline, limits: Limits) -> A.Pipeline:
    if isinstance(rule, A.Pipeline):
        return rule
    return parse(rule, max_steps=limits.max_steps)


def process(
    data: bytes,
    rule: str | A.Pipeline,
    *,
    backend: str = "auto",
    limits: Limits | None = None,
    rules: Sequence[Rule] = RULES,
    resources: Resources | None = None,
    fonts: FontLibrary | None = None,
    styles: StyleRegistry | None = None,
) -> Result:
    """Run a processing string on an image.

    Args:
        data: the image file (JPEG, PNG, GIF, WebP, BMP, HEIF/HEIC, AVIF or TIFF).
        rule: the processing string, or an already parsed pipeline.
        backend: ``"auto"`` (libvips when available), ``"vips"`` or ``"pillow"``.
        limits: size limits (CI's documented ones by default).
        rules: plan rewrite rules (``()`` runs the unoptimised plan).
        resources: where ``watermark/1`` images come from: a mapping from URL or object key
            to bytes, a callable from URL to bytes, or a resolver such as
            ``ci_engine.watermark.LocalDirectoryResolver(root)``. Default: none, and a
            ``watermark/1`` step fails with ``AccessDenied`` (nothing is fetched from the
            network unless a ``NetworkResolver`` is passed; docs/watermarks.md).
        fonts: the ``ci_engine.watermark.FontLibrary`` for ``watermark/2`` (default: the
            host's fonts plus the ``CI_ENGINE_FONT_DIR`` directory).
        styles: the bucket's styles: ``style/<name>`` steps are replaced by their bodies
            right after parsing (``ci_engine.StyleRegistry``; without it they fail with
            ``NoSuchStyle``).

    Returns:
        The :class:`Result`.

    Raises:
        CIError: any failure the request can cause (bad rule, bad image, over a limit or
            the per-request work budget, unsupported feature), unless ``ignore-error/1``
            masks it.
        TypeError: a programming error: ``data`` is not bytes, bytearray or memoryview,
            ``rule`` not a str, bytes or Pipeline, ``limits`` not a Limits, ``backend`` not
            a str, ``resources`` not a mapping, callable or Resolver, ``fonts`` not a
            FontLibrary, ``styles`` not a StyleRegistry (``docs/errors.md``).
        ValueError: ``data`` is a released memoryview.

    Example:
        >>> from pathlib import Path
        >>> photo = Path("docs/samples/kleiber.jpg").read_bytes()
        >>> result = process(photo, "imageMogr2/thumbnail/400x/format/webp")
        >>> (result.format, result.width, result.height)
        ('webp', 400, 225)
    """
    limits = _limits(limits)
    _check_backend(backend)
    data = read_input(data)
    check_arguments(resources=resources, fonts=fonts, styles=styles)
    pipeline: A.Pipeline | None = None
    with request_budget(limits) as budget:
        try:
            pipeline = _pipeline(rule, limits)
            if styles is not None:
                pipeline = styles.expand(pipeline, max_steps=limits.max_steps)
            if _is_aigc_read(pipeline):  # ci-process=ImageAIGCMetadata (ci_engine.aigc)
                check_input_bytes(len(data), limits)
                return _aigc_answer(data)
            from ci_engine.intel import handles

            if handles(pipeline):  # imageInspect, QR codes, faces, ... (docs/intel.md)
                from ci_engine.intel.run import run

                budget.charge_bytes(len(data), "the input")
                return run(
                    pipeline, data, backend=backend, limits=limits, rules=rules, resources=resources, fonts=fonts
                )
            from ci_engine.io import probe

            check_input_bytes(len(data), limits)
            budget.charge_bytes(len(data), "the input")
            header = probe(data, limits=limits)  # refuses what the header states over the limits first
            symbolic = plan(pipeline, rules=rules, limits=limits)
            return _run(symbolic, header, data, backend, resources, fonts, budget)
        except CIError as exc:
            if exc.text is None and exc.span is not None and isinstance(rule, str) and styles is None:
                from ci_engine.parse import decode_text

                exc.locate(decode_text(rule.strip()), None)  # a caret for errors found after parsing
            if pipeline is not None and pipeline.ignore_error:
                exc.ignore_error_requested = True
            if exc.masked:
                return _original(data, exc)
            raise


def process_url(
    data: bytes,
    url_or_query: str,
    *,
    backend: str = "auto",
    limits: Limits | None = None,
    rules: Sequence[Rule] = RULES,
    resources: Resources | None = None,
    fonts: FontLibrary | None = None,
    styles: StyleRegistry | None = None,
) -> Result:
    """What CI answers for a download URL (or its query string) on ``data``: the
    processing string is found as :func:`ci_engine.parse_url` finds it, and an
    ``ignore-error/1`` in it masks a refused value of the string too (the original is
    returned, ``Result.masked`` says why), as it does in :func:`process`.

    Example:
        >>> from pathlib import Path
        >>> photo = Path("docs/samples/kleiber.jpg").read_bytes()
        >>> url = "https://b.cos.ap-guangzhou.myqcloud.com/a.jpg?imageMogr2/blur/80x5/ignore-error/1"
        >>> result = process_url(photo, url)
        >>> (result.data == photo, result.masked.code)
        (True, 'InvalidArgument')
    """
    from ci_engine.parse import parse_url

    limits = _limits(limits)
    _check_backend(backend)
    data = read_input(data)
    try:
        pipeline = parse_url(url_or_query, max_steps=limits.max_steps)
    except CIError as exc:
        if exc.masked:
            return _original(data, exc)
        raise
    return process(
        data, pipeline, backend=backend, limits=limits, rules=rules, resources=resources, fonts=fonts, styles=styles
    )


def _is_aigc_read(pipeline: A.Pipeline) -> bool:
    step = pipeline.steps[0]
    return isinstance(step, A.CiProcess) and step.name.value == "ImageAIGCMetadata"


def _aigc_answer(data: bytes) -> Result:
    import json

    from ci_engine.aigc import read_aigc_metadata

    body = json.dumps(read_aigc_metadata(data), ensure_ascii=False).encode("utf-8")
    return Result(body, "json", 0, 0, 0, None)


def _limits(limits: Limits | None) -> Limits:
    if limits is None:
        return Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a ci_engine.Limits, got {type(limits).__name__}")
    return limits


def _check_backend(backend: object) -> None:
    if backend not in ("auto", "vips", "pillow"):
        raise ValueError(f"backend must be 'auto', 'vips' or 'pillow', got {backend!r}")


def read_input(data: object) -> bytes:
    """The image bytes of what Python imaging users pass: bytes-like data, a path (an
    ``os.PathLike``, or a ``str`` naming an existing file) or a binary file object
    (anything with ``read()`` returning bytes). ``TypeError`` for anything else (a text
    file, a number, a ``str`` that names no file), and the ``OSError`` of opening a
    ``Path`` as it is (``FileNotFoundError`` ...; ``docs/usage.md``)."""
    if isinstance(data, str) and not os.path.isfile(data):
        raise TypeError(
            "data must be bytes, bytearray or memoryview, a path or a binary file object; "
            f"got a str that names no file: {data[:60]!r}"
        )
    if isinstance(data, (str, os.PathLike)):
        with open(data, "rb") as handle:
            return handle.read()
    read = getattr(data, "read", None)
    if callable(read) and not isinstance(data, (bytes, bytearray, memoryview)):
        chunk = read()
        if not isinstance(chunk, (bytes, bytearray)):
            raise TypeError(f"data: the file object must be opened in binary mode ('rb'), got {type(chunk).__name__}")
        return bytes(chunk)
    return as_bytes(data, "data")


def check_arguments(*, resources: object, fonts: object, styles: object) -> None:
    """The types of the configuration arguments of :func:`process` and ``persist()``, checked
    at the call: a ``TypeError`` now rather than an ``AttributeError`` (or a request error)
    once a request needs them (``docs/errors.md``, "Programming errors")."""
    if resources is not None:
        from ci_engine.watermark.resources import as_resolver

        as_resolver(resources)  # type: ignore[arg-type]  # raises TypeError for anything else
    if fonts is not None:
        from ci_engine.watermark.fonts import FontLibrary

        if not isinstance(fonts, FontLibrary):
            raise TypeError(f"fonts must be a ci_engine.watermark.FontLibrary, got {type(fonts).__name__}")
    if styles is not None:
        from ci_engine.styles import StyleRegistry

        if not isinstance(styles, StyleRegistry):
            raise TypeError(f"styles must be a ci_engine.StyleRegistry, got {type(styles).__name__}")


def as_bytes(data: object, name: str) -> bytes:
    """``data`` (bytes, bytearray or a memoryview) as bytes; a programming error otherwise:
    ``TypeError`` for another type, ``ValueError`` for a released memoryview
    (``docs/errors.md``, "Programming errors")."""
    if isinstance(data, bytes):
        return data
    if not isinstance(data, (bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, bytearray or memoryview, got {type(data).__name__}")
    try:
        return bytes(data)
    except ValueError as exc:  # a released memoryview
        raise ValueError(f"{name}: {exc}") from None


def _run(
    symbolic: Plan,
    header: ImageHeader,
    data: bytes,
    backend_name: str,
    resources: Resources | None = None,
    fonts: FontLibrary | None = None,
    budget: WorkBudget | None = None,
) -> Result:
    from ci_engine.backends import get_backend
    from ci_engine.execute import check_capabilities, execute

    budget = budget or WorkBudget(symbolic.limits)
    resolved = resolve(symbolic, header)
    if resolved.info is not None and not symbolic.pixel_ops:  # info.md: about the original bytes
        from ci_engine.info import answer  # imageInfo/exif decode nothing; imageAve decodes once

        if isinstance(resolved.info, A.ImageAve):
            budget.charge_pixels(header.width * header.height, "imageAve")
        return Result(answer(resolved.info, data, header, backend=backend_name), "json", 0, 0, 0, None, resolved)
    budget.charge_plan(resolved)
    backend = get_backend(backend_name)
    if any(step.method == "watermark" for step in resolved.steps):  # phase 2: docs/watermarks.md
        from ci_engine.watermark.prepare import prepare

        resolved = prepare(resolved, backend, resources=resources, fonts=fonts, limits=symbolic.limits)
    check_capabilities(resolved, backend)
    out = execute(resolved, backend, data)
    if resolved.info is not None:  # about the pipeline's output: re-probe its bytes
        from ci_engine.info import answer
        from ci_engine.io import probe

        budget.charge_bytes(len(out.data), "the output, probed for " + resolved.info.keyword)
        body = answer(resolved.info, out.data, probe(out.data), backend=backend)
        return Result(body, "json", 0, 0, 0, None, resolved)
    fmt = header.format.value if out.original else resolved.encode.format.value
    return Result(out.data, fmt, out.width, out.height, out.frames, out.quality, resolved)


def _original(data: Any, exc: CIError) -> Result:
    """The unprocessed input, returned because ``ignore-error/1`` masked ``exc``."""
    from ci_engine.io import probe

    raw = bytes(data) if isinstance(data, (bytes, bytearray, memoryview)) else b""
    try:
        header: ImageHeader | None = probe(raw)
    except CIError:
        header = None
    if header is None:
        return Result(raw, "unknown", 0, 0, 0, None, masked=exc)
    return Result(raw, header.format.value, header.width, header.height, header.frames, header.quality, masked=exc)


def explain(
    rule: str | A.Pipeline,
    header: ImageHeader | bytes | None = None,
    *,
    limits: Limits | None = None,
    rules: Sequence[Rule] = RULES,
) -> str:
    """Why an output is what it is: the AST, the symbolic plan, and for an image (its header
    or its bytes) the resolved plan with integer geometry.

    Example:
        >>> print(explain("imageMogr2/thumbnail/400x").splitlines()[0])
        string   imageMogr2/thumbnail/400x
    """
    from ci_engine.render import render

    limits = limits or Limits()
    pipeline = _pipeline(rule, limits)
    symbolic = plan(pipeline, rules=rules, limits=limits)
    lines = [f"string   {render(pipeline)}", f"ast      {pipeline!r}", symbolic.describe(render)]
    if header is not None:
        if not isinstance(header, ImageHeader):
            from ci_engine.io import probe

            header = probe(as_bytes(header, "header"))
        lines.append(
            f"image    {header.format.value} {header.width}x{header.height}"
            + (f" x{header.frames} frames" if header.frames > 1 else "")
        )
        lines.append(resolve(symbolic, header).describe())
    return "\n".join(lines)
