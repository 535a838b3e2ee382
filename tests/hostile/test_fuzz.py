"""Fuzzing ``process()`` on every backend: grammar-generated and byte-mutated processing
strings on small images, and byte-mutated images under valid strings.

Every case must return a :class:`~ci_engine.Result` or raise a
:class:`~ci_engine.errors.CIError` whose code is not ``InternalError``: nothing else, ever.

Sizes: the ``ci`` profile (the default) runs 5,600 cases (``CASES`` per test, times two
backends), about a minute on 2 cores. The long run (20,000 cases per test, 120,000 in all)::

    CI_ENGINE_HYPOTHESIS_PROFILE=long python -m pytest -n auto -p no:cacheprovider tests/hostile/test_fuzz.py

Outputs are capped (``Limits(max_output_side=512)``) so that a generated ``thumbnail/9999x``
stays a fast refusal instead of a 100 MP encode. Any input that breaks the contract becomes a
fixture in ``tests/fixtures/bombs/found/``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ci_engine as ce
from ci_engine.backends import available_backends
from ci_engine.limits import Limits
from tests.hostile.corpus import RULES, samples

BACKENDS = available_backends()
LIMITS = Limits(max_output_side=512)
PROFILE = os.environ.get("CI_ENGINE_HYPOTHESIS_PROFILE", "ci")
CASES = {"grammar": 1_000, "mutated_string": 800, "mutated_image": 1_000}
"""Examples per test and backend under the ``ci`` profile (other profiles use their own)."""


def examples(test: str) -> settings:
    if PROFILE == "ci":
        return settings(max_examples=CASES[test], suppress_health_check=list(HealthCheck))
    return settings(suppress_health_check=list(HealthCheck))


SMALL = {
    name: data
    for name, data in samples().items()
    if name in ("jpeg", "png-rgba-interlaced", "gif-animated", "webp", "bmp", "tiff", "heif", "png-palette")
}


def run(data: bytes, rule: str, backend: str) -> None:
    try:
        result = ce.process(data, rule, backend=backend, limits=LIMITS)
    except ce.CIError as exc:
        assert exc.code != "InternalError", f"{backend}: {rule!r}: {exc!r} {exc.detail}"
        return
    assert isinstance(result, ce.Result) and result.data


# -- grammar ---------------------------------------------------------------------------------

number = st.one_of(st.integers(-5, 120), st.integers(0, 20_000), st.sampled_from([0, 1, 99, 100, 101, 9999, 10_000]))
size = st.one_of(
    st.builds("{}x{}".format, number, number),
    st.builds("{}x".format, number),
    st.builds("x{}".format, number),
    st.builds("!{}p".format, number),
    st.builds("{}x{}!".format, number, number),
    st.builds("{}x{}r".format, number, number),
    st.builds("{}@".format, number),
)
gravity = st.sampled_from(["northwest", "north", "center", "southeast", "east", "face", "nowhere"])
colour = st.sampled_from(["cmVk", "I0ZGRkZGRg==", "IzAwMDAwMA", "!!!", ""])
fmt = st.sampled_from(["jpg", "png", "webp", "gif", "bmp", "heif", "avif", "tiff", "yjpeg", "svgc", "tpg", "ico"])
mogr_op = st.one_of(
    st.builds("thumbnail/{}".format, size),
    st.builds("crop/{}".format, size),
    st.builds("cut/{}x{}x{}x{}".format, number, number, number, number),
    st.builds("iradius/{}".format, number),
    st.builds("rradius/{}".format, number),
    st.builds("rotate/{}".format, number),
    st.builds("blur/{}x{}".format, number, number),
    st.builds("sharpen/{}".format, number),
    st.builds("quality/{}".format, number),
    st.builds("rquality/{}".format, number),
    st.builds("lquality/{}".format, number),
    st.builds("bright/{}".format, st.integers(-120, 120)),
    st.builds("contrast/{}".format, st.integers(-120, 120)),
    st.builds("gravity/{}".format, gravity),
    st.builds("format/{}".format, fmt),
    st.builds("scrop/{}".format, size),
    st.builds("cgif/{}".format, number),
    st.builds("extent/{}/background/{}".format, size, colour),
    st.builds("size-limit/{}k".format, number),
    st.sampled_from(["auto-orient", "strip", "interlace/1", "flip/vertical", "flip/horizontal", "grayscale/1"]),
    st.sampled_from(["ignore-error/1", "minisize/1", "dpi/300", "imageslim", ""]),
)
mogr = st.builds(lambda ops: "imageMogr2/" + "/".join(ops), st.lists(mogr_op, min_size=1, max_size=5))
view = st.builds(
    lambda mode, w, h, rest: f"imageView2/{mode}/w/{w}/h/{h}{rest}",
    st.integers(0, 6),
    number,
    number,
    st.sampled_from(["", "/format/png", "/q/50", "/ignore-error/1", "/interlace/1"]),
)
other = st.sampled_from(["imageInfo", "exif", "imageAve", "imageMogr2", "watermark/2/text/aGVsbG8", "style/x"])
step = st.one_of(mogr, view, other)
grammar_strings = st.builds("|".join, st.lists(step, min_size=1, max_size=4))


@pytest.mark.parametrize("backend", BACKENDS)
@examples("grammar")
@given(image=st.sampled_from(sorted(SMALL)), rule=grammar_strings)
def test_grammar_generated_strings(backend: str, image: str, rule: str) -> None:
    run(SMALL[image], rule, backend)


# -- byte-mutated strings -----------------------------------------------------------------------

mutation = st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 200), st.characters())


@pytest.mark.parametrize("backend", BACKENDS)
@examples("mutated_string")
@given(image=st.sampled_from(sorted(SMALL)), base=st.sampled_from(RULES), edits=st.lists(mutation, max_size=6))
def test_mutated_strings(backend: str, image: str, base: str, edits: list[tuple[str, int, str]]) -> None:
    text = base
    for kind, where, char in edits:
        at = where % (len(text) + 1)
        if kind == "insert":
            text = text[:at] + char + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + char + text[at + 1 :]
    run(SMALL[image], text, backend)


# -- byte-mutated images ------------------------------------------------------------------------

byte_edit = st.tuples(st.booleans(), st.integers(0, 2**20), st.integers(0, 255))


@pytest.mark.parametrize("backend", BACKENDS)
@examples("mutated_image")
@given(
    image=st.sampled_from(sorted(SMALL)),
    rule=st.sampled_from(RULES),
    edits=st.lists(byte_edit, min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 2**20)),
)
def test_mutated_images(
    backend: str, image: str, rule: str, edits: list[tuple[bool, int, int]], cut: int | None
) -> None:
    """Edits land in the first 128 bytes (the headers) or anywhere; ``cut`` truncates."""
    data = bytearray(SMALL[image])
    for in_header, position, value in edits:
        data[position % (min(len(data), 128) if in_header else len(data))] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    run(bytes(data), rule, backend)
