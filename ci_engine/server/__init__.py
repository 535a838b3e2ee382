"""A CI-compatible HTTP service: the official COS SDKs work against ``ci-engine serve``
unchanged (``docs/server.md``).

:func:`create_app` returns the ASGI application for a :class:`ServerConfig`; ``ci-engine
serve`` runs it under uvicorn (:mod:`ci_engine.server.serve`). The server uses the library's
public API only (``process``, ``persist``, ``StyleRegistry``, ``resolve_request``, ``Store``,
``CIError``); an import-linter contract keeps it away from the planner and the backends.
"""

from __future__ import annotations

from ci_engine.server.app import App, create_app
from ci_engine.server.config import BucketConfig, ConfigError, HotlinkConfig, ServerConfig

__all__ = ["App", "BucketConfig", "ConfigError", "HotlinkConfig", "ServerConfig", "create_app"]
