"""InteractionListing on SQLAlchemy: one keyset page, newest first.

The same walk as on the embedded store (store/sqlite_listing.py): `ORDER BY created DESC, id
DESC LIMIT n` after the page token's `(created, id)`, on the index `interactions_tenant_
created_id` (or `interactions_created_id`, migration 0009). JSON filters read the request's
text as JSON: `json_extract` on SQLite, `::jsonb` on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.base import InteractionRecord
from propylon.store.listing import ListQuery
from propylon.store.sql.database import Database
from propylon.store.sql.interactions import COLUMNS, record_of

__all__ = ["SQLListing", "listing_sql"]

# A page without `view=full` reads no content: the interaction's input and steps stay unread.
_BASIC = {"input": "NULL AS input", "input_steps": "'[]' AS input_steps", "steps": "'[]' AS steps"}
_FULL_COLUMNS = ", ".join(COLUMNS)
_BASIC_COLUMNS = ", ".join(_BASIC.get(c, c) for c in COLUMNS)


def listing_sql(query: ListQuery, sqlite: bool) -> tuple[str, dict[str, Any]]:
    """The SELECT (and its named parameters) of one page of `query`, on SQLite or
    PostgreSQL."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": query.limit}
    if query.tenant is not None:
        where.append("tenant = :tenant")
        params["tenant"] = query.tenant
    if query.after is not None:
        where.append("(created, id) < (:after_created, :after_id)")
        params["after_created"], params["after_id"] = query.after
    if query.created_after is not None:
        where.append("created > :created_after")
        params["created_after"] = query.created_after
    if query.created_before is not None:
        where.append("created < :created_before")
        params["created_before"] = query.created_before
    if query.id_contains:
        where.append("instr(id, :part) > 0" if sqlite else "strpos(id, :part) > 0")
        params["part"] = query.id_contains
    if query.statuses:
        names = [f"status_{i}" for i in range(len(query.statuses))]
        # SQLite: `+status`, never the status index (see store/sqlite_listing.py)
        column = "+status" if sqlite else "status"
        where.append(f"{column} IN ({', '.join(':' + n for n in names)})")
        params.update(zip(names, query.statuses, strict=True))
    for field, value in (("model", query.model), ("agent", query.agent)):
        if value is not None:
            where.append(
                f"json_extract(request, '$.{field}') = :{field}"
                if sqlite
                else f"(request::jsonb ->> '{field}') = :{field}"
            )
            params[field] = value
    for i, (key, label) in enumerate(query.labels):
        params[f"label_{i}"] = f'$.labels."{key}"' if sqlite else key  # keys are [a-z0-9_-]
        if label is None:
            where.append(
                f"json_type(request, :label_{i}) IS NOT NULL"
                if sqlite
                else f"(request::jsonb -> 'labels' -> :label_{i}) IS NOT NULL"
            )
        else:
            where.append(
                f"json_extract(request, :label_{i}) = :value_{i}"
                if sqlite
                else f"(request::jsonb -> 'labels' ->> :label_{i}) = :value_{i}"
            )
            params[f"value_{i}"] = label
    columns = _FULL_COLUMNS if query.full else _BASIC_COLUMNS
    condition = f"WHERE {' AND '.join(where)} " if where else ""
    sql = (
        f"SELECT {columns} FROM interactions {condition}ORDER BY created DESC, id DESC LIMIT :limit"
    )
    return sql, params


class SQLListing:
    """InteractionListing over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_interactions(self, query: ListQuery) -> list[InteractionRecord]:
        sql, params = listing_sql(query, self._db.sqlite)

        async def run(conn: AsyncConnection) -> list[InteractionRecord]:
            return [record_of(row) for row in await conn.execute(text(sql), params)]

        return await self._db.read(run)
