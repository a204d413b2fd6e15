"""InteractionListing on the SQLite file of an SQLiteStore, sharing its reader threads.

A page is one keyset walk of an index (store/queries.py `listing_sql`).
"""

from __future__ import annotations

import sqlite3

from propylon.store.base import InteractionRecord
from propylon.store.listing import ListQuery
from propylon.store.queries import listing_sql, record_of
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteListingStore"]


class SQLiteListingStore:
    """InteractionListing over the `interactions` table of `store`'s file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def list_interactions(self, query: ListQuery) -> list[InteractionRecord]:
        sql, params = listing_sql(query, sqlite=True)

        def run(conn: sqlite3.Connection) -> list[InteractionRecord]:
            return [record_of(row) for row in conn.execute(sql, params)]

        return await self._store._read(run)
