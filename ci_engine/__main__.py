"""``python -m ci_engine`` / ``ci-engine``: the command line (``docs/usage.md``).

The implementation is :mod:`ci_engine.cli`; ``main(argv) -> int`` is the console-script
entry point named in ``pyproject.toml``.
"""

from __future__ import annotations

import gc
import sys

# Start-up allocates a few hundred thousand long-lived objects (classes, functions, tables)
# and no garbage worth collecting: the cyclic collector is paused while the command line
# imports them (about a seventh of the import time otherwise) and resumed before any
# command runs (docs/architecture.md, "Start-up").
_collecting = gc.isenabled()
gc.disable()
try:
    from ci_engine.cli import main
finally:
    if _collecting:
        gc.enable()

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
