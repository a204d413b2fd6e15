"""The Responses API over a WebSocket (`/v1/responses`, Open Responses' WebSocket mode).

Each text message `{"type": "response.create", ...}` is a CreateResponse body (without
`stream`, `stream_options`, `background`); the Response's stream events come back as text
messages, the same objects with the same `sequence_number`s as over HTTP. One response at a
time per connection, in order. A refused turn answers an error envelope,
`{"type": "error", "status", "error": {"type", "code", "message", "param"}}`.

The connection keeps the conversation of its most recent `store` false response, so the next
turn can name it as `previous_response_id` (nothing is written anywhere). A turn that names a
response it does not hold (and no stored one) fails with `previous_response_not_found`; a
failed continuation forgets the response it named.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from propylon.api.limits import nesting_exceeds
from propylon.api.openai.errors import openai_error_body, refine_openai_error
from propylon.api.openai.responses_stream import ResponseEvents, numbered
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument, PayloadTooLarge, PropylonError
from propylon.schema.openai.responses import CreateResponse, parse_create_response
from propylon.schema.openai.responses import to_create_interaction as fields_of
from propylon.service.responses import ResponseService, Stream

__all__ = ["routes"]

logger = logging.getLogger("propylon.api")

_HTTP_ONLY = ("stream", "stream_options", "background")


class _Refused(Exception):
    """A turn refused with `code` (beside the error's own)."""

    def __init__(self, error: PropylonError, code: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.code = code


def envelope(error: PropylonError, code: str | None = None) -> dict[str, Any]:
    """The WebSocket error envelope of `error`: OpenAI's error body with a `status` (its
    HTTP status) and always a `code`."""
    body = refine_openai_error(
        openai_error_body(error.http_status, error.status, error.message), error
    )
    detail = body["error"]
    detail["code"] = code or detail.get("code") or detail["type"]
    return {"type": "error", "status": error.http_status, "error": detail}


class _Connection:
    """One WebSocket's turns, and the conversation of its latest `store` false response."""

    def __init__(self, socket: WebSocket, service: ResponseService, caller: Caller) -> None:
        self.socket = socket
        self.service = service
        self.caller = caller
        self.kept: dict[str, list[dict[str, Any]]] = {}  # at most one: the latest

    async def send(self, message: dict[str, Any]) -> None:
        await self.socket.send_text(orjson.dumps(message).decode())

    async def turn(self, text: str) -> None:
        """Run one `response.create` message; its events, or its error envelope, go out."""
        body = self._body(text)
        request = parse_create_response(body)
        previous = request.previous_response_id
        try:
            await self._run(request, body, previous)
        except (_Refused, PropylonError):
            if previous is not None:  # a failed continuation forgets what it named
                self.kept.pop(previous, None)
            raise

    def _body(self, text: str) -> dict[str, Any]:
        limit = self.socket.app.state.settings.max_request_bytes
        if len(text.encode()) > limit:
            raise PayloadTooLarge(f"the message is over the limit of {limit} bytes")
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidArgument(f"malformed JSON message: {exc}") from None
        depth: int = self.socket.app.state.settings.max_json_depth
        if isinstance(message, dict | list) and nesting_exceeds(message, depth):
            raise InvalidArgument(f"the message is nested more than {depth} levels deep")
        if not isinstance(message, dict) or message.get("type") != "response.create":
            raise InvalidArgument("each message is a `response.create` object", param="type")
        body = {key: value for key, value in message.items() if key != "type"}
        for name in _HTTP_ONLY:
            if name in body:
                raise InvalidArgument(
                    f"`{name}` is not sent on a WebSocket: every response streams", param=name
                )
        return body

    async def _run(
        self, request: CreateResponse, body: dict[str, Any], previous: str | None
    ) -> None:
        history = self.kept.get(previous) if previous is not None else None
        if history is not None:
            request = request.model_copy(update={"previous_response_id": None})
        elif previous is not None:
            await self._stored(previous, request)
        request = request.model_copy(update={"stream": True})
        result = await self.service.create(request, self.caller, None, body, history=history)
        assert isinstance(result, Stream)
        translator = ResponseEvents(result.base, background=False, store=result.store)
        events = numbered(result.events, translator, None)
        try:
            async for event in events:
                if event is not None:  # no keep-alives: the socket has its own pings
                    await self.send(event)
        finally:
            await events.aclose()  # a store=false run stops with its reader
        self.kept.clear()
        final = translator.snapshot()
        if final["status"] != "failed" and not result.store:
            steps = fields_of(request)["input"] or []
            self.kept[final["id"]] = [*(history or []), *steps, *translator.projection.steps]

    async def _stored(self, previous: str, request: CreateResponse) -> None:
        """A `previous_response_id` this connection does not hold: a stored one will do."""
        try:
            if request.store is False:  # it could only continue from this connection's memory
                raise InvalidArgument(
                    f"previous response `{previous}` not found", param="previous_response_id"
                )
            await self.service.previous(previous, self.caller)
        except InvalidArgument as missing:
            raise _Refused(missing, "previous_response_not_found") from None


async def responses_socket(socket: WebSocket) -> None:
    """`/v1/responses` as a WebSocket: authenticated like HTTP (`Authorization: Bearer`),
    before the connection is accepted (a refused one is closed with 1008), and again at each
    turn (a key revoked since gets an error envelope, then the close)."""
    state = socket.app.state
    try:
        caller = await state.auth.caller(socket.headers)
    except PropylonError:
        await socket.close(code=1008)
        return
    await socket.accept()
    connection = _Connection(socket, state.responses, caller)
    try:
        while True:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text") or (message.get("bytes") or b"").decode(errors="replace")
            try:  # each turn as its key stands now: a revoked key ends the connection
                connection.caller = await state.auth.caller(socket.headers)
            except PropylonError as exc:
                await connection.send(envelope(exc))
                await socket.close(code=1008)
                return
            try:
                await connection.turn(text)
            except _Refused as refused:
                await connection.send(envelope(refused.error, refused.code))
            except PropylonError as exc:
                await connection.send(envelope(exc))
    except WebSocketDisconnect:
        return
    except Exception:
        logger.exception("responses WebSocket failed")
        await socket.close(code=1011)


routes = [WebSocketRoute("/v1/responses", responses_socket)]
