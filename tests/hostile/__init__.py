"""Hostile input: bombs, malformed files, fuzzing, concurrency, leaks and escapes (issue 8).

The subprocess helpers shared by these tests live here: :func:`measure` runs inputs through
``process()`` in a fresh interpreter (``tests/hostile/runner.py``) and returns what each one
cost."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "runner.py"
ADDRESS_SPACE = 8 << 30
"""RLIMIT_AS of the measuring subprocess: a bomb that got past every check fails there with
MemoryError instead of swapping the machine."""


def measure(
    backend: str,
    *,
    bombs: Sequence[str] = (),
    files: dict[str, bytes] | None = None,
    rule: str = "imageMogr2/thumbnail/64x64",
    decode: tuple[int, int] | None = None,
    repeat: int = 3,
    timeout: float = 300,
) -> dict[str, dict[str, Any]]:
    """Run ``bombs`` (names in tests/fixtures/bombs) and ``files`` through ``process()`` in a
    subprocess; name -> report (see ``runner.py``). The subprocess is started through
    ``sh`` so that its ``ru_maxrss`` starts from the shell's, not from this process'."""
    request = {
        "backend": backend,
        "rule": rule,
        "bombs": list(bombs),
        "files": {name: data.hex() for name, data in (files or {}).items()},
        "address_space": ADDRESS_SPACE,
        "decode": list(decode) if decode else None,
        "repeat": repeat,
    }
    proc = subprocess.run(
        ["/bin/sh", "-c", '"$0" "$@"; exit $?', sys.executable, str(RUNNER)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    done = {report["name"]: report for report in reports}
    expected = len(bombs) + len(files or {})
    assert proc.returncode == 0 and len(done) == expected, (
        f"runner.py ({backend}) exited {proc.returncode} after {len(done)}/{expected} inputs "
        f"(a crash on the next one?)\n{proc.stderr[-4000:]}"
    )
    return done
