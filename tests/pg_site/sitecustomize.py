"""Test harness only: on the PYTHONPATH of the processes the tests start when
`PROPYLON_TEST_DATABASE=postgresql` (tests/conftest.py). A `propylon` command given
`--data-dir X` and no `--database-url` gets X's PostgreSQL database of this test session as
`PROPYLON_DATABASE_URL`, so `propylon keys create --data-dir X` writes where the server on X
reads."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path


def _database_url() -> None:
    argv = sys.argv
    if not os.environ.get("PROPYLON_TEST_DATABASE_PREFIX") or "--database-url" in argv:
        return
    if "--data-dir" not in argv or argv.index("--data-dir") + 1 >= len(argv):
        return
    spec = importlib.util.spec_from_file_location(
        "_propylon_test_postgres", Path(__file__).parent.parent / "postgres.py"
    )
    assert spec is not None and spec.loader is not None
    postgres = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(postgres)
    os.environ["PROPYLON_DATABASE_URL"] = postgres.database_for(argv[argv.index("--data-dir") + 1])


_database_url()
