"""OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, for every request
of the OpenAI surface (Chat Completions, Responses, models, embeddings; see api/surfaces.py).

Installed into `ERROR_BODIES` and `ERROR_REFINERS` when this module is imported (the package
imports it). The openai SDK picks its exception class from the HTTP status alone
(400 BadRequestError, 401 AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError,
429 RateLimitError, 5xx InternalServerError) and exposes `type`, `param` and `code` from this
body on the exception. `type` and `code` follow what OpenAI sends:

| HTTP | cause | `type` | `code` |
|---|---|---|---|
| 400 | bad input (unparseable body, unknown or invalid field) | `invalid_request_error` | `null` |
| 401 | missing or wrong key | `invalid_request_error` | `invalid_api_key` |
| 403 | the key may not use this model | `permission_error` | `permission_denied` |
| 404 | unknown model | `invalid_request_error` | `model_not_found` |
| 404 | anything else not found | `invalid_request_error` | `not_found` |
| 413 | body over the size limit | `invalid_request_error` | `request_too_large` |
| 429 | a key's rpm/tpm, a busy model | `rate_limit_error` | `rate_limit_exceeded` |
| 429 | a key's or tenant's spend budget | `insufficient_quota` | `insufficient_quota` |
| 500 | a bug | `server_error` | `null` |
| 503 | upstream unavailable | `service_unavailable_error` | `null` |

`param` is the request field the error is about when the error knows it (`PropylonError.param`).
"""

from __future__ import annotations

from typing import Any

from propylon.api.errors import ERROR_BODIES, ERROR_REFINERS
from propylon.api.surfaces import Surface
from propylon.errors import BudgetExhausted, PropylonError

__all__ = ["openai_error", "openai_error_body", "refine_openai_error"]

_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("service_unavailable_error", None),
}


def openai_error(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """`{"error": {"message": ..., "type": ..., "param": ..., "code": ...}}`."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_error_body(http_status: int, status: str, message: str) -> dict[str, Any]:
    """The OpenAI body of an error answered with `http_status` (`status`, the Google RPC
    status name, is not part of it: OpenAI's `type` and `code` come from the HTTP status)."""
    default = ("server_error", None) if http_status >= 500 else ("invalid_request_error", None)
    type_, code = _TYPES.get(http_status, default)
    return openai_error(message, type_, None, code)


def refine_openai_error(body: dict[str, Any], error: PropylonError) -> dict[str, Any]:
    """`body` with the field the `error` names as `param`; a spent budget is
    `insufficient_quota` and an unknown model `model_not_found`, as OpenAI answers them."""
    detail = dict(body["error"])
    detail["param"] = error.param
    if isinstance(error, BudgetExhausted):
        detail["type"] = detail["code"] = "insufficient_quota"
    elif error.http_status == 404 and error.param == "model":
        detail["code"] = "model_not_found"
    return {"error": detail}


ERROR_BODIES[Surface.OPENAI] = openai_error_body
ERROR_REFINERS[Surface.OPENAI] = refine_openai_error
