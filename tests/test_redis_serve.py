"""Several `propylon serve` processes sharing one PostgreSQL database (a fresh one per module,
tests/postgres.py) and Redis (127.0.0.1:6379, database 13; see tests/test_bus_contract.py):
a stream served by one process follows a run on another live, through Redis; with its pub/sub
connection killed mid-stream, or with Redis not running at all, the stream polls the store and
still ends. Keys' rpm and tpm windows are shared, so a limit holds across processes (and, with
Redis down, each process still counts on its own). And `redis_url` comes from the config file,
`PROPYLON_REDIS_URL` or `--redis-url`.

The keep-alive is long here (30 s): a stream that ends in seconds was not saved by a tick.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from httpx_sse import connect_sse

from tests.conftest import (
    API_KEY_DIGEST,
    Server,
    free_port,
    start_server,
    stop_server,
    wait_for,
)
from tests.postgres import fresh_database

REDIS_URL = "redis://127.0.0.1:6379/13"
RUN_SECONDS = 2.0  # about how long the slow run streams


def _config(redis_url: str) -> str:
    return f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
redis_url = "{redis_url}"
stream_keepalive_seconds = 30

[[models]]
name = "echo"
provider = "echo"

[[models]]
name = "echo-slow"
provider = "echo"
options = {{ delay = 0.05 }}
"""


@contextmanager
def _two_servers(tmp: Path, redis_url: str) -> Iterator[tuple[Server, Server]]:
    """Two serve processes (data dirs of their own) on one fresh database and `redis_url`."""
    with fresh_database() as database:
        first = start_server(tmp / "a", _config(redis_url), tmp / "a.log", database)
        try:
            second = start_server(tmp / "b", _config(redis_url), tmp / "b.log", database)
            try:
                yield first, second
            finally:
                stop_server(second)
        finally:
            stop_server(first)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two servers sharing the database and a running Redis."""
    with _two_servers(tmp_path_factory.mktemp("shared"), REDIS_URL) as servers:
        yield servers


@pytest.fixture(scope="module")
def redis_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two servers sharing the database; their `redis_url` has nothing listening."""
    url = f"redis://127.0.0.1:{free_port()}/13"
    with _two_servers(tmp_path_factory.mktemp("down"), url) as servers:
        yield servers


def _events(http: httpx.Client, method: str, path: str, **options: Any) -> Iterator[dict[str, Any]]:
    """The JSON events of a stream (the closing `[DONE]` left out)."""
    with connect_sse(http, method, path, **options) as source:
        for frame in source.iter_sse():
            if frame.data != "[DONE]":
                yield json.loads(frame.data)


class Created:
    """A streamed create on `server`, read in a thread: its events as they come."""

    def __init__(self, server: Server) -> None:
        self.events: list[dict[str, Any]] = []
        self.ended_at = 0.0
        self._server = server
        self._thread = threading.Thread(target=self._read)
        self._thread.start()

    def _read(self) -> None:
        body = {"model": "echo-slow", "input": "x " * 150, "stream": True}
        with self._server.http() as http:
            for event in _events(http, "POST", "/v1beta/interactions", json=body):
                self.events.append(event)
        self.ended_at = time.monotonic()

    @property
    def id(self) -> str:
        wait_for(lambda: self.events, 30)
        return str(self.events[0]["interaction"]["id"])

    def join(self) -> list[dict[str, Any]]:
        self._thread.join(60)
        assert not self._thread.is_alive()
        return self.events


