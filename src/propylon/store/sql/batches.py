"""BatchStore on SQLAlchemy: the `batches` and `batch_requests` tables (migration 0016)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.batches import BatchCreateHook, BatchItem, BatchRecord
from propylon.store.queries import (
    BATCH_COLUMNS,
    BATCH_COUNT,
    BATCH_END,
    BATCH_INSERT,
    BATCH_ITEM_INSERT,
    BATCH_ITEMS,
    BATCH_LIST,
    BATCH_NEWEST,
    BATCH_RESULT,
    BATCH_START,
    BATCH_UNFINISHED_IDS,
    batch_item_of,
    batch_item_row,
    batch_of,
    batch_row,
    dumps,
)
from propylon.store.sql.database import Database

__all__ = ["SQLBatches"]


class SQLBatches:
    """BatchStore over `db`. `on_batch_create` (set on PostgreSQL, jobs/procrastinate.py)
    defers the batch's job in the transaction that writes its row."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.on_batch_create: BatchCreateHook | None = None

    async def create_batch(self, batch: BatchRecord, items: list[BatchItem]) -> None:
        row = batch_row(batch)
        rows = [batch_item_row(batch.id, item) for item in items]

        async def run(conn: AsyncConnection) -> None:
            await conn.execute(text(BATCH_INSERT), row)
            await conn.execute(text(BATCH_ITEM_INSERT), rows)
            if self.on_batch_create is not None:  # on the driver's own connection (psycopg's)
                raw = await conn.get_raw_connection()
                await self.on_batch_create(raw.driver_connection, batch)

        await self._db.write(run)

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        async def run(conn: AsyncConnection) -> BatchRecord | None:
            sql = text(f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = :id")
            row = (await conn.execute(sql, {"id": batch_id})).first()
            return batch_of(row) if row else None

        return await self._db.read(run)

    async def list_batches(self, tenant: str, before: str | None, limit: int) -> list[BatchRecord]:
        params = {"tenant": tenant, "before": before or BATCH_NEWEST, "limit": limit}

        async def run(conn: AsyncConnection) -> list[BatchRecord]:
            return [batch_of(row) for row in await conn.execute(text(BATCH_LIST), params)]

        return await self._db.read(run)

    async def batch_items(self, batch_id: str) -> list[BatchItem]:
        async def run(conn: AsyncConnection) -> list[BatchItem]:
            rows = await conn.execute(text(BATCH_ITEMS), {"id": batch_id})
            return [batch_item_of(row) for row in rows]

        return await self._db.read(run)

    async def start_batch(self, batch_id: str, now: str) -> bool:
        async def run(conn: AsyncConnection) -> bool:
            result = await conn.execute(text(BATCH_START), {"id": batch_id, "now": now})
            return result.rowcount > 0

        return await self._db.write(run)

    async def record_result(
        self, batch_id: str, index: int, result: dict[str, Any], ok: bool, now: str
    ) -> bool:
        async def run(conn: AsyncConnection) -> bool:
            params = {"id": batch_id, "idx": index, "result": dumps(result)}
            if (await conn.execute(text(BATCH_RESULT), params)).rowcount == 0:
                return False
            counts = {"id": batch_id, "ok": int(ok), "bad": int(not ok), "now": now}
            await conn.execute(text(BATCH_COUNT), counts)
            return True

        return await self._db.write(run)

    async def end_batch(
        self, batch_id: str, state: str, now: str, error: dict[str, Any] | None = None
    ) -> bool:
        params = {
            "id": batch_id,
            "state": state,
            "now": now,
            "error": dumps(error) if error is not None else None,
        }

        async def run(conn: AsyncConnection) -> bool:
            return (await conn.execute(text(BATCH_END), params)).rowcount > 0

        return await self._db.write(run)

    async def delete_batch(self, batch_id: str) -> bool:
        async def run(conn: AsyncConnection) -> bool:
            params = {"id": batch_id}
            await conn.execute(text("DELETE FROM batch_requests WHERE batch_id = :id"), params)
            result = await conn.execute(text("DELETE FROM batches WHERE id = :id"), params)
            return result.rowcount > 0

        return await self._db.write(run)

    async def unfinished_batches(self) -> list[str]:
        async def run(conn: AsyncConnection) -> list[str]:
            return [row[0] for row in await conn.execute(text(BATCH_UNFINISHED_IDS))]

        return await self._db.read(run)
