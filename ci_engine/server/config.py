"""The service's configuration: :class:`ServerConfig`, built from command-line flags and one
TOML file (``docs/server.md`` documents every field).

```toml
host = "127.0.0.1"          # all optional; flags override the file
port = 8080
region = "ap-guangzhou"
anonymous = false            # accept unsigned requests (a signature present is still checked)
default_bucket = "photos-1250000000"   # IP-mode calls that name no bucket (open/close picbucket)
max_body_bytes = 5368709120  # larger request bodies: 413 EntityTooLarge, checked while streaming
workers = 2                  # image-processing threads (default: the cores)
max_pending = 8              # requests waiting for a worker before 503 SlowDown
request_timeout = 60         # seconds of image work per request
grace_period = 10            # seconds to finish in-flight requests on SIGINT/SIGTERM

[[keys]]
secret_id = "AKIDexample"
secret_key = "example-secret"

[buckets."photos-1250000000"]
separators = "!-"            # style separators among - _ / !
protection = false           # original-image protection
public_read = false          # unsigned GET/HEAD allowed even with keys
hotlink = { mode = "allow", referers = ["*.example.com"], allow_empty = true }
origin = "https://img.example.com/"   # back-to-source: a missing key K is fetched from URL + K
origin_mode = "missing"      # "missing" (only absent keys) or "revalidate" (ask the origin each GET)
cache_control = "max-age=86400"       # Cache-Control of downloads (none by default)
```

Top level, the processed-result cache and the origin's limits::

    cache_dir = "/var/cache/ci-engine"   # processed outputs cached on disk (none without it)
    cache_size = 1073741824              # bytes the cache may hold (LRU eviction beyond)
    origin_connect_timeout = 5           # seconds to connect to an origin
    origin_read_timeout = 30             # seconds an origin may stay silent

This module imports neither Starlette nor an imaging library.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_engine._dc import dataclass, field, replace

if TYPE_CHECKING:
    from ci_engine.server.storage import Storage

__all__ = [
    "BUCKET_RE",
    "ConfigError",
    "HotlinkConfig",
    "BucketConfig",
    "ServerConfig",
    "load_toml",
    "DEFAULT_MAX_BODY",
    "DEFAULT_CACHE_SIZE",
    "ORIGIN_MODES",
    "parse_origin_flag",
]

BUCKET_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?-[0-9]{1,20}")
"""``BucketName-APPID``: lower-case letters, digits and ``-``, then ``-`` and the APPID."""

DEFAULT_MAX_BODY = 5 * 1024**3
"""COS's limit on one PUT Object or one part: 5 GB."""

DEFAULT_CACHE_SIZE = 1024**3
"""The processed-result cache's default bound: 1 GiB on disk."""

ORIGIN_MODES = ("missing", "revalidate")
"""``missing``: the origin is asked only for keys absent from the bucket (COS's origin-pull
on 404). ``revalidate``: every GET asks the origin whether its copy changed (a conditional
request); a changed object replaces the stored one."""

SECRET_ID_ENV = "CI_ENGINE_SECRET_ID"  # noqa: S105 - the name of a variable, not a secret
SECRET_KEY_ENV = "CI_ENGINE_SECRET_KEY"  # noqa: S105

_SEPARATORS = "-_/!"


class ConfigError(ValueError):
    """The configuration is unusable (the message says what to change)."""


@dataclass(frozen=True, slots=True)
class HotlinkConfig:
    """Hotlink protection of one bucket.

    Attributes:
        mode: ``"off"``; ``"allow"`` (only the listed Referers may download); ``"deny"`` (the
            listed Referers may not).
        referers: host patterns; ``*.example.com`` matches every subdomain of example.com,
            ``example.com`` only itself; a pattern may carry a port (``localhost:3000``).
        allow_empty: whether a request without a ``Referer`` passes (the browser's address
            bar, curl, the SDKs).
    """

    mode: str = "off"
    referers: tuple[str, ...] = ()
    allow_empty: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("off", "allow", "deny"):
            raise ConfigError(f"hotlink.mode must be off, allow or deny, got {self.mode!r}")


