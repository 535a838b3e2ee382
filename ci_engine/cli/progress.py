"""Progress of a batch: a bar with rate and ETA on a terminal, plain lines otherwise.

:class:`Progress` is told about every finished item (:meth:`Progress.done`) and renders:

- ``bar``: one line redrawn in place (at most ten times a second), failures printed above it
  as they happen;
- ``lines``: one line per finished item with the count, the rate and the ETA (for logs and
  pipes, where ``\\r`` would make a mess);
- ``none``: nothing (the summary is still printed).
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import IO

__all__ = ["Progress", "format_duration", "choose_mode"]

MODES = ("auto", "bar", "lines", "none")


def choose_mode(mode: str, stream: IO[str]) -> str:
    """``auto`` is ``bar`` on a terminal, ``lines`` otherwise."""
    if mode != "auto":
        return mode
    try:
        return "bar" if stream.isatty() else "lines"
    except (AttributeError, ValueError):
        return "lines"


def format_duration(seconds: float) -> str:
    """``0:07``, ``12:34``, ``1:02:03``."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts finished items and renders the progress (see the module docstring)."""

    def __init__(self, total: int, *, mode: str = "auto", stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.mode = choose_mode(mode, self.stream)
        self.total = total
        self.finished = 0
        self.failed = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False

    # -- figures -----------------------------------------------------------------------------------
    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    @property
    def rate(self) -> float:
        """Items per second so far."""
        elapsed = self.elapsed
        return self.finished / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (``None`` before the first item)."""
        rate = self.rate
        if rate <= 0:
            return None
        return (self.total - self.finished) / rate

    def _figures(self) -> str:
        eta = self.eta
        eta_text = format_duration(eta) if eta is not None else "-:--"
        failed = f", {self.failed} failed" if self.failed else ""
        return f"{self.rate:.1f} files/s, ETA {eta_text}{failed}"

    # -- events ---------------------------------------------------------------------------------------
    def done(self, name: str, *, ok: bool, note: str = "") -> None:
        """Record a finished item; ``note`` is the error (or what was written)."""
        self.finished += 1
        if not ok:
            self.failed += 1
        if self.mode == "lines":
            width = len(str(self.total))
            status = "ok    " if ok else "FAILED"
            tail = (" " if ok else ": ") + note if note else ""
            print(
                f"[{self.finished:>{width}}/{self.total}] {status} {name}{tail}  ({self._figures()})",
                file=self.stream,
                flush=True,
            )
        elif self.mode == "bar":
            if not ok:
                self._clear()
                print(f"FAILED {name}: {note}", file=self.stream, flush=True)
            self._draw(force=not ok or self.finished == self.total)

    def close(self) -> None:
        """Leave the terminal clean (the bar is erased; the summary follows)."""
        if self.mode == "bar":
            self._clear()

    # -- the bar ----------------------------------------------------------------------------------
    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        columns = shutil.get_terminal_size((80, 24)).columns
        fraction = self.finished / self.total if self.total else 1.0
        text = f" {self.finished}/{self.total} {fraction:4.0%}  {self._figures()}"
        room = max(10, min(40, columns - len(text) - 3))
        filled = round(room * fraction)
        bar = "[" + "#" * filled + "." * (room - filled) + "]"
        self.stream.write("\r" + (bar + text)[: columns - 1] + "\x1b[K")
        self.stream.flush()
        self._drawn = True
