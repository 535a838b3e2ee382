"""``imageMogr2/scrop/<W>x<H>`` as CI documents it: crop around the faces; with no face,
the input comes back unchanged (``extras.md`` section 6).

**Detector.** OpenCV's Haar cascades, shipped inside the ``opencv-python-headless`` wheel
(``cv2.data.haarcascades``; nothing is downloaded): the frontal-face ``alt2`` cascade, on
the image and on two copies turned by -15 and +15 degrees (faces tilted in the image
plane, at least 8 % of the shorter side; their boxes are turned back), and the profile-face
cascade, on the image and on its mirror (it only knows faces looking one way). The image is
reduced to at most :data:`DETECT_SIDE` pixels on its longer side (shrink-on-load where the
format allows), converted to grey and histogram-equalised; the cascades scan with a scale
step of 1.1 and keep windows confirmed by 6 neighbours (frontal) or 5 (profile); faces
smaller than 5 % of the shorter side (and 24 px) are ignored. Overlapping detections
(intersection over the smaller box > 30 %) are merged into their union. Measured recall
and false positives: ``docs/intel.md``.

**Geometry.** On the image as it is when ``scrop`` runs (after the operations before it),
``w`` x ``h``: the box is ``bw = min(W, w)``, ``bh = min(H, h)``; the image is scaled to
cover it (the cover scale of ``crop/<W>x<H>``, never enlarging); the window is centred on
the box around every face when that box fits, else on the area-weighted centre of the
faces, and clamped to the image. ``scrop`` is then rewritten as the equivalent
``thumbnail/<rw>x<rh>!`` and ``cut/<bw>x<bh>x<dx>x<dy>`` and the pipeline runs as usual,
on either backend. No face: the ``scrop`` operation is removed (a pipeline left with
nothing to do returns the input bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ci_engine import ast as A
from ci_engine._dc import dataclass
from ci_engine.plan import geometry as G

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Face", "detect", "window", "rewrite_scrop", "DETECT_SIDE"]

DETECT_SIDE = 640
"""Longest side, in pixels, of the image the detector looks at."""
DETECT_PASSES = 32
"""Pixels of work charged per pixel of the reduced image for the detection: five cascade
scans over an image pyramid of scale factor 1.1 (about 6 image sizes each), two turned
copies and more."""

_MIN_FACE_FRACTION = 0.05
_FRONTAL_NEIGHBOURS = 6
_PROFILE_NEIGHBOURS = 5
_TILTS = (-15.0, 15.0)
_MIN_TILTED_FRACTION = 0.08
_MIN_FACE_PX = 24
_MERGE_OVERLAP = 0.3


@dataclass(frozen=True, slots=True)
class Face:
    """A face box in pixels: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def scaled(self, sx: float, sy: float) -> Face:
        return Face(round(self.x * sx), round(self.y * sy), max(1, round(self.w * sx)), max(1, round(self.h * sy)))


_CASCADES: dict[str, Any] = {}


def _cascade(name: str) -> Any:
    cascade = _CASCADES.get(name)
    if cascade is None:
        import cv2

        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)  # type: ignore[attr-defined]
        if cascade.empty():  # pragma: no cover - a broken OpenCV install
            from ci_engine.errors import UnsupportedOperationError

            raise UnsupportedOperationError(f"scrop: OpenCV's {name} is missing from this installation")
        _CASCADES[name] = cascade
    return cascade


def _overlap(a: Face, b: Face) -> float:
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy / min(a.area, b.area)


def _merge(faces: list[Face]) -> list[Face]:
    merged: list[Face] = []
    for face in sorted(faces, key=lambda f: -f.area):
        for k, kept in enumerate(merged):
            if _overlap(face, kept) > _MERGE_OVERLAP:
                x, y = min(face.x, kept.x), min(face.y, kept.y)
                right, bottom = max(face.x + face.w, kept.x + kept.w), max(face.y + face.h, kept.y + kept.h)
                merged[k] = Face(x, y, right - x, bottom - y)
                break
        else:
            merged.append(face)
    return sorted(merged, key=lambda f: (f.y, f.x))


