"""The floor: a bare Python pass-through proxy (Starlette on uvicorn, forwarding with aiohttp),
as in ../shared/reference/anchor-performance.md. It does nothing but forward.

    python bench/passthrough.py PORT UPSTREAM_URL
"""

from __future__ import annotations

import sys

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = sys.argv[2]
session: aiohttp.ClientSession | None = None


async def forward(request: Request) -> Response:
    global session
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = await request.body()
    upstream = await session.post(f"{UPSTREAM}/v1/chat/completions", data=body,
                                  headers={"content-type": "application/json"})
    if upstream.content_type == "text/event-stream":
        async def relay():  # type: ignore[no-untyped-def]
            async for chunk in upstream.content.iter_any():
                yield chunk
            upstream.release()

        return StreamingResponse(relay(), media_type="text/event-stream")
    data = await upstream.read()
    upstream.release()
    return Response(data, media_type="application/json")


app = Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"])])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
