"""A fast mock upstream for the benchmarks: OpenAI-compatible Chat Completions and Gemini's
`models/{m}:generateContent` / `:streamGenerateContent?alt=sse`, a fixed small reply, an
optional fixed delay, streaming with N chunks. aiohttp sets TCP_NODELAY on its sockets.
Streamed models for bench/scaling.py: `bench-paced` sends its N chunks `--pace-ms` apart (a
model's token rate); `bench-hold-K` sends K chunks, then holds the answer open (a run that
stays running with a log of about K events) until the caller goes away.

    python bench/mock_upstream.py PORT [--chunks 100] [--delay-ms 0] [--pace-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web

REPLY = {"id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there!"},
                      "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
BODY = json.dumps(REPLY).encode()
GEMINI = json.dumps(
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello there!"}]},
                     "finishReason": "STOP", "index": 0}],
     "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
     "modelVersion": "bench", "responseId": "bench"}
).encode()


def _chunk(content: str | None, finish: str | None = None, usage: bool = False) -> bytes:
    chunk: dict[str, object] = {"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                                "created": 0, "model": "bench", "choices": [
                                    {"index": 0, "delta": {"content": content} if content else {},
                                     "finish_reason": finish}]}
    if usage:
        chunk["choices"] = []
        chunk["usage"] = REPLY["usage"]
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def make_app(chunks: int, delay: float, pace: float = 0.01) -> web.Application:
    stream_body = b"".join(_chunk(f"t{i} ") for i in range(chunks)) + _chunk(None, "stop") + \
        _chunk(None, usage=True) + b"data: [DONE]\n\n"
    one_chunk = _chunk("Hello there!") + _chunk(None, "stop") + _chunk(None, usage=True) + \
        b"data: [DONE]\n\n"

    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if delay:
            await asyncio.sleep(delay)
        if not body.get("stream"):
            return web.Response(body=BODY, content_type="application/json")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        model = str(body.get("model"))
        if model == "bench-paced":
            for i in range(chunks):
                await response.write(_chunk(f"t{i} "))
                await asyncio.sleep(pace)
            await response.write(one_chunk[one_chunk.index(b"data: ", 1):])
            await response.write_eof()
            return response
        if model.startswith("bench-hold-"):
            count = int(model.removeprefix("bench-hold-"))
            await response.write(b"".join(_chunk(f"t{i} ") for i in range(count)))
            await asyncio.sleep(3600)  # until the caller goes away
            return response
        # `stream_chunks` in the body asks for the long stream (the streaming scenario)
        await response.write(stream_body if body.get("stream_chunks") or body.get("model")
                             == "bench-stream" else one_chunk)
        await response.write_eof()
        return response

    async def gemini(request: web.Request) -> web.StreamResponse:
        await request.read()
        if delay:
            await asyncio.sleep(delay)
        if request.match_info["action"].endswith(":generateContent"):
            return web.Response(body=GEMINI, content_type="application/json")
        return web.Response(body=b"data: " + GEMINI + b"\r\n\r\n",
                            content_type="text/event-stream")

    app = web.Application()
    app.add_routes([web.post("/v1/chat/completions", completions),
                    web.post("/v1beta/models/{action}", gemini)])
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--pace-ms", type=float, default=10.0)
    args = parser.parse_args()
    web.run_app(make_app(args.chunks, args.delay_ms / 1000, args.pace_ms / 1000), host="127.0.0.1", port=args.port,
                print=None, access_log=None)
