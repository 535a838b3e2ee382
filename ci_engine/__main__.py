"""``python -m ci_engine`` / ``ci-engine``: the command line (``docs/usage.md``).

The implementation is :mod:`ci_engine.cli`; ``main(argv) -> int`` is the console-script
entry point named in ``pyproject.toml``.
"""

from __future__ import annotations

import sys

from ci_engine.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
