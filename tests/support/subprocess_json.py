"""Run a Python script in a fresh interpreter and read the JSON it prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_json_script(code: str, **env: str) -> Any:
    """``code`` run by this interpreter in the repository root, with ``env`` added to the
    environment; the JSON value on the last line it prints."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, **env},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])
