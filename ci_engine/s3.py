"""An S3-compatible store: :class:`S3Store`, one CI bucket in an S3 bucket (optionally under
a key prefix), through boto3. Reach it as ``ci_engine.store.S3Store`` or from a root URL with
:func:`ci_engine.store.open_store` (``s3://BUCKET[/PREFIX]``); importing ``ci_engine`` does
not import boto3.

Guarantees, the same as :class:`~ci_engine.store.LocalStore`'s where S3 allows:

* **atomic writes**: an S3 ``PutObject`` is atomic per object (a reader sees the old object
  or the new one); the body is sent with its ``Content-MD5``, so a body damaged in flight is
  refused by the server instead of stored. A failed put leaves the old object (or none).
* **typed errors**: a missing object is ``404 NoSuchKey``; a refused credential or policy
  ``403 AccessDenied``; a missing S3 bucket ``404 NoSuchBucket``; an endpoint that refuses
  connections or times out, after the retries, ``503 ServiceUnavailable``
  (:class:`StoreUnavailableError`); anything else the server answers ``500 InternalError``
  with the S3 code in ``detail``.
* **retries where safe**: every call this store makes is idempotent (whole-object put,
  get, head, delete, list, server-side copy), so botocore's ``standard`` retry mode retries
  connection failures, timeouts, throttling and 5xx answers (``retries`` attempts in all)
  with a bounded back-off; connect and read time-outs are bounded (``connect_timeout``,
  ``read_timeout``).

Credentials come from the usual AWS sources (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` environment variables, profiles ...). An ``S3Store`` pickles
without its client (the client is rebuilt on first use), so a Dask worker can receive one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from base64 import b64encode
from typing import Any, BinaryIO, cast
from urllib.parse import urlsplit

from ci_engine.errors import AccessDeniedError, CIError, InternalError, InvalidArgumentError
from ci_engine.store import ObjectInfo, Store, _as_bytes, _no_such_key, check_key, md5_etag

__all__ = ["S3Store", "StoreUnavailableError", "NoSuchBucketError", "parse_s3_url"]

_DEFAULT_REGION = "us-east-1"


class StoreUnavailableError(CIError):
    """The store's endpoint refused the connection or timed out, after the retries."""

    code = "ServiceUnavailable"
    status = 503


