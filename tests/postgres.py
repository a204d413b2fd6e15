"""PostgreSQL databases for tests, on the local server (127.0.0.1:5432, user `postgres`, trust
auth; `PROPYLON_TEST_POSTGRES` names another): `fresh_database()`, a new one dropped on exit,
and `database_for(data_dir)`, the one database of a data dir under
`PROPYLON_TEST_DATABASE=postgresql` (tests/conftest.py), made on first use. No server: the test
fails saying how to get one.

Imported by the test processes and, through tests/pg_site/sitecustomize.py, by every
`propylon` process they start: no pytest at import time."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psycopg

__all__ = [
    "PREFIX_VARIABLE",
    "SERVER",
    "WORKERS",
    "database_for",
    "drop_databases",
    "fresh_database",
]

SERVER = os.environ.get("PROPYLON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
# the name prefix of this test session's per-data-dir databases
PREFIX_VARIABLE = "PROPYLON_TEST_DATABASE_PREFIX"


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {SERVER} ({exc}); these tests need a local server "
            "with trust auth for user `postgres` (apt-get install postgresql), or set "
            "PROPYLON_TEST_POSTGRES to another server's URL"
        ) from exc


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database; dropped (its connections ended) on exit."""
    name = f"propylon_test_{secrets.token_hex(6)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_for(data_dir: Path | str) -> str:
    """The URL of `data_dir`'s database in this test session (created if missing): every
    process on one data dir (a server, its restart, `propylon keys`) shares it."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:16]
    name = os.environ[PREFIX_VARIABLE] + digest
    with _admin() as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        # another process of this data dir may win the race: its database is the one
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            if found is None:
                admin.execute(f'CREATE DATABASE "{name}"')
    return f"{SERVER}/{name}"


def drop_databases(prefix: str) -> int:
    """Drop every database whose name starts with `prefix`; how many."""
    with _admin() as admin:
        names = [
            row[0]
            for row in admin.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
            )
        ]
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return len(names)


class _Workers(list[subprocess.Popen[bytes]]):
    """Every `propylon worker` the test harness started (tests/conftest.py `start_server`).
    A test that kills its server (a crash) leaves that server's worker running; the session
    stops them all before it drops their databases. Kept here, not in conftest.py, because
    pytest loads conftest.py a second time under another module name."""

    def start(self, command: list[str], stderr: IO[bytes] | None) -> subprocess.Popen[bytes]:
        worker = subprocess.Popen(command, stderr=stderr)
        self.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)


WORKERS = _Workers()
