"""Server-side MCP tools: Propylon connects to each `mcp_server` tool's URL (Streamable HTTP)
with the official `mcp` SDK, offers its tools to the model as functions, and runs the calls.
The SDK's HTTP client is the outbound policy's (every connection's address checked).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from propylon.outbound import OutboundPolicy, http_client

__all__ = ["McpToolbox"]


@dataclass(slots=True)
class _Tool:
    server: str
    client: Any


class McpToolbox:
    """The tools of the request's MCP servers, for one run. Use as `async with`.

    servers: the request's `mcp_server` tool entries (reference §3.5). timeout: seconds per
    MCP request. policy: the addresses the servers may be at. Raises RuntimeError on entry
    when a server cannot be listed or two tools share a name.
    """

    def __init__(
        self, servers: list[dict[str, Any]], timeout: float, policy: OutboundPolicy
    ) -> None:
        self.servers = servers
        self.timeout = timeout
        self.policy = policy
        self.declarations: list[dict[str, Any]] = []
        self._tools: dict[str, _Tool] = {}
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> McpToolbox:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        try:
            for server in self.servers:
                http = http_client(
                    self.policy, headers=server.get("headers") or {}, timeout=self.timeout
                )
                await self._stack.enter_async_context(http)
                transport = streamable_http_client(server["url"], http_client=http)
                client = await self._stack.enter_async_context(
                    Client(transport, read_timeout_seconds=self.timeout)
                )
                allowed = _allowed(server)
                for tool in (await client.list_tools()).tools:
                    if allowed is not None and tool.name not in allowed:
                        continue
                    if tool.name in self._tools:
                        raise RuntimeError(f"MCP tool `{tool.name}` is offered twice")
                    self._tools[tool.name] = _Tool(server["name"], client)
                    self.declarations.append(
                        {
                            "type": "function",
                            "name": tool.name,
                            "description": tool.description or "",
                            "parameters": tool.input_schema,
                        }
                    )
        except BaseException as exc:
            await self._stack.aclose()
            if isinstance(exc, Exception) and not isinstance(exc, RuntimeError):
                raise RuntimeError(f"cannot list the tools of MCP server: {exc}") from exc
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    def server_of(self, name: str) -> str | None:
        """The server name offering tool `name`, or None when it is not an MCP tool."""
        tool = self._tools.get(name)
        return tool.server if tool else None

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run tool `name`; its structured result, else its content (one text as a string)."""
        result = await self._tools[name].client.call_tool(name, arguments)
        if result.structured_content is not None:
            return result.structured_content
        content = [item.model_dump(exclude_none=True, by_alias=True) for item in result.content]
        if len(content) == 1 and content[0].get("type") == "text":
            return content[0]["text"]
        return content


def _allowed(server: dict[str, Any]) -> set[str] | None:
    entries = server.get("allowed_tools")
    if not entries:
        return None
    allowed: set[str] = set()
    for entry in entries:
        if entry.get("mode") != "none":
            allowed.update(entry.get("tools") or [])
    return allowed
