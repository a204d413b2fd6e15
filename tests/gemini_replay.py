"""Replays recorded Gemini responses (../shared/fixtures/gemini/) for the tests, on loopback.

`POST /v1beta/models/<model>:streamGenerateContent?alt=sse` answers with the fixture named by
the last user text part (e.g. `generate_content/text_basic.json`): an `.sse` file verbatim, a
JSON body as one SSE event, a JSON array as one event per element; `errors/<name>_<status>...`
files are sent with that HTTP status. A request with a `continuationToken` answers with the
fixture the token names (its base64 decodes to the name: see `continuation_part1.json`).
`POST /v1beta/models/<model>:generateContent` (not streamed) answers with the `.json` fixture's
body as it is, or, for a recorded stream (an `.sse` file, a JSON array), the whole answer its
chunks make, as Google answers the same request unstreamed (`whole`); `:countTokens` with
twice the count of words of the text parts (of its `contents`, or its
`generateContentRequest`'s).
`GET /requests` lists the request bodies received, `GET /paths` their paths (with the query).

`POST /v1beta/cachedContents` makes an upstream cached content (`cachedContents/upstream-<n>`,
its `totalTokenCount` twice the words of its text parts), or refuses it with Google's 400 when
a text part says `too small`; `PATCH` and `DELETE /v1beta/cachedContents/<id>` answer like
Google's; `GET /caches` lists what these received (`{method, name?, query?, body?}`).

`POST /v1beta/interactions` (Google's Interactions API, for agents) streams the recorded events
of the fixture named by the input (`interactions/steps_text_stream.jsonl`), or, for the input
`hang`, an `interaction.created` and a status update, then silence;
`POST /v1beta/interactions/<id>/cancel` is recorded and listed by `GET /cancelled`.
A legacy recording (`interactions/legacy_*`: an `.sse` stream or a `.json` interaction) is
served in the revision the request's `Api-Revision` header asks for, as Google serves one
interaction in either: verbatim for a date before 2026-05-20, else (the default since Google
removed the legacy schema) as the steps-revision stream of the same interaction
(`steps_rendition`). `GET /revisions` lists the `Api-Revision` headers received (None: none).

    python tests/gemini_replay.py PORT FIXTURES_DIR
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

received: list[dict[str, object]] = []
paths: list[str] = []


def _chunks(raw: bytes, suffix: str) -> list[dict[str, Any]]:
    """The chunks of a recorded answer: an `.sse` file's `data:` payloads, a JSON array's
    elements, or the one JSON body."""
    if suffix == ".sse":
        return [
            json.loads(line.removeprefix(b"data:"))
            for line in raw.splitlines()
            if line.startswith(b"data:")
        ]
    parsed = json.loads(raw)
    return parsed if isinstance(parsed, list) else [parsed]


def whole(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """One GenerateContentResponse of a streamed answer's `chunks`: the first candidate's
    parts in order, its other fields (finishReason, groundingMetadata, ...) as the last chunk
    that has them says, and the last chunk's top-level fields (usageMetadata is cumulative)."""
    merged: dict[str, Any] = {}
    candidate: dict[str, Any] = {}
    parts: list[dict[str, Any]] = []
    for chunk in chunks:
        merged.update({k: v for k, v in chunk.items() if k != "candidates"})
        for found in chunk.get("candidates") or []:
            content = found.get("content") or {}
            parts.extend(content.get("parts") or [])
            candidate.update({k: v for k, v in found.items() if k != "content"})
            candidate["content"] = {"role": content.get("role", "model")}
    if candidate:
        if parts:
            candidate["content"]["parts"] = parts
        merged["candidates"] = [candidate]
    return merged


