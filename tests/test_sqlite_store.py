"""The embedded SQLite store on a real file: any failure of a write transaction, the COMMIT's
included, rolls back and leaves the one writer connection usable. (What every store does,
this one included, is in tests/test_store_contract.py.)"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from propylon.store.sqlite import SQLiteStore


def test_a_failed_commit_rolls_back_and_the_writer_goes_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "propylon.db")
        await store.open()
        pending: list[Any] = []

        def unfinished(conn: sqlite3.Connection) -> None:
            # a write statement with rows still to return: SQLite refuses the COMMIT
            cursor = conn.execute(
                "INSERT INTO webhooks (id, tenant, data) VALUES "
                "('w1', 't', '{}'), ('w2', 't', '{}') RETURNING id"
            )
            cursor.fetchone()
            pending.append(cursor)

        try:
            with pytest.raises(sqlite3.OperationalError, match="cannot commit"):
                await store._write(unfinished)
            pending.clear()
            await store.save_webhook({"id": "w3", "tenant": "t"})  # the writer is usable
            assert await store.get_webhook("w3") == {"id": "w3", "tenant": "t"}
            assert await store.get_webhook("w1") is None  # the failed write left nothing
        finally:
            await store.close()

    asyncio.run(scenario())
