"""``python -m ci_engine`` / ``ci-engine``: the command line (``docs/usage.md``).

The implementation is :mod:`ci_engine.cli`; :func:`main` (``main(argv) -> int``) is the
console-script entry point named in ``pyproject.toml``.
"""

from __future__ import annotations

import gc
import sys

# Start-up allocates a few hundred thousand long-lived objects (classes, functions, tables)
# and no garbage worth collecting: the cyclic collector is paused while the command line
# imports them (about a seventh of the import time otherwise), then they are moved to the
# permanent generation (``gc.freeze``), so that the collections of the command itself (the
# backend's import, the work) do not walk them again, and the collector is resumed before
# any command runs (docs/architecture.md, "Start-up").
_collecting = gc.isenabled()
gc.disable()
try:
    from ci_engine.cli import main as _main
finally:
    gc.freeze()
    if _collecting:
        gc.enable()

__all__ = ["main"]

ONE_SHOT = frozenset({"process", "info", "explain", "parse"})
"""Commands after which the process ends without tearing the interpreter down."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line (``ci_engine.cli.main``); returns the exit code.

    Run as the program itself (``argv`` None: the console script, ``python -m ci_engine``)
    for a one-shot command, it ends the process once the command is done: the ``atexit``
    handlers run and the standard streams are flushed as at a normal exit, but the
    interpreter does not free its objects one by one (the operating system reclaims the
    memory), which cost a one-shot ``process`` about as much as a fifth of its start-up. A
    call with ``argv`` (tests, embedding) returns as usual, and so do ``batch`` and
    ``serve``."""
    one_shot = argv is None and len(sys.argv) > 1 and sys.argv[1] in ONE_SHOT
    if one_shot:
        # One command, then the process ends: the cyclic collector would only walk the
        # backend's start-up objects (about half a millisecond of collections); whatever
        # cycles the command leaves go with the process.
        gc.disable()
    code = _main(argv)
    if one_shot:
        _end_now(code)
    return code


def _end_now(code: int) -> None:
    import atexit
    import os

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # the normal exit reports it (e.g. a closed pipe)
        return
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
