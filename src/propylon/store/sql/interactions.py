"""InteractionStore on SQLAlchemy (the `interactions` and `events` tables), and the
idempotency claim written in a create's transaction."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.domain.events import Event
from propylon.store.base import (
    CreateHook,
    Delivery,
    IdempotencyClaim,
    IdempotencyConflict,
    InteractionRecord,
    LogWrite,
    Snapshot,
)
from propylon.store.queries import (
    FENCED,
    HISTORY,
    INTERACTION_COLUMNS,
    RUNNING,
    dumps,
    event_of,
    history_steps,
    projection_update,
    record_of,
)
from propylon.store.sql.database import Database
from propylon.store.sql.webhooks import insert_deliveries

__all__ = ["SQLInteractions"]

_SELECT = f"SELECT {', '.join(INTERACTION_COLUMNS)} FROM interactions"
_INSERT = text(
    f"INSERT INTO interactions ({', '.join(INTERACTION_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in INTERACTION_COLUMNS)})"
)
_EVENTS = text(
    "SELECT seq, type, data FROM events WHERE interaction_id = :id AND seq > :after "
    "ORDER BY seq LIMIT :limit"
)


def _row(record: InteractionRecord, last_seq: int) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": record.status,
        "created": record.created,
        "updated": record.updated,
        "previous_interaction_id": record.previous_interaction_id,
        "background": bool(record.background),
        "request": dumps(record.request),
        "input": dumps(record.input),
        "input_steps": dumps(record.input_steps),
        "steps": dumps(record.steps),
        "usage": dumps(record.usage) if record.usage is not None else None,
        "errors": dumps(record.errors),
        "last_seq": last_seq,
        "cost_usd": record.cost_usd,
        "tenant": record.tenant,
        "api_key_id": record.api_key_id,
        "upstream_id": record.upstream_id,
        "run_epoch": record.run_epoch,
    }


_INSERT_EVENT = text(
    "INSERT INTO events (interaction_id, seq, type, data) "
    "VALUES (:interaction_id, :seq, :type, :data)"
)


def _event_rows(interaction_id: str, events: list[Event]) -> list[dict[str, Any]]:
    return [
        {"interaction_id": interaction_id, "seq": e.seq, "type": e.type, "data": dumps(e.data)}
        for e in events
    ]


async def _insert_events(conn: AsyncConnection, interaction_id: str, events: list[Event]) -> None:
    if events:
        await conn.execute(_INSERT_EVENT, _event_rows(interaction_id, events))


async def _claim(conn: AsyncConnection, interaction_id: str, claim: IdempotencyClaim) -> None:
    """Claim an idempotency key for `interaction_id` or raise IdempotencyConflict naming its
    holder: the INSERT decides between concurrent claimants (on PostgreSQL a second one waits
    for the first's transaction, then does nothing), the re-read names the winner."""
    await conn.execute(
        text("DELETE FROM idempotency_keys WHERE key = :key AND expires <= :now"),
        {"key": claim.key, "now": time.time()},
    )
    await conn.execute(
        text(
            "INSERT INTO idempotency_keys (key, body_hash, interaction_id, expires) "
            "VALUES (:key, :body_hash, :interaction_id, :expires) ON CONFLICT (key) DO NOTHING"
        ),
        {
            "key": claim.key,
            "body_hash": claim.body_hash,
            "interaction_id": interaction_id,
            "expires": claim.expires,
        },
    )
    body_hash, holder = (
        await conn.execute(
            text("SELECT body_hash, interaction_id FROM idempotency_keys WHERE key = :key"),
            {"key": claim.key},
        )
    ).one()
    if holder != interaction_id:
        raise IdempotencyConflict(holder, body_hash)


class SQLInteractions:
    """InteractionStore over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.on_create: CreateHook | None = None

    async def create(
        self,
        record: InteractionRecord,
        events: list[Event],
        deliveries: list[Delivery] | None = None,
    ) -> None:
        row = _row(record, events[-1].seq if events else 0)

        async def run(conn: AsyncConnection) -> None:
            if record.claim is not None:
                await _claim(conn, record.id, record.claim)
            await conn.execute(_INSERT, row)
            await _insert_events(conn, record.id, events)
            await insert_deliveries(conn, deliveries or [])
            if self.on_create is not None:  # on the driver's own connection (psycopg's)
                raw = await conn.get_raw_connection()
                await self.on_create(raw.driver_connection, record)

        await self._db.write(run)

    async def write_logs(self, writes: list[LogWrite]) -> list[bool]:
        async def run(conn: AsyncConnection) -> list[bool]:
            written: list[bool] = []
            rows: list[dict[str, Any]] = []
            deliveries: list[Delivery] = []
            for write in writes:
                if write.record is not None:
                    await conn.execute(_INSERT, _row(write.record, write.events[-1].seq))
                    if self.on_create is not None:
                        raw = await conn.get_raw_connection()
                        await self.on_create(raw.driver_connection, write.record)
                    deliveries.extend(write.deliveries)
                else:
                    assert write.snapshot is not None
                    sql, params = projection_update(
                        write.interaction_id, write.events, write.snapshot
                    )
                    params["run_epoch"] = write.epoch
                    if (await conn.execute(text(sql + FENCED), params)).rowcount == 0:
                        written.append(False)
                        continue
                    deliveries.extend(write.snapshot.deliveries)
                written.append(True)
                rows.extend(_event_rows(write.interaction_id, write.events))
            if rows:
                await conn.execute(_INSERT_EVENT, rows)
            await insert_deliveries(conn, deliveries)
            return written

        return await self._db.write(run)

    async def claim_run(self, interaction_id: str) -> int | None:
        async def run(conn: AsyncConnection) -> int | None:
            epoch = (
                await conn.execute(
                    text(
                        "UPDATE interactions SET run_epoch = run_epoch + 1 "
                        f"WHERE id = :id AND status IN {RUNNING} RETURNING run_epoch"
                    ),
                    {"id": interaction_id},
                )
            ).scalar_one_or_none()
            return None if epoch is None else int(epoch)

        return await self._db.write(run)

    async def append_fenced(
        self, interaction_id: str, epoch: int, events: list[Event], snapshot: Snapshot
    ) -> bool:
        sql, params = projection_update(interaction_id, events, snapshot)
        sql += FENCED

        async def run(conn: AsyncConnection) -> bool:
            if (await conn.execute(text(sql), {**params, "run_epoch": epoch})).rowcount == 0:
                return False
            await _insert_events(conn, interaction_id, events)
            await insert_deliveries(conn, snapshot.deliveries)
            return True

        return await self._db.write(run)

    async def get(self, interaction_id: str) -> InteractionRecord | None:
        async def run(conn: AsyncConnection) -> InteractionRecord | None:
            row = (
                await conn.execute(text(f"{_SELECT} WHERE id = :id"), {"id": interaction_id})
            ).first()
            return record_of(row) if row else None

        return await self._db.read(run)

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        async def run(conn: AsyncConnection) -> list[Event]:
            rows = await conn.execute(
                _EVENTS, {"id": interaction_id, "after": after_seq, "limit": limit}
            )
            return [event_of(row) for row in rows]

        return await self._db.read(run)

    async def history(self, interaction_id: str) -> list[dict[str, Any]]:
        async def run(conn: AsyncConnection) -> list[dict[str, Any]]:
            return history_steps(await conn.execute(text(HISTORY), {"id": interaction_id}))

        return await self._db.read(run)

    async def tenants(self) -> list[str]:
        async def run(conn: AsyncConnection) -> list[str]:
            rows = await conn.execute(text("SELECT DISTINCT tenant FROM interactions"))
            return [row[0] for row in rows]

        return await self._db.read(run)

    async def purge(self, tenant: str, before: str) -> int:
        doomed = "SELECT id FROM interactions WHERE tenant = :tenant AND created < :before"
        params = {"tenant": tenant, "before": before}

        async def run(conn: AsyncConnection) -> int:
            await conn.execute(
                text(f"DELETE FROM events WHERE interaction_id IN ({doomed})"), params
            )
            await conn.execute(
                text(f"DELETE FROM idempotency_keys WHERE interaction_id IN ({doomed})"), params
            )
            result = await conn.execute(
                text("DELETE FROM interactions WHERE tenant = :tenant AND created < :before"),
                params,
            )
            return result.rowcount

        return await self._db.write(run)

    async def export(self, tenant: str) -> list[tuple[InteractionRecord, list[Event]]]:
        async def run(conn: AsyncConnection) -> list[tuple[InteractionRecord, list[Event]]]:
            rows = await conn.execute(
                text(f"{_SELECT} WHERE tenant = :tenant ORDER BY created, id"), {"tenant": tenant}
            )
            found = []
            for record in [record_of(row) for row in rows]:
                events = await conn.execute(
                    text(
                        "SELECT seq, type, data FROM events WHERE interaction_id = :id ORDER BY seq"
                    ),
                    {"id": record.id},
                )
                found.append((record, [event_of(row) for row in events]))
            return found

        return await self._db.read(run)

    async def unfinished(self) -> list[str]:
        async def run(conn: AsyncConnection) -> list[str]:
            rows = await conn.execute(
                text(f"SELECT id FROM interactions WHERE status IN {RUNNING}")
            )
            return [row[0] for row in rows]

        return await self._db.read(run)

    async def delete(self, interaction_id: str) -> bool:
        params = {"id": interaction_id}

        async def run(conn: AsyncConnection) -> bool:
            await conn.execute(text("DELETE FROM events WHERE interaction_id = :id"), params)
            await conn.execute(
                text("DELETE FROM idempotency_keys WHERE interaction_id = :id"), params
            )
            result = await conn.execute(text("DELETE FROM interactions WHERE id = :id"), params)
            return result.rowcount > 0

        return await self._db.write(run)
