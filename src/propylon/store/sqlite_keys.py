"""KeyStore on the embedded SQLite file: the `api_keys` table."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from propylon.store.base import ApiKey
from propylon.store.sqlite_connections import SQLiteConnections, dumps

__all__ = ["SQLiteKeys"]

_KEY_COLUMNS = "id, key_hash, tenant, name, admin, policy, created, revoked, api_revision"


class SQLiteKeys:
    """KeyStore over `db`'s connections."""

    def __init__(self, db: SQLiteConnections) -> None:
        self._db = db

    async def save_api_key(self, key: ApiKey) -> None:
        row = (
            key.id,
            key.key_hash,
            key.tenant,
            key.name,
            int(key.admin),
            dumps(key.policy),
            key.created,
            key.revoked,
            key.api_revision,
        )
        await self._db._write(
            lambda conn: conn.execute(
                f"INSERT OR REPLACE INTO api_keys ({_KEY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        def run(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            return _api_key(row) if row else None

        return await self._db._read(run)

    async def list_api_keys(self) -> list[ApiKey]:
        def run(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created, id")
            return [_api_key(row) for row in rows]

        return await self._db._read(run)

    async def count_api_keys(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT count(*) FROM api_keys WHERE revoked IS NULL").fetchone()
            return int(row[0])

        return await self._db._read(run)


def _api_key(row: tuple[Any, ...]) -> ApiKey:
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
