"""InteractionListing on SQLAlchemy: one keyset page, newest first (store/queries.py
`listing_sql`, as on the embedded store)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.base import InteractionRecord
from propylon.store.listing import ListQuery
from propylon.store.queries import listing_sql, record_of
from propylon.store.sql.database import Database

__all__ = ["SQLListing"]


class SQLListing:
    """InteractionListing over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_interactions(self, query: ListQuery) -> list[InteractionRecord]:
        sql, params = listing_sql(query, sqlite=self._db.sqlite)

        async def run(conn: AsyncConnection) -> list[InteractionRecord]:
            return [record_of(row) for row in await conn.execute(text(sql), params)]

        return await self._db.read(run)
