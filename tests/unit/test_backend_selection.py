"""Backend selection: ``backend="auto" | "vips" | "pillow"``, the ``CI_ENGINE_BACKEND``
environment variable, the logged fallback when pyvips cannot be imported, and refusals
instead of silent degradation."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import ci_engine as ce
from ci_engine.backends import BACKEND_ENV, available_backends, get_backend
from ci_engine.errors import BackendUnavailableError, UnsupportedOperationError

ROOT = Path(ce.__file__).resolve().parent.parent

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "pyvips" or name.startswith("pyvips."):
            raise ImportError("no pyvips in this interpreter")
sys.meta_path.insert(0, Block())
"""


def _run(code: str, **env: str) -> dict[str, object]:
    environment = {k: v for k, v in os.environ.items() if k != BACKEND_ENV}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER + code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=environment,
    )
    return dict(json.loads(result.stdout.splitlines()[-1]))


def test_auto_falls_back_to_pillow_with_a_logged_reason_when_pyvips_is_missing() -> None:
    code = """
import io, json, logging
stream = io.StringIO()
logging.basicConfig(stream=stream, level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
import ci_engine as ce
from ci_engine.backends import get_backend, available_backends
from ci_engine.errors import BackendUnavailableError
name = get_backend("auto").name
try:
    get_backend("vips")
    vips = "loaded"
except BackendUnavailableError as exc:
    vips = exc.message
from PIL import Image
out = io.BytesIO(); Image.new("RGB", (40, 20), (200, 30, 30)).save(out, "PNG")
result = ce.process(out.getvalue(), "imageMogr2/thumbnail/10x/format/jpg")
import sys
print(json.dumps({"auto": name, "vips": vips, "log": stream.getvalue(), "available": available_backends(),
                  "size": [result.width, result.height, result.format], "pyvips": "pyvips" in sys.modules}))
"""
    out = _run(code)
    assert out["auto"] == "pillow"
    assert out["available"] == ["pillow"]
    assert "backend 'vips' is unavailable" in str(out["vips"])
    log = str(out["log"])
    assert "INFO ci_engine.backends" in log and "using pillow" in log and "no pyvips" in log
    assert out["size"] == [10, 5, "jpeg"]
    assert out["pyvips"] is False


def test_the_environment_variable_picks_the_backend_for_auto_without_pyvips() -> None:
    code = """
import json
from ci_engine.backends import get_backend
from ci_engine.errors import BackendUnavailableError
try:
    get_backend("auto")
    outcome = "loaded"
except BackendUnavailableError as exc:
    outcome = exc.code
print(json.dumps({"outcome": outcome, "pillow": get_backend("pillow").name}))
"""
    # naming vips where it cannot load is an error, never a silent fallback
    assert _run(code, CI_ENGINE_BACKEND="vips") == {"outcome": "ServiceUnavailable", "pillow": "pillow"}


def test_the_environment_variable_picks_the_backend_for_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_ENV, "pillow")
    assert get_backend("auto").name == "pillow"
    assert get_backend().name == "pillow"
    if "vips" in available_backends():
        monkeypatch.setenv(BACKEND_ENV, "vips")
        assert get_backend("auto").name == "vips"
        monkeypatch.delenv(BACKEND_ENV)
        assert get_backend("auto").name == "vips"  # auto prefers libvips


def test_an_unknown_backend_name_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="backend must be 'auto', 'vips' or 'pillow', got 'imagemagick'"):
        get_backend("imagemagick")


def test_process_takes_the_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (20, 130, 30)).save(out, "PNG")
    for name in available_backends():
        result = ce.process(out.getvalue(), "imageMogr2/thumbnail/20x", backend=name)
        assert (result.width, result.height, result.format) == (20, 10, "png")


def test_a_format_the_backend_cannot_write_is_refused_not_degraded(monkeypatch: pytest.MonkeyPatch) -> None:
    import ci_engine.backends.pillow as pillow_backend

    monkeypatch.setattr(pillow_backend, "AVIF_AVAILABLE", False)
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (20, 130, 30)).save(out, "PNG")
    with pytest.raises(UnsupportedOperationError, match="cannot encode avif"):
        ce.process(out.getvalue(), "imageMogr2/format/avif", backend="pillow")


def test_a_backend_that_cannot_load_says_why() -> None:
    if "vips" in available_backends():
        pytest.skip("pyvips loads here")
    with pytest.raises(BackendUnavailableError, match="vips"):
        get_backend("vips")


@pytest.mark.requires_vips
def test_libvips_runs_small_outputs_on_one_thread_except_avif() -> None:
    import pyvips

    backend = get_backend("vips")
    default = backend._default_concurrency  # type: ignore[attr-defined]
    if default < 2:
        pytest.skip("libvips runs on one thread here anyway")
    source = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 80, 40)).save(source, "JPEG")
    try:
        ce.process(source.getvalue(), "imageMogr2/thumbnail/32x", backend="vips")
        assert pyvips.concurrency_get() == 1
        result = ce.process(source.getvalue(), "imageMogr2/thumbnail/32x/format/avif", backend="vips")
        assert (result.format, result.width, result.height) == ("avif", 32, 24)
        assert pyvips.concurrency_get() == default
    finally:
        pyvips.concurrency_set(default)
