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


# -- 2. ignore-error/1 in a URL: one call gives CI's answer --------------------------------------------

URL = "https://photos-1250000000.cos.ap-guangzhou.myqcloud.com/cat.jpg?q-sign-algorithm=sha1&imageMogr2/blur/80x5/ignore-error/1"


def test_process_url_masks_a_refused_value_like_ci() -> None:
    import ci_engine
    from tests.support.images import sample

    photo = sample()
    with pytest.raises(ci_engine.ValueRangeError):  # the two-call way still raises at parse_url
        ci_engine.parse_url(URL)
    result = ci_engine.process_url(photo, URL)
    assert result.data == photo and result.format == "jpeg" and (result.width, result.height) == (1200, 675)
    assert isinstance(result.masked, ci_engine.ValueRangeError) and "blur: radius" in result.masked.message
    same = ci_engine.process(photo, "imageMogr2/blur/80x5/ignore-error/1")
    assert same.data == result.data and type(same.masked) is type(result.masked)
    # Without ignore-error/1 the error is raised, and a good URL is processed.
    with pytest.raises(ci_engine.ValueRangeError):
        ci_engine.process_url(photo, URL.replace("/ignore-error/1", ""))
    small = ci_engine.process_url(photo, URL.replace("blur/80x5/ignore-error/1", "thumbnail/100x"))
    assert (small.width, small.height, small.masked) == (100, 56, None)
    # A syntax error is never masked.
    with pytest.raises(ci_engine.ParseError):
        ci_engine.process_url(photo, URL.replace("blur/80x5", "blurr/8x5"))


# -- 4. what Python imaging users pass ------------------------------------------------------------------


def test_process_takes_paths_and_binary_files(tmp_path: Path) -> None:
    import ci_engine

    path = REPO / "docs" / "samples" / "kleiber.jpg"
    expected = ci_engine.process(path.read_bytes(), "imageMogr2/thumbnail/64x").data
    assert ci_engine.process(str(path), "imageMogr2/thumbnail/64x").data == expected
    assert ci_engine.process(path, "imageMogr2/thumbnail/64x").data == expected
    with path.open("rb") as handle:
        result = ci_engine.process(handle, "imageMogr2/thumbnail/64x")  # type: ignore[arg-type]
    assert result.data == expected
    out = tmp_path / "small.jpg"
    result.save(out)
    assert out.read_bytes() == expected
    result.save(str(tmp_path / "again.jpg"))
    assert (tmp_path / "again.jpg").read_bytes() == expected


