"""The ledger (LedgerStore) on the SQLite file of an SQLiteStore, sharing its one writer.

An admission is one `BEGIN IMMEDIATE` transaction: it sums what each cap's scope has committed
and inserts the reservation only if every cap has room. SQLite lets one write transaction run
at a time (across processes too), so concurrent admissions see each other's reservations.
"""

from __future__ import annotations

import sqlite3

from propylon.domain.clock import now
from propylon.store.base import Reservation, SpendCap
from propylon.store.sqlite import SQLiteStore

__all__ = ["SQLiteLedgerStore"]

# what an entry counts: its spend once settled, its reservation while open
_SUM = (
    "SELECT coalesce(sum(coalesce(spent_usd, reserved_usd)), 0), "
    "coalesce(sum(coalesce(spent_tokens, reserved_tokens)), 0) FROM ledger "
)
_BY_KEY = _SUM + "WHERE api_key_id = ? AND created >= ?"  # index ledger_key_created
_BY_TENANT = _SUM + "WHERE tenant = ? AND created >= ?"  # index ledger_tenant_created


def _committed(
    conn: sqlite3.Connection, since: str, api_key_id: str | None, tenant: str | None
) -> tuple[float, int]:
    """(USD, tokens) committed by the key, or (with no key) by the tenant, since `since`."""
    if api_key_id is None and tenant is None:
        raise ValueError("a key or a tenant is needed")
    sql, scope = (_BY_KEY, api_key_id) if api_key_id is not None else (_BY_TENANT, tenant)
    usd, tokens = conn.execute(sql, (scope, since)).fetchone()
    return float(usd), int(tokens)


class SQLiteLedgerStore:
    """LedgerStore over the `ledger` table of `store`'s file (migration 0008)."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store

    async def reserve(self, reservation: Reservation, caps: list[SpendCap]) -> SpendCap | None:
        r = reservation

        def run(conn: sqlite3.Connection) -> SpendCap | None:
            for cap in caps:
                if _committed(conn, cap.since, cap.api_key_id, cap.tenant)[0] >= cap.usd:
                    return cap
            conn.execute(
                "INSERT INTO ledger (interaction_id, tenant, api_key_id, created, "
                "reserved_usd, reserved_tokens, owner) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (r.interaction_id, r.tenant, r.api_key_id, r.created, r.usd, r.tokens, r.owner),
            )
            return None

        return await self._store._write(run)

    async def settle(self, interaction_id: str, usd: float | None, tokens: int | None) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE ledger SET spent_usd = coalesce(?, reserved_usd), "
                "spent_tokens = coalesce(?, reserved_tokens), settled = ? "
                "WHERE interaction_id = ? AND settled IS NULL",
                (usd, tokens, now(), interaction_id),
            )
            return cursor.rowcount > 0

        return await self._store._write(run)

    async def release(self, interaction_id: str) -> None:
        await self._store._write(
            lambda conn: conn.execute(
                "DELETE FROM ledger WHERE interaction_id = ? AND settled IS NULL",
                (interaction_id,),
            )
        )

    async def committed(
        self, since: str, api_key_id: str | None = None, tenant: str | None = None
    ) -> tuple[float, int]:
        return await self._store._read(lambda conn: _committed(conn, since, api_key_id, tenant))

    async def unsettled(self) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute("SELECT interaction_id FROM ledger WHERE settled IS NULL")
            return [row[0] for row in rows]

        return await self._store._read(run)

    async def prune(self, before: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM ledger WHERE settled IS NOT NULL AND created < ?", (before,)
            ).rowcount

        return await self._store._write(run)
