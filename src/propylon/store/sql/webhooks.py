"""WebhookStore on SQLAlchemy: the `webhooks` table and the `deliveries` outbox."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.store.base import Delivery
from propylon.store.queries import DISABLED, dumps
from propylon.store.sql.database import Database

__all__ = ["SQLWebhooks", "insert_deliveries"]


async def insert_deliveries(conn: AsyncConnection, deliveries: list[Delivery]) -> None:
    """Add `deliveries` to the outbox in `conn`'s transaction (an id already there is kept)."""
    if deliveries:
        await conn.execute(
            text(
                "INSERT INTO deliveries (id, webhook_id, uri, payload, next_attempt, tenant) "
                "VALUES (:id, :webhook_id, :uri, :payload, :next_attempt, :tenant) "
                "ON CONFLICT (id) DO NOTHING"
            ),
            [
                {
                    "id": d.id,
                    "webhook_id": d.webhook_id,
                    "uri": d.uri,
                    "payload": d.payload,
                    "next_attempt": d.next_attempt,
                    "tenant": d.tenant,
                }
                for d in deliveries
            ],
        )


class SQLWebhooks:
    """WebhookStore over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save_webhook(self, webhook: dict[str, Any]) -> None:
        params = {
            "id": webhook["id"],
            "tenant": webhook["tenant"],
            "data": dumps(webhook),
        }

        async def run(conn: AsyncConnection) -> None:
            await conn.execute(
                text(
                    "INSERT INTO webhooks (id, tenant, data) VALUES (:id, :tenant, :data) "
                    "ON CONFLICT (id) DO UPDATE SET data = excluded.data"
                ),
                params,
            )

        await self._db.write(run)

    async def list_webhooks(
        self, tenant: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        async def run(conn: AsyncConnection) -> list[dict[str, Any]]:
            scope = "" if tenant is None else "AND tenant = :tenant "
            rows = await conn.execute(
                text(
                    f"SELECT data FROM webhooks WHERE id > :after {scope}ORDER BY id LIMIT :limit"
                ),
                {"after": after or "", "tenant": tenant, "limit": limit},
            )
            return [orjson.loads(row[0]) for row in rows]

        return await self._db.read(run)

    async def get_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        async def run(conn: AsyncConnection) -> dict[str, Any] | None:
            data = (
                await conn.execute(
                    text("SELECT data FROM webhooks WHERE id = :id"), {"id": webhook_id}
                )
            ).scalar_one_or_none()
            return None if data is None else orjson.loads(data)

        return await self._db.read(run)

    async def delete_webhook(self, webhook_id: str) -> bool:
        params = {"id": webhook_id}

        async def run(conn: AsyncConnection) -> bool:
            await conn.execute(
                text("DELETE FROM deliveries WHERE webhook_id = :id AND state = 'pending'"), params
            )
            result = await conn.execute(text("DELETE FROM webhooks WHERE id = :id"), params)
            return result.rowcount > 0

        return await self._db.write(run)

    async def enqueue(self, deliveries: list[Delivery]) -> None:
        async def run(conn: AsyncConnection) -> None:
            await insert_deliveries(conn, deliveries)

        await self._db.write(run)

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        # The webhook's state is read in the transaction that picks (see store/sqlite.py).
        state = self._db.json_text("data", "state")
        w_state = self._db.json_text("w.data", "state")

        async def run(conn: AsyncConnection) -> list[Delivery]:
            await conn.execute(
                text(
                    "UPDATE deliveries SET state = 'failed', "
                    "last_error = 'not sent: the webhook is not enabled' "
                    "WHERE state = 'pending' AND webhook_id IN "
                    f"(SELECT id FROM webhooks WHERE {state} != 'enabled')"
                )
            )
            rows = await conn.execute(
                text(
                    "SELECT d.id, d.uri, d.payload, d.webhook_id, d.attempts, d.next_attempt, "
                    "d.tenant FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id "
                    "WHERE d.state = 'pending' AND d.next_attempt <= :now "
                    f"AND (w.id IS NULL OR {w_state} = 'enabled') "
                    "ORDER BY d.next_attempt LIMIT :limit"
                ),
                {"now": now, "limit": limit},
            )
            return [Delivery(*row) for row in rows]

        return await self._db.write(run)

    async def delivery_done(
        self,
        delivery: Delivery,
        ok: bool,
        error: str | None,
        next_attempt: float | None,
        disable_after: int,
    ) -> None:
        state = "delivered" if ok else ("pending" if next_attempt is not None else "failed")

        async def run(conn: AsyncConnection) -> None:
            await conn.execute(
                text(
                    "UPDATE deliveries SET attempts = attempts + 1, state = :state, "
                    "next_attempt = :next, last_error = :error WHERE id = :id"
                ),
                {"state": state, "next": next_attempt or 0.0, "error": error, "id": delivery.id},
            )
            if delivery.webhook_id is None:
                return
            params = {"id": delivery.webhook_id}
            if ok:
                await conn.execute(
                    text("UPDATE webhooks SET consecutive_failures = 0 WHERE id = :id"), params
                )
                return
            row = (
                await conn.execute(
                    text(
                        "UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 "
                        "WHERE id = :id RETURNING consecutive_failures, data"
                    ),
                    params,
                )
            ).first()
            if row and row[0] >= disable_after:
                webhook = orjson.loads(row[1])
                webhook["state"] = DISABLED
                await conn.execute(
                    text("UPDATE webhooks SET data = :data WHERE id = :id"),
                    {"data": dumps(webhook), "id": delivery.webhook_id},
                )

        await self._db.write(run)
