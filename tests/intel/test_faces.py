"""scrop on faces: real photographs (tests/fixtures/faces/SOURCES.md), both backends; no face
gives the input back unchanged."""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.backends import available_backends
from ci_engine.intel.faces import Face, detect, window

FACES = Path(__file__).resolve().parents[1] / "fixtures" / "faces"
SAMPLES = Path(__file__).resolve().parents[2] / "docs" / "samples"

# Hand-checked faces (centre x, y and largest dimension) in each photograph: 10 faces in 9
# photographs (tests/fixtures/faces/SOURCES.md); docs/intel.md quotes the recall on them.
FACES_MARKED = {
    "astronaut.jpg": [(225, 115, 95)],
    "camera.jpg": [(218, 140, 90)],  # in profile
    "grace_hopper.jpg": [(262, 218, 220)],
    "biden.jpg": [(240, 161, 200)],
    "obama.jpg": [(434, 211, 244)],
    "obama2.jpg": [(299, 334, 350)],
    "obama3.jpg": [(326, 175, 150)],  # full figure: the face is 14 % of the width
    "luispedro.jpg": [(140, 180, 250)],  # three-quarter view
    "einstein.jpg": [(148, 633, 73), (400, 315, 100)],  # a seated man; Einstein, head tilted
}
IGNORED = {"obama2.jpg": 430}  # a face cut in half by the right edge (x > 430): neither found nor false
MARKED = {name: faces[0] for name, faces in FACES_MARKED.items() if len(faces) == 1}
NO_FACE = [FACES / "chelsea.jpg", FACES / "rocket.jpg", SAMPLES / "kleiber.jpg"]
NO_PEOPLE = [*NO_FACE, FACES / "coffee.jpg", SAMPLES / "ladybird.jpg"]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@functools.cache
def _faces(name: str) -> tuple[Face, ...]:
    return tuple(detect(_pixels(FACES / name)))


def _matches(face: Face, mark: tuple[int, int, int]) -> bool:
    cx, cy, size = mark
    return abs(face.x + face.w / 2 - cx) < size / 3 and abs(face.y + face.h / 2 - cy) < size / 3 and (
        size / 2 < face.w < 2 * size
    )


@pytest.mark.parametrize("name", sorted(FACES_MARKED))
def test_the_detector_finds_every_marked_face_and_nothing_else(name: str) -> None:
    faces = _faces(name)
    for mark in FACES_MARKED[name]:
        assert any(_matches(face, mark) for face in faces), (name, mark, faces)  # recall
    extra = [f for f in faces if not any(_matches(f, m) for m in FACES_MARKED[name])]
    assert [f for f in extra if f.x <= IGNORED.get(name, 1 << 30)] == [], (name, extra)  # false positives


@pytest.mark.parametrize("path", NO_PEOPLE, ids=lambda p: p.name)
def test_no_face_in_photographs_without_people(path: Path) -> None:
    assert detect(_pixels(path)) == []


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", sorted(MARKED))
def test_scrop_window_holds_the_face(name: str, backend: str) -> None:
    data = (FACES / name).read_bytes()
    text = ce.render(ce.intel.faces.rewrite_scrop(ce.parse("imageMogr2/scrop/150x240"), data, backend=backend))
    size, cut = text.removeprefix("imageMogr2/thumbnail/").split("!/cut/")
    rw, rh = (int(v) for v in size.split("x"))
    bw, bh, dx, dy = (int(v) for v in cut.split("x"))
    assert (bw, bh) == (150, 240)
    width, height = Image.open(FACES / name).size
    assert max(rw / width, rh / height) == pytest.approx(max(150 / width, 240 / height), rel=0.01)  # cover
    cx, cy, _ = MARKED[name]
    cx, cy = cx * rw / width - dx, cy * rh / height - dy
    assert 0 <= cx < 150 and 0 <= cy < 240, (name, text)  # the face is inside the window


