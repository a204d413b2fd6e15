"""KeyStore on SQLAlchemy: the `api_keys` table."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.base import ApiKey
from propylon.store.queries import KEY_COLUMNS, api_key_of, dumps
from propylon.store.sql.database import Database

__all__ = ["SQLKeys"]

_SAVE = text(
    f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (:id, :key_hash, :tenant, :name, :admin, "
    ":policy, :created, :revoked, :api_revision) ON CONFLICT (id) DO UPDATE SET "
    "key_hash = excluded.key_hash, tenant = excluded.tenant, name = excluded.name, "
    "admin = excluded.admin, policy = excluded.policy, created = excluded.created, "
    "revoked = excluded.revoked, api_revision = excluded.api_revision"
)


class SQLKeys:
    """KeyStore over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save_api_key(self, key: ApiKey) -> None:
        params = {
            "id": key.id,
            "key_hash": key.key_hash,
            "tenant": key.tenant,
            "name": key.name,
            "admin": bool(key.admin),
            "policy": dumps(key.policy),
            "created": key.created,
            "revoked": key.revoked,
            "api_revision": key.api_revision,
        }

        async def run(conn: AsyncConnection) -> None:
            await conn.execute(_SAVE, params)

        await self._db.write(run)

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        async def run(conn: AsyncConnection) -> ApiKey | None:
            row = (
                await conn.execute(
                    text(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = :hash"),
                    {"hash": key_hash},
                )
            ).first()
            return api_key_of(row) if row else None

        return await self._db.read(run)

    async def api_key_by_id(self, key_id: str) -> ApiKey | None:
        async def run(conn: AsyncConnection) -> ApiKey | None:
            row = (
                await conn.execute(
                    text(f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = :id"), {"id": key_id}
                )
            ).first()
            return api_key_of(row) if row else None

        return await self._db.read(run)

    async def list_api_keys(self) -> list[ApiKey]:
        async def run(conn: AsyncConnection) -> list[ApiKey]:
            rows = await conn.execute(
                text(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created, id")
            )
            return [api_key_of(row) for row in rows]

        return await self._db.read(run)

    async def count_api_keys(self) -> int:
        async def run(conn: AsyncConnection) -> int:
            result = await conn.execute(text("SELECT count(*) FROM api_keys WHERE revoked IS NULL"))
            return int(result.scalar_one())

        return await self._db.read(run)