class NoSuchBucketError(CIError):
    """The S3 bucket behind a store does not exist."""

    code = "NoSuchBucket"
    status = 404


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://BUCKET[/PREFIX]`` → ``(bucket, prefix)``; the prefix has no leading ``/`` and,
    when not empty, ends with ``/``.

    >>> parse_s3_url("s3://media/ci/root")
    ('media', 'ci/root/')
    >>> parse_s3_url("s3://media")
    ('media', '')
    """
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidArgumentError(f"store: expected s3://BUCKET[/PREFIX], got {url!r}", op="store")
    if parts.query or parts.fragment:
        raise InvalidArgumentError(f"store: an s3:// URL takes no query or fragment, got {url!r}", op="store")
    prefix = parts.path.strip("/")
    return parts.netloc, f"{prefix}/" if prefix else ""


class S3Store(Store):
    """A bucket in an S3-compatible service: the object ``a/b.jpg`` is the S3 object
    ``<prefix>a/b.jpg`` of ``bucket``.

    Args:
        bucket: the S3 bucket (it must exist).
        prefix: a key prefix for every object (``"ci/"``); ``""`` for none. A missing
            trailing ``/`` is added.
        endpoint: the service's URL (``http://127.0.0.1:9000``); ``None``: AWS.
        region: the signing region (default ``AWS_DEFAULT_REGION`` or ``us-east-1``).
        retries: attempts per call, the first included (botocore ``standard`` mode).
        connect_timeout, read_timeout: seconds.

    Example (needs a reachable endpoint, so not run here)::

        store = S3Store("media", prefix="ci/", endpoint="http://127.0.0.1:9000")
        store.put("a/b.jpg", data)
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        retries: int = 3,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        if not isinstance(bucket, str) or not bucket:
            raise InvalidArgumentError(f"store: an S3 bucket name is required, got {bucket!r}", op="store")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if retries < 1:
            raise ValueError(f"retries must be at least 1, got {retries}")
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        self.endpoint = endpoint
        self.region = region or os.environ.get("AWS_DEFAULT_REGION") or _DEFAULT_REGION
        self.retries = retries
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, endpoint: str | None = None, **kwargs: Any) -> S3Store:
        """The store of ``s3://BUCKET[/PREFIX]``."""
        bucket, prefix = parse_s3_url(url)
        return cls(bucket, prefix=prefix, endpoint=endpoint, **kwargs)

    def child(self, name: str) -> S3Store:
        """The store under ``<prefix><name>/`` of the same S3 bucket and settings."""
        return S3Store(
            self.bucket,
            prefix=f"{self.prefix}{name}/",
            endpoint=self.endpoint,
            region=self.region,
            retries=self.retries,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )

    def __repr__(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"S3Store('s3://{self.bucket}/{self.prefix}'{where})"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    # -- pickling: the client and the lock stay behind ------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_client", "_lock")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client = None
        self._lock = threading.Lock()

    # -- the client ---------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The boto3 S3 client (built on first use; thread-safe)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import boto3
                    from botocore.config import Config

                    config = Config(
                        retries={"max_attempts": self.retries, "mode": "standard"},
                        connect_timeout=self.connect_timeout,
                        read_timeout=self.read_timeout,
                        s3={"addressing_style": "path"},
                        signature_version="s3v4",
                    )
                    self._client = boto3.session.Session().client(
                        "s3", endpoint_url=self.endpoint, region_name=self.region, config=config
                    )
        return self._client

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, what: str, key: str, method: str, **kwargs: Any) -> Any:
        """Run one client call, with botocore's failures turned into ``CIError``\\ s."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            raise self._client_error(exc, what, key) from None
        except BotoCoreError as exc:
            raise self._transport_error(exc, what, key) from None

    def _client_error(self, exc: Any, what: str, key: str) -> CIError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = str(error.get("Message", "")) or code
        if code in ("NoSuchKey", "NotFound", "404") and key:
            return _no_such_key(key)
        if code == "NoSuchBucket" or (code in ("NotFound", "404") and not key):
            return NoSuchBucketError(f"store: the S3 bucket {self.bucket!r} does not exist")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or status == 403:
            return AccessDeniedError(f"store: {what} {key!r} refused by the S3 service ({code})")
        if code in ("SlowDown", "ServiceUnavailable", "503") or status == 503:
            return StoreUnavailableError(
                f"store: the S3 service at {self._where()} is unavailable ({code}) after {self.retries} attempts",
                detail=message,
            )
        return InternalError(f"store: {what} {key!r} failed on the S3 service ({code})", detail=message)

    def _transport_error(self, exc: Exception, what: str, key: str) -> CIError:
        from botocore.exceptions import (
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            ReadTimeoutError,
        )

        if isinstance(exc, (ConnectTimeoutError, ReadTimeoutError)):
            why = "timed out"
        elif isinstance(exc, (EndpointConnectionError, ConnectionClosedError)):
            why = "refused or dropped the connection"
        else:
            return InternalError(f"store: {what} {key!r} failed ({type(exc).__name__})", detail=repr(exc))
        return StoreUnavailableError(
            f"store: the S3 endpoint {self._where()} {why} ({what} {key!r}, {self.retries} attempts)",
            detail=repr(exc),
        )

    def _where(self) -> str:
        return self.endpoint or "AWS"

    # -- Store ----------------------------------------------------------------------------------
    def get(self, key: str) -> bytes:
        name = self._name(key)
        from botocore.exceptions import BotoCoreError

        answer = self._call("get", key, "get_object", Key=name)
        try:
            data: bytes = answer["Body"].read()
        except BotoCoreError as exc:
            raise self._transport_error(exc, "get", key) from None
        finally:
            answer["Body"].close()
        return data

    def put(self, key: str, data: bytes) -> str:
        name = self._name(key)
        data = _as_bytes(data)
        etag = md5_etag(data)
        md5 = b64encode(bytes.fromhex(etag)).decode("ascii")
        self._call("put", key, "put_object", Key=name, Body=data, ContentMD5=md5)
        return etag

    def put_file(self, key: str, path: str | os.PathLike[str], *, etag: str | None = None) -> str:
        """Store the local file ``path`` under ``key``, streamed from disk (boto3's managed
        transfer: multipart above 8 MB, each part retried; the object appears only when the
        upload completes, and a failed upload leaves no object). The file is consumed, as
        :meth:`Store.put_file` says. Returns the ETag (the MD5 hex of the file; ``etag`` when
        the caller already computed it)."""
        import hashlib

        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            name = self._name(key)
            if etag is None:
                digest = hashlib.md5(usedforsecurity=False)
                with open(path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
                etag = digest.hexdigest()
            try:
                self.client.upload_file(os.fspath(path), self.bucket, name, Config=TransferConfig(use_threads=False))
            except ClientError as exc:
                raise self._client_error(exc, "put", key) from None
            except BotoCoreError as exc:
                raise self._transport_error(exc, "put", key) from None
            except CIError:
                raise
            except Exception as exc:  # boto3's S3UploadFailedError wraps the botocore error
                cause = exc.__cause__ or exc.__context__
                if isinstance(cause, ClientError):
                    raise self._client_error(cause, "put", key) from None
                if isinstance(cause, BotoCoreError):
                    raise self._transport_error(cause, "put", key) from None
                raise InternalError(f"store: put {key!r} failed", detail=repr(exc)) from None
            return etag
        finally:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def open(self, key: str) -> BinaryIO:
        """The object's bytes as a file object: read from one ``GetObject`` (a snapshot of
        the object) into a spooled temporary file (memory up to 8 MB, then disk)."""
        from botocore.exceptions import BotoCoreError

        answer = self._call("get", key, "get_object", Key=self._name(key))
        spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
        try:
            for chunk in answer["Body"].iter_chunks(1 << 20):
                spool.write(chunk)
        except BotoCoreError as exc:
            spool.close()
            raise self._transport_error(exc, "get", key) from None
        finally:
            answer["Body"].close()
        spool.seek(0)
        return cast(BinaryIO, spool)

    def head(self, key: str) -> ObjectInfo:
        answer = self._call("head", key, "head_object", Key=self._name(key))
        etag = str(answer.get("ETag", "")).strip('"')
        if len(etag) != 32 or "-" in etag:
            etag = md5_etag(self.get(key))
        modified = answer.get("LastModified")
        return ObjectInfo(
            key, int(answer.get("ContentLength", 0)), etag, modified.timestamp() if modified is not None else 0.0
        )

    def copy(self, source: str, dest: str) -> None:
        """Server-side copy of ``source`` to ``dest`` (atomic for the destination; objects up
        to 5 GB)."""
        self._call(
            "copy",
            source,
            "copy_object",
            Key=self._name(dest),
            CopySource={"Bucket": self.bucket, "Key": self._name(source)},
        )

    def exists(self, key: str) -> bool:
        try:
            self._call("head", key, "head_object", Key=self._name(key))
        except CIError as exc:
            if exc.code == "NoSuchKey":
                return False
            raise
        return True

    def etag(self, key: str) -> str:
        # a multipart object's S3 ETag is not the MD5 of its bytes: head() computes it then.
        return self.head(key).etag

    def delete(self, key: str) -> None:
        self._call("delete", key, "delete_object", Key=self._name(key))

    def keys(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for entry in page.get("Contents", ()):
                    found.append(str(entry["Key"])[len(self.prefix) :])
        except ClientError as exc:
            raise self._client_error(exc, "list", "") from None
        except BotoCoreError as exc:
            raise self._transport_error(exc, "list", prefix) from None
        return sorted(found)
