"""Where the service keeps buckets: their objects (each a :class:`~ci_engine.store.Store`),
their metadata (styles, settings, CI binding, picbucket and queue records: small named
documents) and local staging space (request bodies streaming in, multipart parts).

:class:`Storage` is the interface the rest of the server uses; :class:`LocalStorage` keeps
everything under one directory::

    <root>/<bucket>/<key>                      objects (a LocalStore per bucket)
    <root>/<bucket>/.ci-tmp-*                  bodies streaming in (never listed as keys)
    <root>/.ci-meta/<bucket>/<name>            metadata documents (styles.json, ...)
    <root>/.ci-meta/<bucket>/uploads/<id>/     multipart uploads in progress

Another root (an S3-compatible one) implements :class:`Storage` and is plugged in through
:attr:`ServerConfig.storage_factory <ci_engine.server.config.ServerConfig.storage_factory>`.
Every method is blocking: the app calls them from worker threads.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from pathlib import Path

from ci_engine.server.config import BUCKET_RE
from ci_engine.server.errors import BucketNotEmptyError, NoSuchBucketError
from ci_engine.store import LocalStore, Store

__all__ = ["Storage", "LocalStorage"]

_META = ".ci-meta"
_TMP_PREFIX = ".ci-tmp-"


class Storage(ABC):
    """The buckets of one server."""

    @abstractmethod
    def buckets(self) -> list[str]:
        """The bucket names, sorted."""

    @abstractmethod
    def exists(self, bucket: str) -> bool: ...

    @abstractmethod
    def create(self, bucket: str) -> bool:
        """Create ``bucket``; ``False`` when it already existed."""

    @abstractmethod
    def remove(self, bucket: str) -> None:
        """Delete an empty bucket and its metadata. Raises ``BucketNotEmpty``."""

    @abstractmethod
    def store(self, bucket: str) -> Store:
        """The objects of ``bucket``. Raises ``NoSuchBucket``."""

    @abstractmethod
    def created(self, bucket: str) -> float:
        """When ``bucket`` was created (POSIX seconds)."""

    @abstractmethod
    def read_meta(self, bucket: str, name: str) -> bytes | None:
        """A metadata document, ``None`` when absent."""

    @abstractmethod
    def write_meta(self, bucket: str, name: str, data: bytes) -> None:
        """Replace a metadata document atomically."""

    @abstractmethod
    def delete_meta(self, bucket: str, name: str) -> None: ...

    @abstractmethod
    def temp_file(self, bucket: str) -> Path:
        """A new empty local file where a request body may stream; hand it to
        ``store(bucket).put_file`` (which consumes it) or unlink it."""

    @abstractmethod
    def staging_dir(self, bucket: str) -> Path:
        """A local directory for multipart uploads in progress (created)."""

    def recover(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Called once at start, before any request: clean what a crash left behind."""


class LocalStorage(Storage):
    """Buckets as directories under ``root``."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve(strict=True)
        self.fsync = fsync
        self._stores: dict[str, LocalStore] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def _dir(self, bucket: str) -> Path:
        if not BUCKET_RE.fullmatch(bucket):
            raise NoSuchBucketError(f"bucket: {bucket!r} is not a bucket name")
        return self.root / bucket

    def _meta_dir(self, bucket: str) -> Path:
        return self.root / _META / bucket

    def buckets(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and BUCKET_RE.fullmatch(p.name))

    def exists(self, bucket: str) -> bool:
        return BUCKET_RE.fullmatch(bucket) is not None and self._dir(bucket).is_dir()

    def create(self, bucket: str) -> bool:
        directory = self._dir(bucket)
        try:
            directory.mkdir()
        except FileExistsError:
            return False
        self._meta_dir(bucket).mkdir(parents=True, exist_ok=True)
        return True

    def remove(self, bucket: str) -> None:
        store = self.store(bucket)
        if store.keys():
            raise BucketNotEmptyError(f"bucket: {bucket!r} is not empty")
        with self._lock:
            self._stores.pop(bucket, None)
        shutil.rmtree(self._dir(bucket), ignore_errors=True)
        shutil.rmtree(self._meta_dir(bucket), ignore_errors=True)

    def store(self, bucket: str) -> Store:
        with self._lock:
            found = self._stores.get(bucket)
        if found is not None and found.root.is_dir():
            return found
        directory = self._dir(bucket)
        if not directory.is_dir():
            raise NoSuchBucketError(f"bucket: {bucket!r} does not exist")
        store = LocalStore(directory, fsync=self.fsync)
        with self._lock:
            self._stores[bucket] = store
        return store

    def created(self, bucket: str) -> float:
        try:
            return self._dir(bucket).stat().st_mtime
        except OSError:
            raise NoSuchBucketError(f"bucket: {bucket!r} does not exist") from None

    def read_meta(self, bucket: str, name: str) -> bytes | None:
        try:
            return (self._meta_dir(bucket) / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None

    def write_meta(self, bucket: str, name: str, data: bytes) -> None:
        directory = self._meta_dir(bucket)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp, directory / name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete_meta(self, bucket: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._meta_dir(bucket) / name).unlink()

    def temp_file(self, bucket: str) -> Path:
        directory = self._dir(bucket)
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX + "body-", dir=directory)
        os.close(fd)
        return Path(tmp)

    def recover(self) -> None:
        for bucket in self.buckets():
            _sweep(self._dir(bucket))

    def staging_dir(self, bucket: str) -> Path:
        directory = self._meta_dir(bucket) / "uploads"
        directory.mkdir(parents=True, exist_ok=True)
        return directory


def _sweep(directory: Path) -> None:
    """Remove the temporary files a crash left in a bucket (a body that never reached its
    rename: the object it was meant to replace is intact)."""
    for path in directory.glob(_TMP_PREFIX + "*"):
        with contextlib.suppress(OSError):
            path.unlink()
