"""The COS v5 request signature (``service.md`` section 3), checked on the server side.

The signature comes in the ``Authorization`` header or in the query string of a presigned
URL (``q-sign-algorithm=sha1&q-ak=...&q-signature=...``). :func:`verify` recomputes it from
the request as received:

* the path is the decoded object key with a leading ``/`` (bucket calls ``/``, CI calls
  their own path); the caller gives every path the client may have signed;
* only the headers and query parameters listed in ``q-header-list`` / ``q-url-param-list``
  are signed, each name and value percent-encoded with ``-_.~`` safe and the name
  lower-cased; header values arrive as Latin-1 text and are turned back into their bytes;
* ``host`` is signed as sent, or without its port (the SDK signs the URL's host name when it
  does not set the header itself);
* the key time must contain now (with :data:`CLOCK_SKEW` of tolerance at its start): a start
  in the future is ``RequestTimeTooSkewed``, an end in the past ``AccessDenied``.

Nothing here touches the network or an imaging library.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote, unquote

from ci_engine._dc import dataclass
from ci_engine.server.errors import (
    ExpiredError,
    InvalidAccessKeyIdError,
    MissingSignatureError,
    RequestTimeTooSkewedError,
    SignatureDoesNotMatchError,
)

__all__ = ["Signature", "CLOCK_SKEW", "find_signature", "verify", "sign", "SIGNATURE_PARAMS"]

CLOCK_SKEW = 900
"""Seconds a key time may start in the future (clock difference between client and server)."""

SIGNATURE_PARAMS = frozenset(
    {
        "q-sign-algorithm",
        "q-ak",
        "q-sign-time",
        "q-key-time",
        "q-header-list",
        "q-url-param-list",
        "q-signature",
        "x-cos-security-token",
        "x-ci-security-token",
    }
)
"""Query parameters of a presigned URL that are part of the signature, not of the request."""

_FIELDS = ("q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list", "q-url-param-list", "q-signature")


@dataclass(frozen=True, slots=True)
class Signature:
    """The fields of a v5 signature; ``where`` is ``header`` or ``query``."""

    algorithm: str
    access_key: str
    sign_time: str
    key_time: str
    header_list: tuple[str, ...]
    param_list: tuple[str, ...]
    signature: str
    where: str


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(name for name in value.split(";") if name)


def _from_fields(fields: Mapping[str, str], where: str) -> Signature:
    missing = [name for name in ("q-sign-algorithm", "q-ak", "q-key-time", "q-signature") if not fields.get(name)]
    if missing:
        raise MissingSignatureError(f"signature: the {where} signature has no {missing[0]}")
    if fields["q-sign-algorithm"].lower() != "sha1":
        raise SignatureDoesNotMatchError(f"signature: unsupported q-sign-algorithm {fields['q-sign-algorithm']!r}")
    return Signature(
        algorithm="sha1",
        access_key=fields["q-ak"],
        sign_time=fields.get("q-sign-time") or fields["q-key-time"],
        key_time=fields["q-key-time"],
        header_list=_split_list(fields.get("q-header-list", "").lower()),
        param_list=_split_list(fields.get("q-url-param-list", "").lower()),
        signature=fields["q-signature"].lower(),
        where=where,
    )


def find_signature(authorization: str | None, query: Sequence[tuple[str, str]]) -> Signature | None:
    """The signature of a request: the ``Authorization`` header, else the presigned query;
    ``None`` when the request is unsigned."""
    if authorization:
        fields: dict[str, str] = {}
        for part in authorization.strip().split("&"):
            name, sep, value = part.partition("=")
            if sep:
                fields[name.strip().lower()] = value.strip()
        if "q-signature" not in fields and "q-sign-algorithm" not in fields:
            raise MissingSignatureError("signature: the Authorization header is not a COS v5 signature")
        return _from_fields(fields, "header")
    names = {name.lower(): value for name, value in query if name.lower() in _FIELDS}
    if "q-signature" in names or "q-sign-algorithm" in names:
        return _from_fields(names, "query")
    return None


def _enc(value: bytes | str) -> str:
    return quote(value, safe="-_.~")


def _canonical(pairs: Iterable[tuple[str, bytes | str]]) -> str:
    encoded = sorted((_enc(name).lower(), _enc(value)) for name, value in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def string_to_sign(
    method: str,
    path: str,
    params: Iterable[tuple[str, bytes | str]],
    headers: Iterable[tuple[str, bytes | str]],
    key_time: str,
) -> str:
    http_string = f"{method.lower()}\n{path}\n{_canonical(params)}\n{_canonical(headers)}\n"
    digest = hashlib.sha1(http_string.encode("utf-8"), usedforsecurity=False).hexdigest()
    return f"sha1\n{key_time}\n{digest}\n"


def _hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha1).hexdigest()


def sign(secret_key: str, key_time: str, text: str) -> str:
    sign_key = _hmac(secret_key.encode("utf-8"), key_time)
    return _hmac(sign_key.encode("utf-8"), text)


def _window(key_time: str) -> tuple[int, int]:
    start, sep, end = key_time.partition(";")
    try:
        if not sep:
            raise ValueError
        return int(start), int(end)
    except ValueError:
        raise SignatureDoesNotMatchError(f"signature: q-key-time must be <start>;<end>, got {key_time!r}") from None


def _header_bytes(value: str) -> bytes:
    """The bytes of a header value that the server decoded as Latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def verify(
    sig: Signature,
    *,
    credentials: Mapping[str, str],
    method: str,
    paths: Sequence[str],
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    now: float,
) -> str:
    """Check ``sig`` against the request; returns the SecretId that signed it.

    Args:
        paths: the decoded paths the client may have signed (the first that matches wins).
        query: the decoded query parameters, in order (repeated names kept).
        headers: the request headers, names in lower case (Latin-1 decoded values).

    Raises:
        InvalidAccessKeyIdError: an unknown SecretId.
        RequestTimeTooSkewedError: the key time starts more than :data:`CLOCK_SKEW` seconds
            in the future.
        ExpiredError: the key time has ended.
        SignatureDoesNotMatchError: anything else.
    """
    secret = credentials.get(sig.access_key)
    if secret is None:
        raise InvalidAccessKeyIdError(f"signature: the SecretId {sig.access_key!r} is not known to this server")
    start, end = _window(sig.key_time)
    if start > now + CLOCK_SKEW:
        raise RequestTimeTooSkewedError(
            "signature: the key time starts in the future; the client's clock differs from the server's"
        )
    if end < now:
        raise ExpiredError("signature: the request has expired (its key time has ended)")
    if end < start:
        raise SignatureDoesNotMatchError("signature: the key time ends before it starts")
    params: list[tuple[str, str]] = []
    for name in sig.param_list:
        match = [value for key, value in query if _enc(key).lower() == name]
        if not match:
            raise SignatureDoesNotMatchError(f"signature: the signed parameter {unquote(name)!r} is not in the request")
        # the signed name is already encoded; keep it as signed.
        params.append((unquote(name), match[0]))
    header_sets: list[list[tuple[str, bytes | str]]] = [[]]
    for name in sig.header_list:
        value = headers.get(unquote(name))
        if value is None:
            raise SignatureDoesNotMatchError(f"signature: the signed header {name!r} is not in the request")
        if name == "host" and ":" in value and not value.startswith("["):
            bare = value.rsplit(":", 1)[0]
            header_sets = [[*s, (name, _header_bytes(v))] for s in header_sets for v in (value, bare)]
        else:
            header_sets = [[*s, (name, _header_bytes(value))] for s in header_sets]
    for path in paths:
        for header_set in header_sets:
            text = string_to_sign(method, path, params, header_set, sig.key_time)
            if hmac.compare_digest(sign(secret, sig.key_time, text), sig.signature):
                return sig.access_key
    raise SignatureDoesNotMatchError(
        "signature: the request signature we calculated does not match the signature you provided; "
        "check your SecretKey and signing method"
    )
