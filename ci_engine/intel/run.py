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
from typing import TYPE_CHECKING

from ci_engine import ast as A
from ci_engine.errors import InvalidArgumentError, UnsupportedOperationError
from ci_engine.limits import Limits, check_input_bytes
from ci_engine.plan import RULES, Rule
from ci_engine.types import CiProcessName

if TYPE_CHECKING:
    from ci_engine.api import Result
    from ci_engine.watermark import FontLibrary, Resources

__all__ = ["run"]

_TERMINAL: tuple[type[A.Step], ...] = (A.ImageInspect,)


def _json(body: bytes) -> Result:
    from ci_engine.api import Result

    return Result(body, "json", 0, 0, 0, None)


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
    steps = pipeline.steps
    for step in steps[:-1]:
        if isinstance(step, _TERMINAL):
            raise InvalidArgumentError(
                f"{step.keyword}: must be the last step of the pipeline", op=step.keyword, span=step.span
            )
    last = steps[-1]
    if isinstance(last, A.CiProcess):
        return _ci_process(last, data, backend=backend, limits=limits)
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
        return _terminal(last, body)
    raise UnsupportedOperationError(f"{last.keyword}: not implemented by ci_engine", span=last.span)


def _terminal(step: A.Step, data: bytes) -> Result:
    if isinstance(step, A.ImageInspect):
        from ci_engine.intel.inspect import inspect_json

        return _json(inspect_json(data))
    raise UnsupportedOperationError(f"{step.keyword}: not implemented by ci_engine", span=step.span)


def _ci_process(step: A.CiProcess, data: bytes, *, backend: str, limits: Limits) -> Result:
    name = step.name
    if name is CiProcessName.IMAGE_INSPECT:
        check_input_bytes(len(data), limits)
        from ci_engine.intel.inspect import inspect_json

        return _json(inspect_json(data))
    raise UnsupportedOperationError(f"ci-process={name.value}: not implemented by ci_engine", span=step.span)
