"""Run a pipeline that holds an operation of :mod:`ci_engine.intel`.

:func:`ci_engine.process` hands such a pipeline here (after parsing and expanding styles,
before probing the input). The plain steps run through :func:`ci_engine.process` itself;
this module only adds what the planner cannot express:

* a **terminal** operation (``imageInspect``) answers about the bytes the steps before it
  produced (the original when it stands alone), and must be the last step;
* a ``ci-process=<Name>`` request stands alone (the AST refuses it in a ``|`` chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ci_engine import ast as A
from ci_engine.errors import InvalidArgumentError, UnsupportedOperationError, ValueRangeError
from ci_engine.limits import Limits, check_input_bytes, current_budget
from ci_engine.plan import RULES, Rule
from ci_engine.types import CiProcessName

if TYPE_CHECKING:
    from ci_engine.api import Result
    from ci_engine.watermark import FontLibrary, Resources

__all__ = ["run", "qrcode_step", "pic_rule", "NO_RULE_FORM"]

_TERMINAL: tuple[type[A.Step], ...] = (A.ImageInspect, A.ImageSlim, A.QRCode, A.ExtractBlindWatermark)


def _json(body: bytes) -> Result:
    from ci_engine.api import Result

    return Result(body, "json", 0, 0, 0, None)


def _unchanged(data: bytes, limits: Limits) -> Result:
    from ci_engine.api import Result
    from ci_engine.io import probe

    header = probe(data, limits=limits)
    return Result(data, header.format.value, header.width, header.height, header.frames, header.quality)


def _xml(body: bytes) -> Result:
    from ci_engine.api import Result

    return Result(body, "xml", 0, 0, 0, None)


def _int_param(step: A.CiProcess, key: str, default: int, low: int, high: int) -> int:
    raw = step.param(key)
    if raw is None or raw == "":
        return default
    what = f"ci-process={step.name.value}"
    if not raw.isascii() or not raw.isdigit():
        raise InvalidArgumentError(f"{what}: {key} must be an integer, got {raw!r}", op=what, field=key)
    value = int(raw)
    if not low <= value <= high:
        raise ValueRangeError(f"{what}: {key} must be between {low} and {high}, got {value}", op=what, field=key)
    return value


def run(
    pipeline: A.Pipeline,
    data: bytes,
    *,
    backend: str = "auto",
    limits: Limits | None = None,
    rules: Sequence[Rule] = RULES,
    resources: Resources | None = None,
    fonts: FontLibrary | None = None,
) -> Result:
    """Run ``pipeline`` on ``data`` (the arguments are those of :func:`ci_engine.process`).

    Raises:
        CIError: as :func:`ci_engine.process`; ``InvalidArgument`` for a terminal operation
            that is not the last step.
    """
    limits = limits or Limits()
    kw: dict[str, Any] = {"limits": limits, "rules": rules, "resources": resources, "fonts": fonts}
    from ci_engine.intel import has_scrop

    if has_scrop(pipeline):
        from ci_engine.intel.faces import rewrite_scrop

        check_input_bytes(len(data), limits)
        pipeline = rewrite_scrop(pipeline, data, backend=backend, **kw)
        if all(isinstance(step, A.ImageMogr2) and not step.ops for step in pipeline.steps):
            return _unchanged(data, limits)  # scrop found no face and nothing else is asked: the input
        from ci_engine.intel import handles

        if not handles(pipeline):
            from ci_engine.api import process

            return process(data, pipeline, backend=backend, **kw)
    steps = pipeline.steps
    for step in steps[:-1]:
        if isinstance(step, _TERMINAL):
            raise InvalidArgumentError(
                f"{step.keyword}: must be the last step of the pipeline", op=step.keyword, span=step.span
            )
    last = steps[-1]
    if isinstance(last, A.CiProcess):
        return _ci_process(last, data, backend=backend, limits=limits, rules=rules)
    marks = [i for i, step in enumerate(steps) if isinstance(step, A.BlindWatermark)]
    if marks:  # watermark/3: embed after the steps before it, then run the steps after it
        from ci_engine.api import process
        from ci_engine.intel.blindmark import embed

        at = marks[0]
        mark = steps[at]
        assert isinstance(mark, A.BlindWatermark)
        before = A.Pipeline(steps[:at]) if at else None
        marked: Result = embed(data, mark, backend=backend, pipeline=before, **kw)
        if at == len(steps) - 1:
            return marked
        return process(marked.data, A.Pipeline(steps[at + 1 :]), backend=backend, **kw)
    prefix = A.Pipeline(steps[:-1]) if len(steps) > 1 else None
    if isinstance(last, A.ExtractBlindWatermark):
        from ci_engine.intel.blindmark import extract, extraction_xml

        extraction, mark_png = extract(data, last, backend=backend, pipeline=prefix, **kw)
        return _xml(extraction_xml(last, extraction, mark_png))
    if isinstance(last, A.QRCode):
        from ci_engine.intel.qrcode import recognition_xml, recognize

        found = recognize(
            data, cover=bool(last.cover), bar_type=last.bar_type or 0, backend=backend, pipeline=prefix, **kw
        )
        return _xml(recognition_xml(found))
    if isinstance(last, _TERMINAL):
        body = data
        if len(steps) > 1:
            from ci_engine.api import process

            body = process(
                data,
                A.Pipeline(steps[:-1]),
                backend=backend,
                limits=limits,
                rules=rules,
                resources=resources,
                fonts=fonts,
            ).data
        else:
            check_input_bytes(len(data), limits)
        if isinstance(last, A.ImageSlim):
            from ci_engine.api import Result
            from ci_engine.intel.slim import slim
            from ci_engine.io import probe

            slimmed = slim(body, backend=backend, limits=limits)
            header = probe(slimmed.data, limits=limits)
            return Result(
                slimmed.data,
                slimmed.format,
                header.width,
                header.height,
                header.frames,
                header.quality,
                slim_flag=slimmed.flag,
            )
        return _terminal(last, body)
    raise UnsupportedOperationError(f"{last.keyword}: not implemented by ci_engine", span=last.span)


def _terminal(step: A.Step, data: bytes) -> Result:
    if isinstance(step, A.ImageInspect):
        from ci_engine.intel.inspect import inspect_json

        return _json(inspect_json(data))
    raise UnsupportedOperationError(f"{step.keyword}: not implemented by ci_engine", span=step.span)


def _ci_process(step: A.CiProcess, data: bytes, *, backend: str, limits: Limits, rules: Sequence[Rule]) -> Result:
    name = step.name
    if name is CiProcessName.QRCODE_GENERATE:
        from ci_engine.intel.qrcode import MAX_GENERATE_WIDTH, generate_xml

        content = step.param("qrcode-content")
        if content is None:
            raise InvalidArgumentError(
                "ci-process=qrcode-generate: qrcode-content is required", op="qrcode-generate", field="qrcode-content"
            )
        mode = _int_param(step, "mode", 0, 0, 1)
        width = _int_param(step, "width", 300, 1, MAX_GENERATE_WIDTH)
        current_budget(limits).charge_pixels(width * width, "qrcode-generate: drawing the code")
        return _xml(generate_xml(content, mode=mode, width=width))
    if name is CiProcessName.ASSESS_QUALITY:
        from ci_engine.intel.quality import assess, assessment_xml

        return _xml(assessment_xml(assess(data, backend=backend, limits=limits, rules=rules)))
    if name is CiProcessName.QRCODE:
        from ci_engine.intel.qrcode import recognition_xml, recognize

        qr = qrcode_step(step)
        found = recognize(
            data, cover=bool(qr.cover), bar_type=qr.bar_type or 0, backend=backend, limits=limits, rules=rules
        )
        return _xml(recognition_xml(found))
    if name is CiProcessName.IMAGE_INSPECT:
        check_input_bytes(len(data), limits)
        from ci_engine.intel.inspect import inspect_json

        return _json(inspect_json(data))
    raise UnsupportedOperationError(f"ci-process={name.value}: not implemented by ci_engine", span=step.span)


def qrcode_step(step: A.CiProcess) -> A.QRCode:
    """``ci-process=QRcode&cover=<0|1>&bar-type=<0|1|2>`` as the ``QRcode/...`` rule step it
    is the download form of.

    Raises:
        InvalidArgumentError: a value that is not an integer.
        ValueRangeError: a value out of its range.
    """
    if step.name is not CiProcessName.QRCODE:
        raise ValueError(f"not a ci-process=QRcode step: ci-process={step.name.value}")
    cover = _int_param(step, "cover", 0, 0, 1)
    bar_type = _int_param(step, "bar-type", 0, 0, 2)
    return A.QRCode(cover=bool(cover), bar_type=bar_type, span=step.span)


NO_RULE_FORM: dict[str, str] = {
    "imageInspect": "https://www.tencentcloud.com/document/product/1045/53715 (a GET on the object; "
    "detection on upload is a workflow, https://www.tencentcloud.com/document/product/1045/74733)",
    "ci-process=ImageInspect": "https://www.tencentcloud.com/document/product/1045/53715 (a GET on the object)",
    "ci-process=AssessQuality": "https://www.tencentcloud.com/document/product/1045/73050 "
    "(a synchronous GET on the object)",
    "ci-process=qrcode-generate": "https://www.tencentcloud.com/document/product/1045/73047 "
    "(a GET on the bucket, no source image)",
}
"""The operations of this package that CI documents only as a request of their own, with
no ``Pic-Operations`` form, and the page that says so (``docs/intel.md``)."""


def pic_rule(pipeline: A.Pipeline) -> tuple[str, A.Pipeline]:
    """How a ``Pic-Operations`` rule runs, when it holds an operation of this package:
    ``(kind, pipeline)`` with ``kind`` ``"qrcode"`` (a final ``QRcode`` step: its findings go
    into the ``Object``), ``"extract"`` (a final ``watermark/4``), ``"process"`` (a rule
    that makes an image through :func:`ci_engine.process`: ``watermark/3``, ``imageSlim``)
    or ``""`` (none: planned as usual). ``ci-process=QRcode&...`` comes back as the
    equivalent ``QRcode/...`` step.

    Raises:
        UnsupportedOperationError: an operation CI documents only as a request of its own
            (:data:`NO_RULE_FORM`), or one ci_engine does not implement.
        InvalidArgumentError: ``QRcode``, ``watermark/4``, ``imageSlim``, ``imageInspect``
            before the last step (as on download); a bad ``ci-process=QRcode`` value.
    """
    steps = pipeline.steps
    last = steps[-1]
    if isinstance(last, A.CiProcess):
        what = f"ci-process={last.name.value}"
        if last.name is CiProcessName.QRCODE:
            return "qrcode", A.Pipeline((qrcode_step(last),))
        if what in NO_RULE_FORM:
            raise UnsupportedOperationError(
                f"{what} in a Pic-Operations rule: CI documents it only as a request of its own, "
                f"not as a rule: {NO_RULE_FORM[what]}",
                span=last.span,
            )
        raise UnsupportedOperationError(f"{what}: not implemented by ci_engine", span=last.span)
    for step in steps[:-1]:
        if isinstance(step, _TERMINAL):
            raise InvalidArgumentError(
                f"{step.keyword}: must be the last step of the pipeline", op=step.keyword, span=step.span
            )
    if isinstance(last, A.ImageInspect):
        raise UnsupportedOperationError(
            f"imageInspect in a Pic-Operations rule: CI documents it only as a request of its own, "
            f"not as a rule: {NO_RULE_FORM['imageInspect']}",
            span=last.span,
        )
    if isinstance(last, A.QRCode):
        return "qrcode", pipeline
    if isinstance(last, A.ExtractBlindWatermark):
        return "extract", pipeline
    if any(isinstance(step, (A.BlindWatermark, A.ImageSlim)) for step in steps):
        return "process", pipeline
    return "", pipeline
