"""Fresh PostgreSQL databases for tests: the local server (127.0.0.1:5432, user `postgres`,
trust auth; `PROPYLON_TEST_POSTGRES` names another), one `propylon_test_<random>` database
per use, dropped afterwards. No server: the test fails saying how to get one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

__all__ = ["SERVER", "fresh_database"]

SERVER = os.environ.get("PROPYLON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432")


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(f"{SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {SERVER} ({exc}); these tests need a local server "
            "with trust auth for user `postgres` (apt-get install postgresql), or set "
            "PROPYLON_TEST_POSTGRES to another server's URL"
        )


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
