"""The connections of the embedded store: one SQLite file in WAL mode.

The stdlib `sqlite3` driver runs on threads: one writer (SQLite allows one at a time, so
a single thread serialises writes without lock contention) and a small pool of readers (WAL
lets them read while the writer writes). Each call is one hop to a thread and one transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from propylon.store import migrate

__all__ = ["SQLiteConnections"]

T = TypeVar("T")

_CHECKPOINT_PAGES = 4000


class SQLiteConnections:
    """The writer and reader connections to the SQLite file at `path`, which every part of
    the embedded store shares; call `open()` before use (it runs migrations)."""

    def __init__(self, path: Path, readers: int = 2) -> None:
        self.path = path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

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
            # checkpoint every 4000 pages (16 MB of WAL, not SQLite's 1000): a page written
            # by many commits (the tail of an index) is copied back once per checkpoint, so
            # fewer checkpoints copy fewer pages; durability is unchanged (a checkpoint only
            # moves committed pages into the database file)
            conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_PAGES}")
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

    async def close(self) -> None:
        """Release connections and threads."""
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
