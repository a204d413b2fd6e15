"""The embedded store: one SQLite file in WAL mode, on the stdlib `sqlite3` driver (one writer
thread, a few reader threads: store/sqlite_connections.py). `SQLiteStore` is the `Store` of
the four parts store/base.py declares, one class each over the shared connections:
interactions and events (sqlite_interactions.py), keys (sqlite_keys.py), webhooks and
deliveries (sqlite_webhooks.py), idempotency keys (sqlite_idempotency.py). The ledger, agents,
batches, listing and console reads run on the same connections (sqlite_ledger.py, ...).
"""

from __future__ import annotations

from pathlib import Path

from propylon.store.base import CreateHook
from propylon.store.sqlite_connections import SQLiteConnections
from propylon.store.sqlite_idempotency import SQLiteIdempotencyKeys
from propylon.store.sqlite_interactions import SQLiteInteractions
from propylon.store.sqlite_keys import SQLiteKeys
from propylon.store.sqlite_webhooks import SQLiteWebhooks

__all__ = ["SQLiteStore"]


class SQLiteStore(
    SQLiteConnections, SQLiteInteractions, SQLiteKeys, SQLiteWebhooks, SQLiteIdempotencyKeys
):
    """Every part over the SQLite file at `path`, on its own connections; call `open()`
    before use (it runs migrations)."""

    def __init__(self, path: Path, readers: int = 2) -> None:
        SQLiteConnections.__init__(self, path, readers)
        self._db = self  # the parts run on these connections
        # the embedded store's jobs are in-process (jobs/local.py): no hook is ever set here
        self.on_create: CreateHook | None = None
