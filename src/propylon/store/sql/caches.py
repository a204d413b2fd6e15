"""CacheStore on SQLAlchemy: the `cached_contents` table (migration 0015), with the SQL of
store/queries.py."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

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
from propylon.store.sql.database import Database

__all__ = ["SQLCaches"]


class SQLCaches:
    """CacheStore over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _count(self, sql: str, params: dict[str, object]) -> int:
        async def run(conn: AsyncConnection) -> int:
            return (await conn.execute(text(sql), params)).rowcount

        return await self._db.write(run)

    async def create_cache(self, cache: CacheRecord) -> bool:
        return await self._count(CACHE_INSERT, cache_params(cache)) > 0

    async def get_cache(self, tenant: str, cache_id: str) -> CacheRecord | None:
        async def run(conn: AsyncConnection) -> CacheRecord | None:
            params = {"tenant": tenant, "id": cache_id}
            row = (await conn.execute(text(CACHE_GET), params)).first()
            return cache_of(row) if row else None

        return await self._db.read(run)

    async def list_caches(
        self, tenant: str, after: str | None, limit: int, now: str
    ) -> list[CacheRecord]:
        params = {"tenant": tenant, "after": after or "", "limit": limit, "now": now}

        async def run(conn: AsyncConnection) -> list[CacheRecord]:
            return [cache_of(row) for row in await conn.execute(text(CACHE_LIST), params)]

        return await self._db.read(run)

    async def update_cache(self, cache: CacheRecord) -> bool:
        return await self._count(CACHE_UPDATE, cache_params(cache)) > 0

    async def delete_cache(self, tenant: str, cache_id: str) -> bool:
        return await self._count(CACHE_DELETE, {"tenant": tenant, "id": cache_id}) > 0

    async def purge_caches(self, now: str) -> int:
        return await self._count(CACHE_PURGE, {"now": now})
