"""Test harness: the real server (`python -m propylon serve`) on a free port with a real SQLite
file, driven over HTTP by the google-genai SDK and plain HTTP clients.

`PROPYLON_TEST_DATABASE=postgresql`: the servers (and the `propylon` commands the tests run)
keep their state in PostgreSQL instead: one database per data dir, made on first use and
dropped when the session ends (`postgresql_databases` below)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types

from propylon.providers import embedded
from propylon.store.base import InteractionRecord

API_KEY = "test-key"
API_KEY_DIGEST = hashlib.sha256(API_KEY.encode()).hexdigest()  # as `api_keys` takes it
EMBEDDED = embedded.available()
TEST_DATABASE = os.environ.get("PROPYLON_TEST_DATABASE", "sqlite")
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"PROPYLON_TEST_DATABASE is `sqlite` or `postgresql`, not {TEST_DATABASE!r}")


# A test of the one-process deployment's own behaviour (its in-process queue running the
# background runs, its start-up recovery after a crash): on PostgreSQL the runs are a worker's
# jobs, and tests/test_distributed.py tests their crash and recovery.
one_process_only = pytest.mark.skipif(
    TEST_DATABASE == "postgresql",
    reason="the one-process deployment's queue and recovery (distributed: test_distributed.py)",
)


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    database_url: str | None = None  # None: the SQLite file in `data_dir`
    # On PostgreSQL background runs and webhook deliveries are a `propylon worker`'s jobs.
    worker: subprocess.Popen[bytes] | None = None

    @property
    def database(self) -> Path:
        return self.data_dir / "propylon.db"

    def client(self, **http_options: object) -> genai.Client:
        return genai.Client(
            api_key=API_KEY,
            http_options=types.HttpOptions(base_url=self.url, **http_options),  # type: ignore[arg-type]
        )

    def http(self, key: str = API_KEY) -> httpx.Client:
        """A plain HTTP client of the server sending `key` (default: the configured API_KEY)."""
        return httpx.Client(base_url=self.url, headers={"x-goog-api-key": key}, timeout=60)

    def rows(self) -> tuple[int, int]:
        """(interactions, events) rows in the store, read from the database itself."""
        interactions = self.query("SELECT count(*) FROM interactions")[0][0]
        events = self.query("SELECT count(*) FROM events")[0][0]
        return interactions, events

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """The rows of `sql` (placeholders `?`) run on the server's database itself."""
        if self.database_url is None:
            with contextlib.closing(sqlite3.connect(self.database)) as conn:
                return conn.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql.replace("?", "%s"), params).fetchall()  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
path_prefix = "/gemini"
stream_keepalive_seconds = 0.1
# small, so that fast streams overflow it and exercise the re-read-the-store path
stream_buffer_events = 4
allow_private_network_targets = true
max_tool_rounds = 2

[[models]]
name = "echo"
provider = "echo"
aliases = ["fast"]

[[models]]
name = "echo-slow"
provider = "echo"
options = {{ delay = 0.02 }}

[[models]]
name = "echo-idle"
provider = "echo"
options = {{ delay = 0.3 }}
"""
EMBEDDED_CONFIG = """
[[models]]
name = "gemma-3-270m"
provider = "embedded"
"""


def start_server(
    data_dir: Path, config: str, log: Path | None = None, database_url: str | None = None
) -> Server:
    """Start `propylon serve` and wait until it answers /healthz (or fail after 60 s).
    With `log`, the server's stderr (its log lines) goes to that file. `database_url`: where
    its state is; default: under `PROPYLON_TEST_DATABASE=postgresql` the data dir's database,
    else the SQLite file in `data_dir`."""
    if database_url is None and TEST_DATABASE == "postgresql":
        from tests.postgres import database_for

        database_url = database_for(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    config_file = data_dir / "propylon.toml"
    config_file.write_text(config)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "propylon",
            "serve",
            "--port",
            str(port),
            "--config",
            str(config_file),
            "--data-dir",
            str(data_dir),
            *(["--database-url", database_url] if database_url else []),
        ],
        stderr=log.open("ab") if log else None,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("propylon serve did not start")
        time.sleep(0.05)
    worker = None
    if database_url is not None and database_url.startswith("postgres"):
        from tests.postgres import WORKERS

        worker = WORKERS.start(
            [
                sys.executable,
                "-m",
                "propylon",
                "worker",
                "--config",
                str(config_file),
                "--data-dir",
                str(data_dir),
                "--database-url",
                database_url,
            ],
            stderr=log.open("ab") if log else None,
        )
    return Server(
        url=url, data_dir=data_dir, process=process, database_url=database_url, worker=worker
    )


def stop_server(server: Server) -> None:
    for process in (server.process, server.worker):
        if process is None:
            continue
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session", autouse=True)
def postgresql_databases() -> Iterator[None]:
    """Under `PROPYLON_TEST_DATABASE=postgresql`: each data dir's processes get a database of
    their own (tests/postgres.py `database_for`, through tests/pg_site/sitecustomize.py);
    every one is dropped when the session ends."""
    if TEST_DATABASE != "postgresql":
        yield
        return
    from tests.postgres import PREFIX_VARIABLE, WORKERS, drop_databases

    prefix = f"propylon_test_{uuid.uuid4().hex[:8]}_"
    site = str(Path(__file__).with_name("pg_site"))
    saved = {name: os.environ.get(name) for name in (PREFIX_VARIABLE, "PYTHONPATH")}
    os.environ[PREFIX_VARIABLE] = prefix
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, saved["PYTHONPATH"]]))
    try:
        yield
    finally:
        WORKERS.stop_all()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        drop_databases(prefix)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = CONFIG + (EMBEDDED_CONFIG if EMBEDDED else "")
    running = start_server(tmp_path_factory.mktemp("propylon"), config)
    yield running
    stop_server(running)


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the helper server did not start")
        time.sleep(0.05)


def wait_for(condition: Callable[[], object], seconds: float = 30) -> None:
    """Poll `condition` until it holds; fail the test after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


