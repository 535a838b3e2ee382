"""No escape: watermark resources and ``Pic-Operations`` fileids never reach the network or
a path outside their root unless explicitly allowed.

Tried through the public APIs (``process(..., resources=...)``, the resolvers of
``ci_engine.watermark``, ``persistent.resolve_fileid`` and ``store.LocalStore``): ``..``,
absolute paths, percent-encoded traversal, symlinks (to files, to directories, loops),
``file://``, ``http://127.0.0.1`` and other private addresses, and overlong names. A loopback
listener counts every connection attempt; the only one allowed is the explicit
``NetworkResolver(allow_private=True)`` case.
"""

from __future__ import annotations

import base64
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import ci_engine as ce
from ci_engine.errors import AccessDeniedError, CIError, InvalidArgumentError, InvalidPicOperationsError
from ci_engine.persistent import resolve_fileid
from ci_engine.store import LocalStore
from ci_engine.watermark import LocalDirectoryResolver, NetworkResolver
from tests.hostile.corpus import samples

SECRET = b"top secret: must never be read"
COS = "http://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"


class Listener:
    """A loopback HTTP server that counts requests and serves one PNG (bounded: it stops
    with the test)."""

    def __init__(self) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = samples()["png"]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/ with a logo, symlinks out of it and a loop; outside/ with the secret."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.png").write_bytes(SECRET)
    (root / "logo.png").write_bytes(samples()["png"])
    (root / "sub").mkdir()
    (root / "link-to-secret.png").symlink_to(outside / "secret.png")
    (root / "link-to-outside").symlink_to(outside, target_is_directory=True)
    (root / "loop-a").symlink_to(root / "loop-b")
    (root / "loop-b").symlink_to(root / "loop-a")
    return root


def b64(url: str) -> str:
    return base64.urlsafe_b64encode(url.encode()).decode()


HOSTILE_NAMES = [
    "../outside/secret.png",
    "sub/../../outside/secret.png",
    "/etc/passwd",
    "%2e%2e/outside/secret.png",
    "..%2foutside%2fsecret.png",
    "sub/..\\..\\outside\\secret.png",
    "link-to-secret.png",
    "link-to-outside/secret.png",
    "loop-a",
    "logo.png\x00.txt",
    "a" * 900 + ".png",
    "sub/" + "b/" * 500 + "x.png",
    "file:///etc/passwd",
    "file://localhost/etc/passwd",
    "ftp://127.0.0.1/x.png",
    "http://127.0.0.1/logo.png",
    "http://localhost/logo.png",
    "http://[::1]/logo.png",
    "http://169.254.169.254/latest/meta-data/",
    "http://2130706433/logo.png",
    "http://0x7f000001/logo.png",
    f"{COS}/../outside/secret.png",
    f"{COS}/%2e%2e/outside/secret.png",
    f"{COS}//etc/passwd",
    f"{COS}/link-to-secret.png",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_local_resolver_stays_in_its_root(tree: Path, name: str, listener: Listener) -> None:
    resolver = LocalDirectoryResolver(tree)
    name = name.replace("127.0.0.1/", f"127.0.0.1:{listener.port}/")
    with pytest.raises(CIError) as info:
        data = resolver.fetch(name)
        assert data != SECRET, "read a file outside the root"
    assert info.value.code in ("AccessDenied", "NoSuchKey", "InvalidArgument"), repr(info.value)
    assert listener.hits == 0


def test_local_resolver_serves_what_is_inside(tree: Path) -> None:
    resolver = LocalDirectoryResolver(tree)
    assert resolver.fetch("logo.png") == samples()["png"]
    assert resolver.fetch(f"{COS}/logo.png") == samples()["png"]


@pytest.mark.parametrize("name", ["http://127.0.0.1/logo.png", "http://localhost/logo.png", "file:///etc/passwd"])
def test_process_never_fetches_by_itself(name: str, listener: Listener, tree: Path) -> None:
    url = name.replace("127.0.0.1/", f"127.0.0.1:{listener.port}/").replace("localhost/", f"localhost:{listener.port}/")
    rule = f"watermark/1/image/{b64(url)}"
    with pytest.raises(AccessDeniedError):
        ce.process(samples()["jpeg"], rule)  # no resources: nothing is fetched
    with pytest.raises(CIError) as info:
        ce.process(samples()["jpeg"], rule, resources=LocalDirectoryResolver(tree))
    assert info.value.code in ("AccessDenied", "NoSuchKey", "InvalidArgument")
    assert listener.hits == 0


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "169.254.169.254", "10.0.0.1", "192.168.1.1", "0.0.0.0", "2130706433"]
)
def test_network_resolver_refuses_private_addresses(host: str, listener: Listener) -> None:
    """The addresses are checked before any connection (10.x and 192.168.x are never
    contacted: the refusal comes from the address check)."""
    port = listener.port if host in ("127.0.0.1", "localhost", "2130706433") else 80
    with pytest.raises(CIError) as info:
        NetworkResolver().fetch(f"http://{host}:{port}/logo.png")
    assert info.value.code in ("AccessDenied", "NoSuchKey")
    assert listener.hits == 0


