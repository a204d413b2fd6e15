"""CacheStore on the SQLite file of an SQLiteStore (the `cached_contents` table, migration
0015), sharing its one writer and its readers; the SQL is store/queries.py's."""

from __future__ import annotations

import sqlite3

from propylon.store.caches import CacheRecord
from propylon.store.queries import (
    CACHE_DELETE,
    CACHE_GET,
    CACHE_INSERT,
    CACHE_LIST,
    CACHE_PURGE,
    CACHE_UPDATE,
    cache_of,
    cache_params,
)
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteCacheStore"]


class SQLiteCacheStore:
    """CacheStore over `store`'s file."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def create_cache(self, cache: CacheRecord) -> bool:
        params = cache_params(cache)
        return await self._store._write(
            lambda conn: conn.execute(CACHE_INSERT, params).rowcount > 0
        )

    async def get_cache(self, tenant: str, cache_id: str) -> CacheRecord | None:
        def run(conn: sqlite3.Connection) -> CacheRecord | None:
            row = conn.execute(CACHE_GET, {"tenant": tenant, "id": cache_id}).fetchone()
            return cache_of(row) if row else None

        return await self._store._read(run)

    async def list_caches(
        self, tenant: str, after: str | None, limit: int, now: str
    ) -> list[CacheRecord]:
        params = {"tenant": tenant, "after": after or "", "limit": limit, "now": now}

        def run(conn: sqlite3.Connection) -> list[CacheRecord]:
            return [cache_of(row) for row in conn.execute(CACHE_LIST, params)]

        return await self._store._read(run)

    async def update_cache(self, cache: CacheRecord) -> bool:
        params = cache_params(cache)
        return await self._store._write(
            lambda conn: conn.execute(CACHE_UPDATE, params).rowcount > 0
        )

    async def delete_cache(self, tenant: str, cache_id: str) -> bool:
        params = {"tenant": tenant, "id": cache_id}
        return await self._store._write(
            lambda conn: conn.execute(CACHE_DELETE, params).rowcount > 0
        )

    async def purge_caches(self, now: str) -> int:
        return await self._store._write(
            lambda conn: conn.execute(CACHE_PURGE, {"now": now}).rowcount
        )
