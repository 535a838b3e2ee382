"""The ``ci-engine`` command, run as a real subprocess (``sys.executable -m ci_engine``).

Exit codes (docs/usage.md): 0 ok, 1 batch items failed, 2 usage or processing-string
error, 3 image/file/limit error, 4 internal/backend/not-implemented, 130 interrupted.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import ci_engine
from ci_engine.cli.batch import find_tasks
from ci_engine.cli.common import exit_code

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "samples" / "kleiber.jpg"
LADYBIRD = ROOT / "docs" / "samples" / "ladybird.jpg"


def environment() -> dict[str, str]:
    # Bytecode caching on: every test starts a fresh interpreter, and recompiling ci_engine
    # in each one would double the time of this module.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ci_engine", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd or ROOT,
        env=environment(),
        timeout=timeout,
    )


def image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part") or ".ci-engine-" in p.name]


# -- process ---------------------------------------------------------------------------------------


def test_process_writes_the_format_of_the_rule(tmp_path: Path) -> None:
    out = tmp_path / "k.webp"
    proc = run("process", str(SAMPLE), "imageMogr2/thumbnail/400x/format/webp", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    img = image(out.read_bytes())
    assert (img.format, img.size) == ("WEBP", (400, 225))
    assert b"webp 400x225" in proc.stderr
    assert temp_files(tmp_path) == []


def test_process_takes_the_format_from_the_output_suffix(tmp_path: Path) -> None:
    out = tmp_path / "k.png"
    proc = run("process", str(SAMPLE), "imageMogr2/thumbnail/200x", "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert image(out.read_bytes()).format == "PNG"


def test_process_rule_format_wins_over_the_suffix(tmp_path: Path) -> None:
    out = tmp_path / "k.jpg"
    proc = run("process", str(SAMPLE), "imageMogr2/thumbnail/200x/format/png", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert image(out.read_bytes()).format == "PNG"
    assert b"warning" in proc.stderr


def test_process_stdin_to_stdout() -> None:
    proc = run("process", "-", "imageMogr2/thumbnail/120x/format/png", stdin=SAMPLE.read_bytes())
    assert proc.returncode == 0, proc.stderr
    img = image(proc.stdout)
    assert (img.format, img.size) == ("PNG", (120, 68))


def test_rule_error_exits_2_with_code_message_and_caret(tmp_path: Path) -> None:
    out = tmp_path / "x.jpg"
    proc = run("process", str(SAMPLE), "imageMogr2/blur/80x5", "-o", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.decode().splitlines()
    assert lines[0].startswith("ci-engine: InvalidArgument: blur: radius")
    assert "(column 17)" in lines[0]
    assert lines[1:3] == ["imageMogr2/blur/80x5", " " * 16 + "^^"]
    assert not out.exists()


def test_parse_error_points_at_the_token() -> None:
    proc = run("process", str(SAMPLE), "imageMogr2/thumbnail/400x/bogus/1", "-o", "-")
    assert proc.returncode == 2
    text = proc.stderr.decode()
    assert "InvalidArgument" in text
    caret = text.splitlines()[2]
    assert caret.index("^") == len("imageMogr2/thumbnail/400x/")


def test_ignore_error_writes_the_original(tmp_path: Path) -> None:
    out = tmp_path / "x.jpg"
    proc = run("process", str(SAMPLE), "imageMogr2/blur/80x5", "--ignore-error", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert b"ignore-error" in proc.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--max-input-bytes", "10k"], "ImageTooLarge"),
        (["--max-output-side", "300"], "ImageResolutionExceed"),
    ],
)
def test_limit_overrides_exit_3(tmp_path: Path, args: list[str], code: str) -> None:
    out = tmp_path / "x.jpg"
    proc = run("process", str(SAMPLE), "imageMogr2/thumbnail/400x", "-o", str(out), *args)
    assert proc.returncode == 3
    assert proc.stderr.decode().startswith(f"ci-engine: {code}: ")
    assert not out.exists()


def test_a_raised_limit_lets_it_through(tmp_path: Path) -> None:
    out = tmp_path / "x.jpg"
    proc = run("process", str(SAMPLE), "imageMogr2/thumbnail/400x", "-o", str(out), "--max-input-bytes", "1m")
    assert proc.returncode == 0, proc.stderr


def test_undecodable_and_missing_inputs_exit_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image at all")
    proc = run("process", str(bad), "imageMogr2/thumbnail/400x", "-o", str(tmp_path / "o.jpg"))
    assert proc.returncode == 3
    assert b"InvalidImageFormat" in proc.stderr
    proc = run("process", str(tmp_path / "missing.jpg"), "imageMogr2/thumbnail/400x", "-o", str(tmp_path / "o.jpg"))
    assert proc.returncode == 3
    assert b"missing.jpg" in proc.stderr


def test_usage_errors_exit_2() -> None:
    assert run("process").returncode == 2
    assert run("nonsense").returncode == 2
    assert run("batch", "a", "imageMogr2/thumbnail/1x", "b", "--jobs", "x").returncode == 2


def test_exit_code_mapping() -> None:
    assert exit_code(ci_engine.InvalidArgumentError("x")) == 2
    assert exit_code(ci_engine.NoSuchStyleError("x")) == 2
    assert exit_code(ci_engine.InvalidImageFormatError("x")) == 3
    assert exit_code(ci_engine.ImageTooLargeError("x", kind="input_bytes", limit=1, actual=2)) == 3
    assert exit_code(OSError(2, "No such file")) == 3
    assert exit_code(ci_engine.InternalError("x")) == 4
    assert exit_code(ci_engine.BackendError("x", backend="vips")) == 4
    assert exit_code(ci_engine.UnsupportedOperationError("x")) == 4


def _not_implemented_rule() -> str | None:
    for rule in ("imageSlim", "imageInspect", "ci-process=AIImageCrop&width=16&height=9", "QRcode/cover/1"):
        try:
            ci_engine.process(SAMPLE.read_bytes(), rule)
        except ci_engine.UnsupportedOperationError:
            return rule
        except ci_engine.CIError:
            continue
    return None


def test_not_implemented_exits_4(tmp_path: Path) -> None:
    rule = _not_implemented_rule()
    if rule is None:
        pytest.skip("every candidate operation is implemented now")
    proc = run("process", str(SAMPLE), rule, "-o", str(tmp_path / "o.jpg"))
    assert proc.returncode == 4
    assert b"NotImplemented" in proc.stderr


def test_styles_file_and_watermark_resources(tmp_path: Path) -> None:
    styles = tmp_path / "styles.json"
    styles.write_text(json.dumps({"card": "imageMogr2/thumbnail/!120x120r/crop/120x120"}))
    out = tmp_path / "card.webp"
    proc = run("process", str(SAMPLE), "style/card|imageMogr2/format/webp", "--styles", str(styles), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert image(out.read_bytes()).size == (120, 120)
    assert run("process", str(SAMPLE), "style/card", "-o", str(out)).returncode == 2  # NoSuchStyle

    resources = tmp_path / "bucket"
    resources.mkdir()
    Image.new("RGB", (40, 30), (255, 0, 0)).save(resources / "logo.png")
    rule = "watermark/1/image/bG9nby5wbmc/gravity/southeast"  # "logo.png"
    marked = tmp_path / "marked.png"
    proc = run("process", str(SAMPLE), rule, "--resources", str(resources), "-o", str(marked))
    assert proc.returncode == 0, proc.stderr
    pixel = image(marked.read_bytes()).convert("RGB").getpixel((1200 - 20, 675 - 15))
    assert pixel[0] > 200 and pixel[1] < 60


# -- info, explain, parse -----------------------------------------------------------------------------------


def test_info_prints_json() -> None:
    proc = run("info", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["header"]["width"] == 1200
    assert report["header"]["format"] == "jpeg"
    assert set(report) >= {"imageInfo", "exif", "imageAve"}
    info = report["imageInfo"]
    assert "error" in info or info["width"] == "1200"


def test_info_on_a_broken_image_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    assert run("info", str(bad)).returncode == 3


def test_explain_shows_ast_plan_and_resolved_plan() -> None:
    proc = run("explain", "imageMogr2/thumbnail/400x/format/webp", str(SAMPLE))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "ast      Pipeline(" in text
    assert "plan (" in text
    assert "image    jpeg 1200x675" in text
    assert "encode webp 400x225" in text


def test_parse_prints_the_canonical_form() -> None:
    proc = run("parse", "imageMogr2/thumbnail/400x/format/webp")
    assert proc.returncode == 0
    assert proc.stdout.decode().splitlines()[-1] == "imageMogr2/thumbnail/400x/format/webp"


# -- batch ----------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "nested" / "deeper").mkdir(parents=True)
    shutil.copy(SAMPLE, src / "a.jpg")
    shutil.copy(LADYBIRD, src / "b.JPG")
    shutil.copy(SAMPLE, src / "nested" / "c.jpg")
    shutil.copy(LADYBIRD, src / "nested" / "deeper" / "d.jpeg")
    (src / "nested" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (src / "notes.txt").write_text("not an image")
    return src


RULE = "imageMogr2/thumbnail/160x/format/webp"


def test_batch_writes_the_tree_and_reports_failures_by_code(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    proc = run("batch", str(tree), RULE, str(dest), "--jobs", "2")
    assert proc.returncode == 1, proc.stderr
    written = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert written == ["a.webp", "b.webp", "nested/c.webp", "nested/deeper/d.webp"]
    for path in dest.rglob("*.webp"):
        assert image(path.read_bytes()).size[0] == 160
    out = proc.stdout.decode()
    assert "4 written, 0 skipped (up to date), 1 failed" in out
    assert "InvalidImageFormat (1):" in out
    assert "nested/broken.jpg:" in out
    # Not a terminal: plain progress lines, one per file.
    lines = proc.stderr.decode().splitlines()
    assert sum(line.startswith("[") for line in lines) == 5
    assert any("FAILED nested/broken.jpg: InvalidImageFormat" in line for line in lines)


def test_batch_resumes_and_redoes_what_changed(tree: Path, tmp_path: Path) -> None:
    (tree / "nested" / "broken.jpg").unlink()
    dest = tmp_path / "out"
    first = run("batch", str(tree), RULE, str(dest), "--jobs", "1")
    assert first.returncode == 0, first.stderr
    assert "4 written, 0 skipped" in first.stdout.decode()
    stamps = {p: p.stat().st_mtime_ns for p in dest.rglob("*.webp")}

    again = run("batch", str(tree), RULE, str(dest), "-j", "1")
    assert again.returncode == 0
    assert "0 written, 4 skipped (up to date), 0 failed" in again.stdout.decode()
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*.webp")} == stamps

    later = time.time() + 5
    os.utime(tree / "a.jpg", (later, later))
    third = run("batch", str(tree), RULE, str(dest), "-j", "1")
    assert "1 written, 3 skipped" in third.stdout.decode()
    assert (dest / "a.webp").stat().st_mtime_ns != stamps[dest / "a.webp"]

    forced = run("batch", str(tree), RULE, str(dest), "-j", "1", "--force", "--progress", "none")
    assert "4 written, 0 skipped" in forced.stdout.decode()
    assert forced.stderr == b""


def test_batch_with_an_invalid_rule_exits_2_and_writes_nothing(tree: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    proc = run("batch", str(tree), "imageMogr2/thumbnail/400x/rotate/abc", str(dest))
    assert proc.returncode == 2
    assert b"^" in proc.stderr
    assert not dest.exists() or not any(dest.iterdir())


def test_batch_keeps_the_source_suffix_when_the_rule_keeps_the_format(tree: Path, tmp_path: Path) -> None:
    (tree / "nested" / "broken.jpg").unlink()
    dest = tmp_path / "out"
    proc = run("batch", str(tree), "imageMogr2/thumbnail/100x", str(dest), "-j", "2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == ["a.jpg", "b.JPG", "c.jpg", "d.jpeg"]


def test_batch_refuses_two_sources_with_one_output_name(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SAMPLE, src / "a.jpg")
    Image.open(SAMPLE).save(src / "a.png")
    plan = find_tasks(src, tmp_path / "out", ci_engine.parse(RULE))
    assert [t.name for t in plan.todo] == ["a.jpg"]
    assert [(o.task.name, o.code) for o in plan.collisions] == [("a.png", "OutputCollision")]


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough work (files of a few hundred ms each) to interrupt in the middle."""
    src = tmp_path_factory.mktemp("big") / "src"
    src.mkdir()
    for i in range(COPIES):
        shutil.copy(SAMPLE, src / f"photo{i:03d}.jpg")
    return src


COPIES = 24


@pytest.mark.parametrize("jobs", ["2", "1"])
def test_sigint_on_batch_leaves_no_partial_outputs(big_tree: Path, tmp_path: Path, jobs: str) -> None:
    dest = tmp_path / "out"
    rule = "imageMogr2/rotate/17/blur/8x4/format/png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ci_engine", "batch", str(big_tree), rule, str(dest), "--jobs", jobs],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=environment(),
    )
    try:
        assert proc.stderr is not None
        # Wait for the first finished file: the workers are busy with the next ones.
        first = proc.stderr.readline()
        assert b"ok" in first, first
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted:" in stdout.decode()
    assert temp_files(dest) == []
    outputs = sorted(dest.glob("*.png"))
    assert 1 <= len(outputs) < COPIES
    for path in outputs:  # every output that exists is complete
        assert image(path.read_bytes()).format == "PNG"
    # A second run would resume: exactly the missing outputs are left to do.
    plan = find_tasks(big_tree, dest, ci_engine.parse(rule))
    assert len(plan.skipped) == len(outputs)
    assert len(plan.todo) == COPIES - len(outputs)
