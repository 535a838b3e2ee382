"""Raw HTTP against a live ``ci-engine serve``: path style, hotlink protection, public read,
the body limit, a client that disconnects mid-upload, concurrent PUTs to one key, the error
body, ``ci-process``, the CI binding and protection APIs, and how the command starts and
stops. Signatures come from the official SDK's signer (``CosS3Client.get_auth``)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import ci_engine
from tests.server.conftest import (
    HOTLINK,
    MAX_BODY,
    PHOTOS,
    PUBLIC,
    REGION,
    REPO,
    Server,
    make_client,
    start_server,
    stop_server,
)


def sign(server: Server, method: str, key: str, params: dict[str, str] | None = None) -> str:
    client = make_client(server, "ip")
    return str(client.get_auth(Method=method, Bucket=PHOTOS, Key=key or "/", Params=params or {}, SignHost=False))


def request(
    server: Server,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def put(server: Server, bucket: str, key: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    auth = sign(server, "PUT", key)
    return request(server, "PUT", f"/{bucket}/{quote(key)}", data, {"Authorization": auth})


def error_fields(body: bytes) -> dict[str, str]:
    root = ElementTree.fromstring(body)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


def bucket_files(server: Server, bucket: str) -> list[str]:
    base = server.root / bucket
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


# -- path style and processing -------------------------------------------------------------------


def test_path_style_processing(server: Server, photo: bytes) -> None:
    key = "raw/path style.jpg"
    status, headers, _ = put(server, PHOTOS, key, photo)
    assert status == 200 and headers["etag"] == f'"{hashlib.md5(photo).hexdigest()}"'
    quoted = "raw/path%20style.jpg"
    rule = "imageMogr2/thumbnail/160x/format/png"
    auth = sign(server, "GET", key)
    status, headers, body = request(server, "GET", f"/{PHOTOS}/{quoted}?{rule}", headers={"Authorization": auth})
    assert status == 200
    expected = ci_engine.process(photo, rule)
    assert body == expected.data
    assert headers["content-type"] == "image/png"
    assert headers["content-length"] == str(len(expected.data))
    assert headers["x-cos-request-id"]
    # an info query, raw form
    status, headers, body = request(server, "GET", f"/{PHOTOS}/{quoted}?imageInfo", headers={"Authorization": auth})
    assert status == 200 and body == ci_engine.process(photo, "imageInfo").data
    assert headers["content-type"] == "application/json"
    # a range of the original
    status, headers, body = request(
        server, "GET", f"/{PHOTOS}/{quoted}", headers={"Authorization": auth, "Range": "bytes=10-19"}
    )
    assert status == 206 and body == photo[10:20]
    assert headers["content-range"] == f"bytes 10-19/{len(photo)}"


def test_errors_are_cos_xml(server: Server, photo: bytes) -> None:
    put(server, PHOTOS, "raw/err.jpg", photo)
    auth = sign(server, "GET", "raw/err.jpg")
    status, headers, body = request(
        server, "GET", f"/{PHOTOS}/raw/err.jpg?imageMogr2/blur/80x5", headers={"Authorization": auth}
    )
    assert status == 400
    fields = error_fields(body)
    assert fields["Code"] == "InvalidArgument"
    assert all(fields[name] for name in ("Code", "Message", "Resource", "RequestId", "TraceId"))
    assert fields["RequestId"] == headers["x-cos-request-id"]
    assert fields["Resource"].endswith(f"/{PHOTOS}/raw/err.jpg")
    assert headers["content-type"] == "application/xml"
    # ignore-error/1 masks an output over the size limit: 200 with the original
    status, _, body = request(
        server, "GET", f"/{PHOTOS}/raw/err.jpg?imageMogr2/thumbnail/20000x", headers={"Authorization": auth}
    )
    assert status == 400 and error_fields(body)["Code"] == "ImageResolutionExceed"
    masked = f"/{PHOTOS}/raw/err.jpg?imageMogr2/thumbnail/20000x/ignore-error/1"
    status, _, body = request(server, "GET", masked, headers={"Authorization": auth})
    assert status == 200 and body == photo
    # unsigned requests are refused
    status, _, body = request(server, "GET", f"/{PHOTOS}/raw/err.jpg")
    assert status == 403 and error_fields(body)["Code"] == "AccessDenied"


def test_ci_process(server: Server, photo: bytes) -> None:
    put(server, PHOTOS, "raw/ci.jpg", photo)
    auth = sign(server, "GET", "raw/ci.jpg", {"ci-process": "ImageInspect"})
    status, headers, body = request(
        server, "GET", f"/{PHOTOS}/raw/ci.jpg?ci-process=ImageInspect", headers={"Authorization": auth}
    )
    assert status == 200 and body == ci_engine.process(photo, "ci-process=ImageInspect").data
    assert headers["content-type"] == "application/json"
    for name in ("AIImageColoring", "NoSuchOperation"):
        params = {"ci-process": name}
        auth = sign(server, "GET", "raw/ci.jpg", params)
        status, _, body = request(
            server, "GET", f"/{PHOTOS}/raw/ci.jpg?ci-process={name}", headers={"Authorization": auth}
        )
        assert status == 501, body
        assert error_fields(body)["Code"] == "NotImplemented"


def test_signature_time_window(server: Server) -> None:
    client = make_client(server, "ip")
    auth = client.get_auth(Method="GET", Bucket=PHOTOS, Key="raw/x.jpg", SignHost=False)
    now = int(time.time())
    for window, code in (
        (f"{now - 7200};{now - 3600}", "AccessDenied"),
        (f"{now + 7200};{now + 9000}", "RequestTimeTooSkewed"),
    ):
        forged = auth.replace(auth.split("q-key-time=")[1].split("&")[0], window)
        status, _, body = request(server, "GET", f"/{PHOTOS}/raw/x.jpg", headers={"Authorization": forged})
        assert status == 403 and error_fields(body)["Code"] == code


# -- hotlink and public read -----------------------------------------------------------------------


def test_hotlink(server: Server, photo: bytes) -> None:
    put(server, HOTLINK, "h.jpg", photo)
    auth = sign(server, "GET", "h.jpg")
    allowed = ("https://www.example.com/page", "http://a.b.example.com/", "http://localhost:3000/x")
    for referer in allowed:
        headers = {"Authorization": auth, "Referer": referer}
        status, _, body = request(server, "GET", f"/{HOTLINK}/h.jpg", headers=headers)
        assert status == 200 and body == photo, referer
    refused = ("https://evil.com/", "https://example.com.evil.com/", "http://localhost:4000/", None)
    for referer in refused:
        headers = {"Authorization": auth} if referer is None else {"Authorization": auth, "Referer": referer}
        status, got, body = request(server, "GET", f"/{HOTLINK}/h.jpg", headers=headers)
        assert status == 403, referer
        assert error_fields(body)["Code"] == "AccessDenied"
        assert got["x-errno"] == "-108"


def test_public_read(server: Server, photo: bytes) -> None:
    status, _, _ = put(server, PUBLIC, "p.jpg", photo)
    assert status == 200
    status, _, body = request(server, "GET", f"/{PUBLIC}/p.jpg?imageMogr2/thumbnail/50x")
    assert status == 200 and body == ci_engine.process(photo, "imageMogr2/thumbnail/50x").data
    status, _, body = request(server, "PUT", f"/{PUBLIC}/q.jpg", photo)
    assert status == 403  # writes still need a signature
    assert "q.jpg" not in bucket_files(server, PUBLIC)


# -- bodies ---------------------------------------------------------------------------------------------


def test_body_limit_on_content_length(server: Server) -> None:
    auth = sign(server, "PUT", "raw/too-big.bin")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.putrequest("PUT", f"/{PHOTOS}/raw/too-big.bin")
        conn.putheader("Authorization", auth)
        conn.putheader("Content-Length", str(MAX_BODY + 1))
        conn.endheaders()
        conn.send(b"x" * 65536)  # the server answers before the body is all there
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    assert response.status == 413
    assert error_fields(body)["Code"] == "EntityTooLarge"
    assert "raw/too-big.bin" not in bucket_files(server, PHOTOS)


def test_body_limit_while_streaming(server: Server) -> None:
    auth = sign(server, "PUT", "raw/chunked.bin")
    sock = socket.create_connection((server.host, server.port), timeout=30)
    try:
        head = (
            f"PUT /{PHOTOS}/raw/chunked.bin HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            f"Authorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        chunk = b"y" * (1 << 20)
        sent = 0
        try:
            while sent <= MAX_BODY + (1 << 20):
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass  # the server may close the connection once it has answered
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert "raw/chunked.bin" not in bucket_files(server, PHOTOS)
    assert not [f for f in bucket_files(server, PHOTOS) if ".ci-tmp-" in f]


def test_disconnect_mid_upload_leaves_nothing(server: Server, photo: bytes) -> None:
    key = "raw/half.jpg"
    put(server, PHOTOS, key, photo)  # an older version that must survive
    auth = sign(server, "PUT", key)
    sock = socket.create_connection((server.host, server.port), timeout=30)
    head = (
        f"PUT /{PHOTOS}/{key} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
        f"Authorization: {auth}\r\nContent-Length: {4 * 1024 * 1024}\r\n\r\n"
    )
    sock.sendall(head.encode() + b"z" * (1024 * 1024))
    time.sleep(0.3)
    sock.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and [f for f in bucket_files(server, PHOTOS) if ".ci-tmp-" in f]:
        time.sleep(0.05)
    assert not [f for f in bucket_files(server, PHOTOS) if ".ci-tmp-" in f]
    auth = sign(server, "GET", key)
    status, _, body = request(server, "GET", f"/{PHOTOS}/{key}", headers={"Authorization": auth})
    assert status == 200 and body == photo


def test_concurrent_puts_to_one_key_never_tear(server: Server) -> None:
    key = "raw/contended.bin"
    bodies = [bytes([i]) * (1024 * 1024 + i * 4099) for i in range(8)]
    digests = {hashlib.md5(b).hexdigest() for b in bodies}
    errors: list[Any] = []
    seen: list[str] = []

    def writer(body: bytes) -> None:
        for _ in range(3):
            status, _, reply = put(server, PHOTOS, key, body)
            if status != 200:
                errors.append((status, reply[:200]))

    def reader() -> None:
        auth = sign(server, "GET", key)
        for _ in range(12):
            status, headers, body = request(server, "GET", f"/{PHOTOS}/{key}", headers={"Authorization": auth})
            if status == 200:
                seen.append(hashlib.md5(body).hexdigest())
                if headers["content-length"] != str(len(body)):
                    errors.append(("length", headers["content-length"], len(body)))
            elif status != 404:
                errors.append((status, body[:200]))

    threads = [threading.Thread(target=writer, args=(b,)) for b in bodies]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert seen and set(seen) <= digests
    auth = sign(server, "GET", key)
    status, _, final = request(server, "GET", f"/{PHOTOS}/{key}", headers={"Authorization": auth})
    assert status == 200 and hashlib.md5(final).hexdigest() in digests
    assert not [f for f in bucket_files(server, PHOTOS) if ".ci-tmp-" in f]


# -- CI binding, protection switch, request ids ---------------------------------------------------------


def _proxy_request(server: Server, method: str, host: str, path: str, body: bytes = b"") -> tuple[int, Any, bytes]:
    """A signed request in proxy form: absolute target, the real CI host name."""
    client = make_client(server, "proxy")
    auth = client.get_auth(Method=method, Bucket=None, Key=path.split("?")[0] or "/", SignHost=False)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        conn.request(method, f"http://{host}{path}", body=body, headers={"Host": host, "Authorization": auth})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_ci_binding_on_ci_and_pic_hosts(server: Server) -> None:
    ci_host = f"{PHOTOS}.ci.{REGION}.myqcloud.com"
    status, headers, body = _proxy_request(server, "PUT", ci_host, "/")
    assert status == 200, body
    root = ElementTree.fromstring(body)
    assert root.findtext("CIBucket/BucketId") == PHOTOS
    assert root.findtext("CIBucket/Region") == REGION
    assert root.findtext("RequestId") == headers["x-ci-request-id"] == headers["x-cos-request-id"]
    pic_host = f"{PHOTOS}.pic.{REGION}.myqcloud.com"
    status, _, body = _proxy_request(server, "GET", pic_host, "/")
    assert (status, body) == (200, b"<CIStatus>on</CIStatus>")
    status, _, _ = _proxy_request(server, "PUT", pic_host, "/?unbind")
    assert status == 200
    status, _, body = _proxy_request(server, "GET", pic_host, "/")
    assert body == b"<CIStatus>off</CIStatus>"


def test_origin_protect_switch(server: Server, photo: bytes) -> None:
    pic_host = f"{PUBLIC}.pic.{REGION}.myqcloud.com"
    put(server, PUBLIC, "guard.jpg", photo)
    status, _, _ = _proxy_request(server, "PUT", pic_host, "/?origin-protect")
    assert status == 200
    status, _, body = _proxy_request(server, "GET", pic_host, "/?origin-protect")
    assert body == b"<OriginProtectStatus>on</OriginProtectStatus>"
    status, headers, body = request(server, "GET", f"/{PUBLIC}/guard.jpg")
    assert status == 403 and headers["x-errno"] == "-154"
    _proxy_request(server, "DELETE", pic_host, "/?origin-protect")
    status, _, body = request(server, "GET", f"/{PUBLIC}/guard.jpg")
    assert status == 200 and body == photo


def test_pic_operations_validated_before_storing(server: Server, photo: bytes) -> None:
    key = "raw/badops.jpg"
    ops = json.dumps({"rules": [{"fileid": "x.png", "rule": "imageMogr2/nosuchop/1"}]})
    client = make_client(server, "ip")
    auth = client.get_auth(Method="PUT", Bucket=PHOTOS, Key=key, Headers={"Pic-Operations": ops}, SignHost=False)
    status, _, body = request(server, "PUT", f"/{PHOTOS}/{key}", photo, {"Authorization": auth, "Pic-Operations": ops})
    assert status == 400 and error_fields(body)["Code"] == "InvalidArgument"
    assert key not in bucket_files(server, PHOTOS)
    # Pic-Operations is signed: changing it breaks the signature
    changed = {"Authorization": auth, "Pic-Operations": ops.replace("x.png", "y.png")}
    status, _, body = request(server, "PUT", f"/{PHOTOS}/{key}", photo, changed)
    assert status == 403 and error_fields(body)["Code"] == "SignatureDoesNotMatch"


# -- the command ------------------------------------------------------------------------------------------


def test_refuses_to_start_without_keys_or_anonymous(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CI_ENGINE_SECRET")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-m", "ci_engine", "serve", "--root", str(tmp_path / "r"), "--port", "0"],
        capture_output=True,
        env=env,
        timeout=60,
        cwd=REPO,
    )
    assert proc.returncode == 2
    assert proc.stdout == b""
    message = proc.stderr.decode()
    assert "--secret-id" in message and "--anonymous" in message and "CI_ENGINE_SECRET_ID" in message


def test_anonymous_server_with_env_keys_checks_present_signatures(tmp_path: Path, photo: bytes) -> None:
    srv = start_server(
        tmp_path / "root",
        "--anonymous",
        "--bucket",
        PHOTOS,
        env={"CI_ENGINE_SECRET_ID": "AKIDenv", "CI_ENGINE_SECRET_KEY": "env-secret"},
    )
    try:
        status, _, _ = request(srv, "PUT", f"/{PHOTOS}/anon.jpg", photo)
        assert status == 200  # unsigned: accepted
        status, _, body = request(srv, "GET", f"/{PHOTOS}/anon.jpg")
        assert status == 200 and body == photo
        bad = make_client(srv, "ip", secret_key="wrong")
        auth = bad.get_auth(Method="GET", Bucket=PHOTOS, Key="anon.jpg", SignHost=False)
        status, _, body = request(srv, "GET", f"/{PHOTOS}/anon.jpg", headers={"Authorization": auth})
        assert status == 403  # a signature that is present is still checked (unknown SecretId here)
        assert error_fields(body)["Code"] == "InvalidAccessKeyId"
    finally:
        assert stop_server(srv) == 0


def test_sigterm_waits_for_in_flight_request(tmp_path: Path, photo: bytes) -> None:
    srv = start_server(tmp_path / "root", "--anonymous", "--bucket", PHOTOS)
    try:
        request(srv, "PUT", f"/{PHOTOS}/slow.jpg", photo)
        sock = socket.create_connection((srv.host, srv.port), timeout=30)
        body = photo * 20
        head = f"PUT /{PHOTOS}/late.jpg HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(head.encode() + body[:1000])
        time.sleep(0.2)
        srv.process.send_signal(15)
        time.sleep(0.2)
        sock.sendall(body[1000:])
        reply = sock.recv(65536)
        sock.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert srv.process.wait(20) == 0
        assert (srv.root / PHOTOS / "late.jpg").read_bytes() == body
    finally:
        if srv.process.poll() is None:
            stop_server(srv)


def test_oversized_source_redirects_to_the_original(server: Server) -> None:
    huge = server.root / PHOTOS / "raw" / "huge.jpg"
    huge.parent.mkdir(parents=True, exist_ok=True)
    with open(huge, "wb") as handle:  # 33 MB on disk, without going through the body limit
        handle.truncate(33 * 1024 * 1024)
    auth = sign(server, "GET", "raw/huge.jpg")
    status, headers, _ = request(
        server, "GET", f"/{PHOTOS}/raw/huge.jpg?imageMogr2/thumbnail/100x", headers={"Authorization": auth}
    )
    assert status == 302
    assert headers["location"] == f"/{PHOTOS}/raw/huge.jpg"
    huge.unlink()


def test_content_md5_conditional_get_and_cors(server: Server, photo: bytes) -> None:
    import base64

    key = "raw/md5.jpg"
    auth = sign(server, "PUT", key)
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    status, _, body = request(server, "PUT", f"/{PHOTOS}/{key}", photo, {"Authorization": auth, "Content-MD5": wrong})
    assert status == 400 and error_fields(body)["Code"] == "BadDigest"
    assert key not in bucket_files(server, PHOTOS)
    right = base64.b64encode(hashlib.md5(photo).digest()).decode()
    checked = {"Authorization": auth, "Content-MD5": right}
    status, headers, _ = request(server, "PUT", f"/{PHOTOS}/{key}", photo, checked)
    assert status == 200
    etag = headers["etag"]
    get = sign(server, "GET", key)
    status, _, body = request(server, "GET", f"/{PHOTOS}/{key}", headers={"Authorization": get, "If-None-Match": etag})
    assert (status, body) == (304, b"")
    status, _, body = request(server, "GET", f"/{PHOTOS}/{key}", headers={"Authorization": get, "If-None-Match": '"x"'})
    assert status == 200 and body == photo
    # CORS: the configured origin gets a preflight answer and the header on responses; others do not
    preflight = {
        "Origin": "http://localhost:3000",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    status, headers, _ = request(server, "OPTIONS", f"/{PHOTOS}/{key}", headers=preflight)
    assert status == 200
    assert headers["access-control-allow-origin"] == "http://localhost:3000"
    assert headers["access-control-allow-headers"] == "authorization,content-type"
    status, headers, _ = request(
        server, "GET", f"/{PHOTOS}/{key}", headers={"Authorization": get, "Origin": "http://localhost:3000"}
    )
    assert status == 200 and "etag" in headers["access-control-expose-headers"].lower()
    status, headers, _ = request(
        server, "GET", f"/{PHOTOS}/{key}", headers={"Authorization": get, "Origin": "https://elsewhere.example"}
    )
    assert status == 200 and "access-control-allow-origin" not in headers
