"""How an interaction on a custom agent plans: the agent's definition merged into the request.

`create(agent="<id>")` naming one of the caller's tenant's agents runs as if the request had
named the agent's base, with:

- `system_instruction`: the agent's, then the request's own after a blank line;
- `tools`: the agent's, then the request's own; a tool both declare (a function or MCP server
  of the same name, or another tool of the same type) answers 400;
- on a model base: what a `model=` create of the same fields plans to (history, tool loop,
  MCP); a request's own `agent_config` answers 400;
- on a configured Google agent base: forwarded (pass-through) with `agent` the base, and
  `agent_config` / `environment` the request's own or else the agent's `agent_config` /
  `base_environment`.

The stored interaction keeps the request as sent (it echoes `agent`); the definition is read
each time the turn is planned (at create, and when a queued background run starts).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, Protocol

from propylon.errors import InvalidArgument
from propylon.schema.interactions import CreateInteraction, parse_create
from propylon.store.agents import AgentRecord

__all__ = ["AgentLookup", "base_of", "for_agent"]


class AgentLookup(Protocol):
    """Where planning finds a tenant's agent (an AgentStore)."""

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None:
        """The tenant's agent, or None."""


async def base_of(lookup: AgentLookup, tenant: str, agent_id: str) -> str | None:
    """The base (model, alias or configured agent) of the tenant's agent, or None."""
    agent = await lookup.get_agent(tenant, agent_id)
    return None if agent is None else str(agent.definition["base_agent"])


async def for_agent(
    request: CreateInteraction, lookup: AgentLookup, tenant: str, google: Container[str]
) -> CreateInteraction:
    """The request to plan for `request` (an `agent=` create): merged with the tenant's agent
    of that id, or `request` itself when the tenant has none (a configured Google agent, or
    unknown). `google`: the configured agents' names. Raises InvalidArgument."""
    assert request.agent is not None
    agent = await lookup.get_agent(tenant, request.agent)
    if agent is None:
        return request
    definition = agent.definition
    base = str(definition["base_agent"])
    body: dict[str, Any] = request.model_dump(exclude_none=True, exclude={"agent", "agent_config"})
    instructions = [definition.get("system_instruction"), request.system_instruction]
    if any(instructions):
        body["system_instruction"] = "\n\n".join(text for text in instructions if text)
    tools = _tools(agent, request.tools or [])
    if tools:
        body["tools"] = tools
    if base in google:
        body["agent"] = base
        config = request.agent_config or definition.get("agent_config")
        if config is not None:
            body["agent_config"] = config
        environment = request.environment or definition.get("base_environment")
        if environment is not None:
            body["environment"] = environment
    else:
        if request.agent_config is not None:
            raise InvalidArgument(
                f"`agent_config`: agent `{agent.id}` runs on the model `{base}`, "
                "which takes no agent configuration"
            )
        body["model"] = base
    return parse_create(body)


def _tools(agent: AgentRecord, own: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agent's tools, then the request's; one declared by both is refused."""
    declared = list(agent.definition.get("tools") or [])
    names = {_identity(tool) for tool in declared}
    for index, tool in enumerate(own):
        if _identity(tool) in names:
            kind, name = _identity(tool)
            raise InvalidArgument(
                f"`tools.{index}`: agent `{agent.id}` declares the {kind} tool "
                f"`{name or kind}` already"
            )
    return declared + own


def _identity(tool: dict[str, Any]) -> tuple[str, str]:
    kind = str(tool.get("type"))
    return kind, (str(tool.get("name") or "") if kind in ("function", "mcp_server") else "")
