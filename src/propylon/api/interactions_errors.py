"""The Interactions API's own error body: `{"error": {"code": "not_found", "message": "..."}}`.

`code` is a string naming the error type, never the HTTP status (recorded from Google:
fixtures/gemini/errors/interactions_invalid_request_400.json; typed in google-genai as
`_gaos/types/interactions/error.py`). On an integer code google-genai's typed parse fails
and every exception it raises carries that validation error in its traceback (2.34, what
google-adk 2.13 installs, and 3.4 alike), so the whole Interactions surface
(`/{v}/interactions`, `/agents`, `/webhooks`, the Vertex form, under any `path_prefix`)
answers this body (api/interactions.py installs it in `ERROR_BODIES`); other paths keep
Google's generateContent body (api/errors.py).

The codes are Google's own, from its Interactions API error reference
(ai.google.dev/gemini-api/docs/api-errors), keyed here by the Google RPC status name every
PropylonError carries:

| HTTP | RPC status            | code                  |
|------|-----------------------|-----------------------|
| 400  | `INVALID_ARGUMENT`    | `invalid_request` (also a 413 body, a 405 method) |
| 400  | `FAILED_PRECONDITION` | `failed_precondition` |
| 401  | `UNAUTHENTICATED`     | `authentication`      |
| 403  | `PERMISSION_DENIED`   | `permission_denied`   |
| 404  | `NOT_FOUND`           | `not_found`           |
| 429  | `RESOURCE_EXHAUSTED`  | `rate_limit_exceeded` (with `Retry-After`) |
| 500  | `INTERNAL`            | `api_error`           |
| 503  | `UNAVAILABLE`         | `service_unavailable` |

A status name without a row falls back on the HTTP status's code, then `api_error`. The
`error` events of a stream carry the same object; the codes a run itself ends with
(`interrupted`, `budget_exceeded`, `upstream_error`, `run_failed`, `invalid_output`) are
Propylon's, lower_snake like Google's, listed in docs/errors.md.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["API_ERROR", "code_of", "interactions_error", "interactions_error_body"]

API_ERROR: Final = "api_error"

# Google RPC status name -> the Interactions API's error code.
_BY_STATUS: Final = {
    "INVALID_ARGUMENT": "invalid_request",
    "FAILED_PRECONDITION": "failed_precondition",
    "OUT_OF_RANGE": "out_of_range",
    "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "permission_denied",
    "NOT_FOUND": "not_found",
    "ALREADY_EXISTS": "already_exists",
    "ABORTED": "aborted",
    "RESOURCE_EXHAUSTED": "rate_limit_exceeded",
    "CANCELLED": "cancelled",
    "INTERNAL": API_ERROR,
    "UNIMPLEMENTED": "unimplemented",
    "UNAVAILABLE": "service_unavailable",
    "DEADLINE_EXCEEDED": "deadline_exceeded",
}
# HTTP status -> code, for a status name without a row above.
_BY_HTTP: Final = {
    400: "invalid_request",
    401: "authentication",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    413: "invalid_request",
    416: "out_of_range",
    429: "rate_limit_exceeded",
    501: "unimplemented",
    503: "service_unavailable",
    504: "deadline_exceeded",
}


def code_of(http_status: int, status: str) -> str:
    """The Interactions error code (lower_snake string) for an HTTP status and a Google RPC
    status name, e.g. (404, "NOT_FOUND") -> "not_found"."""
    return _BY_STATUS.get(status) or _BY_HTTP.get(http_status, API_ERROR)


def interactions_error(code: str, message: str) -> dict[str, str]:
    """The error object `{"code": code, "message": message}`: the body's `error`, and what
    an SSE `error` event carries."""
    return {"code": code, "message": message}


def interactions_error_body(http_status: int, status: str, message: str) -> dict[str, Any]:
    """`{"error": {"code": "<string>", "message": "..."}}` (an `ErrorBody`)."""
    return {"error": interactions_error(code_of(http_status, status), message)}
