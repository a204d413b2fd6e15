"""A real MCP server for the tests (MCPServer, formerly FastMCP, from the `mcp` package),
served over Streamable HTTP on loopback. It requires the header `x-test-token: TOKEN`.

    python tests/mcp_server.py PORT [TOKEN]    (TOKEN: default `secret`)
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp, Receive, Scope, Send

server = MCPServer("calc")
TOKEN = (sys.argv[2] if len(sys.argv) > 2 else "secret").encode()


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def wait(seconds: float) -> str:
    """Answer after `seconds` (a tool call that is still running when the server stops)."""
    await asyncio.sleep(seconds)
    return "waited"


@server.tool()
def get_weather(location: str) -> str:
    """The weather in a city."""
    return f"sunny in {location}"


def require_token(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (b"x-test-token", TOKEN) not in scope["headers"]:
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"missing x-test-token"})
            return
        await app(scope, receive, send)

    return guarded


if __name__ == "__main__":
    app = server.streamable_http_app()
    uvicorn.run(
        require_token(app),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        lifespan="on",
    )
