"""Where watermark images come from: pluggable resolvers from a URL to bytes.

``watermark/1/image/<b64 url>`` names its logo by URL. ci_engine never fetches anything
by itself: :func:`ci_engine.process` takes ``resources=``, one of

- a :class:`Resolver` (anything with ``fetch(url) -> bytes``), e.g.
  :class:`LocalDirectoryResolver` (a directory standing in for the bucket) or, opted into
  explicitly, :class:`NetworkResolver`;
- a mapping from URL or object key to bytes (wrapped in :class:`MappingResolver`);
- a callable from URL to bytes (wrapped in :class:`CallableResolver`).

Without one, a ``watermark/1`` step fails with :class:`~ci_engine.errors.AccessDeniedError`
naming the URL. Errors (``limits-and-errors.md`` section 5.4, ``docs/watermarks.md``):

- the object does not exist: :class:`~ci_engine.errors.NoSuchKeyError` (404, X-ErrNo -60987);
- the resolver refuses (outside its root, a scheme or host it does not serve, a private
  address): :class:`~ci_engine.errors.AccessDeniedError` (403, -60987);
- the URL breaks CI's documented URL rules in strict mode (not ``http://``, not a COS origin
  host, another bucket): :class:`~ci_engine.errors.InvalidArgumentError` (400, not masked).

This module imports no imaging library.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from ci_engine._dc import dataclass
from ci_engine.errors import AccessDeniedError, CIError, InternalError, InvalidArgumentError, NoSuchKeyError

__all__ = [
    "Resolver",
    "Resources",
    "MappingResolver",
    "CallableResolver",
    "BucketResolver",
    "LocalDirectoryResolver",
    "NetworkResolver",
    "CosUrl",
    "parse_cos_url",
    "as_resolver",
    "resolved_bytes",
    "FETCH_ERRNO",
    "MAX_KEY_BYTES",
]

FETCH_ERRNO = -60987
"""CI's code for "failed to retrieve the image" (``watermark.md`` section 7)."""

MAX_KEY_BYTES = 850
"""COS' longest object key, in UTF-8 bytes; longer keys are refused."""

MAX_URL_CHARS = 4096

_COS_HOST = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9-]*-\d+)\.(?P<service>cos|pic|ci|cos-website)\.(?P<region>[a-z0-9-]+)\.myqcloud\.com$"
)
"""COS / CI origin domains: ``<bucket>-<appid>.cos.<region>.myqcloud.com`` (and the
``pic``/``ci`` image-processing origins). CDN acceleration domains are not origins."""


@runtime_checkable
class Resolver(Protocol):
    """Turns a watermark URL (as decoded from the processing string) into the object's
    bytes, or raises :class:`~ci_engine.errors.NoSuchKeyError`,
    :class:`~ci_engine.errors.AccessDeniedError` or
    :class:`~ci_engine.errors.InvalidArgumentError`. Implementations must be thread-safe
    (one resolver serves concurrent requests)."""

    def fetch(self, url: str) -> bytes: ...


Resources = Resolver | Mapping[str, bytes] | Callable[[str], bytes]
"""What ``process(..., resources=...)`` accepts."""


def _missing(url: str, why: str = "does not exist") -> NoSuchKeyError:
    return NoSuchKeyError(f"watermark: the watermark image {url!r} {why}", x_errno=FETCH_ERRNO)


