"""Malformed input through ``process()`` on every backend: truncated at every 10 % of their
length, empty, wrong magic, a valid header with a garbage body, random byte flips,
polyglots, and the formats CI does not accept (``limits-and-errors.md`` section 1).

Every case must end in a clean :class:`~ci_engine.errors.CIError` with the code the spec
gives (``InvalidImageFormat`` for undecodable or unsupported input, section 5.4), or in a
result: never a segfault, a hang or another exception type. The cases run in a subprocess
per backend (``tests/hostile/runner.py``) so that a crash or a hang fails the test instead
of the test runner, and each case's CPU time is bounded.
"""

from __future__ import annotations

import random
import zlib
from pathlib import Path

import pytest

from ci_engine.backends import available_backends
from tests.hostile import measure
from tests.hostile.corpus import samples

BACKENDS = available_backends()
RULE = "imageMogr2/thumbnail/12x"
FOUND = Path(__file__).resolve().parents[1] / "fixtures" / "bombs" / "found"
"""Inputs that once ended in another code (README.md there): ``ok`` or InvalidImageFormat."""
MAX_CASE_CPU_MS = 2_000.0
DAMAGED = {"ok", "InvalidImageFormat", "ImageResolutionExceed"}
"""A damaged header may decode, be refused, or now declare a size over the limits."""
TRUNCATED = {"ok", "InvalidImageFormat"}

FOREIGN: dict[str, bytes] = {
    "empty": b"",
    "one-byte": b"\xff",
    "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    "svg-bare": b"<svg width='1' height='1'><script>alert(1)</script></svg>",
    "pdf": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    "psd": b"8BPS\x00\x01" + b"\x00" * 6 + b"\x00\x03\x00\x00\x00\x10\x00\x00\x00\x10\x00\x08\x00\x03" + b"\x00" * 64,
    "ico": b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + b"\x00" * 64,
    "cur": b"\x00\x00\x02\x00\x01\x00" + b"\x00" * 64,
    "jpeg-xl": b"\xff\x0a\xfa\x7f" + b"\x00" * 64,
    "jpeg-xl-container": b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\x00" * 64,
    "jpeg-2000": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + b"\x00" * 64,
    "j2k-codestream": b"\xff\x4f\xff\x51" + b"\x00" * 64,
    "qoi": b"qoif\x00\x00\x00\x10\x00\x00\x00\x10\x04\x00" + b"\x00" * 32,
    "zip": b"PK\x03\x04" + b"\x00" * 64,
    "gzip": zlib.compress(b"x")[:0] + b"\x1f\x8b\x08\x00" + b"\x00" * 32,
    "postscript": b"%!PS-Adobe-3.0\n%%EOF\n",
    "html": b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
    "xml": b"<?xml version='1.0'?><root/>",
    "ppm": b"P6\n16 16\n255\n" + b"\x00" * 768,
    "pcx": b"\x0a\x05\x01\x08" + b"\x00" * 124,
    "exr": b"\x76\x2f\x31\x01" + b"\x00" * 64,
    "dds": b"DDS " + b"\x00" * 124,
    "riff-wave": b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 32,
    "mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + b"\x00" * 32,
    "text": b"hello, this is not an image at all",
    "nul-bytes": b"\x00" * 4096,
}