@dataclass(frozen=True, slots=True)
class BucketConfig:
    """Per-bucket settings from the config file (``--bucket`` gives the defaults)."""

    name: str
    separators: str = "!"
    protection: bool = False
    public_read: bool = False
    hotlink: HotlinkConfig = field(default_factory=HotlinkConfig)
    origin: str | None = None
    """Back-to-source: ``http(s)://host[:port][/prefix/]``; a missing key ``K`` is fetched
    from ``origin + K`` (a ``/`` is added when the URL does not end with one)."""
    origin_mode: str = "missing"
    """One of :data:`ORIGIN_MODES`."""
    cache_control: str | None = None
    """``Cache-Control`` of this bucket's downloads (plain and processed)."""

    def __post_init__(self) -> None:
        if not BUCKET_RE.fullmatch(self.name):
            raise ConfigError(f"bucket {self.name!r}: the name must be BucketName-APPID (e.g. photos-1250000000)")
        if self.origin is not None:
            object.__setattr__(self, "origin", check_origin_url(self.origin, self.name))
        if self.origin_mode not in ORIGIN_MODES:
            raise ConfigError(
                f"bucket {self.name!r}: origin_mode must be missing or revalidate, got {self.origin_mode!r}"
            )
        if self.cache_control is not None and any(c in self.cache_control for c in "\r\n"):
            raise ConfigError(f"bucket {self.name!r}: cache_control must be one line")
        bad = [s for s in self.separators if s not in _SEPARATORS]
        if bad:
            raise ConfigError(f"bucket {self.name!r}: separators must be among - _ / !, got {bad[0]!r}")


