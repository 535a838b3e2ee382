"""The COS error codes the service adds to the library's (``service.md`` section 4), and the
error response: the COS ``<Error>`` XML with ``Code``, ``Message``, ``Resource``,
``RequestId`` and ``TraceId`` all non-empty, the status of the :class:`~ci_engine.CIError`,
``X-ErrNo`` when the error has one, and the request id in ``x-cos-request-id`` (plus
``x-ci-request-id`` on the ci host)."""

from __future__ import annotations

import base64
import secrets

from starlette.responses import Response

from ci_engine.errors import CIError, new_request_id

__all__ = [
    "SignatureDoesNotMatchError",
    "InvalidAccessKeyIdError",
    "RequestTimeTooSkewedError",
    "ExpiredError",
    "MissingSignatureError",
    "NoSuchBucketError",
    "NoSuchUploadError",
    "InvalidPartError",
    "BucketNotEmptyError",
    "BucketAlreadyExistsError",
    "EntityTooLargeError",
    "IncompleteBodyError",
    "BadDigestError",
    "SlowDownError",
    "MethodNotAllowedError",
    "InvalidRequestError",
    "MalformedXMLError",
    "TimeBudgetError",
    "OriginError",
    "OriginTimeoutError",
    "new_trace_id",
    "error_response",
]


class SignatureDoesNotMatchError(CIError):
    code = "SignatureDoesNotMatch"
    status = 403
    default_x_errno = -46618


class InvalidAccessKeyIdError(CIError):
    code = "InvalidAccessKeyId"
    status = 403


class RequestTimeTooSkewedError(CIError):
    code = "RequestTimeTooSkewed"
    status = 403


class ExpiredError(CIError):
    """A signature whose key time has ended (COS: ``AccessDenied``, "Request has expired")."""

    code = "AccessDenied"
    status = 403
    default_x_errno = -46619


class MissingSignatureError(CIError):
    code = "AccessDenied"
    status = 403


class NoSuchBucketError(CIError):
    code = "NoSuchBucket"
    status = 404


class NoSuchUploadError(CIError):
    code = "NoSuchUpload"
    status = 404


class InvalidPartError(CIError):
    code = "InvalidPart"
    status = 400


class BucketNotEmptyError(CIError):
    code = "BucketNotEmpty"
    status = 409


class BucketAlreadyExistsError(CIError):
    code = "BucketAlreadyOwnedByYou"
    status = 409


class EntityTooLargeError(CIError):
    """A request body over the server's limit (checked on ``Content-Length`` and again while
    the body streams in). 413, as ``service.md`` section 4 says; ``limits-and-errors.md``
    keeps image-size failures as ``ImageTooLarge``."""

    code = "EntityTooLarge"
    status = 413


class BadDigestError(CIError):
    code = "BadDigest"
    status = 400


class IncompleteBodyError(CIError):
    code = "IncompleteBody"
    status = 400


class SlowDownError(CIError):
    code = "SlowDown"
    status = 503
    default_x_errno = -164


class MethodNotAllowedError(CIError):
    code = "MethodNotAllowed"
    status = 405


class InvalidRequestError(CIError):
    code = "InvalidRequest"
    status = 400


class MalformedXMLError(CIError):
    code = "MalformedXML"
    status = 400


class OriginError(CIError):
    """The bucket's origin (back-to-source) failed: unreachable, an answer that is not 200 /
    304 / 404, a redirect off the origin, an object over the input limit, a cut body. 502."""

    code = "BadGateway"
    status = 502


class OriginTimeoutError(CIError):
    """The bucket's origin did not connect or went silent past its timeout. 504."""

    code = "GatewayTimeout"
    status = 504


class TimeBudgetError(CIError):
    """The image work of a request ran past the server's time budget (500, X-ErrNo -901)."""

    code = "InternalError"
    status = 500
    default_x_errno = -901


def new_trace_id() -> str:
    return base64.b64encode(secrets.token_hex(24).encode("ascii")).decode("ascii")


def error_response(
    exc: CIError,
    *,
    resource: str,
    request_id: str | None = None,
    ci_host: bool = False,
    head: bool = False,
    extra_headers: dict[str, str] | None = None,
) -> Response:
    """The COS error response for ``exc`` (no body for HEAD, as HTTP wants)."""
    request_id = request_id or new_request_id()
    trace_id = new_trace_id()
    body = exc.to_xml(resource=resource or "/", request_id=request_id, trace_id=trace_id)
    headers = {"x-cos-request-id": request_id, "x-cos-trace-id": trace_id}
    if ci_host:
        headers["x-ci-request-id"] = request_id
    if exc.x_errno is not None:
        headers["X-ErrNo"] = str(exc.x_errno)
    if exc.status == 503:
        headers["Retry-After"] = "1"
    if extra_headers:
        headers.update(extra_headers)
    if head:
        return Response(b"", status_code=exc.status, headers=headers, media_type="application/xml")
    return Response(body.encode("utf-8"), status_code=exc.status, headers=headers, media_type="application/xml")
