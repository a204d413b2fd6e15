"""The connections every part of the SQLAlchemy store shares: `Database`.

SQLAlchemy Core, async, on two dialects:
- `postgresql+psycopg` (psycopg 3): one pooled engine; each write is one transaction, and
  several processes may share the database (what must be serialised across them takes a
  transaction-level advisory lock, see `advisory_lock`). A connection the server dropped is
  found at its first use and the call runs once more on a new one (no ping before each use:
  that would be a round trip per call).
- `sqlite+aiosqlite`: one writer connection, its transactions begun `BEGIN IMMEDIATE` and
  serialised by an asyncio lock (SQLite allows one writer; waiting here costs nothing), and
  a small pool of readers (WAL lets them read while the writer writes).
Either way a write that fails, its COMMIT included, is rolled back.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from propylon.store import migrate

__all__ = ["Database", "async_url"]

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]


def async_url(url: str) -> str:
    """`url` with the asyncio driver this store runs on: psycopg 3 for PostgreSQL, aiosqlite
    for SQLite. Raises ValueError for another kind of database, or PostgreSQL without its
    driver installed."""
    sync = migrate.sync_url(url)
    if sync.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + sync.removeprefix("sqlite://")
    if importlib.util.find_spec("psycopg") is None:
        raise ValueError(
            "a PostgreSQL `database_url` needs the `distributed` extra "
            "(pip install 'propylon[distributed]')"
        )
    return sync  # postgresql+psycopg: one driver for both


class Database:
    """The engine(s) over the database at `url`; call `open()` (it migrates) before use."""

    def __init__(self, url: str, readers: int = 2, pool_size: int = 10) -> None:
        self.url = url
        self._async_url = async_url(url)
        name = make_url(self._async_url).get_backend_name()
        self.dialect: Dialect = "sqlite" if name == "sqlite" else "postgresql"
        self._readers = readers
        self._pool_size = pool_size
        self._writer: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._write_lock = asyncio.Lock()

    @property
    def sqlite(self) -> bool:
        """True on SQLite (where some SQL differs, see the parts)."""
        return self.dialect == "sqlite"

    async def open(self) -> None:
        """Migrate the schema to head (several processes may do so at once), then connect."""
        if self.sqlite:
            path = make_url(self._async_url).database
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(migrate.upgrade, self.url)
        if self.sqlite:
            self._writer = _sqlite_engine(self._async_url, 1, "BEGIN IMMEDIATE", wal=True)
            self._reader = _sqlite_engine(self._async_url, self._readers, None)
            async with self._writer.connect():  # the writer's first connection sets WAL
                pass
        else:
            self._writer = create_async_engine(
                self._async_url,
                pool_size=self._pool_size,
                max_overflow=self._pool_size,
            )
            # reads share the pool, without BEGIN / ROLLBACK round trips
            self._reader = self._writer.execution_options(isolation_level="AUTOCOMMIT")

    async def write(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `fn` in one write transaction and commit; any failure rolls it back."""
        if self._writer is None:
            raise RuntimeError("the database is not open")
        if self.sqlite:
            async with self._write_lock, self._writer.begin() as conn:
                return await fn(conn)
        writer = self._writer
        for attempt in (1, 2):
            committing = False
            try:
                async with writer.connect() as conn:
                    async with conn.begin():
                        result = await fn(conn)
                        committing = True
                    return result
            except DBAPIError as exc:
                # A pooled connection the server dropped (a restart, pg_terminate_backend)
                # fails at its first use and nothing was written: once more, on a new one.
                # Not when the COMMIT itself failed: the write may have happened.
                if attempt == 2 or committing or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def read(self, fn: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run `fn`'s reads, each statement on its own snapshot (as the embedded store's
        readers do): no transaction, so no BEGIN and ROLLBACK round trips."""
        if self._reader is None:
            raise RuntimeError("the database is not open")
        for attempt in (1, 2):
            try:
                async with self._reader.connect() as conn:
                    return await fn(conn)
            except DBAPIError as exc:  # a dropped connection (see `write`): reads are safe
                if attempt == 2 or self.sqlite or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    async def advisory_lock(self, conn: AsyncConnection, key: int) -> None:
        """Serialise this transaction with every other one that takes `key` (any process),
        until it ends: PostgreSQL's `pg_advisory_xact_lock`. On SQLite the write transaction
        already excludes every other writer."""
        if not self.sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})

    def json_text(self, column: str, key: str) -> str:
        """SQL of the text of `column`'s (a JSON text column) top-level `key`. `key` is a
        constant of the code, never input."""
        if self.sqlite:
            return f"json_extract({column}, '$.{key}')"
        return f"({column}::jsonb ->> '{key}')"

    async def close(self) -> None:
        """Close every connection."""
        for engine in (self._writer, self._reader):  # the reader may share the writer's pool
            if engine is not None:
                await engine.dispose()
        self._writer = self._reader = None


def _sqlite_engine(url: str, size: int, begin: str | None, wal: bool = False) -> AsyncEngine:
    """An aiosqlite engine of `size` connections whose transactions start with `begin` (None:
    no transaction, each statement commits by itself: the readers). `wal`:
    its connections switch the file to WAL (the writer's: WAL is the file's, set by the one
    writer, see store/sqlite.py)."""
    engine = create_async_engine(url, pool_size=size, max_overflow=0, pool_timeout=60)

    @event.listens_for(engine.sync_engine, "connect")
    def configure(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # no implicit BEGIN: ours, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    if begin is not None:

        @event.listens_for(engine.sync_engine, "begin")
        def start(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    return engine