async def generate(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    received.append(body)
    paths.append(request.path_qs)
    if request.path.endswith(":countTokens"):  # words of every text part, doubled
        inner = body.get("generateContentRequest") or body
        words = sum(
            len(part.get("text", "").split())
            for content in inner["contents"]
            for part in content["parts"]
        )
        return web.json_response({"totalTokens": 2 * words})
    name = next(
        part["text"]
        for content in reversed(body["contents"])
        if content["role"] == "user"
        for part in content["parts"]
        if "text" in part
    )
    if body.get("continuationToken"):
        name = base64.b64decode(body["continuationToken"]).decode()
    path = Path(request.app["fixtures"]) / name
    raw = path.read_bytes()
    status = re.search(r"_(\d{3})", path.name)
    if name.startswith("errors/") and status:
        return web.Response(body=raw, status=int(status.group(1)), content_type="application/json")
    chunks = _chunks(raw, path.suffix)
    if request.path.endswith(":generateContent"):  # not streamed: the body as recorded
        if len(chunks) == 1 and path.suffix != ".sse":
            return web.Response(body=raw, content_type="application/json")
        return web.json_response(whole(chunks))
    if path.suffix == ".sse":
        payload = raw
    else:
        payload = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    return web.Response(body=payload, content_type="text/event-stream")


async def requests(request: web.Request) -> web.Response:
    return web.json_response(received)


async def request_paths(request: web.Request) -> web.Response:
    return web.json_response(paths)


cache_calls: list[dict[str, object]] = []


def _words(contents: list[dict[str, Any]]) -> list[str]:
    return [
        word for content in contents for part in content["parts"] for word in part["text"].split()
    ]


async def create_cache(request: web.Request) -> web.Response:
    body = await request.json()
    cache_calls.append({"method": "POST", "body": body})
    texts = [
        *body.get("contents", []),
        *([body["systemInstruction"]] * ("systemInstruction" in body)),
    ]
    if "too small" in " ".join(_words(texts)):
        error = {
            "code": 400,
            "message": "Cached content is too small. min_total_token_count=1024",
            "status": "INVALID_ARGUMENT",
        }
        return web.json_response({"error": error}, status=400)
    name = f"cachedContents/upstream-{len(cache_calls)}"
    return web.json_response(
        {
            "name": name,
            "model": body["model"],
            "createTime": "2026-01-01T00:00:00.000000Z",
            "updateTime": "2026-01-01T00:00:00.000000Z",
            "expireTime": body.get("expireTime"),
            "usageMetadata": {"totalTokenCount": 2 * len(_words(texts))},
        }
    )


async def update_cache(request: web.Request) -> web.Response:
    body = await request.json()
    name = f"cachedContents/{request.match_info['id']}"
    cache_calls.append(
        {"method": "PATCH", "name": name, "query": dict(request.query), "body": body}
    )
    return web.json_response({"name": name, "expireTime": body.get("expireTime")})


async def delete_cache(request: web.Request) -> web.Response:
    cache_calls.append({"method": "DELETE", "name": f"cachedContents/{request.match_info['id']}"})
    return web.json_response({})


async def caches(request: web.Request) -> web.Response:
    return web.json_response(cache_calls)


cancelled: list[str] = []


revisions: list[str | None] = []
_LEGACY_ITEMS = {"text", "image", "audio", "video", "document"}


def _legacy_events(path: Path) -> list[dict[str, Any]]:
    """The events of a legacy recording: its SSE `data:` payloads, or, for a recorded
    interaction, the stream Google sent for it (each output a start, one delta, a stop)."""
    if path.suffix == ".sse":
        return [
            json.loads(line.removeprefix("data: "))
            for line in path.read_text().splitlines()
            if line.startswith("data: {")
        ]
    interaction = json.loads(path.read_text())
    outputs = interaction.pop("outputs")
    head = {"id": interaction["id"], "status": "in_progress", "object": "interaction"}
    events: list[dict[str, Any]] = [
        {"event_type": "interaction.start", "interaction": head},
        {
            "event_type": "interaction.status_update",
            "interaction_id": head["id"],
            "status": "in_progress",
        },
    ]
    for index, output in enumerate(outputs):
        kind = output["type"]
        if kind == "thought":
            start, delta = (
                {"type": "thought"},
                {"type": "thought_signature", "signature": output["signature"]},
            )
        else:
            start, delta = {"type": kind}, output
        events += [
            {"event_type": "content.start", "index": index, "content": start},
            {"event_type": "content.delta", "index": index, "delta": delta},
            {"event_type": "content.stop", "index": index},
        ]
    return [*events, {"event_type": "interaction.complete", "interaction": interaction}]


def steps_rendition(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The steps-revision stream of legacy `events` (one output per step, as recorded):
    content items become `model_output` steps, a function call's arguments an
    `arguments_delta`, and the events get their current names."""
    steps: list[dict[str, Any]] = []
    for event in events:
        kind = event["event_type"]
        if kind == "interaction.start":
            steps.append({**event, "event_type": "interaction.created"})
        elif kind == "interaction.complete":
            steps.append({**event, "event_type": "interaction.completed"})
        elif kind == "content.start":
            content = event["content"]
            step = {"type": "model_output"} if content["type"] in _LEGACY_ITEMS else content
            steps.append({"event_type": "step.start", "index": event["index"], "step": step})
        elif kind == "content.delta":
            delta = event["delta"]
            if delta["type"] == "function_call":
                call = {k: v for k, v in delta.items() if k != "arguments"}
                steps[-1]["step"] = {**call, "arguments": {}}
                delta = {"type": "arguments_delta", "arguments": json.dumps(delta["arguments"])}
            steps.append({"event_type": "step.delta", "index": event["index"], "delta": delta})
        elif kind == "content.stop":
            steps.append({"event_type": "step.stop", "index": event["index"]})
        else:
            steps.append(event)
    return steps


async def interactions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    received.append(body)
    revision = request.headers.get("Api-Revision")
    revisions.append(revision)
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if body["input"] == "hang":
        created = {
            "event_type": "interaction.created",
            "interaction": {"id": "v1_upstream_hanging", "status": "in_progress"},
        }
        status = {
            "event_type": "interaction.status_update",
            "interaction_id": "v1_upstream_hanging",
            "status": "in_progress",
        }
        for event in (created, status):
            await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        await asyncio.sleep(60)
        return response
    path = Path(request.app["fixtures"]) / body["input"]
    if path.name.startswith("legacy_"):
        events = _legacy_events(path)
        if revision is None or revision >= "2026-05-20":
            events = steps_rendition(events)
        lines = [json.dumps(event) for event in events]
    else:
        lines = path.read_text().splitlines()
    for line in lines:
        await response.write(b"data: " + line.encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    return response


async def revisions_seen(request: web.Request) -> web.Response:
    return web.json_response(revisions)


async def cancel(request: web.Request) -> web.Response:
    cancelled.append(request.match_info["id"])
    return web.json_response({"id": request.match_info["id"], "status": "cancelled"})


async def cancellations(request: web.Request) -> web.Response:
    return web.json_response(cancelled)


app = web.Application()
app.add_routes(
    [
        web.post(r"/v1beta/models/{model}", generate),
        web.get("/requests", requests),
        web.get("/paths", request_paths),
        web.post("/v1beta/cachedContents", create_cache),
        web.patch("/v1beta/cachedContents/{id}", update_cache),
        web.delete("/v1beta/cachedContents/{id}", delete_cache),
        web.get("/caches", caches),
        web.post("/v1beta/interactions", interactions),
        web.post("/v1beta/interactions/{id}/cancel", cancel),
        web.get("/cancelled", cancellations),
        web.get("/revisions", revisions_seen),
    ]
)

if __name__ == "__main__":
    app["fixtures"] = sys.argv[2]
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
