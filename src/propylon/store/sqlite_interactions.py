"""InteractionStore on the embedded SQLite file (the `interactions` and `events` tables), and
the idempotency claim written in a create's transaction."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from propylon.domain.events import Event
from propylon.store.base import (
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
from propylon.store.sqlite_connections import SQLiteConnections
from propylon.store.sqlite_webhooks import insert_deliveries

__all__ = ["SQLiteInteractions"]

COLUMNS = ", ".join(INTERACTION_COLUMNS)
_INSERT = (
    f"INSERT INTO interactions ({COLUMNS}) VALUES ({', '.join('?' * len(INTERACTION_COLUMNS))})"
)
_INSERT_EVENT = "INSERT INTO events (interaction_id, seq, type, data) VALUES (?, ?, ?, ?)"


def _row(record: InteractionRecord, last_seq: int) -> tuple[Any, ...]:
    """The `interactions` row of a new `record`, in INTERACTION_COLUMNS order."""
    return (
        record.id,
        record.status,
        record.created,
        record.updated,
        record.previous_interaction_id,
        int(record.background),
        dumps(record.request),
        dumps(record.input),
        dumps(record.input_steps),
        dumps(record.steps),
        dumps(record.usage) if record.usage is not None else None,
        dumps(record.errors),
        last_seq,
        record.cost_usd,
        record.tenant,
        record.api_key_id,
        record.upstream_id,
        record.run_epoch,
    )


class SQLiteInteractions:
    """InteractionStore over `db`'s connections."""

    def __init__(self, db: SQLiteConnections) -> None:
        self._db = db

    async def create(
        self,
        record: InteractionRecord,
        events: list[Event],
        deliveries: list[Delivery] | None = None,
    ) -> None:
        row = _row(record, events[-1].seq if events else 0)

        def run(conn: sqlite3.Connection) -> None:
            if record.claim is not None:
                _claim(conn, record.id, record.claim)
            conn.execute(_INSERT, row)
            _insert_events(conn, record.id, events)
            insert_deliveries(conn, deliveries or [])

        await self._db._write(run)

    async def write_logs(self, writes: list[LogWrite]) -> list[bool]:
        def run(conn: sqlite3.Connection) -> list[bool]:
            written: list[bool] = []
            rows: list[tuple[str, int, str, str]] = []
            deliveries: list[Delivery] = []
            for write in writes:
                if write.record is not None:
                    conn.execute(_INSERT, _row(write.record, write.events[-1].seq))
                    deliveries.extend(write.deliveries)
                else:
                    assert write.snapshot is not None
                    sql, params = projection_update(
                        write.interaction_id, write.events, write.snapshot
                    )
                    params["run_epoch"] = write.epoch
                    if conn.execute(sql + FENCED, params).rowcount == 0:
                        written.append(False)
                        continue
                    deliveries.extend(write.snapshot.deliveries)
                written.append(True)
                rows.extend(_event_rows(write.interaction_id, write.events))
            conn.executemany(_INSERT_EVENT, rows)
            insert_deliveries(conn, deliveries)
            return written

        return await self._db._write(run)

    async def claim_run(self, interaction_id: str) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE interactions SET run_epoch = run_epoch + 1 "
                f"WHERE id = ? AND status IN {RUNNING} RETURNING run_epoch",
                (interaction_id,),
            ).fetchone()
            return int(row[0]) if row else None

        return await self._db._write(run)

    async def append_fenced(
        self, interaction_id: str, epoch: int, events: list[Event], snapshot: Snapshot
    ) -> bool:
        sql, params = projection_update(interaction_id, events, snapshot)

        def run(conn: sqlite3.Connection) -> bool:
            if conn.execute(sql + FENCED, {**params, "run_epoch": epoch}).rowcount == 0:
                return False
            _insert_events(conn, interaction_id, events)
            insert_deliveries(conn, snapshot.deliveries)
            return True

        return await self._db._write(run)

    async def get(self, interaction_id: str) -> InteractionRecord | None:
        def run(conn: sqlite3.Connection) -> InteractionRecord | None:
            row = conn.execute(
                f"SELECT {COLUMNS} FROM interactions WHERE id = ?", (interaction_id,)
            ).fetchone()
            return record_of(row) if row else None

        return await self._db._read(run)

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        def run(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT seq, type, data FROM events WHERE interaction_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (interaction_id, after_seq, limit),
            ).fetchall()
            return [event_of(row) for row in rows]

        return await self._db._read(run)

    async def history(self, interaction_id: str) -> list[dict[str, Any]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            return history_steps(conn.execute(HISTORY, {"id": interaction_id}))

        return await self._db._read(run)

    async def tenants(self) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            return [row[0] for row in conn.execute("SELECT DISTINCT tenant FROM interactions")]

        return await self._db._read(run)

    async def purge(self, tenant: str, before: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            doomed = "SELECT id FROM interactions WHERE tenant = ? AND created < ?"
            conn.execute(f"DELETE FROM events WHERE interaction_id IN ({doomed})", (tenant, before))
            conn.execute(
                f"DELETE FROM idempotency_keys WHERE interaction_id IN ({doomed})", (tenant, before)
            )
            return conn.execute(
                "DELETE FROM interactions WHERE tenant = ? AND created < ?", (tenant, before)
            ).rowcount

        return await self._db._write(run)

    async def export(self, tenant: str) -> list[tuple[InteractionRecord, list[Event]]]:
        def run(conn: sqlite3.Connection) -> list[tuple[InteractionRecord, list[Event]]]:
            records = [
                record_of(row)
                for row in conn.execute(
                    f"SELECT {COLUMNS} FROM interactions WHERE tenant = ? ORDER BY created, id",
                    (tenant,),
                )
            ]
            return [
                (
                    record,
                    [
                        event_of(row)
                        for row in conn.execute(
                            "SELECT seq, type, data FROM events WHERE "
                            "interaction_id = ? ORDER BY seq",
                            (record.id,),
                        )
                    ],
                )
                for record in records
            ]

        return await self._db._read(run)

    async def unfinished(self) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT id FROM interactions WHERE status IN ('in_progress', 'queued')"
            ).fetchall()
            return [row[0] for row in rows]

        return await self._db._read(run)

    async def delete(self, interaction_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM events WHERE interaction_id = ?", (interaction_id,))
            conn.execute("DELETE FROM idempotency_keys WHERE interaction_id = ?", (interaction_id,))
            return (
                conn.execute("DELETE FROM interactions WHERE id = ?", (interaction_id,)).rowcount
                > 0
            )

        return await self._db._write(run)


def _claim(conn: sqlite3.Connection, interaction_id: str, claim: IdempotencyClaim) -> None:
    """Claim an idempotency key for `interaction_id` or raise IdempotencyConflict naming its
    holder: one statement decides between concurrent claimants (the first insert wins)."""
    conn.execute(
        "DELETE FROM idempotency_keys WHERE key = ? AND expires <= ?", (claim.key, time.time())
    )
    conn.execute(
        "INSERT INTO idempotency_keys (key, body_hash, interaction_id, expires) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (claim.key, claim.body_hash, interaction_id, claim.expires),
    )
    body_hash, holder = conn.execute(
        "SELECT body_hash, interaction_id FROM idempotency_keys WHERE key = ?", (claim.key,)
    ).fetchone()
    if holder != interaction_id:
        raise IdempotencyConflict(holder, body_hash)


def _event_rows(interaction_id: str, events: list[Event]) -> list[tuple[str, int, str, str]]:
    return [(interaction_id, e.seq, e.type, dumps(e.data)) for e in events]


def _insert_events(conn: sqlite3.Connection, interaction_id: str, events: list[Event]) -> None:
    conn.executemany(_INSERT_EVENT, _event_rows(interaction_id, events))
