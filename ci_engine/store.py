"""Object storage for persistent processing: the :class:`Store` interface and two
implementations, :class:`LocalStore` (a directory on the local filesystem, the embedded
default) and :class:`MemoryStore` (a dict, for tests and examples).

One store is one bucket. Keys are COS object keys (``shop/items/42.jpg``): ``/``-separated,
no leading ``/``. ETags follow ``persistent-processing.md`` section 4 (proposal): the MD5 hex
digest of the stored bytes, *unquoted* here; the XML responses wrap them in quotes.

:class:`LocalStore` guarantees:

* **confinement**: a key can only name a file under the root. Keys with ``.``/``..`` or
  empty segments, a leading ``/``, NUL or other control characters are refused with
  ``400 InvalidArgument``; a key whose path leaves the root through a symbolic link is
  refused with ``403 AccessDenied``;
* **atomic writes**: ``put`` writes a temporary file in the destination directory, flushes
  and ``fsync``\\ s it, then renames it over the key (``os.replace``) and syncs the directory.
  A reader sees the old object or the new one, never a part; a failed write leaves no file
  behind (not even the temporary one).

This module imports no imaging library.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ci_engine._dc import dataclass
from ci_engine.errors import AccessDeniedError, CIError, InternalError, InvalidArgumentError, NoSuchKeyError

if TYPE_CHECKING:
    from ci_engine.s3 import S3Store

__all__ = [
    "Store",
    "LocalStore",
    "MemoryStore",
    "S3Store",
    "ObjectInfo",
    "open_store",
    "check_key",
    "md5_etag",
    "MAX_KEY_BYTES",
]

MAX_KEY_BYTES = 850
"""COS's limit on the length of an object key, in UTF-8 bytes."""

_MAX_SEGMENT_BYTES = 255
"""The usual filesystem limit on one path component (``NAME_MAX``)."""

_TMP_PREFIX = ".ci-tmp-"
"""Temporary files of :class:`LocalStore` start with this; keys may not."""


def md5_etag(data: bytes) -> str:
    """The ETag of ``data``: its MD5 digest in lower-case hex (unquoted)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_key(key: object) -> str:
    """Validate an object key and return it.

    A key is a non-empty ``str`` of at most 850 UTF-8 bytes whose ``/``-separated segments
    are non-empty and are neither ``.`` nor ``..``; it has no leading or trailing ``/`` and
    no control characters (U+0000..U+001F, U+007F).

    Raises:
        InvalidArgumentError: the key is not one.
    """
    if not isinstance(key, str):
        raise TypeError(f"key must be str, got {type(key).__name__}")
    if not key:
        raise InvalidArgumentError("key: must not be empty", op="key")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in key):
        raise InvalidArgumentError(f"key: must not contain control characters, got {key!r}", op="key")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"key: must be valid Unicode text, got {key!r}", op="key") from None
    if size > MAX_KEY_BYTES:
        raise InvalidArgumentError(f"key: must be at most {MAX_KEY_BYTES} bytes, got {size}", op="key")
    if key.startswith("/"):
        raise InvalidArgumentError(f"key: must not start with '/', got {key!r}", op="key")
    if key.endswith("/"):
        raise InvalidArgumentError(f"key: must not end with '/' (it would name a folder), got {key!r}", op="key")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidArgumentError(
                f"key: segments must not be empty, '.' or '..', got {key!r}", op="key", actual=key
            )
    return key


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What :meth:`Store.head` tells about an object: its ``size`` in bytes, its ``etag``
    (MD5 hex, unquoted) and ``last_modified`` (POSIX seconds; 0.0 when the store keeps no
    time)."""

    key: str
    size: int
    etag: str
    last_modified: float


class Store(ABC):
    """A bucket: bytes under object keys.

    Implementations validate keys with :func:`check_key` and raise
    :class:`~ci_engine.errors.NoSuchKeyError` for a missing object.
    """

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes. Raises ``NoSuchKeyError``."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (replacing any object there) in one atomic step;
        returns the new ETag."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """``True`` when an object is stored under ``key``."""

    @abstractmethod
    def etag(self, key: str) -> str:
        """The object's ETag (MD5 hex of its bytes, unquoted). Raises ``NoSuchKeyError``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error (as in COS)."""

    @abstractmethod
    def keys(self, prefix: str = "") -> list[str]:
        """The stored keys that start with ``prefix``, sorted."""

    # -- streaming: default implementations in terms of the methods above ----------------------
    def put_file(self, key: str, path: str | os.PathLike[str], *, etag: str | None = None) -> str:
        """Store the contents of the local file ``path`` under ``key`` in one atomic step and
        return the new ETag. The file is *consumed*: it is gone afterwards, whether the call
        succeeds or fails. ``etag``, when the caller computed it while writing the file, saves
        a second read.

        This default reads the file into memory and calls :meth:`put`; a store that can do
        better (a rename, a streamed upload) overrides it.
        """
        try:
            with open(path, "rb") as handle:
                data = handle.read()
            return self.put(key, data)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def open(self, key: str) -> BinaryIO:
        """A readable binary file object with the object's bytes, as they were when it was
        opened (a concurrent replacement does not change what it reads). Close it after use.
        Raises ``NoSuchKeyError``. This default wraps :meth:`get`."""
        return io.BytesIO(self.get(key))

    def head(self, key: str) -> ObjectInfo:
        """Size, ETag and modification time of an object. Raises ``NoSuchKeyError``. This
        default reads the object."""
        data = self.get(key)
        return ObjectInfo(key, len(data), md5_etag(data), 0.0)

    def __contains__(self, key: object) -> bool:
        try:
            return isinstance(key, str) and self.exists(key)
        except CIError:
            return False


