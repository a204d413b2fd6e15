"""ConsoleReads on SQLAlchemy: usage per day, the chain of an interaction, a webhook's last
deliveries.

Usage per day reads the usage columns of migration 0012 (virtual and in one covering index on
SQLite, stored on PostgreSQL); grouping by a label reads the rows of the range.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.console import ChainLink, DeliveryRow, UsageQuery, UsageRow
from propylon.store.sql.database import Database

__all__ = ["SQLConsoleReads", "usage_sql"]

_SERIES = {"model": "usage_model", "tenant": "tenant"}
_CHAIN_BACK = text("""
WITH RECURSIVE chain(id, depth) AS (
    SELECT previous_interaction_id, 1 FROM interactions WHERE id = :id
    UNION ALL
    SELECT i.previous_interaction_id, c.depth + 1 FROM interactions i JOIN chain c ON i.id = c.id
    WHERE c.depth < :limit
)
SELECT i.id, i.status, i.created, i.tenant FROM chain c JOIN interactions i ON i.id = c.id
ORDER BY c.depth
""")


def usage_sql(query: UsageQuery, sqlite: bool) -> tuple[str, dict[str, Any]]:
    """The GROUP BY (and its named parameters) of `query`, on SQLite or PostgreSQL."""
    params: dict[str, Any] = {"since": query.since, "until": query.until}
    where = "created >= :since AND created < :until"
    if query.tenant is not None:
        where += " AND tenant = :tenant"
        params["tenant"] = query.tenant
    if query.group == "label":
        if sqlite:
            series = "json_extract(request, :label)"
            params["label"] = f'$.labels."{query.label_key}"'  # keys are [a-z0-9_-]
        else:
            series = "(request::jsonb -> 'labels' ->> :label)"
            params["label"] = query.label_key
    else:
        series = _SERIES[query.group]
    index = "INDEXED BY interactions_usage " if sqlite else ""
    sql = (
        f"SELECT substr(created, 1, 10) AS day, {series} AS series, count(*), "
        "sum(usage_input_tokens), sum(usage_output_tokens), sum(usage_total_tokens), "
        f"sum(cost_usd) FROM interactions {index}WHERE {where} "
        "GROUP BY day, series ORDER BY day, series"
    )
    return sql, params


class SQLConsoleReads:
    """ConsoleReads over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        sql, params = usage_sql(query, self._db.sqlite)

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
            found = []
            for id_, payload, state, attempts, error in rows:
                body = orjson.loads(payload)
                found.append(
                    DeliveryRow(
                        id_, body.get("type", ""), body.get("timestamp", ""), state, attempts, error
                    )
                )
            return found

        return await self._db.read(run)
