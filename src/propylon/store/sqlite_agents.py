"""AgentStore on the SQLite file of an SQLiteStore (the `agents` table, migration 0010),
sharing its one writer and its readers."""

from __future__ import annotations

import sqlite3

from propylon.store.agents import AgentRecord
from propylon.store.queries import AGENT_COLUMNS, agent_of, dumps
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteAgentStore"]


class SQLiteAgentStore:
    """AgentStore over `store`'s file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def create_agent(self, agent: AgentRecord) -> bool:
        row = (agent.tenant, agent.id, dumps(agent.definition), agent.created)
        return await self._store._write(
            lambda conn: (
                conn.execute(
                    "INSERT INTO agents (tenant, id, definition, created) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (tenant, id) DO NOTHING",
                    row,
                ).rowcount
                > 0
            )
        )

    async def get_agent(self, tenant: str, agent_id: str) -> AgentRecord | None:
        def run(conn: sqlite3.Connection) -> AgentRecord | None:
            row = conn.execute(
                f"SELECT {AGENT_COLUMNS} FROM agents WHERE tenant = ? AND id = ?",
                (tenant, agent_id),
            ).fetchone()
            return agent_of(row) if row else None

        return await self._store._read(run)

    async def list_agents(self, tenant: str, after: str | None, limit: int) -> list[AgentRecord]:
        def run(conn: sqlite3.Connection) -> list[AgentRecord]:
            rows = conn.execute(
                f"SELECT {AGENT_COLUMNS} FROM agents "
                "WHERE tenant = ? AND id > ? ORDER BY id LIMIT ?",
                (tenant, after or "", limit),
            )
            return [agent_of(row) for row in rows]

        return await self._store._read(run)

    async def delete_agent(self, tenant: str, agent_id: str) -> bool:
        return await self._store._write(
            lambda conn: (
                conn.execute(
                    "DELETE FROM agents WHERE tenant = ? AND id = ?", (tenant, agent_id)
                ).rowcount
                > 0
            )
        )
