"""The SQLite store on a real file: any failure of a write transaction, the COMMIT's included,
rolls back and leaves the one writer connection usable; an idempotency key is claimed in the
transaction that writes its interaction."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from propylon.domain.clock import now
from propylon.store.base import IdempotencyClaim, IdempotencyConflict, InteractionRecord
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


def _record(interaction_id: str, claim: IdempotencyClaim) -> InteractionRecord:
    return InteractionRecord(
        id=interaction_id,
        status="in_progress",
        created=now(),
        updated=now(),
        request={},
        input="x",
        input_steps=[],
        claim=claim,
    )


def test_an_idempotency_key_is_claimed_with_its_row(tmp_path: Path) -> None:
    """Of two creates claiming one key (two processes, say), the second writes nothing and
    learns the first; an expired claim is taken over."""

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "propylon.db")
        await store.open()
        try:
            claim = IdempotencyClaim("acme/k", "hash-1", time.time() + 60)
            await store.create(_record("v1_first", claim), [])
            with pytest.raises(IdempotencyConflict) as lost:
                await store.create(_record("v1_second", claim), [])
            assert (lost.value.interaction_id, lost.value.body_hash) == ("v1_first", "hash-1")
            assert await store.get("v1_second") is None
            assert await store.find_idempotency_key("acme/k", time.time()) == (
                "hash-1",
                "v1_first",
            )
            lapsed = IdempotencyClaim("acme/old", "hash-2", time.time() - 1)
            await store.create(_record("v1_old", lapsed), [])
            await store.create(_record("v1_new", IdempotencyClaim("acme/old", "h", 1e12)), [])
            assert await store.find_idempotency_key("acme/old", time.time()) == ("h", "v1_new")
            assert await store.delete("v1_first")  # its key goes with it
            assert await store.find_idempotency_key("acme/k", time.time()) is None
        finally:
            await store.close()

    asyncio.run(scenario())
