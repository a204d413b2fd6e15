"""ConsoleReads on the SQLite file of an SQLiteStore, sharing its reader threads.

Usage per day reads only the covering index `interactions_usage` (migration 0011: the day
comes from `created`, the model and token counts are virtual columns stored in the index),
so it never reads the rows' JSON; grouping by a label reads the rows of the range.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from propylon.store.console import ChainLink, DeliveryRow, UsageQuery, UsageRow
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteConsoleReads", "usage_sql"]

_SERIES = {"model": "usage_model", "tenant": "tenant"}
_CHAIN_BACK = """
WITH RECURSIVE chain(id, depth) AS (
    SELECT previous_interaction_id, 1 FROM interactions WHERE id = ?
    UNION ALL
    SELECT i.previous_interaction_id, c.depth + 1 FROM interactions i JOIN chain c ON i.id = c.id
    WHERE c.depth < ?
)
SELECT i.id, i.status, i.created, i.tenant FROM chain c JOIN interactions i ON i.id = c.id
ORDER BY c.depth
"""


def usage_sql(query: UsageQuery) -> tuple[str, list[Any]]:
    """The GROUP BY (and its parameters) of `query`."""
    params: list[Any] = [query.since, query.until]
    where = "created >= ? AND created < ?"
    if query.tenant is not None:
        where += " AND tenant = ?"
        params.append(query.tenant)
    if query.group == "label":
        series = "json_extract(request, ?)"
        params.insert(0, f'$.labels."{query.label_key}"')  # keys are [a-z0-9_-]
    else:
        series = _SERIES[query.group]
    sql = (
        f"SELECT substr(created, 1, 10) AS day, {series} AS series, count(*), "
        "sum(usage_input_tokens), sum(usage_output_tokens), sum(usage_total_tokens), "
        f"sum(cost_usd) FROM interactions INDEXED BY interactions_usage WHERE {where} "
        "GROUP BY day, series ORDER BY day, series"
    )
    return sql, params


class SQLiteConsoleReads:
    """ConsoleReads over `store`'s file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        sql, params = usage_sql(query)

        def run(conn: sqlite3.Connection) -> list[UsageRow]:
            return [
                UsageRow(day, None if series is None else str(series), n, int(i), int(o), int(t), c)
                for day, series, n, i, o, t, c in conn.execute(sql, params)
            ]

        return await self._store._read(run)

    async def chain_back(self, interaction_id: str, limit: int) -> list[ChainLink]:
        def run(conn: sqlite3.Connection) -> list[ChainLink]:
            rows = conn.execute(_CHAIN_BACK, (interaction_id, limit))
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
            found = []
            for id_, payload, state, attempts, error in rows:
                body = orjson.loads(payload)
                found.append(
                    DeliveryRow(
                        id_, body.get("type", ""), body.get("timestamp", ""), state, attempts, error
                    )
                )
            return found

        return await self._store._read(run)
