"""The one error tree. api/errors.py maps it to HTTP in one place.

Each error carries a Google RPC status name and its HTTP status, so the body is
`{"error": {"code": <http status>, "message": "...", "status": "<NAME>"}}` (reference §1.6).
No error maps to 409: the SDKs retry 409 (reference §1.5).
"""

from __future__ import annotations

__all__ = [
    "BudgetExhausted",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PayloadTooLarge",
    "PermissionDenied",
    "PropylonError",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
]


class PropylonError(Exception):
    """Base of every error a client can see."""

    http_status = 500
    status = "INTERNAL"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # The request field the error is about (`model`, `messages.0.role`), when known: a
        # surface whose error body names the field (OpenAI's `param`) says it.
        self.param = param


class InvalidArgument(PropylonError):
    """The request is malformed or asks for something impossible (HTTP 400)."""

    http_status = 400
    status = "INVALID_ARGUMENT"


class PayloadTooLarge(PropylonError):
    """The request body is over the size limit (HTTP 413). `INVALID_ARGUMENT`, as Google
    answers an oversized payload: the client must send less, not retry."""

    http_status = 413
    status = "INVALID_ARGUMENT"


class FailedPrecondition(PropylonError):
    """The request is valid but the resource is in the wrong state (HTTP 400, not 409)."""

    http_status = 400
    status = "FAILED_PRECONDITION"


class Unauthenticated(PropylonError):
    """A missing or wrong API key (HTTP 401)."""

    http_status = 401
    status = "UNAUTHENTICATED"


class PermissionDenied(PropylonError):
    """The caller's key may not do this, e.g. use that model (HTTP 403)."""

    http_status = 403
    status = "PERMISSION_DENIED"


class ResourceExhausted(PropylonError):
    """A rate limit or budget is spent (HTTP 429); `retry_after` seconds until it may pass."""

    http_status = 429
    status = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExhausted(ResourceExhausted):
    """A spend budget is spent for its period (HTTP 429, `RESOURCE_EXHAUSTED`): unlike a rate
    limit it does not pass within seconds, so surfaces that tell the two apart (OpenAI's
    `insufficient_quota`) can."""


class NotFound(PropylonError):
    """No such resource visible to the caller (HTTP 404)."""

    http_status = 404
    status = "NOT_FOUND"


class Unavailable(PropylonError):
    """A transient failure; the client may retry (HTTP 503)."""

    http_status = 503
    status = "UNAVAILABLE"
