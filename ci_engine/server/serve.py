"""``ci-engine serve``: run the app under uvicorn.

* The socket is bound here (``--port 0`` picks a free port); once uvicorn accepts on it, the
  first line on stdout is ``listening on http://HOST:PORT``, flushed, so a script or a test
  fixture can read the port.
* SIGINT / SIGTERM: stop accepting, give in-flight requests ``grace_period`` seconds, exit 0
  (uvicorn would re-raise the signal after its graceful shutdown; this runner does not).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Generator
from typing import Any

import uvicorn

from ci_engine.server.app import create_app
from ci_engine.server.config import ServerConfig

__all__ = ["run", "bind"]

log = logging.getLogger("ci_engine.server")


class _Server(uvicorn.Server):
    """uvicorn's server, with signals that end in a clean exit (status 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: Any) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``0``: a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio turns Nagle off only on accepted sockets whose proto says TCP;
    # with proto 0 a response written as headers then a small body waited for the client's
    # delayed ACK, 40 ms per small response (TCP_NODELAY on the listener is inherited too)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def run(config: ServerConfig, *, log_level: str = "warning") -> int:
    """Serve until SIGINT/SIGTERM; returns the exit status (0)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO if log_level in ("info", "debug") else logging.WARNING)
    app = create_app(config)
    app.startup()
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    uv_config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=int(max(1, config.grace_period)),
        access_log=False,
        server_header=False,
        date_header=True,
        h11_max_incomplete_event_size=64 * 1024,
    )
    server = _Server(uv_config)

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            sys.stdout.write(f"listening on http://{shown}:{port}\n")
            sys.stdout.flush()
        await task

    try:
        asyncio.run(main())
    finally:
        sock.close()
        app.shutdown()
    return 0
