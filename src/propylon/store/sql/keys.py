"""KeyStore on SQLAlchemy: the `api_keys` table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.base import ApiKey
from propylon.store.sql.database import Database

__all__ = ["SQLKeys"]

_COLUMNS = "id, key_hash, tenant, name, admin, policy, created, revoked, api_revision"
_SAVE = text(
    f"INSERT INTO api_keys ({_COLUMNS}) VALUES (:id, :key_hash, :tenant, :name, :admin, "
    ":policy, :created, :revoked, :api_revision) ON CONFLICT (id) DO UPDATE SET "
    "key_hash = excluded.key_hash, tenant = excluded.tenant, name = excluded.name, "
    "admin = excluded.admin, policy = excluded.policy, created = excluded.created, "
    "revoked = excluded.revoked, api_revision = excluded.api_revision"
)


def _api_key(row: Sequence[Any]) -> ApiKey:
    id_, key_hash, tenant, name, admin, policy, created, revoked, api_revision = row
    return ApiKey(
        id=id_,
        key_hash=key_hash,
        tenant=tenant,
        name=name,
        admin=bool(admin),
        policy=orjson.loads(policy),
        created=created,
        revoked=revoked,
        api_revision=api_revision,
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
            "policy": orjson.dumps(key.policy).decode(),
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
                    text(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = :hash"),
                    {"hash": key_hash},
                )
            ).first()
            return _api_key(row) if row else None

        return await self._db.read(run)

    async def list_api_keys(self) -> list[ApiKey]:
        async def run(conn: AsyncConnection) -> list[ApiKey]:
            rows = await conn.execute(text(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created, id"))
            return [_api_key(row) for row in rows]

        return await self._db.read(run)

    async def count_api_keys(self) -> int:
        async def run(conn: AsyncConnection) -> int:
            result = await conn.execute(text("SELECT count(*) FROM api_keys WHERE revoked IS NULL"))
            return int(result.scalar_one())

        return await self._db.read(run)