def _follow_elsewhere(
    run_on: Server, read_on: Server, while_reading: Any = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """A run streamed on `run_on` and, at once, read on `read_on` (GET ?stream=true); calls
    `while_reading(events so far)` after each event read. (The run's events, the reader's,
    seconds from the run's end to the reader's.)"""
    run = Created(run_on)
    got: list[dict[str, Any]] = []
    with read_on.http() as http:
        for event in _events(http, "GET", f"/v1beta/interactions/{run.id}?stream=true"):
            got.append(event)
            if while_reading is not None:
                while_reading(got)
    ended = time.monotonic()
    events = run.join()
    return events, got, ended - run.ended_at


def _kill_bus(server: Server) -> int:
    """`CLIENT KILL TYPE pubsub` for `server`'s pub/sub connection (found by client name)."""
    client = redis.Redis.from_url(REDIS_URL)
    killed = 0
    try:
        for info in client.client_list(_type="pubsub"):
            if info.get("name") == f"propylon-bus-{server.process.pid}":
                killed += client.execute_command("CLIENT KILL TYPE", "pubsub", "ID", info["id"])
    finally:
        client.close()
    return killed


def test_a_stream_follows_a_run_on_another_process(shared: tuple[Server, Server]) -> None:
    a, b = shared
    events, got, lag = _follow_elsewhere(a, b)
    assert len(events) > 30  # the slow run: a delta every 50 ms
    assert [e["event_id"] for e in got] == [e["event_id"] for e in events]
    assert got[-1]["interaction"]["status"] == "completed"
    assert lag < 5  # live through Redis, not at a 30 s keep-alive


def test_a_stream_survives_its_pubsub_connection_killed(shared: tuple[Server, Server]) -> None:
    a, b = shared
    killed: list[int] = []

    def kill_once(got: list[dict[str, Any]]) -> None:
        if len(got) == 5:
            killed.append(_kill_bus(b))

    events, got, lag = _follow_elsewhere(a, b, kill_once)
    assert killed == [1]
    assert [e["event_id"] for e in got] == [e["event_id"] for e in events]  # no gap, no repeat
    assert lag < 5  # polled the store, then live again


def test_with_redis_down_a_stream_polls_the_store_and_ends(
    redis_down: tuple[Server, Server],
) -> None:
    a, b = redis_down
    events, got, lag = _follow_elsewhere(a, b)
    assert [e["event_id"] for e in got] == [e["event_id"] for e in events]
    assert lag < 5


def _new_key(server: Server, rpm: int, *options: str) -> str:
    """The secret of a key with `rpm` (and `options`), made with `propylon keys create` in the
    shared database."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "propylon",
            "keys",
            "create",
            "--tenant",
            "limits",
            "--rpm",
            str(rpm),
            *options,
            "--database-url",
            str(server.database_url),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("api key:")[1].split()[0]


def _create(server: Server, key: str) -> int:
    with server.http(key) as http:
        body = {"model": "echo", "input": "hi"}
        return http.post("/v1beta/interactions", json=body).status_code


def test_rpm_holds_across_processes(shared: tuple[Server, Server]) -> None:
    """A key with rpm 3, its requests spread over two processes: the fourth is refused,
    wherever it lands (each process alone has seen two)."""
    a, b = shared
    key = _new_key(a, 3)
    assert [_create(server, key) for server in (a, b, a)] == [200, 200, 200]
    assert _create(b, key) == 429
    assert _create(a, key) == 429


def test_tpm_holds_across_processes(shared: tuple[Server, Server]) -> None:
    """A key with tpm 5: an echo "hi" counts 3 tokens when it ends; after one run on each
    process (6 tokens) neither admits another, though each alone has counted 3."""
    a, b = shared
    key = _new_key(a, 100, "--tpm", "5")
    assert [_create(a, key), _create(b, key)] == [200, 200]
    assert [_create(a, key), _create(b, key)] == [429, 429]


def test_with_redis_down_each_process_still_counts_rpm(redis_down: tuple[Server, Server]) -> None:
    a, b = redis_down
    key = _new_key(a, 2)
    assert [_create(a, key) for _ in range(3)] == [200, 200, 429]
    assert [_create(b, key) for _ in range(3)] == [200, 200, 429]  # its own window


def test_redis_url_from_the_file_the_environment_or_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from propylon.config import Settings

    config = tmp_path / "propylon.toml"
    config.write_text('redis_url = "redis://127.0.0.1:6379/1"\n')
    assert Settings.load(config).redis_url == "redis://127.0.0.1:6379/1"
    monkeypatch.setenv("PROPYLON_REDIS_URL", "redis://127.0.0.1:6379/2")
    assert Settings.load(config).redis_url == "redis://127.0.0.1:6379/2"
    flag = Settings.load(config, redis_url="redis://127.0.0.1:6379/3")
    assert flag.redis_url == "redis://127.0.0.1:6379/3"
    assert Settings().redis_url == "redis://127.0.0.1:6379/2"
    monkeypatch.delenv("PROPYLON_REDIS_URL")
    assert Settings().redis_url is None  # the default: everything in this process


def test_serve_refuses_a_redis_url_that_is_not_one(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "propylon",
            "serve",
            "--data-dir",
            str(tmp_path),
            "--redis-url",
            "http://127.0.0.1:6379",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "redis_url" in result.stderr and "redis://" in result.stderr
