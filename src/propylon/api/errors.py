"""The one place errors become HTTP, never a 409: each surface's own error body (`ERROR_BODIES`,
picked by `surface_of`); Google's generateContent-style body (reference §1.6) is the default."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from propylon.api.surfaces import Surface, surface_of
from propylon.errors import PropylonError, ResourceExhausted

__all__ = [
    "ERROR_BODIES",
    "ERROR_REFINERS",
    "EXCEPTION_HANDLERS",
    "ErrorBody",
    "ErrorRefiner",
    "JSONResponse",
    "error_body",
    "error_response",
]

logger = logging.getLogger("propylon.api")

_HTTP_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",  # an unsupported method on a known path
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class JSONResponse(Response):
    """application/json rendered with orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


ErrorBody = Callable[[int, str, str], dict[str, Any]]
"""A surface's error body from (HTTP status, Google RPC status name, message)."""


def error_body(code: int, message: str, status: str) -> dict[str, Any]:
    """`{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}`."""
    return {"error": {"code": code, "message": message, "status": status}}


def _google(http_status: int, status: str, message: str) -> dict[str, Any]:
    return error_body(http_status, message, status)


# Each surface's module puts its own body here; until it does, Google's body answers.
ERROR_BODIES: dict[Surface, ErrorBody] = {surface: _google for surface in Surface}

ErrorRefiner = Callable[[dict[str, Any], PropylonError], dict[str, Any]]
"""A surface's body made more precise from the error raised: the field it names
(`PropylonError.param`), its kind (a spent budget versus a rate limit)."""

# Optional, per surface: the body of a raised PropylonError passes through its surface's refiner.
ERROR_REFINERS: dict[Surface, ErrorRefiner] = {}


def error_response(
    scope: Any,
    http_status: int,
    status: str,
    message: str,
    headers: dict[str, str] | None = None,
    error: PropylonError | None = None,
) -> JSONResponse:
    """The error response for the surface of the request `scope`, in that surface's body
    (refined from `error`, the PropylonError raised, when the surface has a refiner)."""
    surface = surface_of(scope)
    body = ERROR_BODIES[surface](http_status, status, message)
    refine = ERROR_REFINERS.get(surface)
    if refine is not None and error is not None:
        body = refine(body, error)
    return JSONResponse(body, http_status, headers=headers)


async def _propylon_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PropylonError)
    headers = {}
    if isinstance(exc, ResourceExhausted):
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    return error_response(request.scope, exc.http_status, exc.status, exc.message, headers, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = 400 if exc.status_code == 405 else exc.status_code
    status = _HTTP_STATUS_NAMES.get(exc.status_code, "UNKNOWN")
    message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    return error_response(request.scope, code, status, message)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # The client closed its connection before its body was read: no one reads this answer,
    # and it is no server error.
    logger.debug("client left during %s %s", request.method, request.url.path)
    return error_response(
        request.scope, 400, "INVALID_ARGUMENT", "the client closed the connection mid-request"
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request.scope, 500, "INTERNAL", "internal error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    PropylonError: _propylon_error,
    HTTPException: _http_error,
    ClientDisconnect: _client_gone,
    Exception: _unexpected,
}
