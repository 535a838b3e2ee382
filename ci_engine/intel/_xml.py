"""The ``<Response>`` XML bodies of ``ci-process`` requests: elements in the given order,
text escaped, booleans as CI writes them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["response", "lines"]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return escape(str(value))


def lines(children: Sequence[tuple[str, Any]], depth: int) -> list[str]:
    """Indented lines for ``(name, value)`` pairs; a list value nests."""
    pad = "    " * depth
    out = []
    for name, value in children:
        if isinstance(value, list):
            out.append(f"{pad}<{name}>")
            out += lines(value, depth + 1)
            out.append(f"{pad}</{name}>")
        else:
            out.append(f"{pad}<{name}>{_text(value)}</{name}>")
    return out


def response(children: Sequence[tuple[str, Any]], root: str = "Response") -> bytes:
    """``<?xml ...?><Response>...</Response>`` as UTF-8 bytes."""
    body = ['<?xml version="1.0" encoding="UTF-8"?>', f"<{root}>", *lines(children, 1), f"</{root}>"]
    return ("\n".join(body) + "\n").encode("utf-8")
