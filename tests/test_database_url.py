"""`--database-url`: `propylon migrate` run by several processes at once on one fresh
PostgreSQL database, and the state commands (`keys`, `export`, `import`, `purge`) acting on
that database rather than the data dir's SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg

from tests.postgres import fresh_database


def _propylon(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "propylon", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_processes_migrating_at_once_all_succeed_and_the_schema_is_at_head(
    tmp_path: Path,
) -> None:
    with fresh_database() as url:
        command = [sys.executable, "-m", "propylon", "migrate", "--database-url", url]
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        for process in processes:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert "migrated postgresql://postgres@127.0.0.1:5432/" in out
        with psycopg.connect(url) as conn:
            (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchall()
            columns = conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE (table_name, column_name) IN (('interactions', 'run_epoch'), "
                "('ledger', 'owner'), ('files', 'sha256')) ORDER BY table_name"
            ).fetchall()
        assert version == ("0017",)
        assert columns == [("files", "sha256"), ("interactions", "run_epoch"), ("ledger", "owner")]
    assert not (tmp_path / "data").exists()


def test_state_commands_act_on_the_database_url(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with fresh_database() as url:
        made = _propylon("keys", "create", "--tenant", "acme", "--database-url", url, data_dir=data)
        assert made.returncode == 0, made.stderr
        key_id = made.stdout.split()[2]
        listed = _propylon("keys", "list", "--database-url", url, data_dir=data)
        assert key_id in listed.stdout
        assert not (data / "propylon.db").exists()  # nothing went to the SQLite file
        # an interaction exported from one database and imported into this one
        source = tmp_path / "acme.jsonl"
        source.write_text(
            '{"record": {"id": "v1_old", "status": "completed", "created": '
            '"2020-01-01T00:00:00Z", "updated": "2020-01-01T00:00:00Z", "request": '
            '{"model": "echo"}, "input": "hi", "input_steps": [], "tenant": "acme"}, '
            '"events": [[1, "interaction.created", {}]]}\n'
        )
        imported = _propylon("import", str(source), "--database-url", url, data_dir=data)
        assert "imported 1 interactions" in imported.stdout, imported.stderr
        exported = _propylon("export", "--tenant", "acme", "--database-url", url, data_dir=data)
        assert '"id":"v1_old"' in exported.stdout and '"run_epoch":0' in exported.stdout
        data.mkdir()
        (data / "propylon.toml").write_text("[tenants.acme]\nretention_days = 30\n")
        purged = _propylon(
            "purge", "--config", str(data / "propylon.toml"), "--database-url", url, data_dir=data
        )
        assert "purged 1 interactions" in purged.stdout, purged.stderr
        revoked = _propylon("keys", "revoke", key_id, "--database-url", url, data_dir=data)
        assert revoked.returncode == 0, revoked.stderr
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM interactions").fetchone() == (0,)
            revoked_at = conn.execute("SELECT revoked FROM api_keys").fetchone()
        assert revoked_at is not None and revoked_at[0] is not None
        assert not (data / "propylon.db").exists()
