"""The embedded store: one SQLite file in WAL mode.

The stdlib `sqlite3` driver runs on threads: one writer (SQLite allows one at a time, so
a single thread serialises writes without lock contention) and a small pool of readers (WAL
lets them read while the writer writes). Each call is one hop to a thread and one transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from propylon.domain.events import Event
from propylon.store import migrate
from propylon.store.base import (
    ApiKey,
    CreateHook,
    Delivery,
    IdempotencyClaim,
    IdempotencyConflict,
    InteractionRecord,
    Snapshot,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")

_COLUMNS = (
    "id, status, created, updated, previous_interaction_id, background, request, input, "
    "input_steps, steps, usage, errors, last_seq, cost_usd, tenant, api_key_id, upstream_id, "
    "run_epoch"
)
_KEY_COLUMNS = "id, key_hash, tenant, name, admin, policy, created, revoked, api_revision"
_HISTORY = """
WITH RECURSIVE chain(id, prev, depth) AS (
    SELECT id, previous_interaction_id, 0 FROM interactions WHERE id = ?
    UNION ALL
    SELECT i.id, i.previous_interaction_id, c.depth + 1
    FROM interactions i JOIN chain c ON i.id = c.prev
)
SELECT i.input_steps, i.steps FROM chain c JOIN interactions i ON i.id = c.id
ORDER BY c.depth DESC
"""


_RUNNING = "('in_progress', 'queued')"  # the statuses a run may still write in


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class SQLiteStore:
    """Store on the SQLite file at `path`; call `open()` before use (it runs migrations)."""

    def __init__(self, path: Path, readers: int = 2) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # the embedded store's jobs are in-process (jobs/local.py): no hook is ever set here
        self.on_create: CreateHook | None = None

    async def open(self) -> None:
        """Create the file and its directory if needed and migrate the schema to head."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, migrate.upgrade, f"sqlite:///{self.path}")
        # WAL is a property of the file: set once, by the writer. A reader switching it could
        # find another connection's lock and fail at once ("database is locked"): SQLite
        # does not wait on a busy lock for a journal mode change.
        await loop.run_in_executor(
            self._writer, lambda: self._connection().execute("PRAGMA journal_mode=WAL").fetchall()
        )

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in one write transaction on the writer thread. Any failure, the COMMIT's
        included, rolls back (SQLite keeps a transaction open after some failed COMMITs), so
        the one writer connection is always usable for the next write."""

        def run() -> T:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                self._roll_back(conn)
                raise
            return result

        return await asyncio.get_running_loop().run_in_executor(self._writer, run)

    def _roll_back(self, conn: sqlite3.Connection) -> None:
        """End a failed write transaction; a connection that cannot is replaced."""
        if not conn.in_transaction:  # SQLite already rolled back (an I/O error, say)
            return
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            with self._lock:
                self._connections.remove(conn)
            self._local.conn = None
            conn.close()

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, lambda: fn(self._connection())
        )

    async def create(
        self,
        record: InteractionRecord,
        events: list[Event],
        deliveries: list[Delivery] | None = None,
    ) -> None:
        row = (
            record.id,
            record.status,
            record.created,
            record.updated,
            record.previous_interaction_id,
            int(record.background),
            _dumps(record.request),
            _dumps(record.input),
            _dumps(record.input_steps),
            _dumps(record.steps),
            _dumps(record.usage) if record.usage is not None else None,
            _dumps(record.errors),
            events[-1].seq if events else 0,
            record.cost_usd,
            record.tenant,
            record.api_key_id,
            record.upstream_id,
            record.run_epoch,
        )

        def run(conn: sqlite3.Connection) -> None:
            if record.claim is not None:
                _claim(conn, record.id, record.claim)
            conn.execute(
                f"INSERT INTO interactions ({_COLUMNS}) VALUES ({', '.join('?' * len(row))})", row
            )
            _insert_events(conn, record.id, events)
            _insert_deliveries(conn, deliveries or [])

        await self._write(run)

    async def append(self, interaction_id: str, events: list[Event], snapshot: Snapshot) -> None:
        sql, params = _update(interaction_id, events, snapshot)

        def run(conn: sqlite3.Connection) -> None:
            if conn.execute(sql, params).rowcount == 0:
                raise KeyError(interaction_id)
            _insert_events(conn, interaction_id, events)
            _insert_deliveries(conn, snapshot.deliveries)

        await self._write(run)

    async def claim_run(self, interaction_id: str) -> int | None:
        def run(conn: sqlite3.Connection) -> int | None:
            row = conn.execute(
                "UPDATE interactions SET run_epoch = run_epoch + 1 "
                f"WHERE id = ? AND status IN {_RUNNING} RETURNING run_epoch",
                (interaction_id,),
            ).fetchone()
            return int(row[0]) if row else None

        return await self._write(run)

    async def append_fenced(
        self, interaction_id: str, epoch: int, events: list[Event], snapshot: Snapshot
    ) -> bool:
        sql, params = _update(interaction_id, events, snapshot)
        sql += f" AND run_epoch = ? AND status IN {_RUNNING}"

        def run(conn: sqlite3.Connection) -> bool:
            if conn.execute(sql, [*params, epoch]).rowcount == 0:
                return False
            _insert_events(conn, interaction_id, events)
            _insert_deliveries(conn, snapshot.deliveries)
            return True

        return await self._write(run)

    async def get(self, interaction_id: str) -> InteractionRecord | None:
        def run(conn: sqlite3.Connection) -> InteractionRecord | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM interactions WHERE id = ?", (interaction_id,)
            ).fetchone()
            return _record(row) if row else None

        return await self._read(run)

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        def run(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT seq, type, data FROM events WHERE interaction_id = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (interaction_id, after_seq, limit),
            ).fetchall()
            return [Event(seq, kind, orjson.loads(data)) for seq, kind, data in rows]

        return await self._read(run)

    async def history(self, interaction_id: str) -> list[dict[str, Any]]:
        def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            steps: list[dict[str, Any]] = []
            for input_steps, output_steps in conn.execute(_HISTORY, (interaction_id,)):
                steps.extend(orjson.loads(input_steps))
                steps.extend(orjson.loads(output_steps))
            return steps

        return await self._read(run)

    async def find_idempotency_key(self, key: str, now: float) -> tuple[str, str] | None:
        def run(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT body_hash, interaction_id FROM idempotency_keys "
                "WHERE key = ? AND expires > ?",
                (key, now),
            ).fetchone()
            return (row[0], row[1]) if row else None

        return await self._read(run)

    async def save_webhook(self, webhook: dict[str, Any]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO webhooks (id, tenant, data) VALUES (?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                (webhook["id"], webhook["tenant"], _dumps(webhook)),
            )

        await self._write(run)

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

        return await self._read(run)

    async def get_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        def run(conn: sqlite3.Connection) -> dict[str, Any] | None:
            row = conn.execute("SELECT data FROM webhooks WHERE id = ?", (webhook_id,)).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._read(run)

    async def delete_webhook(self, webhook_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM deliveries WHERE webhook_id = ? AND state = 'pending'", (webhook_id,)
            )
            return conn.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0

        return await self._write(run)

    async def enqueue(self, deliveries: list[Delivery]) -> None:
        await self._write(lambda conn: _insert_deliveries(conn, deliveries))

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

        return await self._write(run)

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
                webhook["state"] = "disabled_due_to_failed_deliveries"
                conn.execute(
                    "UPDATE webhooks SET data = ? WHERE id = ?",
                    (_dumps(webhook), delivery.webhook_id),
                )

        await self._write(run)

    async def save_api_key(self, key: ApiKey) -> None:
        row = (
            key.id,
            key.key_hash,
            key.tenant,
            key.name,
            int(key.admin),
            _dumps(key.policy),
            key.created,
            key.revoked,
            key.api_revision,
        )
        await self._write(
            lambda conn: conn.execute(
                f"INSERT OR REPLACE INTO api_keys ({_KEY_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
        )

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        def run(conn: sqlite3.Connection) -> ApiKey | None:
            row = conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ?", (key_hash,)
            ).fetchone()
            return _api_key(row) if row else None

        return await self._read(run)

    async def list_api_keys(self) -> list[ApiKey]:
        def run(conn: sqlite3.Connection) -> list[ApiKey]:
            rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created, id")
            return [_api_key(row) for row in rows]

        return await self._read(run)

    async def count_api_keys(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT count(*) FROM api_keys WHERE revoked IS NULL").fetchone()
            return int(row[0])

        return await self._read(run)

    async def tenants(self) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            return [row[0] for row in conn.execute("SELECT DISTINCT tenant FROM interactions")]

        return await self._read(run)

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

        return await self._write(run)

    async def export(self, tenant: str) -> list[tuple[InteractionRecord, list[Event]]]:
        def run(conn: sqlite3.Connection) -> list[tuple[InteractionRecord, list[Event]]]:
            records = [
                _record(row)
                for row in conn.execute(
                    f"SELECT {_COLUMNS} FROM interactions WHERE tenant = ? ORDER BY created, id",
                    (tenant,),
                )
            ]
            return [
                (
                    record,
                    [
                        Event(seq, kind, orjson.loads(data))
                        for seq, kind, data in conn.execute(
                            "SELECT seq, type, data FROM events WHERE "
                            "interaction_id = ? ORDER BY seq",
                            (record.id,),
                        )
                    ],
                )
                for record in records
            ]

        return await self._read(run)

    async def unfinished(self) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT id FROM interactions WHERE status IN ('in_progress', 'queued')"
            ).fetchall()
            return [row[0] for row in rows]

        return await self._read(run)

    async def delete(self, interaction_id: str) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM events WHERE interaction_id = ?", (interaction_id,))
            conn.execute("DELETE FROM idempotency_keys WHERE interaction_id = ?", (interaction_id,))
            return (
                conn.execute("DELETE FROM interactions WHERE id = ?", (interaction_id,)).rowcount
                > 0
            )

        return await self._write(run)

    async def close(self) -> None:
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _update(interaction_id: str, events: list[Event], snapshot: Snapshot) -> tuple[str, list[Any]]:
    """The UPDATE of the projection columns that a batch of `events` ends at `snapshot`."""
    sets = ["status = ?", "updated = ?"]
    params: list[Any] = [snapshot.status, snapshot.updated]
    if events:
        sets.append("last_seq = ?")
        params.append(events[-1].seq)
    for column, value in (
        ("steps", snapshot.steps),
        ("usage", snapshot.usage),
        ("errors", snapshot.errors),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            params.append(_dumps(value))
    if snapshot.cost_usd is not None:
        sets.append("cost_usd = ?")
        params.append(snapshot.cost_usd)
    if snapshot.upstream_id is not None:
        sets.append("upstream_id = ?")
        params.append(snapshot.upstream_id)
    params.append(interaction_id)
    return f"UPDATE interactions SET {', '.join(sets)} WHERE id = ?", params


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


def _insert_events(conn: sqlite3.Connection, interaction_id: str, events: list[Event]) -> None:
    conn.executemany(
        "INSERT INTO events (interaction_id, seq, type, data) VALUES (?, ?, ?, ?)",
        [(interaction_id, e.seq, e.type, _dumps(e.data)) for e in events],
    )


def _insert_deliveries(conn: sqlite3.Connection, deliveries: list[Delivery]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO deliveries (id, webhook_id, uri, payload, next_attempt, tenant) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(d.id, d.webhook_id, d.uri, d.payload, d.next_attempt, d.tenant) for d in deliveries],
    )


def _api_key(row: tuple[Any, ...]) -> ApiKey:
    id_, key_hash, tenant, name, admin, policy, created, revoked, api_revision = row
    return ApiKey(
        id=id_,
        key_hash=key_hash,
        tenant=tenant,
        name=name,
        admin=bool(admin),
        policy=orjson.loads(policy),
        created=created,
        revoked=revoked,
        api_revision=api_revision,
    )


def _record(row: tuple[Any, ...]) -> InteractionRecord:
    (
        id_,
        status,
        created,
        updated,
        previous,
        background,
        request,
        input_,
        input_steps,
        steps,
        usage,
        errors,
        last_seq,
        cost_usd,
        tenant,
        api_key_id,
        upstream_id,
        run_epoch,
    ) = row
    return InteractionRecord(
        id=id_,
        status=status,
        created=created,
        updated=updated,
        previous_interaction_id=previous,
        background=bool(background),
        request=orjson.loads(request),
        input=orjson.loads(input_) if input_ else None,
        input_steps=orjson.loads(input_steps),
        steps=orjson.loads(steps),
        usage=orjson.loads(usage) if usage else None,
        errors=orjson.loads(errors),
        last_seq=last_seq,
        cost_usd=cost_usd,
        tenant=tenant,
        api_key_id=api_key_id,
        upstream_id=upstream_id,
        run_epoch=run_epoch,
    )
