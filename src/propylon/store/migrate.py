"""Schema migrations with Alembic, run at start-up (or by `propylon migrate`): a new database
and an old one end at head.

Several processes may start at once on one PostgreSQL database: each upgrade runs in one
transaction that first takes a transaction-level advisory lock, so they take turns and the
later ones find the schema at head. On SQLite, the one write transaction does the same.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MIGRATION_LOCK", "sync_url", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key of schema upgrades ("propylon" in ASCII, as a bigint)
MIGRATION_LOCK = 0x70726F70796C6F6E


def sync_url(url: str) -> str:
    """`url` with the blocking driver Alembic runs on: psycopg 3 for PostgreSQL, the stdlib's
    sqlite3 for SQLite (whatever driver, if any, `url` names)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    dialect = scheme.split("+", 1)[0]
    if dialect in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    if dialect == "sqlite":
        return f"sqlite://{rest}"
    raise ValueError(f"unsupported database `{scheme}`: use postgresql:// or sqlite://")


def upgrade(url: str) -> None:
    """Bring the database at SQLAlchemy `url` (`sqlite:////data/propylon.db`,
    `postgresql://user@host:5432/db`) to head. Raises ValueError for another kind of URL."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    engine = create_engine(sync_url(url))
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                connection.execute(lock, {"key": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