@contextmanager
def helper(script: str, *args: str, kill: bool = False) -> Iterator[str]:
    """Run `tests/<script> PORT *args` (a test peer: upstream, receiver, MCP server) on a free
    loopback port; yield its base URL. `kill`: stop it at once rather than gracefully."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name(script)), str(port), *args]
    )
    wait_for_port(port, process)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        if kill:
            process.kill()
        else:
            process.terminate()
        process.wait(timeout=20)


FIXTURES = Path(__file__).parent / "fixtures" / "gemini"


def replay_model(replay: str) -> str:
    """Config of the `gemini-replay` model: provider `gemini` at the replay's URL `replay`."""
    return f"""
[[models]]
name = "gemini-replay"
[[models.targets]]
provider = "gemini"
base_url = "{replay}"
model = "gemini-2.5-flash"
max_attempts = 1
"""


def url_citations(grounding: dict[str, Any]) -> list[dict[str, Any]]:
    """The `url_citation` annotations a recorded Gemini `groundingMetadata` should give: one
    per (support, chunk index), in the recorded order."""
    sources = grounding["groundingChunks"]
    return [
        {
            "type": "url_citation",
            "url": sources[index]["web"]["uri"],
            "title": sources[index]["web"]["title"],
            "start_index": support["segment"].get("startIndex", 0),
            "end_index": support["segment"]["endIndex"],
        }
        for support in grounding["groundingSupports"]
        for index in support["groundingChunkIndices"]
    ]


@pytest.fixture(scope="module")
def replay() -> Iterator[str]:
    """The URL of tests/gemini_replay.py answering the recorded bodies under FIXTURES."""
    with helper("gemini_replay.py", str(FIXTURES), kill=True) as url:
        yield url


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """The fault-injecting OpenAI-compatible upstream (tests/fault_upstream.py), per module."""
    with helper("fault_upstream.py") as url:
        yield url


def propylon_cli(data_dir: Path, *args: str) -> str:
    """The stdout of `propylon *args --data-dir data_dir`; fails the test on a non-zero exit."""
    result = subprocess.run(
        [sys.executable, "-m", "propylon", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def create_key(data_dir: Path, *args: str) -> tuple[str, str]:
    """(key id, secret) of a key made with `propylon keys create *args`."""
    out = propylon_cli(data_dir, "keys", "create", *args)
    key_id = re.search(r"key id:\s+(\S+)", out)
    secret = re.search(r"api key:\s+(\S+)", out)
    assert key_id is not None and secret is not None, out
    return key_id.group(1), secret.group(1)


def new_key(data_dir: Path, *args: str) -> str:
    """The secret of a key made with `propylon keys create --tenant acme *args`."""
    return create_key(data_dir, "--tenant", "acme", *args)[1]


@pytest.fixture(scope="session")
def mcp_url() -> Iterator[str]:
    """A real MCP server (tests/mcp_server.py) on loopback; it needs `x-test-token: secret`."""
    with helper("mcp_server.py") as url:
        yield f"{url}/mcp"


@pytest.fixture(scope="session")
def client(server: Server) -> genai.Client:
    return server.client()


def new_record(interaction_id: str, model: str = "m") -> InteractionRecord:
    """A new interaction's record, running, for a log of its own."""
    return InteractionRecord(
        id=interaction_id,
        status="in_progress",
        created="2026-01-01T00:00:00Z",
        updated="2026-01-01T00:00:00Z",
        request={"model": model},
        input="hi",
        input_steps=[],
    )