def test_programming_mistakes_are_type_and_value_errors(tmp_path: Path) -> None:
    import io as _io

    import ci_engine

    photo = (REPO / "docs" / "samples" / "kleiber.jpg").read_bytes()
    with pytest.raises(FileNotFoundError):
        ci_engine.process(tmp_path / "missing.jpg", "imageMogr2/thumbnail/64x")
    with pytest.raises(TypeError, match="got a str that names no file"):  # a str may be mistaken data
        ci_engine.process(str(tmp_path / "missing.jpg"), "imageMogr2/thumbnail/64x")
    with pytest.raises(TypeError, match="binary mode"):
        ci_engine.process(_io.StringIO("text"), "imageMogr2/thumbnail/64x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ci_engine.process(12345, "imageMogr2/thumbnail/64x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend must be 'auto', 'vips' or 'pillow', got 'magick'"):
        ci_engine.process(photo, "imageInfo", backend="magick")
    try:
        ci_engine.process(photo, "imageMogr2/thumbnail/64x", backend="magick")
    except ci_engine.CIError:  # pragma: no cover - the failure this test guards against
        pytest.fail("a bad backend name is not a client error")
    except ValueError:
        pass


# -- 5. errors found after parsing: the caret at the token ----------------------------------------------


@pytest.mark.parametrize(
    ("rule", "cls", "column", "width"),
    [
        ("imageMogr2/iradius/400", "ValueRangeError", 20, 3),
        ("imageMogr2/thumbnail/400x/format/tpg", "UnsupportedOperationError", 34, 3),
        ("imageMogr2%2Fthumbnail%2F400x%2Fformat%2Fsvgc", "UnsupportedOperationError", 34, 4),
        ("imageMogr2/cut/10x10x9999x0", "ValueRangeError", 16, 12),
    ],
)
def test_errors_after_parsing_have_the_caret(rule: str, cls: str, column: int, width: int) -> None:
    import ci_engine

    photo = (REPO / "docs" / "samples" / "kleiber.jpg").read_bytes()
    with pytest.raises(ci_engine.CIError) as info:
        ci_engine.process(photo, rule)
    error = info.value
    assert type(error).__name__ == cls
    assert error.column == column
    assert str(error).splitlines()[-1] == " " * (column - 1) + "^" * width
    if cls == "UnsupportedOperationError":
        assert (error.code, error.status, error.maskable) == ("NotImplemented", 501, False)


# -- 3. what ignore-error masks: the docs and the code agree --------------------------------------------


def test_ignore_error_does_not_mask_undecodable_input_and_the_docs_say_so() -> None:
    import ci_engine

    with pytest.raises(ci_engine.InvalidImageFormatError) as info:
        ci_engine.process(b"not an image at all", "imageMogr2/thumbnail/10x/ignore-error/1")
    assert info.value.maskable is False
    usage = (REPO / "docs" / "usage.md").read_text("utf-8")
    assert "undecodable or unsupported inputs" not in usage
    assert (
        "undecodable inputs\n(`InvalidImageFormat`) and unbuilt features (`NotImplemented`) are never masked" in usage
    )
    assert "A file that\ncannot be decoded (`InvalidImageFormat`) is never masked" in usage
    errors = (REPO / "docs" / "errors.md").read_text("utf-8")
    section = errors[errors.index('<a id="InvalidImageFormat"></a>') :][:600]
    assert "**Masked:** no." in section


# -- 6. imageAve: one computation, one answer -----------------------------------------------------------


def test_image_ave_is_the_same_from_process_and_persist() -> None:
    import re

    import ci_engine
    from ci_engine.backends import available_backends
    from ci_engine.store import MemoryStore

    photo = (REPO / "docs" / "samples" / "kleiber.jpg").read_bytes()
    for backend in available_backends():
        ave = json.loads(ci_engine.process(photo, "imageAve", backend=backend).data)["RGB"]
        upload = ci_engine.persist(
            "k.jpg", photo, json.dumps({"is_pic_info": 1, "rules": []}), MemoryStore(), backend=backend
        )
        assert re.findall("<Ave>([^<]*)</Ave>", upload.to_xml()) == [ave], backend


# -- 8. the docs run as written ---------------------------------------------------------------------------


def test_the_watermarks_page_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    text = (REPO / "docs" / "watermarks.md").read_text("utf-8")
    code = re.search(r"```python\n(.*?)```", text, re.DOTALL)
    assert code is not None
    monkeypatch.chdir(REPO)
    source = code.group(1).replace('out.save("kleiber-logo.jpg")', f"out.save({str(tmp_path / 'out.jpg')!r})")
    scope: dict[str, object] = {}
    exec(compile(source, "docs/watermarks.md", "exec"), scope)
    out = scope["out"]
    assert (out.width, out.height, out.masked) == (1200, 675, None)  # type: ignore[attr-defined]
    assert (tmp_path / "out.jpg").read_bytes() == out.data  # type: ignore[attr-defined]


def test_local_directory_resolver_names_a_missing_folder(tmp_path: Path) -> None:
    from ci_engine.watermark import LocalDirectoryResolver

    with pytest.raises(
        FileNotFoundError, match=r"LocalDirectoryResolver: the folder .* does not exist; pass the folder"
    ):
        LocalDirectoryResolver(tmp_path / "bucket")
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        LocalDirectoryResolver(tmp_path / "file")


def test_the_gallery_auto_orient_example_turns_the_picture() -> None:
    from PIL import Image

    import ci_engine
    from ci_engine.io import probe

    gallery = REPO / "docs" / "gallery"
    sideways = (gallery / "input-sideways.jpg").read_bytes()
    assert probe(sideways).orientation == 6
    with Image.open(gallery / "input-sideways.jpg") as stored, Image.open(gallery / "auto-orient.jpg") as upright:
        assert stored.size == (203, 360) and upright.size == (360, 203)
    assert ci_engine.process(sideways, "imageMogr2/auto-orient").width == 360


# -- 7. the command line --------------------------------------------------------------------------------

SAMPLE = REPO / "docs" / "samples" / "kleiber.jpg"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "ci_engine", *args], capture_output=True, cwd=cwd or REPO, env=env, timeout=120
    )


