"""AgentStore on SQLAlchemy: the `agents` table (migration 0010)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.agents import AgentRecord
from propylon.store.queries import AGENT_COLUMNS, agent_of, dumps
from propylon.store.sql.database import Database

__all__ = ["SQLAgents"]

_SELECT = f"SELECT {AGENT_COLUMNS} FROM agents"


class SQLAgents:
    """AgentStore over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_agent(self, agent: AgentRecord) -> bool:
        params = {
            "tenant": agent.tenant,
            "id": agent.id,
            "definition": dumps(agent.definition),
            "created": agent.created,
        }

        async def run(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                text(
                    "INSERT INTO agents (tenant, id, definition, created) "
                    "VALUES (:tenant, :id, :definition, :created) "
                    "ON CONFLICT (tenant, id) DO NOTHING"
                ),
                params,
            )
            return result.rowcount > 0

        return await self._db.write(run)

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None:
        async def run(conn: AsyncConnection) -> AgentRecord | None:
            row = (
                await conn.execute(
                    text(f"{_SELECT} WHERE tenant = :tenant AND id = :id"),
                    {"tenant": tenant, "id": agent_id},
                )
            ).first()
            return agent_of(row) if row else None

        return await self._db.read(run)

    async def list_agents(self, tenant: str, after: str | None, limit: int) -> list[AgentRecord]:
        async def run(conn: AsyncConnection) -> list[AgentRecord]:
            rows = await conn.execute(
                text(f"{_SELECT} WHERE tenant = :tenant AND id > :after ORDER BY id LIMIT :limit"),
                {"tenant": tenant, "after": after or "", "limit": limit},
            )
            return [agent_of(row) for row in rows]

        return await self._db.read(run)

    async def delete_agent(self, tenant: str, agent_id: str) -> bool:
        async def run(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                text("DELETE FROM agents WHERE tenant = :tenant AND id = :id"),
                {"tenant": tenant, "id": agent_id},
            )
            return result.rowcount > 0

        return await self._db.write(run)
