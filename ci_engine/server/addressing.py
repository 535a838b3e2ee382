"""Which bucket, which host kind and which object a request is for (``service.md`` section 1).

* **Virtual-host names** from the ``Host`` header (or from an absolute-form request target,
  the SDK's proxy mode): ``<bucket>.cos.<region>.myqcloud.com`` (objects),
  ``<bucket>.ci.<region>...`` (bucket CI APIs), ``<bucket>.pic.<region>...`` (styles, the
  older binding), ``ci.<region>...`` / ``cos.<region>...`` (no bucket).
* **IP mode** (the SDK's ``IP=``/``Port=``): the ``Host`` names the bucket's cos host even for
  ci and pic calls, and a few calls carry ``Host: 127.0.0.1:PORT`` and no bucket; the
  dispatcher routes those by path and query (:func:`ci_path`).
* **Path style**, for people: any other ``Host`` (``127.0.0.1:8080``, ``localhost``) with
  ``/<BucketName-APPID>/<key>``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ci_engine._dc import dataclass
from ci_engine.server.config import BUCKET_RE
from ci_engine.server.errors import InvalidRequestError

__all__ = ["Target", "locate", "ci_path", "CI_ROOTS"]

_HOST_RE = re.compile(
    r"(?P<bucket>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]+)\.(?P<kind>cos|ci|pic)\.(?P<region>[a-z0-9-]+)\.myqcloud\.com"
)
_SERVICE_RE = re.compile(
    r"(?P<kind>cos|ci|service\.cos)\.(?P<region>[a-z0-9-]+)\.myqcloud\.com|service\.cos\.myqcloud\.com"
)

CI_ROOTS = ("picbucket", "picqueue", "pic_jobs", "jobs", "template")
"""The first path segments of the CI APIs on the ci host (``service.md`` section 2)."""

_CI_PATH_RE = re.compile(r"/(?:picbucket|picqueue|pic_jobs|jobs|template)(?:/[^/]+)?")


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request goes.

    Attributes:
        kind: ``cos``, ``ci`` or ``pic`` (a bucket host); ``service`` (a host without a bucket:
            ``ci.<region>``, ``cos.<region>``, or a local host with no bucket in the path).
        bucket: ``BucketName-APPID``, or ``None``.
        key: the decoded object key ('' for the bucket itself).
        path: the decoded path after the bucket (``/`` + key), as the SDK signs it.
        host: the host name the client addressed (for ``Resource``).
        path_style: the bucket came from the path (``/<bucket>/<key>``).
        region: from the host name, when it has one.
    """

    kind: str
    bucket: str | None
    key: str
    path: str
    host: str
    path_style: bool = False
    region: str | None = None
    raw_path: str = "/"
    """The path after the bucket as received (still percent-encoded)."""

    @property
    def sign_paths(self) -> tuple[str, ...]:
        """The paths a client may have signed: the key path, and for path style also the
        full path with the bucket."""
        if self.path_style and self.bucket:
            return (self.path, f"/{self.bucket}{self.path}" if self.path != "/" else f"/{self.bucket}")
        return (self.path,)

    @property
    def resource(self) -> str:
        if self.path_style and self.bucket:
            return f"{self.host}/{self.bucket}{self.path}"
        return f"{self.host}{self.path}"


def _decode_path(raw: str) -> str:
    try:
        return unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequestError("url: the path is not valid UTF-8 after percent-decoding") from None


def locate(raw_path: str, host_header: str | None) -> Target:
    """Read the target of a request from its raw (still percent-encoded) path, which may be
    an absolute URL (proxy mode), and its ``Host`` header."""
    host = (host_header or "").strip()
    lowered = raw_path.lower()
    if lowered.startswith(("http://", "https://")):
        rest = raw_path.split("://", 1)[1]
        authority, slash, tail = rest.partition("/")
        raw_path = slash + tail if slash else "/"
        host = authority or host  # RFC 9112 3.2.2: the target's authority wins over Host
    if not raw_path.startswith("/"):
        raw_path = "/" + raw_path
    name = host.lower()
    if name.startswith("["):
        name = name.split("]", 1)[0] + "]"
    elif ":" in name:
        name = name.rsplit(":", 1)[0]
    name = name.rstrip(".")
    path = _decode_path(raw_path)
    m = _HOST_RE.fullmatch(name)
    if m:
        return Target(m["kind"], m["bucket"], path[1:], path, host, region=m["region"], raw_path=raw_path)
    m = _SERVICE_RE.fullmatch(name)
    if m:
        return Target("service", None, path[1:], path, host, region=m.groupdict().get("region"), raw_path=raw_path)
    # path style, or a bucket-less call in IP mode
    segments = path[1:].split("/", 1)
    first = segments[0]
    if first and BUCKET_RE.fullmatch(first):
        key = segments[1] if len(segments) > 1 else ""
        raw_rest = raw_path[1:].split("/", 1)
        raw_key = "/" + (raw_rest[1] if len(raw_rest) > 1 else "")
        return Target("cos", first, key, "/" + key, host, path_style=True, raw_path=raw_key)
    return Target("service", None, path[1:], path, host, raw_path=raw_path)


def ci_path(path: str) -> bool:
    """``True`` for the paths of the bucket CI APIs (``/picbucket``, ``/pic_jobs/<id>`` ...)."""
    return _CI_PATH_RE.fullmatch(path) is not None
