"""The processed-result cache (``ci-engine serve --cache-dir DIR --cache-size BYTES``).

An entry is the output of one processed GET, keyed by everything that decides its bytes: the
bucket, the object key, the source's ETag, the canonical processing string
(:func:`ci_engine.render` of the resolved pipeline, so equivalent spellings and styles share an
entry), the backend and the versions of ci_engine and of the imaging packages. A PUT of the
source changes its ETag and a DELETE removes it, so their old entries are never looked up
again (they age out by LRU). A hit reads one file: no image is decoded.

On disk: ``DIR/<2 hex>/<64 hex>``, each file ``CIC1`` + a 4-byte header length + a JSON
header (MIME type, ETag of the bytes, masked error code, size) + the bytes; written to a
temporary file and renamed, so a reader sees a whole entry or none (entries are not fsynced:
one torn by a crash fails its size check and is dropped, a miss). The total size is bounded by
``max_bytes``: least recently used entries are removed first (recency survives restarts
through the files' modification times, refreshed on each hit). Thread-safe; one server
process per directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import tempfile
import threading
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any

import ci_engine
from ci_engine._dc import dataclass

__all__ = ["CachedResult", "ResultCache", "engine_identity"]

log = logging.getLogger("ci_engine.server")

_MAGIC = b"CIC1"
_TMP = ".tmp-"


@dataclass(frozen=True, slots=True)
class CachedResult:
    """One cached output: its ``data``, ``mime_type``, ``etag`` (MD5 hex of ``data``) and
    the code of the error ``ignore-error/1`` masked, if any, and ``imageSlim``'s
    ``X-Slimflag`` (``None`` for other outputs)."""

    data: bytes
    mime_type: str
    etag: str
    masked: str | None = None
    slim_flag: int | None = None


def engine_identity(backend: str) -> str:
    """The part of a cache key that names the code producing the bytes: the configured
    backend (and ``CI_ENGINE_BACKEND``), ci_engine's version and the imaging packages'."""
    parts = [f"ci_engine={ci_engine.__version__}", f"backend={backend}:{os.environ.get('CI_ENGINE_BACKEND', '')}"]
    for package in ("pyvips", "pillow"):
        try:
            parts.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{package}=-")
    return ";".join(parts)


class ResultCache:
    """A bounded, persistent map from :meth:`key` to :class:`CachedResult`.

    Attributes:
        directory: where the entries live (created).
        max_bytes: the bound on the entries' total size on disk.
        size: the entries' current total size.
        hits, misses, evictions: counters since start.
    """

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int, *, engine: str = "") -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.engine = engine
        self.size = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.inflight: dict[str, Any] = {}
        """Outputs being made, by entry name: the server's event loop keeps an
        ``asyncio.Future`` here so concurrent misses of one output make it once."""
        self._lock = threading.Lock()
        self._index: OrderedDict[str, int] = OrderedDict()
        self._load()

    def __repr__(self) -> str:
        return f"ResultCache({str(self.directory)!r}, {self.size}/{self.max_bytes} bytes, {len(self._index)} entries)"

    def __len__(self) -> int:
        return len(self._index)

    def key(self, bucket: str, key: str, source_etag: str, processing: str) -> str:
        """The entry name for an output (a SHA-256 hex digest)."""
        text = json.dumps([bucket, key, source_etag, processing, self.engine], ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _path(self, name: str) -> Path:
        return self.directory / name[:2] / name

    # -- start ---------------------------------------------------------------------------------------
    def _load(self) -> None:
        """Index the entries a previous run left, oldest use first; drop torn temporaries."""
        found: list[tuple[float, str, int]] = []
        for sub in self.directory.iterdir():
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for path in sub.iterdir():
                if path.name.startswith(_TMP):
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                if len(path.name) != 64 or not path.name.startswith(sub.name):
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                found.append((st.st_mtime, path.name, st.st_size))
        found.sort()
        for _, name, size in found:
            self._index[name] = size
            self.size += size
        with self._lock:
            self._evict(keep=None)

    # -- use -------------------------------------------------------------------------------------------
    def get(self, name: str) -> CachedResult | None:
        """The entry ``name``, or ``None`` (counted as a miss)."""
        with self._lock:
            if name not in self._index:
                self.misses += 1
                return None
            self._index.move_to_end(name)
        path = self._path(name)
        try:
            with open(path, "rb") as handle:
                blob = handle.read()
            os.utime(path)
            entry = _decode(blob)
        except (OSError, ValueError) as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("result cache: dropping unreadable entry %s (%s)", name, exc)
            self._drop(name)
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return entry

    def put(self, name: str, result: CachedResult) -> bool:
        """Store ``result`` under ``name``; ``False`` when it alone is over the bound."""
        blob = _encode(result)
        if len(blob) > self.max_bytes:
            return False
        path = self._path(name)
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP, dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with self._lock:
            self.size += len(blob) - self._index.pop(name, 0)
            self._index[name] = len(blob)
            self._evict(keep=name)
        return True

    def _drop(self, name: str) -> None:
        with self._lock:
            size = self._index.pop(name, None)
            if size is not None:
                self.size -= size
        with contextlib.suppress(OSError):
            self._path(name).unlink()

    def _evict(self, keep: str | None) -> None:
        """Remove least recently used entries until within the bound (the lock is held)."""
        while self.size > self.max_bytes and self._index:
            name, size = next(iter(self._index.items()))
            if name == keep:
                break
            del self._index[name]
            self.size -= size
            self.evictions += 1
            with contextlib.suppress(OSError):
                self._path(name).unlink()


def _encode(result: CachedResult) -> bytes:
    header = json.dumps(
        {
            "mime": result.mime_type,
            "etag": result.etag,
            "masked": result.masked,
            "size": len(result.data),
            "slim_flag": result.slim_flag,
        }
    ).encode()
    return _MAGIC + struct.pack(">I", len(header)) + header + result.data


def _decode(blob: bytes) -> CachedResult:
    if blob[:4] != _MAGIC or len(blob) < 8:
        raise ValueError("not a cache entry")
    (length,) = struct.unpack(">I", blob[4:8])
    header = json.loads(blob[8 : 8 + length])
    data = blob[8 + length :]
    if len(data) != header["size"]:  # torn by a crash after the rename (the entry is not fsynced)
        raise ValueError(f"entry holds {len(data)} of its {header['size']} bytes")
    return CachedResult(data, header["mime"], header["etag"], header.get("masked"), header.get("slim_flag"))
