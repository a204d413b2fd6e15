"""Schema migrations with Alembic, run at start-up: a new data dir and an old one end at head."""

from __future__ import annotations

from pathlib import Path

__all__ = ["upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")


def upgrade(url: str) -> None:
    """Bring the database at SQLAlchemy `url` (e.g. `sqlite:////data/propylon.db`) to head."""
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        engine.dispose()
