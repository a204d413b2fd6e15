"""KeyStore on the embedded SQLite file: the `api_keys` table."""

from __future__ import annotations

import sqlite3

from propylon.store.base import ApiKey
from propylon.store.queries import KEY_COLUMNS, api_key_of, dumps
from propylon.store.sqlite_connections import SQLiteConnections

__all__ = ["SQLiteKeys"]


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
                f"INSERT OR REPLACE INTO api_keys ({KEY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        def run(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            return api_key_of(row) if row else None

        return await self._db._read(run)

    async def api_key_by_id(self, key_id: str) -> ApiKey | None:
        def run(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
            return api_key_of(row) if row else None

        return await self._db._read(run)

    async def list_api_keys(self) -> list[ApiKey]:
        def run(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created, id")
            return [api_key_of(row) for row in rows]

        return await self._db._read(run)

    async def count_api_keys(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT count(*) FROM api_keys WHERE revoked IS NULL").fetchone()
            return int(row[0])

        return await self._db._read(run)
