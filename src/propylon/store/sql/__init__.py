"""The store on SQLAlchemy Core, async, over PostgreSQL (psycopg 3) or SQLite (aiosqlite):
one class per aggregate over a shared `Database`, and `SQLStore`, the `Store` of the four
parts that `store/base.py` declares (each method is its part's)."""

from __future__ import annotations

from propylon.store.sql.agents import SQLAgents
from propylon.store.sql.batches import SQLBatches
from propylon.store.sql.caches import SQLCaches
from propylon.store.sql.console import SQLConsoleReads
from propylon.store.sql.database import Database
from propylon.store.sql.files import SQLFiles
from propylon.store.sql.idempotency import SQLIdempotencyKeys
from propylon.store.sql.interactions import SQLInteractions
from propylon.store.sql.keys import SQLKeys
from propylon.store.sql.ledger import SQLLedger
from propylon.store.sql.listing import SQLListing
from propylon.store.sql.webhooks import SQLWebhooks
from propylon.store.stores import Stores

__all__ = ["SQLStore", "open_sql_stores"]


class SQLStore(SQLInteractions, SQLKeys, SQLWebhooks, SQLIdempotencyKeys):
    """The interactions, keys, webhooks and idempotency parts over one `Database`, which it
    opens (migrating) and closes."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.db = db

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()


def open_sql_stores(url: str) -> Stores:
    """Every part over the database at `url` (`postgresql://...`, `sqlite:///...`); nothing
    connects until `stores.store.open()`. Raises ValueError for an unsupported URL."""
    db = Database(url)
    return Stores(
        SQLStore(db),
        SQLLedger(db),
        SQLAgents(db),
        SQLCaches(db),
        SQLListing(db),
        SQLConsoleReads(db),
        SQLBatches(db),
        SQLFiles(db),
        url,
    )
