"""A fault-injecting OpenAI-compatible upstream for the tests, on loopback.

Each request's last user message says what to do: `id=<run id> primary=500,ok backup=ok`.
The request's `model` (here `primary` or `backup`) picks the script; the Nth call of a run and
model plays the Nth item (the last repeats). Items: `ok` (stream "hello from <model>" in three
chunks, with usage), `429` (with `Retry-After: 0.05`), `500`, `400`, `timeout` (answer after
2 s), `reset` (close the connection before answering), `cut` (stream one chunk, then close),
`slow` (stream ten chunks, 0.3 s apart), `huge` (like `ok` but with 2**64 - 1 prompt tokens:
the total is past 64 bits), `call` (one call of `get_weather` with no call id, as some
servers send), `big` (one 1 MiB chunk: a single SSE line over 1 MiB), `hold` (answer nothing
until the caller goes away, at most 10 s).
`GET /calls/<run id>` answers the call counts per model; `GET /requests` the request bodies.
`POST /v1/embeddings` answers `[len(text), 0.5]` per input text (with `dimensions`: that
many values), with usage, and is recorded in `/requests` too.

    python tests/fault_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections import defaultdict

from aiohttp import web

calls: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
received: list[dict[str, object]] = []
BIG = 1 << 20  # characters of the `big` chunk


def _chunk(
    content: str | None = None, usage: dict[str, int] | None = None, finish: str | None = None
) -> bytes:
    body: dict[str, object] = {"object": "chat.completion.chunk", "choices": []}
    if content is not None or finish is not None:
        body["choices"] = [
            {"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}
        ]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _call_chunk() -> bytes:
    call = {"index": 0, "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'}}
    body = {
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"tool_calls": [call]}}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    received.append(body)
    model = body["model"]
    text = body["messages"][-1]["content"]
    run = re.search(r"id=(\S+)", text)
    script = re.search(rf"{model}=(\S+)", text)
    if run is None or script is None:
        return web.json_response({"error": {"message": "no script"}}, status=400)
    steps = script.group(1).split(",")
    count = calls[run.group(1)][model]
    calls[run.group(1)][model] += 1
    step = steps[min(count, len(steps) - 1)]
    if step in ("429", "500", "400"):
        headers = {"retry-after": "0.05"} if step == "429" else {}
        return web.json_response(
            {"error": {"message": f"injected {step}"}}, status=int(step), headers=headers
        )
    if step == "reset":
        assert request.transport is not None
        request.transport.abort()
        return web.Response()
    if step == "timeout":
        await asyncio.sleep(2)
    if step == "hold":
        for _ in range(200):
            if request.transport is None or request.transport.is_closing():
                break
            await asyncio.sleep(0.05)
        return web.Response(status=500)
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if step == "call":
        await response.write(_call_chunk())
        await response.write(_chunk(finish="tool_calls"))
        await response.write(b"data: [DONE]\n\n")
        return response
    words = ["hello ", "from ", model]
    if step == "slow":
        words = [f"{n} " for n in range(10)]
    if step == "big":
        words = ["x" * BIG]
    for index, word in enumerate(words):
        if step == "slow":
            await asyncio.sleep(0.3)
        await response.write(_chunk(word))
        if step == "cut" and index == 0:
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return response
    await response.write(_chunk(finish="stop"))
    prompt = 2**64 - 1 if step == "huge" else 7
    await response.write(
        _chunk(
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": 3,
                "total_tokens": prompt + 3,
                "prompt_tokens_details": {"cached_tokens": 2},
            }
        )
    )
    await response.write(b"data: [DONE]\n\n")
    return response


async def embeddings(request: web.Request) -> web.Response:
    body = await request.json()
    received.append(body)
    size = body.get("dimensions") or 2
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": ([float(len(text))] + [0.5] * size)[:size],
        }
        for index, text in enumerate(body["input"])
    ]
    usage = {"prompt_tokens": 5, "total_tokens": 5}
    return web.json_response(
        {"object": "list", "data": data, "model": body["model"], "usage": usage}
    )


async def count(request: web.Request) -> web.Response:
    return web.json_response(calls.get(request.match_info["run"], {}))


async def requests(request: web.Request) -> web.Response:
    return web.json_response(received)


app = web.Application()
app.add_routes(
    [
        web.post("/v1/chat/completions", completions),
        web.post("/v1/embeddings", embeddings),
        web.get("/calls/{run}", count),
        web.get("/requests", requests),
    ]
)

if __name__ == "__main__":
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
