"""ConsoleReads on SQLAlchemy: usage per day (store/queries.py `usage_sql`), the chain of an
interaction, a webhook's last deliveries."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.console import ChainLink, DeliveryRow, UsageQuery, UsageRow
from propylon.store.queries import CHAIN_BACK, delivery_row_of, usage_sql
from propylon.store.sql.database import Database

__all__ = ["SQLConsoleReads"]

_CHAIN_BACK = text(CHAIN_BACK)


class SQLConsoleReads:
    """ConsoleReads over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        sql, params = usage_sql(query, sqlite=self._db.sqlite)

        async def run(conn: AsyncConnection) -> list[UsageRow]:
            return [
                UsageRow(
                    day,
                    None if series is None else str(series),
                    n,
                    int(i),
                    int(o),
                    int(t),
                    float(c),
                )
                for day, series, n, i, o, t, c in await conn.execute(text(sql), params)
            ]

        return await self._db.read(run)

    async def chain_back(self, interaction_id: str, limit: int) -> list[ChainLink]:
        async def run(conn: AsyncConnection) -> list[ChainLink]:
            rows = await conn.execute(_CHAIN_BACK, {"id": interaction_id, "limit": limit})
            return [ChainLink(*row) for row in rows]

        return await self._db.read(run)

    async def chain_forward(self, interaction_id: str, limit: int) -> list[ChainLink]:
        async def run(conn: AsyncConnection) -> list[ChainLink]:
            rows = await conn.execute(
                text(
                    "SELECT id, status, created, tenant FROM interactions "
                    "WHERE previous_interaction_id = :id ORDER BY created, id LIMIT :limit"
                ),
                {"id": interaction_id, "limit": limit},
            )
            return [ChainLink(*row) for row in rows]

        return await self._db.read(run)

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryRow]:
        async def run(conn: AsyncConnection) -> list[DeliveryRow]:
            # `rowid`: SQLite's own; on PostgreSQL a column of that name (migration 0013)
            rows = await conn.execute(
                text(
                    "SELECT id, payload, state, attempts, last_error FROM deliveries "
                    "WHERE webhook_id = :id ORDER BY rowid DESC LIMIT :limit"
                ),
                {"id": webhook_id, "limit": limit},
            )
            return [delivery_row_of(row) for row in rows]

        return await self._db.read(run)
