"""Custom agents (`AgentStore`): a tenant's agent definitions, by id.

Its own small interface beside the `Store` of interactions: SQLite (store/sqlite_agents.py)
implements it over the same file (migration 0010); a PostgreSQL store would too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["AgentRecord", "AgentStore"]


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One agent of `tenant`. `definition`: the wire Agent as created (`id`, `base_agent`,
    `system_instruction`, `tools`, ...), credentials included (reads redact them).
    `created`: wire timestamp."""

    tenant: str
    id: str
    definition: dict[str, Any]
    created: str


class AgentStore(Protocol):
    """Persistence of custom agents. Ids are unique per tenant. Safe to call concurrently."""

    async def create_agent(self, agent: AgentRecord) -> bool:
        """Insert `agent`; False, writing nothing, when its tenant has an agent of that id."""

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None:
        """The tenant's agent, or None."""

    async def list_agents(self, tenant: str, after: str | None, limit: int) -> list[AgentRecord]:
        """Up to `limit` of the tenant's agents, ordered by id, with ids after `after`."""

    async def delete_agent(self, tenant: str, agent_id: str) -> bool:
        """Delete the tenant's agent. False when there was none."""
