"""Fixtures of the job and S3 tests: moto's standalone S3 server on 127.0.0.1, a TCP relay in
front of it that can refuse or stall connections, and one Dask ``LocalCluster`` of two worker
processes shared by the whole session (starting one costs seconds)."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "kleiber.jpg"

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def aws_env() -> Iterator[None]:
    old = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def moto_endpoint(aws_env: None) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of moto's standalone server (a thread of this process)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty S3 bucket on moto."""
    import boto3

    name = f"t-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


class Relay:
    """A TCP relay on 127.0.0.1 to ``target``: ``mode`` ``"pass"`` forwards, ``"refuse"``
    closes each new connection at once, ``"stall"`` accepts and never answers."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode = "pass"
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            if self.mode == "refuse":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
            elif self.mode == "stall":
                self._held.append(conn)
            else:
                threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn, socket.create_connection(self.target) as up:
            while not self._stop.is_set():
                ready, _, _ = select.select([conn, up], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is conn else conn).sendall(data)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        for conn in self._held:
            conn.close()
        self._thread.join(timeout=5)


@pytest.fixture
def relay(moto_endpoint: str) -> Iterator[Relay]:
    host, port = moto_endpoint.removeprefix("http://").split(":")
    r = Relay((host, int(port)))
    yield r
    r.close()


@pytest.fixture(scope="session")
def cluster(aws_env: None) -> Iterator[object]:
    """A ``LocalCluster`` of 2 worker processes (one thread each) for the session."""
    from ci_engine.jobs import Cluster

    c = Cluster(workers=2)
    c.start()
    yield c
    c.close()
