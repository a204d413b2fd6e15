"""ConsoleReads on the SQLite file of an SQLiteStore, sharing its reader threads.

Usage per day reads only the covering index `interactions_usage` (migration 0012: the day
comes from `created`, the model and token counts are virtual columns stored in the index),
so it never reads the rows' JSON; grouping by a label reads the rows of the range.
"""

from __future__ import annotations

import sqlite3

from propylon.store.console import ChainLink, DeliveryRow, UsageQuery, UsageRow
from propylon.store.queries import CHAIN_BACK, delivery_row_of, usage_sql
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteConsoleReads"]


class SQLiteConsoleReads:
    """ConsoleReads over `store`'s file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        sql, params = usage_sql(query, sqlite=True)

        def run(conn: sqlite3.Connection) -> list[UsageRow]:
            return [
                UsageRow(day, None if series is None else str(series), n, int(i), int(o), int(t), c)
                for day, series, n, i, o, t, c in conn.execute(sql, params)
            ]

        return await self._store._read(run)

    async def chain_back(self, interaction_id: str, limit: int) -> list[ChainLink]:
        def run(conn: sqlite3.Connection) -> list[ChainLink]:
            rows = conn.execute(CHAIN_BACK, {"id": interaction_id, "limit": limit})
            return [ChainLink(*row) for row in rows]

        return await self._store._read(run)

    async def chain_forward(self, interaction_id: str, limit: int) -> list[ChainLink]:
        def run(conn: sqlite3.Connection) -> list[ChainLink]:
            rows = conn.execute(
                "SELECT id, status, created, tenant FROM interactions "
                "WHERE previous_interaction_id = ? ORDER BY created, id LIMIT ?",
                (interaction_id, limit),
            )
            return [ChainLink(*row) for row in rows]

        return await self._store._read(run)

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryRow]:
        def run(conn: sqlite3.Connection) -> list[DeliveryRow]:
            rows = conn.execute(
                "SELECT id, payload, state, attempts, last_error FROM deliveries "
                "WHERE webhook_id = ? ORDER BY rowid DESC LIMIT ?",
                (webhook_id, limit),
            ).fetchall()
            return [delivery_row_of(row) for row in rows]

        return await self._store._read(run)
