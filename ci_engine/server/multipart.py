"""Multipart upload: initiate, upload part, list parts, list uploads, complete (with
``Pic-Operations``, ``persistent-processing.md`` section 2) and abort.

The SDK's ``upload_file`` switches to multipart for any file over its part size (1 MB by
default), so most real photos arrive this way. Parts live on disk in the storage's staging
directory (``<staging>/<uploadId>/<n>.part`` plus ``<n>.json`` with the part's ETag and size),
each streamed in like a PUT body; completing concatenates them into one temporary file and
hands it to the same path as a PUT (rename into place, or ``persist`` with
``Pic-Operations``). The object's ETag is the MD5 of its bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.responses import Response

from ci_engine.server.app import App, Context, io
from ci_engine.server.errors import InvalidPartError, NoSuchUploadError
from ci_engine.server.objects import _object_key, _quoted, read_small_body, receive_body, store_upload
from ci_engine.server.xml import child_text, iso_time, parse_xml, xml_response

__all__ = ["initiate", "upload_part", "list_parts", "list_uploads", "complete", "abort", "MAX_PARTS"]

MAX_PARTS = 10_000
_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{10,64}")


def _upload_dir(app: App, ctx: Context) -> Path:
    assert ctx.bucket is not None
    upload_id = ctx.param("uploadId") or ""
    if not _UPLOAD_ID_RE.fullmatch(upload_id):
        raise NoSuchUploadError(f"multipart: no upload {upload_id!r}")
    directory = app.storage.staging_dir(ctx.bucket) / upload_id
    try:
        meta = json.loads((directory / "upload.json").read_text("utf-8"))
    except (OSError, ValueError):
        raise NoSuchUploadError(f"multipart: no upload {upload_id!r}") from None
    if meta.get("key") != ctx.target.key:
        raise NoSuchUploadError(f"multipart: upload {upload_id!r} is not for this key")
    return directory


async def initiate(app: App, ctx: Context) -> Response:
    assert ctx.bucket is not None
    key = _object_key(ctx)
    upload_id = f"{int(time.time() * 1000):x}{uuid.uuid4().hex}"

    def create() -> None:
        directory = app.storage.staging_dir(ctx.bucket or "") / upload_id
        directory.mkdir()
        (directory / "upload.json").write_text(json.dumps({"key": key, "initiated": time.time()}), "utf-8")

    await io(create)
    return xml_response(
        "InitiateMultipartUploadResult", [("Bucket", ctx.bucket), ("Key", key), ("UploadId", upload_id)]
    )


def _part_number(ctx: Context) -> int:
    raw = ctx.param("partNumber") or ""
    try:
        number = int(raw)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_PARTS:
        from ci_engine.errors import InvalidArgumentError

        raise InvalidArgumentError(f"partNumber: must be between 1 and {MAX_PARTS}, got {raw!r}", op="partNumber")
    return number


async def upload_part(app: App, ctx: Context) -> Response:
    number = _part_number(ctx)
    directory = await io(_upload_dir, app, ctx)
    tmp = directory / f".part-{number}-{uuid.uuid4().hex}"
    await io(tmp.touch)
    size, etag = await receive_body(ctx, tmp, app.config.max_body_bytes)

    def place() -> None:
        if not directory.is_dir():  # aborted meanwhile
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise NoSuchUploadError("multipart: the upload was aborted")
        os.replace(tmp, directory / f"{number}.part")
        (directory / f"{number}.json").write_text(
            json.dumps({"etag": etag, "size": size, "time": time.time()}), "utf-8"
        )

    try:
        await io(place)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return Response(b"", headers={"ETag": _quoted(etag)})


def _parts(directory: Path) -> dict[int, dict[str, Any]]:
    parts: dict[int, dict[str, Any]] = {}
    for meta in directory.glob("*.json"):
        if meta.stem.isdigit():
            with contextlib.suppress(OSError, ValueError):
                parts[int(meta.stem)] = json.loads(meta.read_text("utf-8"))
    return dict(sorted(parts.items()))


async def list_parts(app: App, ctx: Context) -> Response:
    directory = await io(_upload_dir, app, ctx)
    parts = await io(_parts, directory)
    try:
        marker = int(ctx.param("part-number-marker") or 0)
        max_parts = max(1, min(1000, int(ctx.param("max-parts") or 1000)))
    except ValueError:
        from ci_engine.errors import InvalidArgumentError

        raise InvalidArgumentError("list parts: part-number-marker and max-parts must be integers") from None
    encode = (ctx.param("encoding-type") or "") == "url"
    numbers = [n for n in parts if n > marker]
    shown, truncated = numbers[:max_parts], len(numbers) > max_parts
    key = ctx.target.key
    children: list[tuple[str, object]] = [
        ("Bucket", ctx.bucket),
        ("Encoding-type", "url" if encode else ""),
        ("Key", quote(key, safe="/") if encode else key),
        ("UploadId", ctx.param("uploadId")),
        ("Initiator", [("ID", "ci-engine"), ("DisplayName", "ci-engine")]),
        ("Owner", [("ID", "ci-engine"), ("DisplayName", "ci-engine")]),
        ("StorageClass", "STANDARD"),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", shown[-1] if shown else marker),
        ("MaxParts", max_parts),
        ("IsTruncated", "true" if truncated else "false"),
    ]
    for n in shown:
        part = parts[n]
        children.append(
            (
                "Part",
                [
                    ("PartNumber", n),
                    ("LastModified", iso_time(part.get("time", 0.0))),
                    ("ETag", _quoted(part["etag"])),
                    ("Size", part["size"]),
                ],
            )
        )
    return xml_response("ListPartsResult", children)


async def list_uploads(app: App, ctx: Context) -> Response:
    assert ctx.bucket is not None
    prefix = ctx.param("prefix") or ""
    encode = (ctx.param("encoding-type") or "") == "url"

    def scan() -> list[tuple[float, str, str]]:
        found = []
        for directory in app.storage.staging_dir(ctx.bucket or "").iterdir():
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads((directory / "upload.json").read_text("utf-8"))
                if meta["key"].startswith(prefix):
                    found.append((float(meta["initiated"]), meta["key"], directory.name))
        return sorted(found, key=lambda item: (item[1], item[0]))

    uploads = await io(scan)
    children: list[tuple[str, object]] = [
        ("Bucket", ctx.bucket),
        ("Encoding-Type", "url" if encode else ""),
        ("KeyMarker", ""),
        ("UploadIdMarker", ""),
        ("NextKeyMarker", ""),
        ("NextUploadIdMarker", ""),
        ("MaxUploads", 1000),
        ("IsTruncated", "false"),
        ("Prefix", quote(prefix, safe="/") if encode else prefix),
    ]
    for initiated, key, upload_id in uploads[:1000]:
        children.append(
            (
                "Upload",
                [
                    ("Key", quote(key, safe="/") if encode else key),
                    ("UploadId", upload_id),
                    ("StorageClass", "STANDARD"),
                    ("Initiator", [("ID", "ci-engine"), ("DisplayName", "ci-engine")]),
                    ("Owner", [("ID", "ci-engine"), ("DisplayName", "ci-engine")]),
                    ("Initiated", iso_time(initiated)),
                ],
            )
        )
    return xml_response("ListMultipartUploadsResult", children)


async def complete(app: App, ctx: Context) -> Response:
    assert ctx.bucket is not None
    key = _object_key(ctx)
    directory = await io(_upload_dir, app, ctx)
    document = parse_xml(await read_small_body(ctx), "CompleteMultipartUpload")
    wanted: list[tuple[int, str]] = []
    for part in document.findall("Part"):
        try:
            number = int(child_text(part, "PartNumber") or "")
        except ValueError:
            raise InvalidPartError("multipart: a <Part> without a valid <PartNumber>") from None
        wanted.append((number, (child_text(part, "ETag") or "").strip('"').lower()))
    if not wanted:
        raise InvalidPartError("multipart: CompleteMultipartUpload lists no part")
    if [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
        raise InvalidPartError("multipart: the parts must be listed once each, in ascending order")
    parts = await io(_parts, directory)
    for number, etag in wanted:
        have = parts.get(number)
        if have is None or (etag and etag != have["etag"]):
            raise InvalidPartError(f"multipart: part {number} was not uploaded with ETag {etag!r}")
    tmp = await io(app.storage.temp_file, ctx.bucket)

    def concatenate() -> str:
        digest = hashlib.md5(usedforsecurity=False)
        with open(tmp, "wb") as out:
            for number, _ in wanted:
                with open(directory / f"{number}.part", "rb") as part:
                    while block := part.read(1 << 20):
                        out.write(block)
                        digest.update(block)
        return digest.hexdigest()

    try:
        etag = await io(concatenate)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    stored = await store_upload(app, ctx, key, tmp, etag)
    await io(shutil.rmtree, directory, True)
    location = f"{ctx.bucket}.cos.{app.config.region}.myqcloud.com/{key}"
    children: list[tuple[str, object]] = [
        ("Location", location),
        ("Bucket", ctx.bucket),
        ("Key", key),
        ("ETag", stored.headers["ETag"]),
    ]
    body = bytes(stored.body)
    if body:  # Pic-Operations: the UploadResult's parts follow
        result = parse_xml(body, "UploadResult")
        for child in result:
            children.append((child.tag, _element_children(child)))
    return xml_response("CompleteMultipartUploadResult", children)


def _element_children(element: Any) -> object:
    if len(element) == 0:
        return element.text or ""
    return [(child.tag, _element_children(child)) for child in element]


async def abort(app: App, ctx: Context) -> Response:
    directory = await io(_upload_dir, app, ctx)
    await io(shutil.rmtree, directory, True)
    return Response(b"", status_code=204)
