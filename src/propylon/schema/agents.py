"""Pydantic models of the agents resource (google-genai's `_gaos/types/agents/agent.py`): the
create body and the list's query. Failures become InvalidArgument (HTTP 400) naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from propylon.errors import InvalidArgument
from propylon.schema.listing import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

__all__ = ["AGENT_ID", "AgentBody", "ListAgents", "parse_agent", "parse_list_agents"]

AGENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"


class AgentBody(BaseModel):
    """An Agent to create. `base_agent`: a served model or alias, or a configured Google
    agent. `agent_config` and `base_environment` apply to a Google agent base only."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(pattern=AGENT_ID)] | None = None
    base_agent: str | None = None
    system_instruction: str | None = None
    tools: list[dict[str, Any]] | None = None
    description: str | None = None
    agent_config: dict[str, Any] | None = None
    base_environment: str | dict[str, Any] | None = None


class ListAgents(BaseModel):
    """The query of `GET /{v}/agents`. `parent` (the SDK's Vertex form) is accepted and
    changes nothing: the key's tenant decides whose agents are listed."""

    model_config = ConfigDict(extra="forbid")

    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE
    page_token: str | None = None
    parent: str | None = None


def parse_agent(body: Any) -> AgentBody:
    """Validate a decoded create body. Raises InvalidArgument naming the offending field."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    try:
        return AgentBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidArgument(_describe(exc, "field")) from None


def parse_list_agents(items: Iterable[tuple[str, str]]) -> ListAgents:
    """Validate a query string's (name, value) pairs; each at most once. Raises
    InvalidArgument naming the parameter."""
    fields: dict[str, str] = {}
    for name, value in items:
        if name in fields:
            raise InvalidArgument(f"query parameter `{name}` is given more than once")
        fields[name] = value
    try:
        return ListAgents.model_validate(fields)
    except ValidationError as exc:
        raise InvalidArgument(_describe(exc, "query parameter")) from None


def _describe(exc: ValidationError, what: str) -> str:
    error = exc.errors()[0]
    name = ".".join(str(part) for part in error["loc"]) or "body"
    if error["type"] == "extra_forbidden":
        return f"unknown {what} `{name}`"
    return f"{what} `{name}`: {error['msg']}"