class MemoryStore(Store):
    """A store in a dict (thread-safe). Handy for tests and examples."""

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            try:
                return self._objects[key]
            except KeyError:
                raise _no_such_key(key) from None

    def put(self, key: str, data: bytes) -> str:
        check_key(key)
        data = _as_bytes(data)
        with self._lock:
            self._objects[key] = data
        return md5_etag(data)

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self._objects

    def etag(self, key: str) -> str:
        return md5_etag(self.get(key))

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self._objects.pop(key, None)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._objects)} objects)"


class LocalStore(Store):
    """A bucket in a directory: the object ``a/b.jpg`` is the file ``<root>/a/b.jpg``.

    Args:
        root: the directory (created if missing).
        fsync: ``fsync`` each written file and its directory before reporting success
            (durability across a crash). On by default; tests may turn it off for speed.

    Example:
        >>> import tempfile
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.put("shop/items/42.txt", b"hello")
        '5d41402abc4b2a76b9719d911017c592'
        >>> store.get("shop/items/42.txt"), store.exists("shop/items/43.txt")
        (b'hello', False)
    """

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        self.root = path.resolve(strict=True)
        self.fsync = fsync
        self._etags: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- paths ----------------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        """The file that holds ``key`` (validated; its parent directories, where they exist,
        are checked to stay inside the root)."""
        check_key(key)
        for segment in key.split("/"):
            if len(segment.encode("utf-8")) > _MAX_SEGMENT_BYTES:
                raise InvalidArgumentError(
                    f"key: a segment may have at most {_MAX_SEGMENT_BYTES} bytes in a local store", op="key"
                )
            if segment.startswith(_TMP_PREFIX):
                raise InvalidArgumentError(f"key: segments must not start with {_TMP_PREFIX!r}", op="key")
        target = self.root.joinpath(*key.split("/"))
        self._confine(target.parent, key)
        return target

    def _confine(self, directory: Path, key: str) -> None:
        """Refuse ``key`` when the existing part of ``directory`` resolves outside the root
        (a symbolic link somewhere on the way)."""
        real = Path(os.path.realpath(directory))
        if real != self.root and self.root not in real.parents:
            raise AccessDeniedError(f"key: {key!r} resolves outside the store's root")

    def _regular(self, key: str) -> Path | None:
        """The file of ``key`` when it is a regular file that is not a symbolic link."""
        target = self.path(key)
        try:
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise InternalError(f"store: cannot read {key!r}", detail=repr(exc)) from exc
        if stat.S_ISLNK(st.st_mode):
            raise AccessDeniedError(f"key: {key!r} is a symbolic link in the store; refused")
        if not stat.S_ISREG(st.st_mode):
            return None
        return target

    # -- Store ------------------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def put(self, key: str, data: bytes) -> str:
        target = self.path(key)
        data = _as_bytes(data)
        self._make_parents(target.parent, key)
        if target.is_dir() and not target.is_symlink():
            raise InvalidArgumentError(f"key: {key!r} names a folder of other objects in this local store", op="key")
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        try:
            try:
                os.fchmod(fd, 0o644)
            except (AttributeError, OSError):  # pragma: no cover - Windows
                pass
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if self.fsync:
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise InternalError(f"store: cannot write {key!r}", detail=repr(exc)) from exc
            raise
        if self.fsync:
            _fsync_dir(target.parent)
        etag = md5_etag(data)
        with contextlib.suppress(OSError):
            st = os.stat(target)
            with self._lock:
                self._etags[key] = ((st.st_ino, st.st_size, st.st_mtime_ns), etag)
        return etag

    def put_file(self, key: str, path: str | os.PathLike[str], *, etag: str | None = None) -> str:
        """Move the local file ``path`` into place under ``key`` (``os.replace``: atomic; a
        reader sees the old object or the new one). The file should be on the store's
        filesystem (:meth:`temp_path` gives such a place); otherwise it is copied to a
        temporary file next to the key first. The file is consumed in every case."""
        source = Path(path)
        try:
            target = self.path(key)
            self._make_parents(target.parent, key)
            if target.is_dir() and not target.is_symlink():
                raise InvalidArgumentError(
                    f"key: {key!r} names a folder of other objects in this local store", op="key"
                )
            if etag is None:
                etag = _file_md5(source)
            with contextlib.suppress(AttributeError, OSError):
                os.chmod(source, 0o644)
            if self.fsync:
                fd = os.open(source, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            try:
                os.replace(source, target)
            except OSError as exc:
                if exc.errno != 18:  # EXDEV: another filesystem; copy next to the key instead
                    raise
                with open(source, "rb") as handle:
                    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
                    try:
                        with os.fdopen(fd, "wb") as out:
                            while chunk := handle.read(1 << 20):
                                out.write(chunk)
                            out.flush()
                            if self.fsync:
                                os.fsync(out.fileno())
                        os.chmod(tmp, 0o644)
                        os.replace(tmp, target)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            os.unlink(tmp)
                        raise
        except OSError as exc:
            raise InternalError(f"store: cannot write {key!r}", detail=repr(exc)) from exc
        finally:
            with contextlib.suppress(OSError):
                os.unlink(source)
        if self.fsync:
            _fsync_dir(target.parent)
        with contextlib.suppress(OSError):
            st = os.stat(target)
            with self._lock:
                self._etags[key] = ((st.st_ino, st.st_size, st.st_mtime_ns), etag)
        return etag

    def temp_path(self) -> Path:
        """A fresh, empty temporary file inside the store's root, for a caller that streams an
        upload to disk before :meth:`put_file`. Its name starts with the temporary prefix, so
        it never shows among the keys; the caller removes it if it does not hand it over."""
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=self.root)
        os.close(fd)
        return Path(tmp)

    def open(self, key: str) -> BinaryIO:
        target = self._regular(key)
        if target is None:
            raise _no_such_key(key)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(target, flags)
        except FileNotFoundError:
            raise _no_such_key(key) from None
        except OSError as exc:
            raise InternalError(f"store: cannot read {key!r}", detail=repr(exc)) from exc
        return os.fdopen(fd, "rb")

    def _stat(self, key: str) -> os.stat_result:
        """The object's file status; ``NoSuchKeyError`` when it is absent or not a regular file."""
        target = self._regular(key)
        if target is None:
            raise _no_such_key(key)
        try:
            return os.stat(target)
        except OSError:
            raise _no_such_key(key) from None

    def head(self, key: str) -> ObjectInfo:
        st = self._stat(key)
        return ObjectInfo(key, st.st_size, self.etag(key), st.st_mtime)

    def _make_parents(self, directory: Path, key: str) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidArgumentError(
                f"key: {key!r} needs a folder where this local store holds an object", op="key"
            ) from None
        except OSError as exc:
            raise InternalError(f"store: cannot create the folder for {key!r}", detail=repr(exc)) from exc
        self._confine(directory, key)

    def exists(self, key: str) -> bool:
        try:
            return self._regular(key) is not None
        except AccessDeniedError:
            return False

    def etag(self, key: str) -> str:
        st = self._stat(key)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        with self._lock:
            cached = self._etags.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        etag = md5_etag(self.get(key))
        with self._lock:
            self._etags[key] = (stamp, etag)
        return etag

    def delete(self, key: str) -> None:
        target = self._regular(key)
        with self._lock:
            self._etags.pop(key, None)
        if target is None:
            return
        try:
            os.unlink(target)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise InternalError(f"store: cannot delete {key!r}", detail=repr(exc)) from exc
        # Remove the folders the key emptied, up to the root (they are not objects).
        parent = target.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._walk() if k.startswith(prefix))

    def _walk(self) -> Iterator[str]:
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
            rel = os.path.relpath(directory, self.root)
            for name in files:
                full = os.path.join(directory, name)
                if name.startswith(_TMP_PREFIX) or os.path.islink(full):
                    continue
                yield name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"


