"""Where the job service's buckets live: :class:`Buckets`, a small picklable description
that every Dask worker turns into the same stores.

``Buckets("/srv/ci")`` keeps the CI bucket ``photos-1250000000`` in the directory
``/srv/ci/photos-1250000000`` (a :class:`~ci_engine.store.LocalStore`);
``Buckets("s3://media/ci", endpoint="http://127.0.0.1:9000")`` keeps it under the prefix
``ci/photos-1250000000/`` of the S3 bucket ``media`` (an :class:`~ci_engine.store.S3Store`).
``layout`` places the bucket inside the root (``"{bucket}"`` by default; the HTTP server
passes its own). Workers on other machines must reach the same root: the same shared folder
or the same S3 endpoint.
"""

from __future__ import annotations

import threading
from pathlib import Path

from ci_engine._dc import dataclass
from ci_engine.store import LocalStore, Store, open_store

__all__ = ["Buckets", "STAGING_PREFIX", "staging_key", "promote"]

STAGING_PREFIX = ".ci-jobs/"
"""Results wait under this prefix of their destination bucket until the service commits them."""

_OPENED: dict[tuple[Buckets, str], Store] = {}
_OPENED_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Buckets:
    """The stores of a service's buckets.

    Args:
        root: a directory, or ``s3://BUCKET[/PREFIX]``.
        endpoint: the S3-compatible service's URL (``s3://`` roots only).
        layout: the path of one bucket inside the root; ``{bucket}`` is replaced.
        fsync: ``LocalStore``'s durability switch (tests may turn it off).
        timeout, retries: an ``S3Store``'s connect/read time-out (seconds) and attempts.
    """

    root: str
    endpoint: str | None = None
    layout: str = "{bucket}"
    fsync: bool = True
    timeout: float = 30.0
    retries: int = 3

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    def open(self, bucket: str) -> Store:
        """The store of ``bucket`` (one per process and bucket, reused: S3 clients are not
        cheap to build)."""
        key = (self, bucket)
        with _OPENED_LOCK:
            store = _OPENED.get(key)
        if store is not None:
            return store
        where = self.layout.format(bucket=bucket).strip("/")
        if self.is_s3:
            store = open_store(
                f"{self.root.rstrip('/')}/{where}",
                endpoint=self.endpoint,
                retries=self.retries,
                connect_timeout=min(self.timeout, 5.0),
                read_timeout=self.timeout,
            )
        else:
            store = LocalStore(Path(self.root) / where, fsync=self.fsync)
        with _OPENED_LOCK:
            return _OPENED.setdefault(key, store)


def staging_key(job_id: str, attempt: int) -> str:
    """Where attempt ``attempt`` of a job leaves its result before the commit."""
    return f"{STAGING_PREFIX}{job_id}-{attempt}"


def promote(store: Store, staged: str, key: str) -> None:
    """Move the staged object to ``key`` in one atomic step for readers of ``key``: a rename
    in a local store, a server-side copy in S3, else a put of the bytes; then drop the staged
    object."""
    if isinstance(store, LocalStore):
        import os

        from ci_engine.errors import InternalError, NoSuchKeyError
        from ci_engine.store import _fsync_dir

        source = store.path(staged)
        try:
            target = store.path(key)
            if not target.parent.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                target = store.path(key)  # checked again now that its folders exist
            os.replace(source, target)
            if store.fsync:
                _fsync_dir(target.parent)
        except FileNotFoundError:
            raise NoSuchKeyError(f"key: no staged result {staged!r}") from None
        except OSError as exc:
            raise InternalError(f"store: cannot move the result to {key!r}", detail=repr(exc)) from exc
        return
    copy = getattr(store, "copy", None)
    if copy is not None:
        copy(staged, key)
    else:
        store.put(key, store.get(staged))
    store.delete(staged)