def test_network_resolver_refuses_other_schemes(listener: Listener) -> None:
    for url in ("file:///etc/passwd", f"ftp://127.0.0.1:{listener.port}/x", "gopher://127.0.0.1/", "data:,x"):
        with pytest.raises(CIError):
            NetworkResolver(allow_private=True).fetch(url)
    assert listener.hits == 0


def test_private_addresses_only_when_explicitly_allowed(listener: Listener) -> None:
    url = f"http://127.0.0.1:{listener.port}/logo.png"
    with pytest.raises(AccessDeniedError):
        NetworkResolver().fetch(url)
    assert listener.hits == 0
    assert NetworkResolver(allow_private=True).fetch(url) == samples()["png"]
    assert listener.hits == 1


# -- fileids and the local store ----------------------------------------------------------------

HOSTILE_FILEIDS = [
    "../x.jpg",
    "a/../../x.jpg",
    "/../x.jpg",
    "%2e%2e/x.jpg",
    "a/%2E%2E/%2e%2e/x.jpg",
    "%2F..%2Fx.jpg",
    "./x.jpg",
    "x.jpg/",
    "a\x00b.jpg",
    "%00.jpg",
    "a" * 900 + ".jpg",
    "%ff%fe.jpg",
]


@pytest.mark.parametrize("fileid", HOSTILE_FILEIDS)
def test_fileids_cannot_climb(fileid: str) -> None:
    with pytest.raises(InvalidPicOperationsError):
        resolve_fileid("shop/items/42.jpg", fileid)


def test_fileids_stay_in_the_bucket() -> None:
    assert resolve_fileid("shop/42.jpg", "/etc/passwd") == "etc/passwd"  # bucket-absolute, not host-absolute
    assert resolve_fileid("42.jpg", "//x//y.jpg") == "x/y.jpg"


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/etc/passwd", "a/./b", "a//b", "x\x00y", "a" * 900, "link-to-outside/secret.png"]
)
def test_local_store_keys_stay_in_the_root(tree: Path, key: str) -> None:
    store = LocalStore(tree, fsync=False)
    with pytest.raises((InvalidArgumentError, AccessDeniedError)):
        store.get(key)
    with pytest.raises((InvalidArgumentError, AccessDeniedError)):
        store.put(key, b"x")
    assert (tree.parent / "outside" / "secret.png").read_bytes() == SECRET
    assert not (tree.parent / "x").exists()


def test_local_store_refuses_symlinked_files(tree: Path) -> None:
    store = LocalStore(tree, fsync=False)
    with pytest.raises(AccessDeniedError):
        store.get("link-to-secret.png")
    try:  # a write replaces the link (atomic rename) or is refused; it never writes through it
        store.put("link-to-secret.png", b"overwritten")
    except CIError:
        pass
    else:
        assert not (tree / "link-to-secret.png").is_symlink()
    assert (tree.parent / "outside" / "secret.png").read_bytes() == SECRET


def test_no_socket_is_opened_by_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """process() on every sample and rule opens no socket and resolves no name."""
    calls: list[object] = []

    def refuse(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise AssertionError("network access")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    for data in samples().values():
        for rule in ("imageMogr2/thumbnail/12x", f"watermark/1/image/{b64('http://127.0.0.1/x.png')}", "imageInfo"):
            try:
                ce.process(data, rule)
            except CIError:
                pass
    assert calls == []
