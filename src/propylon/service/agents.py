"""Use cases of the agents resource (google-genai's `agents`: create, list, get, delete):
custom agents per tenant, on any served model or a configured Google agent.

An agent is accepted only when an interaction on it would plan: its base resolves, the base
can run its tools, its MCP servers pass the outbound policy, and the caller's key may use
the base. Ids are per tenant; another tenant's agent answers 404, as an unknown one does.
Reads redact credentials (an MCP tool's `headers`, see domain/redaction.py); the store
keeps them for the runs.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from typing import Any

from propylon.config import Settings
from propylon.domain.caller import Caller
from propylon.domain.clock import now
from propylon.domain.redaction import redact_request
from propylon.errors import FailedPrecondition, InvalidArgument, NotFound
from propylon.gateway.registry import ModelRegistry
from propylon.providers.google_interactions import GoogleInteractions
from propylon.schema.agents import AgentBody, ListAgents
from propylon.schema.interactions import CreateInteraction
from propylon.service.plan import plan
from propylon.service.quotas import Quotas
from propylon.store.agents import AgentRecord, AgentStore
from propylon.store.base import Store

__all__ = ["AgentService"]


class AgentService:
    """The agents resource over an AgentStore. `models` answers the registry serving now
    (it changes on a config reload); `google` holds the configured Google agents."""

    def __init__(
        self,
        agents: AgentStore,
        store: Store,
        models: Callable[[], ModelRegistry],
        settings: Settings,
        google: dict[str, GoogleInteractions],
    ) -> None:
        self.agents = agents
        self.store = store
        self.models = models
        self.settings = settings
        self.google = google

    async def create(self, body: AgentBody, caller: Caller) -> dict[str, Any]:
        """Store a new agent of the caller's tenant; the Agent as created (redacted).
        Raises InvalidArgument (naming the field), PermissionDenied (the key may not use the
        base), or FailedPrecondition (the tenant has an agent of that id: HTTP 400)."""
        agent_id = body.id or f"agent_{secrets.token_hex(8)}"
        if agent_id in self.google:
            raise InvalidArgument(f"`id` `{agent_id}` names a configured agent: choose another")
        base = body.base_agent
        if not base:
            raise InvalidArgument(
                "`base_agent` is required: a served model or alias, or a configured agent"
            )
        if base not in self.google:
            try:
                self.models().resolve(base)
            except NotFound:
                raise InvalidArgument(
                    f"`base_agent` `{base}` is neither a served model or alias "
                    "nor a configured agent"
                ) from None
            for field in ("agent_config", "base_environment"):
                if getattr(body, field) is not None:
                    raise InvalidArgument(
                        f"`{field}` applies to agents on a configured Google agent; "
                        f"`{base}` is a model"
                    )
        Quotas.allows(caller, base)
        record = AgentRecord(
            caller.tenant, agent_id, {**body.model_dump(exclude_none=True), "id": agent_id}, now()
        )
        # the check: a create on the agent plans (nothing runs, nothing is written)
        trial = CreateInteraction(agent=agent_id, input="-", background=True)
        await plan(
            trial, self.store, self.models(), self.settings, caller, self.google, _Only(record)
        )
        if not await self.agents.create_agent(record):
            raise FailedPrecondition(
                f"agent `{agent_id}` already exists: delete it first, or choose another id"
            )
        return _shown(record)

    async def page(self, params: ListAgents, caller: Caller) -> dict[str, Any]:
        """`{"agents": [...], "next_page_token"?: "..."}`: the caller's tenant's agents by
        id. Raises InvalidArgument for a page token that is not one."""
        after = _decode(params.page_token) if params.page_token else None
        found = await self.agents.list_agents(caller.tenant, after, params.page_size + 1)
        shown = found[: params.page_size]
        answer: dict[str, Any] = {"agents": [_shown(agent) for agent in shown]}
        if len(found) > params.page_size:
            answer["next_page_token"] = _encode(shown[-1].id)
        return answer

    async def get(self, agent_id: str, caller: Caller) -> dict[str, Any]:
        """The caller's tenant's agent (redacted). Raises NotFound."""
        agent = await self.agents.get_agent(caller.tenant, agent_id)
        if agent is None:
            raise NotFound(f"agent `{agent_id}` not found")
        return _shown(agent)

    async def delete(self, agent_id: str, caller: Caller) -> None:
        """Delete the caller's tenant's agent; interactions made on it stay. Raises NotFound."""
        if not await self.agents.delete_agent(caller.tenant, agent_id):
            raise NotFound(f"agent `{agent_id}` not found")


class _Only:
    """An AgentLookup that knows one agent: the one being created."""

    def __init__(self, agent: AgentRecord) -> None:
        self.agent = agent

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None:
        return self.agent if (tenant, agent_id) == (self.agent.tenant, self.agent.id) else None


def _shown(agent: AgentRecord) -> dict[str, Any]:
    return redact_request(agent.definition)


def _encode(agent_id: str) -> str:
    return base64.urlsafe_b64encode(agent_id.encode()).decode().rstrip("=")


def _decode(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("query parameter `page_token` is not a page token") from None
