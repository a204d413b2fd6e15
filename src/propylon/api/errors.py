"""The one place errors become HTTP: Google-style bodies (reference §1.6), never a 409."""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from propylon.errors import PropylonError, ResourceExhausted

__all__ = ["EXCEPTION_HANDLERS", "JSONResponse", "error_body"]

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


def error_body(code: int, message: str, status: str) -> dict[str, Any]:
    """`{"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}`."""
    return {"error": {"code": code, "message": message, "status": status}}


async def _propylon_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PropylonError)
    headers = {}
    if isinstance(exc, ResourceExhausted):
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    return JSONResponse(
        error_body(exc.http_status, exc.message, exc.status), exc.http_status, headers=headers
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = 400 if exc.status_code == 405 else exc.status_code
    status = _HTTP_STATUS_NAMES.get(exc.status_code, "UNKNOWN")
    message = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
    return JSONResponse(error_body(code, message, status), code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(error_body(500, "internal error", "INTERNAL"), 500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    PropylonError: _propylon_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
