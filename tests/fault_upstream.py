"""A fault-injecting OpenAI-compatible upstream for the tests, on loopback.

Each request's last user message says what to do: `id=<run id> primary=500,ok backup=ok`.
The request's `model` (here `primary` or `backup`) picks the script; the Nth call of a run and
model plays the Nth item (the last repeats). Items: `ok` (stream "hello from <model>" in three
chunks, with usage), `429` (with `Retry-After: 0.05`), `500`, `400`, `timeout` (answer after
2 s), `reset` (close the connection before answering), `cut` (stream one chunk, then close),
`slow` (stream ten chunks, 0.3 s apart),
`notjson` (an unstreamed answer that is HTML), `huge` (like `ok` but with 2**64 - 1 prompt tokens:
the total is past 64 bits), `call` (one call of `get_weather` with no call id, as some
servers send), `big` (one 1 MiB chunk: a single SSE line over 1 MiB), `hold` (answer nothing
until the caller goes away, at most 10 s), `length` (like `ok`, ending with `finish_reason`
`length`), `think` (a `reasoning_content` chunk, then like `ok`, 2 of its 3 output tokens
reasoning ones), `calls` (two calls, `get_weather` with arguments split across chunks and
`get_time`, with ids).
A request without `stream: true` gets the same answer as one `chat.completion` JSON body (`cut`:
half of that body, then the connection closed; `slow`: after 3 s).
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
    content: str | None = None, usage: dict[str, object] | None = None, finish: str | None = None
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


def _calls_chunks() -> list[bytes]:
    """Two calls with ids, the first one's arguments split over two chunks."""
    parts = [
        {"index": 0, "id": "call_w", "function": {"name": "get_weather", "arguments": '{"loca'}},
        {"index": 0, "function": {"arguments": 'tion": "Oslo"}'}},
        {"index": 1, "id": "call_t", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    return [
        b"data: "
        + json.dumps(
            {
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"tool_calls": [p]}}],
            }
        ).encode()
        + b"\n\n"
        for p in parts
    ]


def _usage(step: str) -> dict[str, object]:
    prompt = 2**64 - 1 if step == "huge" else 7
    usage: dict[str, object] = {
        "prompt_tokens": prompt,
        "completion_tokens": 3,
        "total_tokens": prompt + 3,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    if step == "think":
        usage["completion_tokens_details"] = {"reasoning_tokens": 2}
    return usage


def _words(step: str, model: str) -> list[str]:
    if step == "slow":
        return [f"{n} " for n in range(10)]
    if step == "big":
        return ["x" * BIG]
    return ["hello ", "from ", model]


def _finish(step: str) -> str:
    return {"length": "length", "call": "tool_calls", "calls": "tool_calls"}.get(step, "stop")


async def _whole(request: web.Request, step: str, model: str) -> web.StreamResponse:
    """The answer to a request without `stream: true`: one `chat.completion` body."""
    message: dict[str, object] = {"role": "assistant", "content": "".join(_words(step, model))}
    if step == "think":
        message["reasoning_content"] = "pondering"
    if step == "call":
        arguments = '{"location": "Oslo"}'
        call = {"type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
    if step == "calls":
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_w",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location": "Oslo"}'},
                },
                {
                    "id": "call_t",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        }
    if step == "slow":
        await asyncio.sleep(3)
    body: dict[str, object] = {
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(step)}],
    }
    if step != "call":  # as its stream, which reports none
        body["usage"] = _usage(step)
    raw = json.dumps(body).encode()
    if step == "notjson":
        return web.Response(body=b"<html>gateway timeout</html>", content_type="text/html")
    if step != "cut":
        return web.Response(body=raw, content_type="application/json")
    response = web.StreamResponse(headers={"content-type": "application/json"})
    response.content_length = len(raw)
    await response.prepare(request)
    await response.write(raw[: len(raw) // 2])
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.abort()
    return response


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
    if not body.get("stream"):
        return await _whole(request, step, model)
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if step in ("call", "calls"):
        for chunk in [_call_chunk()] if step == "call" else _calls_chunks():
            await response.write(chunk)
        await response.write(_chunk(finish="tool_calls"))
        if step == "calls":
            await response.write(_chunk(usage=_usage(step)))
        await response.write(b"data: [DONE]\n\n")
        return response
    if step == "think":
        reasoning = {"index": 0, "delta": {"reasoning_content": "pondering"}}
        body = {"object": "chat.completion.chunk", "choices": [reasoning]}
        await response.write(b"data: " + json.dumps(body).encode() + b"\n\n")
    for index, word in enumerate(_words(step, model)):
        if step == "slow":
            await asyncio.sleep(0.3)
        await response.write(_chunk(word))
        if step == "cut" and index == 0:
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.abort()
            return response
    await response.write(_chunk(finish=_finish(step)))
    await response.write(_chunk(usage=_usage(step)))
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
