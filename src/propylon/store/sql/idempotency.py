"""IdempotencyStore's reads on SQLAlchemy: the `idempotency_keys` table (a key is claimed
in a create's transaction: store/sql/interactions.py)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.sql.database import Database

__all__ = ["SQLIdempotencyKeys"]


class SQLIdempotencyKeys:
    """The reads of IdempotencyStore (`get` comes with the interactions) over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def find_idempotency_key(self, key: str, now: float) -> tuple[str, str] | None:
        async def run(conn: AsyncConnection) -> tuple[str, str] | None:
            row = (
                await conn.execute(
                    text(
                        "SELECT body_hash, interaction_id FROM idempotency_keys "
                        "WHERE key = :key AND expires > :now"
                    ),
                    {"key": key, "now": now},
                )
            ).first()
            return (row[0], row[1]) if row else None

        return await self._db.read(run)
