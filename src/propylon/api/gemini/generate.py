"""`:generateContent`, `:streamGenerateContent` (SSE with `alt=sse`, else one JSON array)
and `:countTokens`: thin translation between HTTP and service/generate.py. A `fileData` part
naming one of the caller's uploaded files becomes an `inlineData` part of its bytes here,
before any target sees the body (service/files.py)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.api.streaming import ClosingStreamingResponse
from propylon.errors import InvalidArgument
from propylon.schema.gemini.files import inline_file_parts
from propylon.schema.gemini.request import CountTokensRequest, GenerateContentRequest, parse
from propylon.service.files import FileService
from propylon.service.generate import GenerateService

__all__ = ["count_tokens", "generate_content", "stream_generate_content"]


def _service(request: Request) -> GenerateService:
    service: GenerateService = request.app.state.generate
    return service


async def _body(request: Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("invalid request: the body must be a JSON object")
    files: FileService = request.app.state.files
    caller = caller_of(request)

    async def load(uri: str) -> tuple[str, str] | None:
        return await files.load(caller, uri)

    return await inline_file_parts(body, load)


async def generate_content(request: Request, model: str) -> Response:
    """`POST .../models/{model}:generateContent`: one GenerateContentResponse."""
    body = await _body(request)
    service = _service(request)
    generation = await service.generate(
        model, parse(GenerateContentRequest, body), body, caller_of(request), stream=False
    )
    return JSONResponse(await service.whole(generation))


async def stream_generate_content(request: Request, model: str) -> Response:
    """`POST .../models/{model}:streamGenerateContent`: response chunks as SSE `data:`
    frames with `alt=sse`, else as one JSON array sent as it is produced. An error before the
    first chunk is an HTTP error; after it, a last `{"error": ...}` chunk."""
    alt = request.query_params.get("alt")
    if alt not in (None, "sse", "json"):
        raise InvalidArgument("query parameter `alt` must be `sse` or `json`")
    body = await _body(request)
    service = _service(request)
    generation = await service.generate(
        model, parse(GenerateContentRequest, body), body, caller_of(request), stream=True
    )
    chunks = service.chunks(generation)  # failures before any output were raised above
    close = generation.call.close  # also when the client left as the response began
    if alt == "sse":
        return ClosingStreamingResponse(
            _sse(chunks, request.app.state.metrics.active_streams),
            close,
            media_type="text/event-stream",
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )
    return ClosingStreamingResponse(_array(chunks), close, media_type="application/json")


async def _sse(chunks: AsyncGenerator[dict[str, Any]], gauge: Any) -> AsyncIterator[bytes]:
    gauge.inc()
    try:
        async for chunk in chunks:
            yield b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"
    finally:
        gauge.dec()
        await chunks.aclose()


async def _array(chunks: AsyncGenerator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Google's non-SSE stream: `[{...}\\n,\\r\\n{...}]`, each element sent as it comes."""
    try:
        separator = b"["
        async for chunk in chunks:
            yield separator + orjson.dumps(chunk)
            separator = b"\n,\r\n"
        yield b"]" if separator != b"[" else b"[]"
    finally:
        await chunks.aclose()


async def count_tokens(request: Request, model: str) -> Response:
    """`POST .../models/{model}:countTokens`: `{"totalTokens": n}`."""
    body = await _body(request)
    parsed = parse(CountTokensRequest, body)
    inner = parsed.generate_content_request
    if inner is None:
        if not parsed.contents:
            raise InvalidArgument("`contents` or `generateContentRequest` is required")
        inner = GenerateContentRequest(contents=parsed.contents)
    total = await _service(request).count_tokens(model, inner, body, caller_of(request))
    return JSONResponse({"totalTokens": total})