def resolved_bytes(url: str, value: object) -> bytes:
    """What a resolver (a mapping's value, a callable's result) gave for ``url``, as bytes.

    Anything but bytes, bytearray or a live memoryview is the service's mistake, not the
    request's: :class:`~ci_engine.errors.InternalError` (500), the same for every kind of
    resolver (``docs/errors.md``, "Programming errors and request errors")."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        try:
            return bytes(value)
        except ValueError:  # a released memoryview
            pass
    raise InternalError(
        f"watermark: the resource resolver gave {type(value).__name__} for {url!r}, not bytes "
        "(a mapping's values and a callable's results must be bytes)",
        detail=repr(value)[:200],
    )


def _denied(url: str, why: str) -> AccessDeniedError:
    return AccessDeniedError(f"watermark: the watermark image {url!r} is refused: {why}", x_errno=FETCH_ERRNO)


def _invalid(url: str, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"watermark/1: image URL {url!r} {why}", op="watermark/1", field="image", actual=url, x_errno=-60998
    )


# -- URLs ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CosUrl:
    """A watermark URL taken apart. ``key`` is the percent-decoded object key (no leading
    ``/``); ``bucket`` and ``region`` are set for COS/CI origin hosts; ``query`` is the raw
    query string (a nested processing string, a signature), '' when absent."""

    scheme: str
    host: str
    key: str
    query: str
    bucket: str | None = None
    region: str | None = None

    @property
    def is_cos(self) -> bool:
        return self.bucket is not None


def parse_cos_url(url: str) -> CosUrl:
    """Split a watermark URL (or a bare object key: scheme and host '') into its parts.

    >>> u = parse_cos_url("http://demo-1250000000.cos.ap-guangzhou.myqcloud.com/brand/logo.png")
    >>> (u.bucket, u.region, u.key)
    ('demo-1250000000', 'ap-guangzhou', 'brand/logo.png')
    >>> parse_cos_url("brand/logo%20x.png?imageMogr2/thumbnail/50x").key
    'brand/logo x.png'
    """
    if len(url) > MAX_URL_CHARS:
        raise _denied(url[:80] + "...", f"longer than {MAX_URL_CHARS} characters")
    if "\x00" in url:
        raise _denied(url, "it contains a NUL character")
    head, _, query = url.partition("?")
    head = head.split("#", 1)[0]
    if "://" not in head and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", head):
        return CosUrl("", "", unquote(head), query)
    parts = urlsplit(head)
    host = (parts.hostname or "").lower()
    match = _COS_HOST.match(host)
    key = unquote(parts.path)
    key = key[1:] if key.startswith("/") else key
    return CosUrl(
        parts.scheme.lower(),
        host,
        key,
        query,
        bucket=match.group("bucket") if match else None,
        region=match.group("region") if match else None,
    )


def check_ci_url(url: str, *, bucket: str | None = None) -> CosUrl:
    """CI's documented watermark URL rules (strict mode, ``watermark.md`` section 3.1):
    ``http://`` only, a COS/CI origin host (not a CDN domain), the same bucket as the base
    image when ``bucket`` is given. Raises :class:`~ci_engine.errors.InvalidArgumentError`."""
    parsed = parse_cos_url(url)
    if parsed.scheme != "http":
        raise _invalid(url, "must start with http:// (CI rejects https:// and bare keys)")
    if not parsed.is_cos:
        raise _invalid(url, "must use the COS origin domain <bucket>-<appid>.cos.<region>.myqcloud.com")
    if bucket is not None and parsed.bucket != bucket.lower():
        raise _invalid(url, f"must be in the same bucket as the image ({bucket})")
    return parsed


# -- resolvers ---------------------------------------------------------------------------------------


class MappingResolver:
    """Objects held in a mapping. A URL is looked up as written, then without its query
    string, then by its object key (``brand/logo.png``), so a mapping keyed by keys serves
    full COS URLs. Missing entries raise :class:`~ci_engine.errors.NoSuchKeyError`."""

    def __init__(self, objects: Mapping[str, bytes]) -> None:
        self._objects = objects

    def fetch(self, url: str) -> bytes:
        candidates = [url, url.partition("?")[0]]
        try:
            candidates.append(parse_cos_url(url).key)
        except CIError:
            pass
        for name in candidates:
            data = self._objects.get(name)
            if data is not None:
                return resolved_bytes(url, data)
        raise _missing(url)


class CallableResolver:
    """A function from URL to bytes. ``None``, ``KeyError``, ``LookupError`` and
    ``FileNotFoundError`` mean "missing" (:class:`~ci_engine.errors.NoSuchKeyError`),
    ``PermissionError`` means "refused"; a :class:`~ci_engine.errors.CIError` passes through;
    any other failure is reported as missing with the exception in ``detail``."""

    def __init__(self, fn: Callable[[str], bytes | None]) -> None:
        self._fn = fn

    def fetch(self, url: str) -> bytes:
        try:
            data = self._fn(url)
        except CIError:
            raise
        except PermissionError as exc:
            raise _denied(url, "permission denied") from exc
        except (LookupError, FileNotFoundError) as exc:
            raise _missing(url) from exc
        except Exception as exc:
            error = _missing(url, "could not be retrieved")
            error.detail = repr(exc)
            raise error from exc
        if data is None:
            raise _missing(url)
        return resolved_bytes(url, data)


class BucketResolver:
    """The watermark images of a rule run for one bucket, as CI takes them: only
    ``http://<bucket>.cos.<region>.myqcloud.com/<key>`` URLs of *that* bucket, read with
    ``get(key)`` (a store's ``get``). Another bucket or host, a bare key, or a URL with a query
    string is :class:`~ci_engine.errors.AccessDeniedError`; a missing object (``get``
    raising ``NoSuchKeyError``, ``LookupError`` or ``FileNotFoundError``) is
    :class:`~ci_engine.errors.NoSuchKeyError`. Used by the server and the job workers."""

    def __init__(self, bucket: str, get: Callable[[str], bytes]) -> None:
        self.bucket = bucket.lower()
        self._resolver = CallableResolver(self._get)
        self._read = get

    def names(self, url: str) -> str | None:
        """The object key ``url`` names in this bucket, or ``None`` when it names none."""
        try:
            parsed = parse_cos_url(url)
        except CIError:
            return None
        if parsed.bucket != self.bucket or parsed.query or not parsed.key:
            return None
        return parsed.key

    def _get(self, url: str) -> bytes:
        key = self.names(url)
        if key is None:
            raise PermissionError(url)
        return self._read(key)

    def fetch(self, url: str) -> bytes:
        return self._resolver.fetch(url)


class LocalDirectoryResolver:
    """A local directory standing in for the bucket: object key ``a/b.png`` is the file
    ``root/a/b.png``.

    Accepted names: a COS/CI origin URL ``http://<bucket>.cos.<region>.myqcloud.com/<key>``
    (the query string is ignored here; a processing query is run by the caller), and in
    lenient mode (the default) also ``https://`` and a bare key. Refused
    (:class:`~ci_engine.errors.AccessDeniedError`): other schemes (``file:``, ``ftp:`` ...),
    other hosts (``http://127.0.0.1/...``: this resolver serves COS object names, it never
    touches the network), keys with ``..`` or ``.`` components, absolute keys, backslashes,
    NUL, keys over 850 bytes, and any path whose real location (symlinks followed) is outside
    ``root``. A missing file is :class:`~ci_engine.errors.NoSuchKeyError`.

    ``strict=True`` applies CI's URL rules first (``http://`` only, COS origin host, and
    ``bucket`` when given); a breach is :class:`~ci_engine.errors.InvalidArgumentError`.
    ``max_bytes`` caps what is read (the 32 MB input limit by default).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        strict: bool = False,
        bucket: str | None = None,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        given = Path(root)
        if not given.exists():
            raise FileNotFoundError(
                f"LocalDirectoryResolver: the folder {str(given)!r} does not exist; pass the folder that "
                "stands in for the bucket (object key a/b.png is <folder>/a/b.png)"
            )
        self.root = given.resolve(strict=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"LocalDirectoryResolver: {str(given)!r} is a file, not a folder")
        self.strict = strict
        self.bucket = bucket
        self.max_bytes = max_bytes

    def path_for(self, url: str) -> Path:
        """The file ``url`` names, checked to be inside the root (it may not exist)."""
        if self.strict:
            parsed = check_ci_url(url, bucket=self.bucket)
        else:
            parsed = parse_cos_url(url)
            if parsed.scheme not in ("", "http", "https"):
                raise _denied(url, f"scheme {parsed.scheme}: is not served (only COS object URLs and keys)")
            if parsed.scheme and not parsed.is_cos:
                raise _denied(url, f"host {parsed.host or '(none)'} is not a COS origin domain")
            if self.bucket is not None and parsed.is_cos and parsed.bucket != self.bucket.lower():
                raise _denied(url, f"it is not in bucket {self.bucket}")
        key = parsed.key
        if not key:
            raise _missing(url, "names no object")
        if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
            raise _denied(url, f"the object key is longer than {MAX_KEY_BYTES} bytes")
        if "\x00" in key or "\\" in key:
            raise _denied(url, "the object key contains NUL or a backslash")
        if key.startswith("/") or os.path.isabs(key) or re.match(r"^[A-Za-z]:", key):
            raise _denied(url, "the object key is an absolute path")
        parts = key.split("/")
        if any(part in ("..", ".") for part in parts):
            raise _denied(url, "the object key has a '.' or '..' component")
        path = self.root.joinpath(*[p for p in parts if p])
        try:
            real = path.resolve(strict=True)
        except FileNotFoundError:
            raise _missing(url) from None
        except (OSError, RuntimeError) as exc:  # symlink loops
            raise _denied(url, "the path cannot be resolved") from exc
        if not real.is_relative_to(self.root):
            raise _denied(url, "it resolves outside the resource directory")
        return real

    def fetch(self, url: str) -> bytes:
        path = self.path_for(url)
        if not path.is_file():
            raise _missing(url)
        try:
            with path.open("rb") as fh:
                data = fh.read(self.max_bytes + 1)
        except FileNotFoundError:
            raise _missing(url) from None
        except PermissionError as exc:
            raise _denied(url, "permission denied") from exc
        if len(data) > self.max_bytes:
            raise _denied(url, f"the object is larger than {self.max_bytes} bytes")
        return data