def open_store(root: str | os.PathLike[str], *, endpoint: str | None = None, **kwargs: Any) -> Store:
    """The store a root names: ``s3://BUCKET[/PREFIX]`` is an :class:`S3Store` (with
    ``endpoint``, the S3-compatible service's URL); anything else a directory, a
    :class:`LocalStore`. ``kwargs`` go to the store's constructor.

    >>> import tempfile
    >>> open_store(tempfile.mkdtemp()).__class__.__name__
    'LocalStore'
    >>> open_store("s3://media/ci", endpoint="http://127.0.0.1:9000")
    S3Store('s3://media/ci/' at http://127.0.0.1:9000)
    """
    text = os.fspath(root)
    if isinstance(text, str) and text.startswith("s3://"):
        from ci_engine.s3 import S3Store

        return S3Store.from_url(text, endpoint=endpoint, **kwargs)
    if endpoint is not None:
        raise ValueError("endpoint applies to s3:// roots only")
    return LocalStore(text, **kwargs)


def __getattr__(name: str) -> Any:
    # S3Store is imported on first use, so that ``import ci_engine`` never loads boto3.
    if name == "S3Store":
        from ci_engine.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - filesystems without directory fsync
        pass
    finally:
        os.close(fd)


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _as_bytes(data: object) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        try:
            return bytes(data)
        except ValueError as exc:  # a released memoryview: a programming error (docs/errors.md)
            raise ValueError(f"data: {exc}") from None
    raise TypeError(f"data must be bytes, bytearray or memoryview, got {type(data).__name__}")


def _no_such_key(key: str) -> NoSuchKeyError:
    return NoSuchKeyError(f"key: no object {key!r}")
