"""BatchStore on the SQLite file of an SQLiteStore (the `batches` and `batch_requests` tables,
migration 0016), sharing its one writer and its readers."""

from __future__ import annotations

import sqlite3
from typing import Any

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
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteBatchStore"]


class SQLiteBatchStore:
    """BatchStore over `store`'s file. Its jobs are in-process (jobs/local.py): the hook is
    never set here."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.on_batch_create: BatchCreateHook | None = None

    async def create_batch(self, batch: BatchRecord, items: list[BatchItem]) -> None:
        row = batch_row(batch)
        rows = [batch_item_row(batch.id, item) for item in items]

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(BATCH_INSERT, row)
            conn.executemany(BATCH_ITEM_INSERT, rows)

        await self._store._write(run)

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        def run(conn: sqlite3.Connection) -> BatchRecord | None:
            row = conn.execute(
                f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = :id", {"id": batch_id}
            ).fetchone()
            return batch_of(row) if row else None

        return await self._store._read(run)

    async def list_batches(self, tenant: str, before: str | None, limit: int) -> list[BatchRecord]:
        params = {"tenant": tenant, "before": before or BATCH_NEWEST, "limit": limit}
        return await self._store._read(
            lambda conn: [batch_of(row) for row in conn.execute(BATCH_LIST, params)]
        )

    async def batch_items(self, batch_id: str) -> list[BatchItem]:
        return await self._store._read(
            lambda conn: [batch_item_of(row) for row in conn.execute(BATCH_ITEMS, {"id": batch_id})]
        )

    async def start_batch(self, batch_id: str, now: str) -> bool:
        params = {"id": batch_id, "now": now}
        return await self._store._write(lambda conn: conn.execute(BATCH_START, params).rowcount > 0)

    async def record_result(
        self, batch_id: str, index: int, result: dict[str, Any], ok: bool, now: str
    ) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            params = {"id": batch_id, "idx": index, "result": dumps(result)}
            if conn.execute(BATCH_RESULT, params).rowcount == 0:
                return False
            conn.execute(
                BATCH_COUNT, {"id": batch_id, "ok": int(ok), "bad": int(not ok), "now": now}
            )
            return True

        return await self._store._write(run)

    async def end_batch(
        self, batch_id: str, state: str, now: str, error: dict[str, Any] | None = None
    ) -> bool:
        params = {
            "id": batch_id,
            "state": state,
            "now": now,
            "error": dumps(error) if error is not None else None,
        }
        return await self._store._write(lambda conn: conn.execute(BATCH_END, params).rowcount > 0)

    async def delete_batch(self, batch_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM batch_requests WHERE batch_id = :id", {"id": batch_id})
            return conn.execute("DELETE FROM batches WHERE id = :id", {"id": batch_id}).rowcount > 0

        return await self._store._write(run)

    async def unfinished_batches(self) -> list[str]:
        return await self._store._read(
            lambda conn: [row[0] for row in conn.execute(BATCH_UNFINISHED_IDS)]
        )
