"""LedgerStore on SQLAlchemy (the `ledger` table, migration 0008).

An admission is one write transaction that sums what each cap's scope has committed and
inserts the reservation only if every cap has room. On SQLite the one writer serialises
admissions; on PostgreSQL, where several processes admit at once, each admission first takes
the ledger's advisory lock, so concurrent ones see each other's reservations.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from propylon.domain.clock import now
from propylon.store.base import Reservation, SpendCap
from propylon.store.sql.database import Database

__all__ = ["SQLLedger"]

_LOCK = 0x6C6564676572  # "ledger": the advisory lock of admissions
_SUM = (
    "SELECT coalesce(sum(coalesce(spent_usd, reserved_usd)), 0), "
    "coalesce(sum(coalesce(spent_tokens, reserved_tokens)), 0) FROM ledger "
)
_BY_KEY = text(_SUM + "WHERE api_key_id = :scope AND created >= :since")
_BY_TENANT = text(_SUM + "WHERE tenant = :scope AND created >= :since")


async def _committed(
    conn: AsyncConnection, since: str, api_key_id: str | None, tenant: str | None
) -> tuple[float, int]:
    """(USD, tokens) committed by the key, or (with no key) by the tenant, since `since`."""
    if api_key_id is None and tenant is None:
        raise ValueError("a key or a tenant is needed")
    sql, scope = (_BY_KEY, api_key_id) if api_key_id is not None else (_BY_TENANT, tenant)
    usd, tokens = (await conn.execute(sql, {"scope": scope, "since": since})).one()
    return float(usd), int(tokens)


class SQLLedger:
    """LedgerStore over `db`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, reservation: Reservation, caps: list[SpendCap]) -> SpendCap | None:
        r = reservation

        async def run(conn: AsyncConnection) -> SpendCap | None:
            if caps:
                await self._db.advisory_lock(conn, _LOCK)
            for cap in caps:
                if (await _committed(conn, cap.since, cap.api_key_id, cap.tenant))[0] >= cap.usd:
                    return cap
            await conn.execute(
                text(
                    "INSERT INTO ledger (interaction_id, tenant, api_key_id, created, "
                    "reserved_usd, reserved_tokens, owner) VALUES (:id, :tenant, :key, "
                    ":created, :usd, :tokens, :owner)"
                ),
                {
                    "id": r.interaction_id,
                    "tenant": r.tenant,
                    "key": r.api_key_id,
                    "created": r.created,
                    "usd": r.usd,
                    "tokens": r.tokens,
                    "owner": r.owner,
                },
            )
            return None

        return await self._db.write(run)

    async def settle(self, interaction_id: str, usd: float | None, tokens: int | None) -> bool:
        async def run(conn: AsyncConnection) -> bool:
            result = await conn.execute(
                text(
                    "UPDATE ledger SET spent_usd = coalesce(:usd, reserved_usd), "
                    "spent_tokens = coalesce(:tokens, reserved_tokens), settled = :settled "
                    "WHERE interaction_id = :id AND settled IS NULL"
                ),
                {"usd": usd, "tokens": tokens, "settled": now(), "id": interaction_id},
            )
            return result.rowcount > 0

        return await self._db.write(run)

    async def release(self, interaction_id: str) -> None:
        async def run(conn: AsyncConnection) -> None:
            await conn.execute(
                text("DELETE FROM ledger WHERE interaction_id = :id AND settled IS NULL"),
                {"id": interaction_id},
            )

        await self._db.write(run)

    async def committed(
        self, since: str, api_key_id: str | None = None, tenant: str | None = None
    ) -> tuple[float, int]:
        async def run(conn: AsyncConnection) -> tuple[float, int]:
            return await _committed(conn, since, api_key_id, tenant)

        return await self._db.read(run)

    async def unsettled(self) -> list[str]:
        async def run(conn: AsyncConnection) -> list[str]:
            rows = await conn.execute(
                text("SELECT interaction_id FROM ledger WHERE settled IS NULL")
            )
            return [row[0] for row in rows]

        return await self._db.read(run)

    async def prune(self, before: str) -> int:
        async def run(conn: AsyncConnection) -> int:
            result = await conn.execute(
                text("DELETE FROM ledger WHERE settled IS NOT NULL AND created < :before"),
                {"before": before},
            )
            return result.rowcount

        return await self._db.write(run)
