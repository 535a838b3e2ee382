"""What a new user tripped over in their first hour (issue 14, list 3), each reproduced."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


# -- 1. Chinese text on a host without CJK fonts -------------------------------------------------------

_NO_FONTS_SCRIPT = textwrap.dedent(
    """
    import base64, json
    import numpy as np
    import ci_engine
    from ci_engine.watermark.fonts import BUNDLED_CJK, FontNotFoundError, default_library
    from tests.support.images import encode, to_array

    def b64(text):
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    base = encode(np.full((60, 60, 3), 255, np.uint8), "PNG")

    def ink(text):
        out = to_array(ci_engine.process(base, f"watermark/2/text/{b64(text)}/fontsize/30/gravity/center").data)
        return (out.min(axis=2) < 128).astype(int)

    faces = default_library().faces()
    glyphs = {c: ink(c) for c in "水印版权"}
    report = {
        "faces": [f.path for f in faces],
        "bundled": BUNDLED_CJK.path,
        "ink": {c: int(g.sum()) for c, g in glyphs.items()},
        "distinct": len({g.tobytes() for g in glyphs.values()}),
    }
    try:
        ink("水印😀")
        report["emoji"] = "drawn"
    except FontNotFoundError as exc:
        report["emoji"] = exc.message
    print(json.dumps(report))
    """
)


def test_cjk_text_renders_real_glyphs_without_system_fonts(tmp_path: Path) -> None:
    """fontconfig sees no font directory: only the CJK font shipped with ci_engine is left.
    The text must still draw four different glyphs, never four identical boxes, and a
    character no font here has must fail with an error that names it."""
    conf = tmp_path / "fonts.conf"
    conf.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig></fontconfig>\n')
    env = {k: v for k, v in os.environ.items() if k != "CI_ENGINE_FONT_DIR"}
    env.update(FONTCONFIG_FILE=str(conf), HOME=str(tmp_path), PYTHONPATH=str(REPO), XDG_CACHE_HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", _NO_FONTS_SCRIPT], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["faces"] == [report["bundled"]]  # the host's fonts are hidden
    assert all(count > 40 for count in report["ink"].values()), report["ink"]
    assert report["distinct"] == 4  # a missing-glyph box would look the same for each
    assert "U+1F600" in report["emoji"] and "apt-get install" in report["emoji"], report["emoji"]


def test_bundled_font_is_small_and_licensed() -> None:
    from ci_engine.watermark.fonts import BUNDLED_CJK

    path = Path(BUNDLED_CJK.path)
    assert path.stat().st_size < 3_100_000
    assert "SIL OPEN FONT LICENSE Version 1.1" in (path.parent / "OFL.txt").read_text("utf-8")
    assert BUNDLED_CJK.covers("版") and BUNDLED_CJK.covers("A") and not BUNDLED_CJK.covers("😀")


def test_uncovered_characters_fail_before_drawing() -> None:
    import numpy as np

    import ci_engine
    from ci_engine.watermark.fonts import FontNotFoundError
    from tests.support.images import encode

    base = encode(np.full((40, 40, 3), 255, np.uint8), "PNG")
    with pytest.raises(FontNotFoundError) as info:
        ci_engine.process(base, f"watermark/2/text/{b64('ok 😀')}")
    assert info.value.status == 501 and not info.value.maskable
    assert "'😀' (U+1F600)" in info.value.message
