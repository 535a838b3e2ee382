"""Small XML helpers: build COS response documents, read request documents safely."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterable
from typing import Union
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from starlette.responses import Response

from ci_engine.server.errors import MalformedXMLError

__all__ = ["Node", "render", "xml_response", "parse_xml", "child_text", "http_date", "iso_time", "MAX_XML_BYTES"]

MAX_XML_BYTES = 1 << 20
"""Largest request document read (style, complete-multipart and CI requests are far smaller)."""

Node = Union[tuple[str, object], tuple[str, "Iterable[Node]"]]


def _render(name: str, value: object, out: list[str]) -> None:
    if isinstance(value, (list, tuple)):
        out.append(f"<{name}>")
        for child in value:
            _render(child[0], child[1], out)
        out.append(f"</{name}>")
    elif value is None:
        out.append(f"<{name}/>")
    else:
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(f"<{name}>{escape(str(value))}</{name}>")


def render(root: str, children: Iterable[tuple[str, object]]) -> str:
    """``<?xml ...?><root>children</root>``; a child whose value is a list of ``(name, value)``
    pairs becomes an element with those children."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _render(root, list(children), out)
    return "".join(out)


def xml_response(root: str, children: Iterable[tuple[str, object]], status: int = 200) -> Response:
    return Response(render(root, children).encode("utf-8"), status_code=status, media_type="application/xml")


def parse_xml(body: bytes, root: str | None = None) -> ElementTree.Element:
    """Parse a request document (no DTDs, no entities); ``root`` checks the root element."""
    if len(body) > MAX_XML_BYTES:
        raise MalformedXMLError(f"xml: the request document is larger than {MAX_XML_BYTES} bytes")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise MalformedXMLError("xml: document type declarations are not accepted")
    try:
        element = ElementTree.fromstring(body)  # noqa: S314 - DTDs refused above; expat expands no external entity
    except ElementTree.ParseError as exc:
        raise MalformedXMLError(f"xml: the request document is not well-formed ({exc})") from None
    if root is not None and element.tag != root:
        raise MalformedXMLError(f"xml: expected a <{root}> document, got <{element.tag}>")
    return element


def child_text(element: ElementTree.Element, name: str) -> str | None:
    found = element.find(name)
    if found is None:
        return None
    return (found.text or "").strip()


def http_date(timestamp: float) -> str:
    """``Last-Modified`` format: ``Sun, 06 Dec 2026 12:00:00 GMT``."""
    return email.utils.formatdate(timestamp, usegmt=True)


def iso_time(timestamp: float) -> str:
    """``2026-12-06T12:00:00.000Z`` (list results)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(timestamp))