def test_cli_output_errors_name_the_users_path_and_create_no_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "x.jpg"
    proc = cli("process", str(SAMPLE), "imageMogr2/thumbnail/10x", "-o", str(missing))
    assert proc.returncode == 3
    assert proc.stderr.decode() == f"ci-engine: {missing}: the folder {str(missing.parent)!r} does not exist\n"
    assert not (tmp_path / "no").exists()
    folder = tmp_path / "taken.jpg"
    folder.mkdir()
    proc = cli("process", str(SAMPLE), "imageMogr2/thumbnail/10x", "-o", str(folder))
    assert proc.returncode == 3
    message = proc.stderr.decode()
    assert message.startswith(f"ci-engine: {folder}: ") and ".part" not in message, message
    assert list(folder.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["taken.jpg"]


def test_cli_json_on_stdout_ends_with_a_newline() -> None:
    proc = cli("process", str(SAMPLE), "imageInfo", "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith(b"}\n") and json.loads(proc.stdout)["width"] == "1200"


def test_cli_missing_resources_gives_the_option_not_python() -> None:
    rule = f"watermark/1/image/{b64('http://example.com/logo.png')}"
    proc = cli("process", str(SAMPLE), rule, "-o", "-")
    assert proc.returncode == 3
    assert "command line: --resources DIR" in proc.stderr.decode()


def test_cli_batch_progress_counts_colliding_sources(tmp_path: Path) -> None:
    import shutil

    from PIL import Image

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SAMPLE, src / "a.jpg")
    shutil.copy(SAMPLE, src / "b.jpg")
    with Image.open(SAMPLE) as img:
        img.save(src / "a.png")  # a.png and a.jpg both become out/a.jpg
    proc = cli("batch", str(src), "imageMogr2/thumbnail/40x/format/jpg", str(tmp_path / "out"), "--progress", "lines")
    lines = proc.stderr.decode().splitlines()
    counters = [line.split("]")[0] + "]" for line in lines if line.startswith("[")]
    assert sorted(counters) == ["[1/3]", "[2/3]", "[3/3]"], lines
    assert any("a.png" in line and "OutputCollision" in line for line in lines), lines
    assert "done: 2 written, 0 skipped (up to date), 1 failed" in proc.stdout.decode() + proc.stderr.decode()


# -- 2 (continued). the HTTP service built on the library gives CI's answer too ------------------------


LOOPBACK = ("--host", "127.0.0.1", "--port", "0")


def test_server_masks_a_refused_value_and_serves_the_aigc_label(tmp_path: Path) -> None:
    """The real server (``ci-engine serve``, uvicorn, 127.0.0.1, stopped by the test):
    ``blur/80x5/ignore-error/1`` answers the original with 200, and
    ``ci-process=ImageAIGCMetadata`` the label as JSON."""
    import time
    import urllib.error
    import urllib.request

    import ci_engine

    bucket = "photos-1250000000"
    root = tmp_path / "buckets"
    (root / bucket).mkdir(parents=True)
    photo = SAMPLE.read_bytes()
    (root / bucket / "b.jpg").write_bytes(photo)
    labelled = ci_engine.process(photo, f"imageMogr2/thumbnail/64x/AIGCMetadata/Label/{b64('1')}").data
    (root / bucket / "a.jpg").write_bytes(labelled)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-m", "ci_engine", "serve", "--root", str(root), "--bucket", bucket, "--anonymous", *LOOPBACK],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        base = None
        assert server.stdout is not None
        while base is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if line.startswith("listening on "):
                base = line.split()[-1].rstrip("/")
        assert base is not None, "the server did not start"

        def get(path: str) -> tuple[int, bytes]:
            request = urllib.request.Request(base + path, headers={"Host": f"{bucket}.cos.ap-guangzhou.myqcloud.com"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        assert get("/b.jpg?imageMogr2/blur/80x5/ignore-error/1") == (200, photo)
        status, body = get("/b.jpg?imageMogr2/blur/80x5")
        assert status == 400 and b"<Code>InvalidArgument</Code>" in body
        assert get("/a.jpg?ci-process=ImageAIGCMetadata") == (200, b'{"AIGC": {"Label": "1"}}')
        assert get("/b.jpg?ci-process=ImageAIGCMetadata") == (200, b"{}")
    finally:
        server.terminate()
        server.wait(timeout=30)
