"""Limits on what a request may send: the body's size (an ASGI middleware that counts bytes as
they arrive) and the nesting of a JSON body (checked where every JSON body is decoded).

Both refuse before anything runs: a body over `max_request_bytes` is answered 413 as soon as
its `Content-Length` or the bytes read so far pass the limit, and the rest is never read; JSON
nested deeper than `max_json_depth` is answered 400 (orjson would decode up to 1024 levels,
but the store's encoder stops at 255, and no real request needs more than a few dozen).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from propylon.api.errors import error_response
from propylon.errors import InvalidArgument, PayloadTooLarge

__all__ = ["BodyLimitMiddleware", "json_body", "nesting_exceeds"]


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is over the limit of {limit} bytes")


class BodyLimitMiddleware:
    """Refuse HTTP request bodies over `max_bytes` with 413 in Google's error shape.

    A `Content-Length` over the limit is refused before the app runs. Otherwise the bytes are
    counted as the app reads them; the read that crosses the limit raises PayloadTooLarge,
    which the app's error handlers answer (or this middleware, if it reaches here before a
    response started). The response closes the connection, so the unread rest is dropped.

    Requests `exempt` picks (the Files API's upload chunks) are not counted: their route
    bounds them itself.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, exempt: Callable[[Scope], bool] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.exempt is not None and self.exempt(scope)):
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _refuse(scope, receive, send, _too_large(self.max_bytes))
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if received > self.max_bytes:  # the rest of the body will not be read
                    message = {**message, "headers": [*message["headers"], _CLOSE]}
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except PayloadTooLarge as exc:
            if started:
                raise
            await _refuse(scope, receive, send, exc)


_CLOSE = (b"connection", b"close")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: PayloadTooLarge) -> None:
    response = error_response(
        scope, exc.http_status, exc.status, exc.message, {"connection": "close"}
    )
    await response(scope, receive, send)


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` (decoded JSON) nests objects and arrays more than `limit` levels deep,
    the value itself being level 1. An iterative walk: no recursion, so no recursion limit."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


async def json_body(request: Request, *, empty: Any = None) -> Any:
    """The request's JSON body, decoded: every JSON body of every route is read here.

    `empty`: the value of an empty body (None: an empty body is malformed JSON). Raises
    InvalidArgument for malformed JSON or nesting deeper than the `max_json_depth` setting,
    PayloadTooLarge (from BodyLimitMiddleware) for a body over the size limit.
    """
    raw = await request.body()
    if not raw and empty is not None:
        return empty
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"malformed JSON body: {exc}") from None
    limit: int = request.app.state.settings.max_json_depth
    if isinstance(body, dict | list) and nesting_exceeds(body, limit):
        raise InvalidArgument(f"the JSON body is nested more than {limit} levels deep (the limit)")
    return body
