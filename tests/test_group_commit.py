"""Group commit (runner/writer.py): the events of concurrent runs are written together, one
transaction per tick, each log's in order, and none is sent to a reader before its commit.

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
from collections.abc import Iterator
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Server, wait_for

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
