"""IdempotencyStore's reads on the embedded SQLite file: the `idempotency_keys` table (a key
is claimed in a create's transaction: store/sqlite_interactions.py)."""

from __future__ import annotations

import sqlite3

from propylon.store.sqlite_connections import SQLiteConnections

__all__ = ["SQLiteIdempotencyKeys"]


class SQLiteIdempotencyKeys:
    """The reads of IdempotencyStore (`get` comes with the interactions) over `db`'s
    connections."""

    def __init__(self, db: SQLiteConnections) -> None:
        self._db = db

    async def find_idempotency_key(self, key: str, now: float) -> tuple[str, str] | None:
        def run(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT body_hash, interaction_id FROM idempotency_keys "
                "WHERE key = ? AND expires > ?",
                (key, now),
            ).fetchone()
            return (row[0], row[1]) if row else None

        return await self._db._read(run)