class NetworkResolver:
    """Fetch watermark images over HTTP(S). Never the default: a service opts in by passing
    one.

    Safety: only ``http``/``https`` (``http`` only when ``strict``); the host name is
    resolved once and every address must be public unless ``allow_private`` (loopback,
    private, link-local, multicast, reserved and unspecified addresses are refused, which
    stops requests to ``127.0.0.1``, ``169.254.169.254`` and the like); the connection goes
    to the address that was checked (no second DNS lookup to rebind); redirects are not
    followed; ``timeout`` seconds per request; at most ``max_bytes`` are read.
    ``hosts``: when given, the only host names served (e.g. your bucket's origin).
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        strict: bool = False,
        bucket: str | None = None,
        hosts: tuple[str, ...] | None = None,
        timeout: float = 10.0,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.allow_private = allow_private
        self.strict = strict
        self.bucket = bucket
        self.hosts = None if hosts is None else tuple(h.lower() for h in hosts)
        self.timeout = timeout
        self.max_bytes = max_bytes

    def _address(self, url: str, host: str, port: int) -> str:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise _missing(url, f"cannot be retrieved: host {host} does not resolve") from exc
        addresses = [str(info[4][0]) for info in infos]
        if not addresses:
            raise _missing(url, f"cannot be retrieved: host {host} does not resolve")
        if not self.allow_private:
            for address in addresses:
                ip = ipaddress.ip_address(address.split("%", 1)[0])
                if not ip.is_global or ip.is_multicast:
                    raise _denied(url, f"host {host} resolves to a non-public address ({address})")
        return addresses[0]

    def fetch(self, url: str) -> bytes:
        import http.client
        import ssl

        if self.strict:
            check_ci_url(url, bucket=self.bucket)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise _denied(url, f"scheme {scheme or '(none)'}: is not fetched (http and https only)")
        host = (parts.hostname or "").lower()
        if not host:
            raise _denied(url, "it has no host")
        if self.hosts is not None and host not in self.hosts:
            raise _denied(url, f"host {host} is not in the allowed list")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise _invalid(url, "has an invalid port") from exc
        address = self._address(url, host, port)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        timeout = self.timeout

        class _Pinned(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.create_connection((address, port), timeout)

        class _PinnedTLS(http.client.HTTPSConnection):
            def connect(self) -> None:
                sock = socket.create_connection((address, port), timeout)
                self.sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)

        connection_class = _PinnedTLS if scheme == "https" else _Pinned
        connection = connection_class(host, port, timeout=timeout)
        try:
            connection.request("GET", target, headers={"User-Agent": "ci_engine", "Accept": "image/*"})
            response = connection.getresponse()
            if response.status == 404:
                raise _missing(url)
            if response.status in (401, 403):
                raise _denied(url, f"the server answered {response.status}")
            if 300 <= response.status < 400:
                raise _denied(url, f"the server redirects ({response.status}); redirects are not followed")
            if response.status != 200:
                raise _missing(url, f"cannot be retrieved: the server answered {response.status}")
            data = response.read(self.max_bytes + 1)
        except CIError:
            raise
        except (OSError, http.client.HTTPException) as exc:
            error = _missing(url, "could not be retrieved")
            error.detail = repr(exc)
            raise error from exc
        finally:
            connection.close()
        if len(data) > self.max_bytes:
            raise _denied(url, f"the object is larger than {self.max_bytes} bytes")
        return data


class _NoResolver:
    """The default: nothing is fetched."""

    def fetch(self, url: str) -> bytes:
        raise AccessDeniedError(
            f"watermark/1: no resource resolver is configured, so the watermark image {url!r} "
            "cannot be fetched (command line: --resources DIR, the folder standing in for the bucket; "
            "library: process(..., resources=...) with a mapping, a callable, LocalDirectoryResolver(root) "
            "or NetworkResolver())",
            x_errno=FETCH_ERRNO,
        )


def as_resolver(resources: Resources | None) -> Resolver:
    """Normalise ``process(..., resources=...)`` to a :class:`Resolver`."""
    if resources is None:
        return _NoResolver()
    if isinstance(resources, Resolver):
        return resources
    if isinstance(resources, Mapping):
        return MappingResolver(resources)
    if callable(resources):
        return CallableResolver(resources)
    raise TypeError(f"resources must be a mapping, a callable or a Resolver, got {type(resources).__name__}")
