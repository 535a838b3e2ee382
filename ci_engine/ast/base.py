"""The root of the AST: :class:`Node`, :class:`Step` and :class:`Pipeline`.

Every node is a frozen dataclass. ``span`` (where the node was written in the processing
string) is excluded from equality, hashing and ``repr``: two strings that say the same
thing give equal ASTs. Constructors validate every field through ``ci_engine._check``, so a
hand-built AST gets the checks of a parsed one.
"""

from __future__ import annotations

from typing import ClassVar

from ci_engine import _check
from ci_engine._dc import DataclassMeta, dataclass, field
from ci_engine.errors import Span

__all__ = ["Node", "Step", "Pipeline"]


@dataclass(frozen=True, slots=True)
class Node(metaclass=DataclassMeta):
    """Base of every AST class. ``keyword`` is the CI token that introduces the node."""

    keyword: ClassVar[str] = ""
    span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Step(Node):
    """One ``|``-separated step of a pipeline (``imageMogr2/...``, ``watermark/2/...``)."""

    @property
    def ignore_error(self) -> bool:
        """``True`` when the step carries ``ignore-error/1``."""
        return False


@dataclass(frozen=True, slots=True)
class Pipeline(Node):
    """A whole processing string: its ``|``-separated steps, in order.

    The step count is not limited here (styles expand later and the limit is
    configurable); :func:`ci_engine.parse` refuses more than 10 written steps.
    """

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        steps = self.steps
        if type(steps) is not tuple or not steps:
            _check.instance("pipeline", "steps", steps, tuple)
            _check.fail("pipeline", "steps", "at least one step", steps, masked=False)
        for step in steps:
            if not isinstance(step, Step):
                _check.instance("pipeline", "steps", step, Step)
        if len(steps) > 1 and "ci-process" in [step.keyword for step in steps]:
            _check.fail(
                "pipeline",
                "steps",
                "a ci-process request alone (it cannot be chained with |)",
                len(self.steps),
                masked=False,
            )

    @property
    def ignore_error(self) -> bool:
        """``True`` when any step carries ``ignore-error/1`` (it is request-wide)."""
        return any(step.ignore_error for step in self.steps)