@pytest.mark.parametrize("backend", available_backends())
@pytest.mark.parametrize("name", ["astronaut.jpg", "camera.jpg", "grace_hopper.jpg"])
def test_scrop_frames_the_face(name: str, backend: str) -> None:
    data = (FACES / name).read_bytes()
    result = ce.process(data, "imageMogr2/scrop/150x240/format/png", backend=backend)
    assert (result.format, result.width, result.height) == ("png", 150, 240)
    # The reference: the photograph scaled to cover 150x240, cut at the window around the
    # detected face; the face's centre lies inside it, near the middle unless clamped.
    image = Image.open(FACES / name).convert("RGB")
    scale = max(150 / image.width, 240 / image.height)
    rw, rh = max(150, round(image.width * scale)), max(240, round(image.height * scale))
    faces = [f.scaled(rw / image.width, rh / image.height) for f in _faces(name)]
    dx, dy = window(rw, rh, 150, 240, faces)
    reference = np.asarray(image.resize((rw, rh), Image.LANCZOS).crop((dx, dy, dx + 150, dy + 240)), np.int16)
    got = np.asarray(Image.open(io.BytesIO(result.data)).convert("RGB"), np.int16)
    assert np.abs(got - reference).mean() < 4  # the same window (a shifted one differs by tens)
    cx = MARKED[name][0] * rw / image.width - dx
    assert 0 <= cx < 150 and (abs(cx - 75) < 30 or dx in (0, rw - 150))


def test_scrop_without_a_face_returns_the_input_unchanged() -> None:
    for path in NO_FACE:
        data = path.read_bytes()
        result = ce.process(data, "imageMogr2/scrop/100x100")
        assert result.data == data, path.name
        assert (result.format, result.width, result.height) == ("jpeg", *Image.open(path).size)
    data = NO_FACE[0].read_bytes()
    png = ce.process(data, "imageMogr2/scrop/100x100/format/png")
    assert (png.format, png.width, png.height) == ("png", *Image.open(NO_FACE[0]).size)


def test_several_faces_and_steps_before_scrop() -> None:
    canvas = Image.new("RGB", (1100, 600), (90, 110, 100))
    canvas.paste(Image.open(FACES / "astronaut.jpg"), (0, 40))
    canvas.paste(Image.open(FACES / "grace_hopper.jpg"), (588, 0))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=92)
    data = buf.getvalue()
    # Both faces fit a 700x300 window of the image scaled to 700x382: centred on both.
    text = ce.render(ce.intel.faces.rewrite_scrop(ce.parse("imageMogr2/scrop/700x300"), data))
    assert text.startswith("imageMogr2/thumbnail/700x382!/cut/700x300x0x")
    # A step before scrop: the faces are found on its output (half size here).
    rule = ce.parse("imageMogr2/thumbnail/!50p|imageMogr2/scrop/200x200")
    rewritten = ce.render(ce.intel.faces.rewrite_scrop(rule, data))
    assert rewritten.startswith("imageMogr2/thumbnail/!50p|imageMogr2/thumbnail/367x200!/cut/200x200x")
    dx = int(rewritten.split("/cut/200x200x")[1].split("x")[0])
    # The faces do not fit one 200 px window: it goes to the area-weighted centre, so the
    # larger face (Grace Hopper's, centred near x = 284 at this scale) is inside it.
    assert dx <= 284 < dx + 200 and dx > 75


def test_window_is_centred_on_the_faces_and_clamped() -> None:
    assert window(1000, 500, 200, 200, [Face(400, 100, 100, 100)]) == (350, 50)
    assert window(1000, 500, 200, 200, [Face(0, 0, 50, 50)]) == (0, 0)
    assert window(1000, 500, 200, 200, [Face(950, 450, 50, 50)]) == (800, 300)
    # faces wider than the window: the area-weighted centre (the big face wins)
    assert window(1000, 500, 200, 200, [Face(0, 0, 40, 40), Face(800, 200, 160, 160)]) == (729, 164)


def test_pic_operations_rules_crop_around_faces_too(tmp_path: Path) -> None:
    from ci_engine.persistent import persist
    from ci_engine.store import LocalStore

    store = LocalStore(tmp_path)
    header = '{"rules":[{"fileid":"out.png","rule":"imageMogr2/scrop/150x240/format/png"}]}'
    data = (FACES / "grace_hopper.jpg").read_bytes()
    (face,) = persist("in/hopper.jpg", data, header, store, bucket="demo-1250000000").process_results
    assert (face.key, face.format, face.width, face.height) == ("in/out.png", "png", 150, 240)
    stored = np.asarray(Image.open(tmp_path / "in" / "out.png").convert("RGB"), np.int16)
    direct = ce.process(data, "imageMogr2/scrop/150x240/format/png")
    assert np.abs(stored - np.asarray(Image.open(io.BytesIO(direct.data)).convert("RGB"), np.int16)).mean() < 1
    cat = (FACES / "chelsea.jpg").read_bytes()
    (same,) = persist("in/cat.jpg", cat, header, store, bucket="demo-1250000000").process_results
    assert (same.format, same.width, same.height) == ("png", *Image.open(FACES / "chelsea.jpg").size)
