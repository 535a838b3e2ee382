"""``ci-engine process``'s fast argument path gives what argparse gives, or steps aside.

``ci_engine.cli.fast_process_args`` reads the everyday forms of ``process`` without
importing argparse; for every other form it answers ``None`` and argparse parses the
command line. Compared here with argparse on generated command lines: whenever the fast
path answers, its namespace is argparse's, attribute by attribute.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_engine.cli import build_parser, fast_process_args

REPO = Path(__file__).resolve().parents[2]


def _argparse(words: list[str]) -> dict[str, object] | None:
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return vars(build_parser().parse_args(words))
    except SystemExit:
        return None


EVERYDAY = [
    ["process", "in.jpg", "imageMogr2/thumbnail/400x", "-o", "out.jpg"],
    ["process", "in.jpg", "imageMogr2/thumbnail/400x", "-o", "out.jpg", "-q"],
    ["process", "-q", "in.jpg", "imageMogr2/thumbnail/400x", "--output", "out.webp"],
    ["process", "in.jpg", "imageMogr2/thumbnail/400x", "--output=out.webp", "-v", "--ignore-error"],
    ["process", "-", "imageMogr2/format/png", "-o", "-"],
    ["process", "in.jpg", "imageMogr2/thumbnail/400x", "--backend", "pillow", "-o", "o.png"],
    ["process", "in.jpg", "imageMogr2/thumbnail/400x", "--backend=vips", "-o=o.png"],
    ["process", "in.jpg", "imageMogr2/thumbnail/400x"],
    ["process", "--quiet", "--verbose", "a", "b"],
]

ARGPARSE_ONLY = [
    ["process", "--help"],
    ["process", "in.jpg"],
    ["process", "in.jpg", "rule", "extra"],
    ["process", "in.jpg", "rule", "--backend", "magick"],
    ["process", "in.jpg", "rule", "--max-input-bytes", "10m"],
    ["process", "in.jpg", "rule", "--styles", "s.json"],
    ["process", "in.jpg", "rule", "--resources", "dir"],
    ["process", "in.jpg", "rule", "--out", "o.jpg"],
    ["process", "in.jpg", "rule", "-oo.jpg"],
    ["process", "in.jpg", "rule", "-o"],
    ["process", "in.jpg", "rule", "-o", "-x"],
    ["process", "--", "in.jpg", "rule"],
    ["process", "-qv", "in.jpg", "rule"],
    ["info", "in.jpg"],
    ["--version"],
    [],
]


@pytest.mark.parametrize("words", EVERYDAY, ids=" ".join)
def test_everyday_forms_take_the_fast_path_and_match_argparse(words: list[str]) -> None:
    fast = fast_process_args(words)
    assert fast is not None
    assert vars(fast) == _argparse(words)


@pytest.mark.parametrize("words", ARGPARSE_ONLY, ids=" ".join)
def test_other_forms_go_to_argparse(words: list[str]) -> None:
    assert fast_process_args(words) is None


TOKENS = [
    "in.jpg",
    "rule/x",
    "-",
    "-o",
    "--output",
    "out.png",
    "-q",
    "--quiet",
    "-v",
    "--ignore-error",
    "--backend",
    "vips",
    "magick",
    "--backend=auto",
    "-o=x.jpg",
    "--help",
    "--max-input-bytes",
    "5",
    "--",
    "-x",
    "--out",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=7))
def test_any_command_line_fast_path_never_differs_from_argparse(rest: list[str]) -> None:
    words = ["process", *rest]
    fast = fast_process_args(words)
    if fast is not None:
        assert vars(fast) == _argparse(words)


def test_pairs_of_options_exhaustively() -> None:
    options = [["-q"], ["-v"], ["--ignore-error"], ["-o", "o.jpg"], ["--backend", "pillow"], ["--output=x.webp"]]
    seen = 0
    for a, b in itertools.permutations(options, 2):
        for words in (["process", *a, "in", "r", *b], ["process", "in", *a, "r", *b], ["process", "in", "r", *a, *b]):
            fast = fast_process_args(words)
            assert fast is not None
            assert vars(fast) == _argparse(words)
            seen += 1
    assert seen == 90


def test_a_one_shot_process_loads_no_argparse(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from ci_engine.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(code, 'argparse' in sys.modules)\n"
    )
    out = tmp_path / "o.png"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "process",
            str(REPO / "docs/samples/kleiber.jpg"),
            "imageMogr2/thumbnail/20x",
            "-o",
            str(out),
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert result.stdout.split() == ["0", "False"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