def _flip(data: bytes, seed: int, count: int = 4) -> bytes:
    rng = random.Random(seed)
    out = bytearray(data)
    for _ in range(count):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def damaged_cases() -> dict[str, tuple[bytes, set[str]]]:
    """name -> (bytes, the outcomes allowed)."""
    cases: dict[str, tuple[bytes, set[str]]] = {}
    for index, (name, data) in enumerate(samples().items()):
        for tenth in range(10):
            cases[f"{name}@{tenth * 10}%"] = (data[: len(data) * tenth // 10], TRUNCATED)
        cases[f"{name}-minus-1"] = (data[:-1], TRUNCATED)
        keep = min(64, len(data) // 4)
        garbage = random.Random(index).randbytes(len(data) - keep)
        cases[f"{name}-garbage-body"] = (data[:keep] + garbage, DAMAGED)
        cases[f"{name}-wrong-magic"] = (b"\x00\x01\x02\x03" + data[4:], {"InvalidImageFormat"})
        for seed in range(3):
            cases[f"{name}-flips-{seed}"] = (_flip(data, seed * 1000 + index), DAMAGED)
    return cases


def polyglot_cases() -> dict[str, tuple[bytes, set[str]]]:
    s = samples()
    zip_tail = b"PK\x03\x04\x14\x00\x00\x00\x00\x00" + b"\x00" * 20 + b"evil.jsp<% out.println(1); %>"
    return {
        "jpeg+zip": (s["jpeg"] + zip_tail, {"ok"}),
        "gif+html": (s["gif"] + b"<html><script>alert(1)</script></html>", {"ok"}),
        "png+php": (s["png"] + b"<?php system($_GET['c']); ?>", {"ok"}),
        "webp+trailing-riff": (s["webp"] + b"RIFF\x04\x00\x00\x00WAVE", {"ok"}),
        "pdf-then-jpeg": (b"%PDF-1.4\n" + s["jpeg"], {"InvalidImageFormat"}),
        "html-then-gif": (b"<html>" + s["gif"], {"InvalidImageFormat"}),
        "gif-magic-html": (b"GIF89a<script>alert(1)</script>", {"InvalidImageFormat"}),
        "zip-then-png": (zip_tail + s["png"], {"InvalidImageFormat"}),
        "svg-with-png": (b"<svg><image href='data:image/png;base64,'/></svg>" + s["png"], {"InvalidImageFormat"}),
        "jpeg-comment-html": (
            s["jpeg"][:2] + b"\xff\xfe\x00\x2a<script>alert(document.cookie)</script>\x00" + s["jpeg"][2:],
            {"ok"},
        ),
    }


def _check(reports: dict[str, dict[str, object]], cases: dict[str, tuple[bytes, set[str]]]) -> list[str]:
    failures = []
    for name, (_, allowed) in cases.items():
        report = reports[name]
        if report["outcome"] not in allowed:
            failures.append(f"{name}: {report['outcome']!r} not in {sorted(allowed)}")
        elif float(report["cpu_ms"]) > MAX_CASE_CPU_MS:  # type: ignore[arg-type]
            failures.append(f"{name}: {report['cpu_ms']:.0f} ms of CPU")
    return failures


@pytest.mark.parametrize("backend", BACKENDS)
def test_damaged_files(backend: str) -> None:
    cases = damaged_cases()
    reports = measure(backend, files={name: data for name, (data, _) in cases.items()}, rule=RULE, repeat=1)
    failures = _check(reports, cases)
    assert not failures, f"{backend}: {len(failures)}/{len(cases)}\n" + "\n".join(failures)


@pytest.mark.parametrize("backend", BACKENDS)
def test_foreign_formats_polyglots_and_found_inputs(backend: str) -> None:
    cases = {name: (data, {"InvalidImageFormat"}) for name, data in FOREIGN.items()} | polyglot_cases()
    found = {path.name: (path.read_bytes(), TRUNCATED) for path in sorted(FOUND.iterdir()) if path.suffix != ".md"}
    assert found
    cases |= found
    reports = measure(backend, files={name: data for name, (data, _) in cases.items()}, rule=RULE, repeat=1)
    failures = _check(reports, cases)
    assert not failures, f"{backend}:\n" + "\n".join(failures)


def test_the_codes_are_the_spec_codes() -> None:
    """The status and X-ErrNo the malformed-input code carries (limits-and-errors.md 5.4)."""
    import ci_engine as ce

    with pytest.raises(ce.InvalidImageFormatError) as info:
        ce.process(FOREIGN["svg"], RULE)
    assert (info.value.status, info.value.x_errno, info.value.maskable) == (400, -443, False)
    result = None
    with pytest.raises(ce.InvalidImageFormatError):  # never masked by ignore-error/1
        result = ce.process(FOREIGN["pdf"], RULE + "/ignore-error/1")
    assert result is None
