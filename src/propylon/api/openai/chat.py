"""`POST /v1/chat/completions`: OpenAI's Chat Completions over the model registry and
gateway, as a stateless call (service/stateless.py: nothing stored, usage and cost counted).

Non-stream: the whole `chat.completion`. Stream: `data:` chunks, a role chunk first, then
content or tool-call deltas, a chunk with the `finish_reason`, with
`stream_options.include_usage` a last chunk with `choices: []` and the usage, then
`data: [DONE]`. A failure before the first output answers an HTTP error; after it, a
`data: {"error": ...}` line (the openai SDK raises it) before `[DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.api.openai.errors import openai_error, openai_error_body, refine_openai_error
from propylon.api.streaming import ClosingStreamingResponse
from propylon.errors import InvalidArgument, PropylonError, Unavailable
from propylon.gateway.registry import ServedModel
from propylon.providers.base import FunctionCall, UpstreamError
from propylon.runner.output import check_arguments
from propylon.schema.openai.chat import PASSED_THROUGH, ChatRequest, parse_chat
from propylon.schema.openai.chat_answer import Answer
from propylon.schema.openai.chat_turn import to_turn
from propylon.service.stateless import Call, StatelessCalls, upstream_failure

__all__ = ["create", "routes"]

logger = logging.getLogger("propylon.api")


async def create(request: Request) -> Response:
    """Answer one Chat Completions request (see the module)."""
    calls: StatelessCalls = request.app.state.stateless
    caller = caller_of(request)
    body: Any = await json_body(request)
    chat = parse_chat(body)
    served = calls.resolve(chat.model)
    _check_passed_through(chat, served)
    turn = to_turn(chat, body)
    call = await calls.answer(caller, chat.model, turn, chat.metadata or {}, prefix="chatcmpl")
    answer = Answer(call.id, int(time.time()), chat.model)
    strict = {t.function.name for t in chat.tools or [] if t.function.strict}
    if not chat.stream:
        try:
            async for event in call.events:
                answer.add(event)
                _check_strict(event, strict, turn.tools)
        finally:
            await call.close()
        return JSONResponse(answer.completion())
    include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
    gauge = request.app.state.metrics.active_streams
    return ClosingStreamingResponse(
        _chunks(call, answer, include_usage, strict, turn.tools, gauge),
        call.close,  # also when the client left as the response began
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _check_passed_through(chat: ChatRequest, served: ServedModel) -> None:
    """A field only OpenAI-compatible upstreams honour needs every target to be one."""
    others = [t.name for t in served.targets if t.settings.provider != "openai"]
    if not others:
        return
    for name in PASSED_THROUGH:
        if getattr(chat, name) is not None:
            raise InvalidArgument(
                f"`{name}` is honoured only by OpenAI-compatible upstreams; model "
                f"`{served.name}` may be answered by target `{others[0]}`",
                param=name,
            )


def _check_strict(event: object, strict: set[str], tools: list[dict[str, Any]]) -> None:
    """A call of a `strict` function must match its parameters (OpenAI's guarantee); a model
    that breaks it fails the call (503: another try may answer well)."""
    if isinstance(event, FunctionCall) and event.name in strict:
        try:
            check_arguments(event, tools)
        except ValueError as exc:
            raise Unavailable(f"the model broke a strict function's schema: {exc}") from None


async def _chunks(
    call: Call,
    answer: Answer,
    include_usage: bool,
    strict: set[str],
    tools: list[dict[str, Any]],
    gauge: Any,
) -> AsyncIterator[bytes]:
    """The stream's `data:` frames. A task makes them as the call's events come; the response
    sends whatever is made when the client can take more as one write, so a fast upstream's
    chunks go out in a few writes (each write passes every middleware), a slow one's as soon
    as each is made. Frames wait for a slow client in memory: at most the whole answer."""
    frames: asyncio.Queue[bytes | None] = asyncio.Queue()

    def put(data: dict[str, Any]) -> None:
        frames.put_nowait(b"data: " + orjson.dumps(data) + b"\n\n")

    async def make() -> None:
        try:
            put(answer.chunk({"role": "assistant", "content": ""}, usage=include_usage))
            async for event in call.events:
                delta = answer.add(event)
                _check_strict(event, strict, tools)
                if delta is not None:
                    put(answer.chunk(delta, usage=include_usage))
            put(answer.chunk({}, answer.finish_reason, usage=include_usage))
            if include_usage:
                put(answer.chunk(None, usage=True))
        except Exception as exc:
            put(_stream_error(exc))
        finally:
            await call.close()  # the call's accounting, however it ended
        frames.put_nowait(b"data: [DONE]\n\n")
        frames.put_nowait(None)

    gauge.inc()
    task = asyncio.create_task(make())
    try:
        ended = False
        while not ended:
            batch = [await frames.get()]
            while not frames.empty():
                batch.append(frames.get_nowait())
            ended = batch[-1] is None
            yield b"".join(frame for frame in batch if frame is not None)
    finally:
        gauge.dec()
        task.cancel()  # the client went away: the call stops
        await asyncio.gather(task, return_exceptions=True)
        await call.close()  # also when `make` never began


def _stream_error(exc: Exception) -> dict[str, Any]:
    """The `data:` body of a failure after the stream began."""
    if isinstance(exc, UpstreamError):
        exc = upstream_failure(exc)
    if isinstance(exc, PropylonError):
        body = openai_error_body(exc.http_status, exc.status, exc.message)
        return refine_openai_error(body, exc)
    logger.exception("chat completion stream failed")
    return openai_error("internal error", "server_error")


routes = [Route("/v1/chat/completions", create, methods=["POST"])]
