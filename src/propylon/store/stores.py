"""The store's parts over one database, chosen by the settings: `open_stores`.

With no `database_url`: the embedded SQLite file `<data_dir>/propylon.db` on the stdlib
`sqlite3` driver (store/sqlite*.py), as before. With one: SQLAlchemy Core, async
(store/sql/), on PostgreSQL (psycopg 3) or SQLite (aiosqlite).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from propylon.store.agents import AgentStore
from propylon.store.base import LedgerStore, Store
from propylon.store.batches import BatchStore
from propylon.store.caches import CacheStore
from propylon.store.console import ConsoleReads
from propylon.store.files import FileStore
from propylon.store.listing import InteractionListing

__all__ = ["Stores", "open_stores"]


@dataclass(frozen=True, slots=True)
class Stores:
    """Every part of one database. `store` holds interactions and events, keys, webhooks and
    deliveries, and idempotency keys (one Protocol each, see store/base.py); it opens
    (migrates) and closes the connections all parts share. The others have their own
    Protocols (store/agents.py, batches.py, ...)."""

    store: Store
    ledger: LedgerStore
    agents: AgentStore
    caches: CacheStore
    listing: InteractionListing
    console: ConsoleReads
    batches: BatchStore
    files: FileStore
    url: str  # the database, for messages (no password)


def open_stores(database_url: str | None, database_path: Path) -> Stores:
    """The parts over `database_url`, or (None) over the SQLite file `database_path`. Nothing
    connects until `stores.store.open()`. Raises ValueError for an unsupported URL."""
    if database_url is None:
        from propylon.store.sqlite import SQLiteStore
        from propylon.store.sqlite_agents import SQLiteAgentStore
        from propylon.store.sqlite_batches import SQLiteBatchStore
        from propylon.store.sqlite_caches import SQLiteCacheStore
        from propylon.store.sqlite_console import SQLiteConsoleReads
        from propylon.store.sqlite_files import SQLiteFileStore
        from propylon.store.sqlite_ledger import SQLiteLedgerStore
        from propylon.store.sqlite_listing import SQLiteListingStore

        store = SQLiteStore(database_path)
        return Stores(
            store,
            SQLiteLedgerStore(store),
            SQLiteAgentStore(store),
            SQLiteCacheStore(store),
            SQLiteListingStore(store),
            SQLiteConsoleReads(store),
            SQLiteBatchStore(store),
            SQLiteFileStore(store),
            f"sqlite:///{database_path}",
        )
    from propylon.store.sql import open_sql_stores

    return open_sql_stores(database_url)
