"""InteractionListing on the SQLite file of an SQLiteStore, sharing its reader threads.

A page is one `SELECT ... ORDER BY created DESC, id DESC LIMIT n`, after the page token's
keyset `(created, id) < (?, ?)`: the index `interactions_tenant_created_id` (or, across
tenants, `interactions_created_id`; migration 0009) is walked in order and the walk stops at
`n` matching rows, never an OFFSET and never a sort of the table.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from propylon.store.base import InteractionRecord
from propylon.store.listing import ListQuery
from propylon.store.sqlite import SQLiteStore
from propylon.store.sqlite_interactions import COLUMNS, record_of

__all__ = ["SQLiteListingStore", "listing_sql"]

# A page without `view=full` reads no content: the interaction's input and steps stay unread.
_BASIC = {"input": "NULL", "input_steps": "'[]'", "steps": "'[]'"}
_FULL_COLUMNS = COLUMNS
_BASIC_COLUMNS = ", ".join(_BASIC.get(c, c) for c in (c.strip() for c in COLUMNS.split(",")))


def listing_sql(query: ListQuery) -> tuple[str, list[Any]]:
    """The SELECT (and its parameters) of one page of `query`."""
    where: list[str] = []
    params: list[Any] = []
    if query.tenant is not None:
        where.append("tenant = ?")
        params.append(query.tenant)
    if query.after is not None:
        where.append("(created, id) < (?, ?)")
        params += query.after
    if query.created_after is not None:
        where.append("created > ?")
        params.append(query.created_after)
    if query.created_before is not None:
        where.append("created < ?")
        params.append(query.created_before)
    if query.id_contains:
        where.append("instr(id, ?) > 0")
        params.append(query.id_contains)
    if query.statuses:
        # `+status`: never the status index, whose rows would need a sort; the ordered walk
        # stops after `limit` matches
        where.append(f"+status IN ({', '.join('?' * len(query.statuses))})")
        params += query.statuses
    for field, value in (("model", query.model), ("agent", query.agent)):
        if value is not None:
            where.append(f"json_extract(request, '$.{field}') = ?")
            params.append(value)
    for key, label in query.labels:
        path = f'$.labels."{key}"'  # label keys are [a-z0-9_-]: nothing to escape
        if label is None:
            where.append("json_type(request, ?) IS NOT NULL")
            params.append(path)
        else:
            where.append("json_extract(request, ?) = ?")
            params += [path, label]
    columns = _FULL_COLUMNS if query.full else _BASIC_COLUMNS
    condition = f"WHERE {' AND '.join(where)} " if where else ""
    sql = f"SELECT {columns} FROM interactions {condition}ORDER BY created DESC, id DESC LIMIT ?"
    return sql, [*params, query.limit]


class SQLiteListingStore:
    """InteractionListing over the `interactions` table of `store`'s file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def list_interactions(self, query: ListQuery) -> list[InteractionRecord]:
        sql, params = listing_sql(query)

        def run(conn: sqlite3.Connection) -> list[InteractionRecord]:
            return [record_of(row) for row in conn.execute(sql, params)]

        return await self._store._read(run)
