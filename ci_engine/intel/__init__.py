"""CI's image intelligence, run locally: ``imageInspect``, QR codes, ``scrop`` on faces,
``AssessQuality``, blind watermarks, ``imageSlim`` (``docs/intel.md``).

One module per feature; each imports its imaging or decoding library (numpy, OpenCV,
zxing-cpp, segno, PyWavelets) lazily, inside the functions that need it, so that
``import ci_engine`` loads none of them. :func:`handles` is the cheap test
:func:`ci_engine.process` asks before probing the input; :mod:`ci_engine.intel.run` runs a
pipeline that holds one of these operations.
"""

from __future__ import annotations

from ci_engine import ast as A
from ci_engine.types import CiProcessName

__all__ = ["handles", "has_scrop", "CI_PROCESSES"]

CI_PROCESSES = frozenset(
    {CiProcessName.IMAGE_INSPECT, CiProcessName.QRCODE, CiProcessName.QRCODE_GENERATE, CiProcessName.ASSESS_QUALITY}
)
"""The ``ci-process=<Name>`` requests ci_engine answers (the others raise
:class:`~ci_engine.errors.UnsupportedOperationError`)."""


def has_scrop(pipeline: A.Pipeline) -> bool:
    """``True`` when an ``imageMogr2`` step of ``pipeline`` holds ``scrop`` (a face crop,
    rewritten per image by :func:`ci_engine.intel.faces.rewrite_scrop`)."""
    return any(
        isinstance(op, A.SmartCrop) for step in pipeline.steps if isinstance(step, A.ImageMogr2) for op in step.ops
    )


def handles(pipeline: A.Pipeline) -> bool:
    """``True`` when ``pipeline`` holds an operation of this package (so
    :func:`ci_engine.intel.run.run` must run it instead of the plain planner)."""
    for step in pipeline.steps:
        if isinstance(step, (A.ImageInspect, A.ImageSlim, A.QRCode, A.BlindWatermark, A.ExtractBlindWatermark)):
            return True
        if isinstance(step, A.CiProcess) and step.name in CI_PROCESSES:
            return True
        if isinstance(step, A.ImageMogr2) and any(isinstance(op, A.SmartCrop) for op in step.ops):
            return True
    return False
