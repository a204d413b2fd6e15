"""Group commit (runner/writer.py): the events of concurrent runs are written together, one
transaction per tick, each log's in order, and none is sent to a reader before its commit.

A foreground create that is not streamed holds its first events (nobody knows its id until it
answers): a quick run is one write of its row, events and end; a longer one shows in the store
once its hold is over; a server stopping writes what it held (the next start recovers it).

The store is held locked by another connection (a real lock on the real database: SQLite's
EXCLUSIVE transaction, PostgreSQL's `LOCK TABLE events IN EXCLUSIVE MODE`) while the runs go
on: no reader may receive an event the store does not hold.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    CONFIG,
    Server,
    one_process_only,
    start_server,
    stop_server,
    wait_for,
)

RUNS = 8
HOLD = 0.5  # seconds the store stays locked while the runs go on


def _read(server: Server, into: list[dict[str, Any]], body: dict[str, Any]) -> None:
    with server.http() as http, http.stream("POST", "/v1beta/interactions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                into.append(json.loads(line[6:]))


def _counters(server: Server) -> dict[str, float]:
    with server.http() as http:
        text = http.get("/metrics").text
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("propylon_log_commit")
    }


@contextlib.contextmanager
def _locked(server: Server) -> Iterator[Any]:
    """A transaction that keeps the server from writing events; yields a function giving the
    highest stored seq of an interaction, read inside it."""
    if server.database_url is None:
        conn = sqlite3.connect(server.database, isolation_level=None, timeout=30)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield lambda i: conn.execute(
                "SELECT coalesce(max(seq), 0) FROM events WHERE interaction_id = ?", (i,)
            ).fetchone()[0]
        finally:
            conn.execute("COMMIT")
            conn.close()
        return
    import psycopg

    with psycopg.connect(server.database_url) as pg:
        pg.execute("LOCK TABLE events IN EXCLUSIVE MODE")
        yield lambda i: pg.execute(
            "SELECT coalesce(max(seq), 0) FROM events WHERE interaction_id = %s", (i,)
        ).fetchone()[0]  # type: ignore[index]


def test_concurrent_runs_share_commits_and_readers_see_only_committed_events(
    server: Server,
) -> None:
    before = _counters(server)
    reads: list[list[dict[str, Any]]] = [[] for _ in range(RUNS)]
    body = {"model": "echo-slow", "input": "word " * 300, "stream": True}
    threads = [threading.Thread(target=_read, args=(server, read, body)) for read in reads]
    for thread in threads:
        thread.start()
    wait_for(lambda: all(len(read) >= 5 for read in reads), 60)
    ids = [read[0]["interaction"]["id"] for read in reads]
    with _locked(server) as stored_seq:
        stored = [stored_seq(i) for i in ids]
        time.sleep(HOLD)  # a window in which the runs go on emitting (not a synchronisation)
        received = [int(read[-1]["event_id"].rpartition(".")[2]) for read in reads]
        for interaction_id, got, kept in zip(ids, received, stored, strict=True):
            assert got <= kept, f"{interaction_id}: event {got} sent, the store has {kept}"
    for thread in threads:
        thread.join(60)
    with server.http() as http:
        for interaction_id, read in zip(ids, reads, strict=True):
            types = [e["event_type"] for e in read]
            assert types.count("interaction.completed") == 1
            assert read[-1]["event_type"] == "interaction.completed"
            replay: list[dict[str, Any]] = []
            with http.stream(
                "GET", f"/v1beta/interactions/{interaction_id}", params={"stream": "true"}
            ) as response:
                replay = [
                    json.loads(line[6:])
                    for line in response.iter_lines()
                    if line.startswith("data: {")
                ]
            assert read == replay  # in order, nothing lost, nothing sent that is not stored
    after = _counters(server)
    commits = after["propylon_log_commits_total"] - before.get("propylon_log_commits_total", 0)
    logs = after["propylon_log_committed_logs_total"] - before.get(
        "propylon_log_committed_logs_total", 0
    )
    events = after["propylon_log_committed_events_total"] - before.get(
        "propylon_log_committed_events_total", 0
    )
    total = sum(len(read) for read in reads)
    assert events >= total
    assert logs / commits > 1.5, f"{logs} log batches in {commits} commits: no group commit"


def _delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after[f"propylon_log_{name}_total"] - before.get(f"propylon_log_{name}_total", 0)


def test_a_quick_foreground_create_is_written_in_one_transaction(server: Server) -> None:
    before = _counters(server)
    with server.http() as http:
        done = http.post("/v1beta/interactions", json={"model": "echo", "input": "hello"}).json()
    after = _counters(server)
    assert done["status"] == "completed"
    stored = server.query("SELECT count(*) FROM events WHERE interaction_id = ?", (done["id"],))
    assert stored[0][0] >= 3  # created, status, ..., completed
    assert _delta(before, after, "committed_logs") == 1  # row, events and end: one batch
    assert _delta(before, after, "committed_events") == stored[0][0]
    row = server.query("SELECT status, last_seq FROM interactions WHERE id = ?", (done["id"],))
    assert row == [("completed", stored[0][0])]


def test_a_longer_foreground_run_shows_in_the_store_once_its_hold_is_over(
    server: Server,
) -> None:
    answer: dict[str, Any] = {}

    def create() -> None:  # echo-idle: 0.3 s per word, far longer than the 1 s hold
        with server.http() as http:
            body = {"model": "echo-idle", "input": "a b c d e f g h i j"}
            answer.update(http.post("/v1beta/interactions", json=body).json())

    running = threading.Thread(target=create)
    running.start()
    shown: list[tuple[object, ...]] = []
    wait_for(
        lambda: (
            shown.extend(server.query("SELECT id FROM interactions WHERE status = 'in_progress'"))
            or shown
        ),
        20,
    )
    running.join(60)
    assert answer["status"] == "completed"
    assert shown[0][0] == answer["id"]  # it was in the store while it ran


@one_process_only
def test_a_stopping_server_writes_the_runs_it_held(upstream: str, tmp_path: Path) -> None:
    config = (
        "foreground_hold_seconds = 60\nshutdown_timeout_seconds = 0.5\n"
        + CONFIG
        + f"""
[[models]]
name = "counted"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "primary"
max_attempts = 1
"""
    )
    data = tmp_path / "held"
    server = start_server(data, config)
    run = uuid.uuid4().hex[:10]

    def create() -> None:  # `hold`: the upstream answers nothing until the run is stopped
        with contextlib.suppress(httpx.HTTPError), server.http() as http:
            body = {"model": "counted", "input": f"id={run} primary=hold"}
            http.post("/v1beta/interactions", json=body)

    waiting = threading.Thread(target=create)
    waiting.start()
    wait_for(lambda: httpx.get(f"{upstream}/calls/{run}").json().get("primary") == 1)
    assert server.rows() == (0, 0)  # held: nobody can know its id yet
    stop_server(server)
    waiting.join(60)
    assert server.rows()[0] == 1  # written when the server stopped, unended
    restarted = start_server(data, config)
    try:
        ((interaction_id, status),) = restarted.query("SELECT id, status FROM interactions")
        assert status == "failed"  # recovered at start-up: it was under way
        with restarted.http() as http:
            ended = http.get(f"/v1beta/interactions/{interaction_id}").json()
        assert [e["code"] for e in ended["errors"]] == ["interrupted"]
    finally:
        stop_server(restarted)
