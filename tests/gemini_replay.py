"""Replays recorded Gemini responses (../shared/fixtures/gemini/) for the tests, on loopback.

`POST /v1beta/models/<model>:streamGenerateContent?alt=sse` answers with the fixture named by
the last user text part (e.g. `generate_content/text_basic.json`): an `.sse` file verbatim, a
JSON body as one SSE event, a JSON array as one event per element; `errors/<name>_<status>...`
files are sent with that HTTP status. A request with a `continuationToken` answers with the
fixture the token names (its base64 decodes to the name: see `continuation_part1.json`).
`POST /v1beta/models/<model>:generateContent` (not streamed) answers with the `.json` fixture's
body as it is; `:countTokens` with twice the count of words of the text parts.
`GET /requests` lists the request bodies received.

`POST /v1beta/interactions` (Google's Interactions API, for agents) streams the recorded events
of the fixture named by the input (`interactions/steps_text_stream.jsonl`), or, for the input
`hang`, an `interaction.created` and a status update, then silence;
`POST /v1beta/interactions/<id>/cancel` is recorded and listed by `GET /cancelled`.

    python tests/gemini_replay.py PORT FIXTURES_DIR
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
from pathlib import Path

from aiohttp import web

received: list[dict[str, object]] = []


async def generate(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    received.append(body)
    if request.path.endswith(":countTokens"):  # words of every text part, doubled
        words = sum(
            len(part.get("text", "").split())
            for content in body["contents"]
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
    if request.path.endswith(":generateContent"):  # not streamed: the body as recorded
        return web.Response(body=raw, content_type="application/json")
    if path.suffix == ".sse":
        payload = raw
    else:
        parsed = json.loads(raw)
        chunks = parsed if isinstance(parsed, list) else [parsed]
        payload = b"".join(b"data: " + json.dumps(c).encode() + b"\r\n\r\n" for c in chunks)
    return web.Response(body=payload, content_type="text/event-stream")


async def requests(request: web.Request) -> web.Response:
    return web.json_response(received)


cancelled: list[str] = []


async def interactions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    received.append(body)
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
    for line in (Path(request.app["fixtures"]) / body["input"]).read_text().splitlines():
        await response.write(b"data: " + line.encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    return response


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
        web.post("/v1beta/interactions", interactions),
        web.post("/v1beta/interactions/{id}/cancel", cancel),
        web.get("/cancelled", cancellations),
    ]
)

if __name__ == "__main__":
    app["fixtures"] = sys.argv[2]
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
