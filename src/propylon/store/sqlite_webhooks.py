"""WebhookStore on the embedded SQLite file: the `webhooks` table and the `deliveries`
outbox."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from propylon.store.base import Delivery
from propylon.store.queries import DISABLED, dumps
from propylon.store.sqlite_connections import SQLiteConnections

__all__ = ["SQLiteWebhooks", "insert_deliveries"]


class SQLiteWebhooks:
    """WebhookStore over `db`'s connections."""

    def __init__(self, db: SQLiteConnections) -> None:
        self._db = db

    async def save_webhook(self, webhook: dict[str, Any]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO webhooks (id, tenant, data) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                (webhook["id"], webhook["tenant"], dumps(webhook)),
            )

        await self._db._write(run)

    async def list_webhooks(
        self, tenant: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT data FROM webhooks WHERE id > ? AND (? IS NULL OR tenant = ?) "
                "ORDER BY id LIMIT ?",
                (after or "", tenant, tenant, limit),
            ).fetchall()
            return [orjson.loads(row[0]) for row in rows]

        return await self._db._read(run)

    async def get_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        def run(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT data FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._db._read(run)

    async def delete_webhook(self, webhook_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM deliveries WHERE webhook_id = ? AND state = 'pending'", (webhook_id,)
            )
            return conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0

        return await self._db._write(run)

    async def enqueue(self, deliveries: list[Delivery]) -> None:
        await self._db._write(lambda conn: insert_deliveries(conn, deliveries))

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        # The webhook's state is read here, in the transaction that picks: the pending
        # deliveries of a webhook that is no longer enabled are dropped, never sent.
        def run(conn: sqlite3.Connection) -> list[Delivery]:
            conn.execute(
                "UPDATE deliveries SET state = 'failed', "
                "last_error = 'not sent: the webhook is not enabled' "
                "WHERE state = 'pending' AND webhook_id IN "
                "(SELECT id FROM webhooks WHERE json_extract(data, '$.state') != 'enabled')"
            )
            rows = conn.execute(
                "SELECT d.id, d.uri, d.payload, d.webhook_id, d.attempts, d.next_attempt, "
                "d.tenant "
                "FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id "
                "WHERE d.state = 'pending' AND d.next_attempt <= ? AND (w.id IS NULL "
                "OR json_extract(w.data, '$.state') = 'enabled') "
                "ORDER BY d.next_attempt LIMIT ?",
                (now, limit),
            ).fetchall()
            return [Delivery(*row) for row in rows]

        return await self._db._write(run)

    async def delivery_done(
        self,
        delivery: Delivery,
        ok: bool,
        error: str | None,
        next_attempt: float | None,
        disable_after: int,
    ) -> None:
        def run(conn: sqlite3.Connection) -> None:
            state = "delivered" if ok else ("pending" if next_attempt is not None else "failed")
            conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, state = ?, next_attempt = ?, "
                "last_error = ? WHERE id = ?",
                (state, next_attempt or 0.0, error, delivery.id),
            )
            if delivery.webhook_id is None:
                return
            if ok:
                conn.execute(
                    "UPDATE webhooks SET consecutive_failures = 0 WHERE id = ?",
                    (delivery.webhook_id,),
                )
                return
            row = conn.execute(
                "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 "
                "WHERE id = ? RETURNING consecutive_failures, data",
                (delivery.webhook_id,),
            ).fetchone()
            if row and row[0] >= disable_after:
                webhook = orjson.loads(row[1])
                webhook["state"] = DISABLED
                conn.execute(
                    "UPDATE webhooks SET data = ? WHERE id = ?",
                    (dumps(webhook), delivery.webhook_id),
                )

        await self._db._write(run)


def insert_deliveries(conn: sqlite3.Connection, deliveries: list[Delivery]) -> None:
    """Add `deliveries` to the outbox in `conn`'s transaction (an id already there is kept)."""
    if not deliveries:  # most writes: no statement at all
        return
    conn.executemany(
        "INSERT OR IGNORE INTO deliveries (id, webhook_id, uri, payload, next_attempt, tenant) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(d.id, d.webhook_id, d.uri, d.payload, d.next_attempt, d.tenant) for d in deliveries],
    )