def detect(pixels: NDArray[np.uint8]) -> list[Face]:
    """The faces in ``(height, width, channels)`` uint8 pixels (any size: reduced to
    :data:`DETECT_SIDE` here when larger), in the pixels' coordinates, top to bottom."""
    import cv2
    import numpy as np

    height, width = pixels.shape[:2]
    channels = pixels.shape[2]
    if channels >= 3:
        grey = cv2.cvtColor(np.ascontiguousarray(pixels[..., :3]), cv2.COLOR_RGB2GRAY)
    else:
        grey = np.ascontiguousarray(pixels[..., 0])
    scale = 1.0
    if max(width, height) > DETECT_SIDE:
        scale = DETECT_SIDE / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    side = max(_MIN_FACE_PX, int(_MIN_FACE_FRACTION * min(grey.shape)))
    if min(grey.shape) < side:
        return []
    found: list[Face] = []
    frontal = _cascade("haarcascade_frontalface_alt2.xml")
    strict = {"scaleFactor": 1.1, "minNeighbors": _FRONTAL_NEIGHBOURS, "minSize": (side, side)}
    for x, y, w, h in frontal.detectMultiScale(grey, **strict):
        found.append(Face(int(x), int(y), int(w), int(h)))
    args = {"scaleFactor": 1.1, "minNeighbors": _PROFILE_NEIGHBOURS, "minSize": (side, side)}
    profile = _cascade("haarcascade_profileface.xml")
    for x, y, w, h in profile.detectMultiScale(grey, **args):
        found.append(Face(int(x), int(y), int(w), int(h)))
    mirror = np.ascontiguousarray(grey[:, ::-1])
    gw = grey.shape[1]
    for x, y, w, h in profile.detectMultiScale(mirror, **args):
        found.append(Face(int(gw - x - w), int(y), int(w), int(h)))
    centre = (grey.shape[1] / 2, grey.shape[0] / 2)
    tilted_side = max(side, int(_MIN_TILTED_FRACTION * min(grey.shape)))
    tilted = {**strict, "minSize": (tilted_side, tilted_side)}
    for angle in _TILTS:  # faces tilted in the image plane: the frontal cascade on turned copies
        turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
        turned = cv2.warpAffine(grey, turn, (grey.shape[1], grey.shape[0]), borderMode=cv2.BORDER_REPLICATE)
        back = cv2.invertAffineTransform(turn)
        for x, y, w, h in frontal.detectMultiScale(turned, **tilted):
            cx, cy = x + w / 2, y + h / 2
            ox = back[0, 0] * cx + back[0, 1] * cy + back[0, 2]
            oy = back[1, 0] * cx + back[1, 1] * cy + back[1, 2]
            found.append(Face(max(0, round(ox - w / 2)), max(0, round(oy - h / 2)), int(w), int(h)))
    faces = _merge(found)
    if scale != 1.0:
        faces = [f.scaled(width / grey.shape[1], height / grey.shape[0]) for f in faces]
    return faces


def window(width: int, height: int, box_w: int, box_h: int, faces: Sequence[Face]) -> tuple[int, int]:
    """The top-left corner of the ``box_w`` x ``box_h`` window on a ``width`` x ``height``
    image that frames ``faces`` (see the module docstring), clamped to the image."""
    left = min(f.x for f in faces)
    top = min(f.y for f in faces)
    right = max(f.x + f.w for f in faces)
    bottom = max(f.y + f.h for f in faces)
    if right - left <= box_w and bottom - top <= box_h:
        cx, cy = (left + right) / 2, (top + bottom) / 2
    else:
        total = sum(f.area for f in faces)
        cx = sum((f.x + f.w / 2) * f.area for f in faces) / total
        cy = sum((f.y + f.h / 2) * f.area for f in faces) / total
    dx = min(max(0, int(cx - box_w / 2)), width - box_w)
    dy = min(max(0, int(cy - box_h / 2)), height - box_h)
    return dx, dy


def _first_scrop(pipeline: A.Pipeline) -> tuple[int, int] | None:
    for i, step in enumerate(pipeline.steps):
        if isinstance(step, A.ImageMogr2):
            for j, op in enumerate(step.ops):
                if isinstance(op, A.SmartCrop):
                    return i, j
    return None


def _with_ops(pipeline: A.Pipeline, index: int, ops: tuple[A.MogrOp, ...]) -> A.Pipeline:
    steps = list(pipeline.steps)
    steps[index] = A.ImageMogr2(ops=ops, span=steps[index].span)
    return A.Pipeline(tuple(steps))


def rewrite_scrop(
    pipeline: A.Pipeline,
    data: bytes,
    *,
    backend: str = "auto",
    **run: Any,
) -> A.Pipeline:
    """``pipeline`` with every ``scrop`` replaced by the face crop it means on ``data``
    (or removed where no face is found). ``run`` takes the keywords of
    :func:`ci_engine.intel.pixels.decode` (``limits``, ``rules``, ``resources``, ``fonts``).

    Raises:
        CIError: as :func:`ci_engine.process` for the steps before each ``scrop``.
    """
    from ci_engine.intel.pixels import decode
    from ci_engine.io import probe
    from ci_engine.plan import plan, resolve

    header = probe(data, limits=run.get("limits"))
    while (where := _first_scrop(pipeline)) is not None:
        i, j = where
        step = pipeline.steps[i]
        assert isinstance(step, A.ImageMogr2)
        op = step.ops[j]
        assert isinstance(op, A.SmartCrop)
        before = A.Pipeline((*pipeline.steps[:i], A.ImageMogr2(ops=step.ops[:j])))
        size_plan = resolve(plan(before, limits=run.get("limits")), header)
        width, height = size_plan.width, size_plan.height
        shrink = A.Thumbnail(A.ShrinkBox(DETECT_SIDE, DETECT_SIDE))
        small = decode(
            data,
            A.Pipeline((*pipeline.steps[:i], A.ImageMogr2(ops=(*step.ops[:j], shrink)))),
            backend=backend,
            passes=DETECT_PASSES,
            what="scrop: face detection",
            **run,
        )
        sh, sw = small.pixels.shape[:2]
        faces = [f.scaled(width / sw, height / sh) for f in detect(small.pixels)]
        replacement: tuple[A.MogrOp, ...] = ()
        if faces:
            bw, bh = min(op.width, width), min(op.height, height)
            rw, rh = G.cover_size(width, height, bw, bh)
            ops: list[A.MogrOp] = []
            if (rw, rh) != (width, height):
                ops.append(A.Thumbnail(A.ExactSize(rw, rh), span=op.span))
                faces = [f.scaled(rw / width, rh / height) for f in faces]
            if (bw, bh) != (rw, rh):
                dx, dy = window(rw, rh, bw, bh, faces)
                ops.append(A.Cut(bw, bh, dx, dy, span=op.span))
            replacement = tuple(ops)
        pipeline = _with_ops(pipeline, i, (*step.ops[:j], *replacement, *step.ops[j + 1 :]))
    return pipeline
