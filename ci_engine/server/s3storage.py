"""Buckets in an S3-compatible service: :class:`S3Storage`, the server's
:class:`~ci_engine.server.storage.Storage` for ``ci-engine serve --root s3://BUCKET[/PREFIX]
--s3-endpoint URL``.

Every CI bucket of the server lives in the one S3 bucket::

    <prefix><bucket>/<key>                    objects (an S3Store per CI bucket)
    <prefix>.ci-meta/<bucket>/bucket.json     the bucket's marker (S3 has no folders)
    <prefix>.ci-meta/<bucket>/<name>          metadata documents (styles.json, ...)

Request bodies stream to local temporary files and multipart parts wait in a local folder
(the server's state folder, ``ServerConfig.root``), then go up with one ``put_file``: an
object appears whole or not at all. Credentials come from the usual AWS environment
variables.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ci_engine.errors import NoSuchKeyError
from ci_engine.jobs import Buckets
from ci_engine.s3 import S3Store, parse_s3_url
from ci_engine.server.config import BUCKET_RE, ServerConfig
from ci_engine.server.errors import BucketNotEmptyError, NoSuchBucketError
from ci_engine.server.storage import Storage
from ci_engine.store import Store

__all__ = ["S3Storage", "s3_storage_factory"]

_META = ".ci-meta"
_MARKER = "bucket.json"


class S3Storage(Storage):
    """The buckets of a server in ``s3://BUCKET[/PREFIX]`` at ``endpoint``; local staging
    under ``state``."""

    def __init__(self, url: str, *, endpoint: str | None, state: str | os.PathLike[str]) -> None:
        self.url = url
        self.endpoint = endpoint
        bucket, prefix = parse_s3_url(url)
        self.root_store = S3Store(bucket, prefix=prefix, endpoint=endpoint)
        self.state = Path(state)
        self.state.mkdir(parents=True, exist_ok=True)
        self._stores: dict[str, S3Store] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r} at {self.endpoint})"

    def buckets_for_jobs(self) -> Buckets:
        """The same buckets, as the job workers open them."""
        return Buckets(self.url, endpoint=self.endpoint)

    def _check(self, bucket: str) -> None:
        if not BUCKET_RE.fullmatch(bucket):
            raise NoSuchBucketError(f"bucket: {bucket!r} is not a bucket name")

    def _meta_key(self, bucket: str, name: str) -> str:
        return f"{_META}/{bucket}/{name}"

    def buckets(self) -> list[str]:
        names = []
        for key in self.root_store.keys(f"{_META}/"):
            parts = key.split("/")
            if len(parts) == 3 and parts[2] == _MARKER and BUCKET_RE.fullmatch(parts[1]):
                names.append(parts[1])
        return sorted(names)

    def exists(self, bucket: str) -> bool:
        return BUCKET_RE.fullmatch(bucket) is not None and self.root_store.exists(self._meta_key(bucket, _MARKER))

    def create(self, bucket: str) -> bool:
        self._check(bucket)
        if self.exists(bucket):
            return False
        self.root_store.put(self._meta_key(bucket, _MARKER), json.dumps({"created": time.time()}).encode())
        return True

    def remove(self, bucket: str) -> None:
        store = self.store(bucket)
        if store.keys():
            raise BucketNotEmptyError(f"bucket: {bucket!r} is not empty")
        for key in self.root_store.keys(f"{_META}/{bucket}/"):
            if key != self._meta_key(bucket, _MARKER):
                self.root_store.delete(key)
        self.root_store.delete(self._meta_key(bucket, _MARKER))
        with self._lock:
            self._stores.pop(bucket, None)

    def store(self, bucket: str) -> Store:
        self._check(bucket)
        with self._lock:
            found = self._stores.get(bucket)
        if found is not None:
            return found
        if not self.exists(bucket):
            raise NoSuchBucketError(f"bucket: {bucket!r} does not exist")
        store = self.root_store.child(bucket)
        with self._lock:
            self._stores[bucket] = store
        return store

    def created(self, bucket: str) -> float:
        raw = self.read_meta(bucket, _MARKER)
        if raw is None:
            raise NoSuchBucketError(f"bucket: {bucket!r} does not exist")
        return float(json.loads(raw).get("created", 0.0))

    def read_meta(self, bucket: str, name: str) -> bytes | None:
        self._check(bucket)
        try:
            return self.root_store.get(self._meta_key(bucket, name))
        except NoSuchKeyError:
            return None

    def write_meta(self, bucket: str, name: str, data: bytes) -> None:
        self._check(bucket)
        self.root_store.put(self._meta_key(bucket, name), data)

    def delete_meta(self, bucket: str, name: str) -> None:
        self._check(bucket)
        self.root_store.delete(self._meta_key(bucket, name))

    def temp_file(self, bucket: str) -> Path:
        directory = self.state / "bodies"
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ci-tmp-body-", dir=directory)
        os.close(fd)
        return Path(tmp)

    def staging_dir(self, bucket: str) -> Path:
        self._check(bucket)
        directory = self.state / _META / bucket / "uploads"
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def recover(self) -> None:
        directory = self.state / "bodies"
        if directory.is_dir():
            for path in directory.glob(".ci-tmp-*"):
                path.unlink(missing_ok=True)


def s3_storage_factory(url: str, endpoint: str | None) -> Callable[[ServerConfig], Storage]:
    """A ``ServerConfig.storage_factory`` for ``url`` (staging under the config's root)."""

    def factory(config: ServerConfig) -> Storage:
        return S3Storage(url, endpoint=endpoint, state=config.root)

    return factory