def check_origin_url(url: str, bucket: str) -> str:
    """``url`` normalised to end with ``/``; refused unless ``http(s)://host[:port][/path]``
    without query, fragment or credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise ConfigError(f"bucket {bucket!r}: origin {url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"bucket {bucket!r}: origin must be an http:// or https:// URL with a host, got {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"bucket {bucket!r}: origin {url!r} may not carry a query, a fragment or credentials")
    return url if url.endswith("/") else url + "/"


def parse_origin_flag(value: str) -> tuple[str, str]:
    """``NAME-APPID=URL`` (the ``--origin`` flag) as ``(bucket, url)``."""
    name, sep, url = value.partition("=")
    if not sep or not BUCKET_RE.fullmatch(name):
        raise ConfigError(f"--origin must be NAME-APPID=URL, got {value!r}")
    return name, check_origin_url(url, name)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ServerConfig:
    """Everything :func:`ci_engine.server.create_app` needs.

    Attributes:
        root: the directory holding the buckets (``<root>/<bucket>/<key>``) and their
            settings (``<root>/.ci-meta/<bucket>/``).
        host, port: where ``ci-engine serve`` binds (``127.0.0.1``: this machine only).
        region: the region the server answers for (``Location`` elements, picbucket).
        buckets: buckets created at start when missing, with their settings.
        credentials: ``SecretId -> SecretKey``; every request must be signed by one of them
            unless ``anonymous``.
        anonymous: accept unsigned requests (a signature that is present is still checked).
        default_bucket: the bucket of IP-mode calls whose request names none (the SDK's
            ``ci_open_pic_bucket`` / ``ci_close_pic_bucket``); default: the only bucket, if
            there is exactly one.
        max_body_bytes: the largest request body (PUT Object, one part); more: 413.
        workers: threads that run image work (default: the usable cores).
        max_pending: image requests that may wait for a thread; beyond, 503 SlowDown.
        request_timeout: seconds of image work one request may take (500, X-ErrNo -901).
        grace_period: seconds ``serve`` waits for in-flight requests when stopping.
        fsync: make every stored object durable before answering (on by default).
        backend: the imaging backend (``auto``, ``vips``, ``pillow``).
        vips_concurrency: libvips threads per operation, set once per process.
        cors_origins: origins browsers may call the server from (the browser JS SDK):
            ``("http://localhost:3000",)``, or ``("*",)`` for any; none by default.
        cache_dir: where processed outputs are cached (:mod:`~ci_engine.server.cache`);
            ``None``: no result cache.
        cache_size: the bytes the cache may hold on disk; least recently used entries go
            first.
        origin_connect_timeout, origin_read_timeout: seconds to connect to an origin, and
            that an origin may stay silent while answering (then 504).
        storage_factory: builds the :class:`~ci_engine.server.storage.Storage` (default: a
            :class:`~ci_engine.server.storage.LocalStorage` on ``root``); another storage
            (an S3-backed root) plugs in here.
        job_workers: worker processes of the embedded Dask cluster that runs the
            asynchronous jobs (default: ``workers``); started on the first job request.
        scheduler: ``tcp://HOST:PORT`` of a Dask scheduler to run the jobs on instead (its
            workers must reach the same root).
    """

    root: Path
    host: str = "127.0.0.1"
    port: int = 8080
    region: str = "ap-guangzhou"
    buckets: Mapping[str, BucketConfig] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict)
    anonymous: bool = False
    default_bucket: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    workers: int = field(default_factory=_cpu_count)
    max_pending: int | None = None
    request_timeout: float = 60.0
    grace_period: float = 10.0
    fsync: bool = True
    backend: str = "auto"
    vips_concurrency: int = 1
    cors_origins: tuple[str, ...] = ()
    storage_factory: Callable[[ServerConfig], Storage] | None = None
    job_workers: int | None = None
    scheduler: str | None = None
    cache_dir: Path | None = None
    cache_size: int = DEFAULT_CACHE_SIZE
    origin_connect_timeout: float = 5.0
    origin_read_timeout: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        if self.cache_dir is not None:
            object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        if self.cache_size < 1:
            raise ConfigError(f"cache_size must be positive, got {self.cache_size}")
        if self.origin_connect_timeout <= 0 or self.origin_read_timeout <= 0:
            raise ConfigError("origin_connect_timeout and origin_read_timeout must be positive")
        if not re.fullmatch(r"[a-z]+(?:-[a-z]+)+(?:-\d+)?", self.region):
            raise ConfigError(f"region must look like ap-guangzhou, got {self.region!r}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.max_body_bytes < 1:
            raise ConfigError(f"max_body_bytes must be positive, got {self.max_body_bytes}")
        if self.job_workers is not None and self.job_workers < 1:
            raise ConfigError(f"job_workers must be at least 1, got {self.job_workers}")
        if self.scheduler is not None and not re.fullmatch(r"(tcp|tls|ucx|inproc)://\S+", self.scheduler):
            raise ConfigError(f"scheduler must look like tcp://HOST:PORT, got {self.scheduler!r}")
        if self.default_bucket is not None and not BUCKET_RE.fullmatch(self.default_bucket):
            raise ConfigError(f"default_bucket {self.default_bucket!r} is not a BucketName-APPID")

    @property
    def pending_limit(self) -> int:
        """Requests that may wait for an image worker (default: 4 per worker)."""
        return self.max_pending if self.max_pending is not None else 4 * self.workers

    def bucket(self, name: str) -> BucketConfig:
        """The settings of ``name`` (the defaults when the file names it not)."""
        found = self.buckets.get(name)
        return found if found is not None else BucketConfig(name)

    def check_auth(self) -> None:
        """Refuse to run with neither keys nor ``anonymous`` (the message says which to
        choose)."""
        if not self.credentials and not self.anonymous:
            raise ConfigError(
                "no credentials: give --secret-id and --secret-key (or set "
                f"{SECRET_ID_ENV} and {SECRET_KEY_ENV}, or [[keys]] in --config) to require signed "
                "requests, or pass --anonymous to accept unsigned ones"
            )

    def with_(self, **changes: Any) -> ServerConfig:
        return replace(self, **changes)


_TOP_KEYS = {
    "root",
    "job_workers",
    "scheduler",
    "s3_endpoint",
    "host",
    "port",
    "region",
    "anonymous",
    "default_bucket",
    "max_body_bytes",
    "workers",
    "max_pending",
    "request_timeout",
    "grace_period",
    "fsync",
    "backend",
    "vips_concurrency",
    "keys",
    "buckets",
    "cors_origins",
    "cache_dir",
    "cache_size",
    "origin_connect_timeout",
    "origin_read_timeout",
}
_BUCKET_KEYS = {"separators", "protection", "public_read", "hotlink", "origin", "origin_mode", "cache_control"}
_HOTLINK_KEYS = {"mode", "referers", "allow_empty"}


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def load_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a config file into keyword arguments of :class:`ServerConfig` (``buckets`` and
    ``credentials`` built). Unknown keys are refused, so a typo does not silently do
    nothing."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"--config {path}: unknown setting {unknown[0]!r}")
    out: dict[str, Any] = {}
    for name in ("root", "host", "region", "default_bucket", "backend", "scheduler", "s3_endpoint", "cache_dir"):
        if name in data:
            out[name] = _expect(data[name], str, name)
    for name in ("port", "max_body_bytes", "workers", "max_pending", "vips_concurrency", "job_workers", "cache_size"):
        if name in data:
            out[name] = _expect(data[name], int, name)
    for name in ("request_timeout", "grace_period", "origin_connect_timeout", "origin_read_timeout"):
        if name in data:
            out[name] = float(_expect(data[name], (int, float), name))
    for name in ("anonymous", "fsync"):
        if name in data:
            out[name] = _expect(data[name], bool, name)
    if "cors_origins" in data:
        origins = _expect(data["cors_origins"], list, "cors_origins")
        out["cors_origins"] = tuple(_expect(o, str, "cors_origins") for o in origins)
    credentials: dict[str, str] = {}
    for i, entry in enumerate(_expect(data.get("keys", []), list, "keys")):
        _expect(entry, dict, f"keys[{i}]")
        sid = _expect(entry.get("secret_id"), str, f"keys[{i}].secret_id")
        skey = _expect(entry.get("secret_key"), str, f"keys[{i}].secret_key")
        credentials[sid] = skey
    if credentials:
        out["credentials"] = credentials
    buckets: dict[str, BucketConfig] = {}
    for name, entry in _expect(data.get("buckets", {}), dict, "buckets").items():
        where = f"buckets.{name}"
        _expect(entry, dict, where)
        unknown = sorted(set(entry) - _BUCKET_KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown setting {unknown[0]!r}")
        hot = _expect(entry.get("hotlink", {}), dict, f"{where}.hotlink")
        unknown = sorted(set(hot) - _HOTLINK_KEYS)
        if unknown:
            raise ConfigError(f"{where}.hotlink: unknown setting {unknown[0]!r}")
        referers = _expect(hot.get("referers", []), list, f"{where}.hotlink.referers")
        hotlink = HotlinkConfig(
            mode=_expect(hot.get("mode", "off"), str, f"{where}.hotlink.mode"),
            referers=tuple(_expect(r, str, f"{where}.hotlink.referers") for r in referers),
            allow_empty=_expect(hot.get("allow_empty", True), bool, f"{where}.hotlink.allow_empty"),
        )
        buckets[name] = BucketConfig(
            name=name,
            separators=_expect(entry.get("separators", "!"), str, f"{where}.separators"),
            protection=_expect(entry.get("protection", False), bool, f"{where}.protection"),
            public_read=_expect(entry.get("public_read", False), bool, f"{where}.public_read"),
            hotlink=hotlink,
            origin=None if entry.get("origin") is None else _expect(entry["origin"], str, f"{where}.origin"),
            origin_mode=_expect(entry.get("origin_mode", "missing"), str, f"{where}.origin_mode"),
            cache_control=(
                None
                if entry.get("cache_control") is None
                else _expect(entry["cache_control"], str, f"{where}.cache_control")
            ),
        )
    if buckets:
        out["buckets"] = buckets
    return out
