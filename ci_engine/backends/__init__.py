"""Backend registry: ``get_backend("auto" | "vips" | "pillow")``.

``auto`` (the default, or the ``CI_ENGINE_BACKEND`` environment variable) uses libvips
when pyvips imports and falls back to Pillow otherwise, logging the reason. Naming a
backend that cannot load raises :class:`~ci_engine.errors.BackendUnavailableError` with the
import error and the remedies. Backends are imported lazily: ``import ci_engine`` loads
neither pyvips nor Pillow.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from ci_engine.backends.base import Backend, Capabilities
from ci_engine.errors import BackendUnavailableError

__all__ = ["Backend", "Capabilities", "get_backend", "available_backends", "BACKEND_ENV"]

log = logging.getLogger(__name__)

BACKEND_ENV = "CI_ENGINE_BACKEND"
_INSTANCES: dict[str, Backend[Any]] = {}
_LOCK = threading.Lock()


def _load(name: str) -> Backend[Any]:
    if name == "vips":
        try:
            from ci_engine.backends.vips import VipsBackend
        except (ImportError, OSError) as exc:
            raise BackendUnavailableError(
                "backend 'vips' is unavailable: pyvips or libvips cannot be loaded "
                "(install the 'pyvips-binary' wheel, or a system libvips >= 8.15; "
                "or use backend='pillow')",
                detail=repr(exc),
            ) from exc
        return VipsBackend()
    if name == "pillow":
        try:
            from ci_engine.backends.pillow import PillowBackend  # type: ignore[import-not-found, import-untyped, unused-ignore]
        except ImportError as exc:
            raise BackendUnavailableError("backend 'pillow' is unavailable", detail=repr(exc)) from exc
        backend: Backend[Any] = PillowBackend()
        return backend
    # A programming or configuration mistake, not a client error (docs/errors.md).
    raise ValueError(f"backend must be 'auto', 'vips' or 'pillow', got {name!r}")


def get_backend(name: str | None = "auto") -> Backend[Any]:
    """The backend called ``name`` (one shared instance per name)."""
    name = name or "auto"
    if name == "auto":
        name = os.environ.get(BACKEND_ENV, "auto") or "auto"
    if name == "auto":
        try:
            return get_backend("vips")
        except BackendUnavailableError as exc:
            log.info("backend auto: using pillow because vips is unavailable (%s)", exc.detail)
            return get_backend("pillow")
    with _LOCK:
        if name not in _INSTANCES:
            _INSTANCES[name] = _load(name)
        return _INSTANCES[name]


def available_backends() -> list[str]:
    """Names of the backends that load here."""
    out = []
    for name in ("vips", "pillow"):
        try:
            get_backend(name)
        except BackendUnavailableError:
            continue
        out.append(name)
    return out
