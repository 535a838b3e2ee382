"""A live ``ci-engine serve`` for the server tests: the real command in a subprocess on
127.0.0.1 with ``--port 0`` and keys, its ``listening on`` line read for the port, stopped
with SIGTERM at the end (which must exit 0)."""

from __future__ import annotations

import io
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SECRET_ID = "AKIDci-engine-test"
SECRET_KEY = "test-secret-key-0123456789"
REGION = "ap-guangzhou"

PHOTOS = "photos-1250000000"
GUARDED = "guarded-1250000000"  # original-image protection on
HOTLINK = "hotlink-1250000000"  # Referer allow list, empty Referer refused
PUBLIC = "public-1250000000"  # unsigned downloads allowed
MISSING = "missing-1250000000"  # never created

MAX_BODY = 8 * 1024 * 1024

CONFIG = f"""
default_bucket = "{PHOTOS}"
max_body_bytes = {MAX_BODY}
workers = 2
max_pending = 32
fsync = false
cors_origins = ["http://localhost:3000"]

[buckets."{PHOTOS}"]
separators = "!-"

[buckets."{GUARDED}"]
separators = "!"
protection = true

[buckets."{HOTLINK}"]
hotlink = {{ mode = "allow", referers = ["*.example.com", "localhost:3000"], allow_empty = false }}

[buckets."{PUBLIC}"]
public_read = true
"""


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    root: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def read_listening_line(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> str:
    """The first stdout line of ``proc``, within ``timeout`` seconds."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not selector.select(left):
            proc.kill()
            raise AssertionError(f"no listening line within {timeout} s; got {line!r}")
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            proc.wait(10)
            raise AssertionError(f"server exited ({proc.returncode}) before listening: {log.read_text()}")
        line += chunk
    return line.decode().strip()


def start_server(root: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    cmd = [sys.executable, "-m", "ci_engine", "serve", "--root", str(root), "--port", "0", *extra]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    log = root.parent / f"{root.name}-server.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, env=full_env, cwd=REPO)
    line = read_listening_line(proc, log)
    assert line.startswith("listening on http://127.0.0.1:"), line
    port = int(line.rsplit(":", 1)[1])
    return Server(proc, "127.0.0.1", port, root, log)


def start_configured(base: Path, config: str, *extra: str) -> Server:
    """``ci-engine serve`` with ``config`` as ``base/server.toml``, the test keys and ``extra``
    arguments; its root is ``base/root``."""
    base.mkdir(parents=True, exist_ok=True)
    path = base / "server.toml"
    path.write_text(config)
    return start_server(
        base / "root", "--config", str(path), "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY, *extra
    )


def stop_server(server: Server, timeout: float = 20.0) -> int:
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        raise


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_configured(
        tmp_path_factory.mktemp("ci-serve"),
        CONFIG,
        *(arg for name in (PHOTOS, GUARDED, HOTLINK, PUBLIC) for arg in ("--bucket", name)),
    )
    try:
        yield srv
    finally:
        code = stop_server(srv)
        assert code == 0, (code, srv.log_text())


def make_client(server: Server, mode: str, *, secret_key: str = SECRET_KEY):  # type: ignore[no-untyped-def]
    from qcloud_cos import CosConfig, CosS3Client

    if mode == "proxy":
        cfg = CosConfig(
            Region=REGION,
            SecretId=SECRET_ID,
            SecretKey=secret_key,
            Scheme="http",
            Proxies={"http": server.url},
        )
    else:
        cfg = CosConfig(
            Region=REGION, SecretId=SECRET_ID, SecretKey=secret_key, Scheme="http", IP=server.host, Port=server.port
        )
    return CosS3Client(cfg, retry=0)


@pytest.fixture(scope="session", params=["proxy", "ip"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def client(server: Server, mode: str):  # type: ignore[no-untyped-def]
    return make_client(server, mode)


@pytest.fixture(scope="session")
def photo() -> bytes:
    return (REPO / "docs" / "samples" / "kleiber.jpg").read_bytes()


@pytest.fixture(scope="session")
def big_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A multi-megabyte JPEG: the sample photograph enlarged to 4800 x 2700 at quality 98
    (about 2.3 MB), so the SDK's upload_file switches to multipart (parts of 1 MB)."""
    from PIL import Image

    with Image.open(REPO / "docs" / "samples" / "kleiber.jpg") as im:
        big = im.resize((4800, 2700), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    big.save(out, "JPEG", quality=98, subsampling=0)
    path = tmp_path_factory.mktemp("big") / "kleiber-4800.jpg"
    path.write_bytes(out.getvalue())
    assert path.stat().st_size > 2 * 1024 * 1024
    return path
