"""The one error tree. api/errors.py maps it to HTTP in one place.

Each error carries a Google RPC status name and its HTTP status, so the body is
`{"error": {"code": <http status>, "message": "...", "status": "<NAME>"}}` (reference §1.6).
No error maps to 409: the SDKs retry 409 (reference §1.5).
"""

from __future__ import annotations

__all__ = [
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PropylonError",
    "Unauthenticated",
    "Unavailable",
]


class PropylonError(Exception):
    """Base of every error a client can see."""

    http_status = 500
    status = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(PropylonError):
    """The request is malformed or asks for something impossible (HTTP 400)."""

    http_status = 400
    status = "INVALID_ARGUMENT"


class FailedPrecondition(PropylonError):
    """The request is valid but the resource is in the wrong state (HTTP 400, not 409)."""

    http_status = 400
    status = "FAILED_PRECONDITION"


class Unauthenticated(PropylonError):
    """A missing or wrong API key (HTTP 401)."""

    http_status = 401
    status = "UNAUTHENTICATED"


class NotFound(PropylonError):
    """No such resource visible to the caller (HTTP 404)."""

    http_status = 404
    status = "NOT_FOUND"


class Unavailable(PropylonError):
    """A transient failure; the client may retry (HTTP 503)."""

    http_status = 503
    status = "UNAVAILABLE"
