"""Streams end, and runs end, whatever happens to their log: a write that fails, a cancel that
races the end of a run, a server that stops with streams open (issue 12)."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import CONFIG, Server, start_server, stop_server, wait_for

# A stream that hangs sends a keep-alive every 0.1 s (the test config) forever; one that ends
# at its first keep-alive tick sends none. One tick of slack for a loaded machine.
KEEPALIVE_SLACK = 2
DEADLINE = 15.0  # seconds: generous, a hanging stream never ends


def _config(upstream: str) -> str:
    return (
        CONFIG
        + f"""
[[models]]
name = "faulty"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "primary"
max_attempts = 1
"""
    )


@pytest.fixture(scope="module")
def server(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("hardening"), _config(upstream))
    yield running
    stop_server(running)


@pytest.fixture()
def http(server: Server) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


@dataclass
class Stream:
    """What a client read from one SSE response."""

    status: int
    events: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)  # each event's SSE `id:` field
    keepalives_after_last_event: int = 0
    done: bool = False  # `data: [DONE]` arrived
    ended: bool = False  # the server closed the response before the deadline
    body: Any = None  # a non-stream answer's JSON

    @property
    def types(self) -> list[str]:
        return [e["event_type"] for e in self.events]


def error_code(event: dict[str, Any]) -> str:
    """The code of an SSE `error` event, which carries the Interactions error object."""
    assert event["event_type"] == "error"
    error = event["error"]
    assert set(error) == {"code", "message"} and error["message"], event
    assert isinstance(error["code"], str), event  # a string naming the error type
    return str(error["code"])


def read_stream(
    http: httpx.Client,
    method: str,
    url: str,
    deadline: float = DEADLINE,
    read: Stream | None = None,
    **kwargs: Any,
) -> Stream:
    """Read an SSE response until the server closes it or `deadline` seconds pass (the frames
    are one-line `event:`, `id:`, `data:` fields; comments are keep-alives). `read`: the
    object to fill as frames arrive (another thread may watch it)."""
    end = time.monotonic() + deadline
    with http.stream(method, url, timeout=deadline, **kwargs) as response:
        read = read or Stream(0)
        read.status = response.status_code
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            response.read()
            read.body = response.json()
            read.ended = True
            return read
        event_id: str | None = None
        for line in response.iter_lines():
            if line.startswith(":"):
                read.keepalives_after_last_event += 1
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line == "data: [DONE]":
                read.done = True
            elif line.startswith("data: "):
                read.events.append(json.loads(line[6:]))
                read.ids.append(event_id)
                event_id = None
                read.keepalives_after_last_event = 0
            if time.monotonic() > end:
                return read
        read.ended = True
        return read


def assert_ended_promptly(read: Stream) -> None:
    assert read.ended, f"the stream did not end within {DEADLINE} s: {read.types}"
    assert read.done
    assert read.keepalives_after_last_event <= KEEPALIVE_SLACK, read.keepalives_after_last_event


def _script(step: str) -> str:
    return f"id={uuid.uuid4().hex[:10]} primary={step}"


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"k": value}
    return value


# --- streams that never end ------------------------------------------------------------------


def test_last_event_id_ahead_of_a_running_log_is_400(http: httpx.Client) -> None:
    created = http.post(
        "/v1beta/interactions",
        json={"model": "echo-idle", "input": "a slow answer " * 4, "background": True},
    ).json()
    ahead = f"{created['id']}.9999"
    assert http.get(f"/v1beta/interactions/{created['id']}").json()["status"] == "in_progress"
    read = read_stream(
        http,
        "GET",
        f"/v1beta/interactions/{created['id']}",
        params={"stream": "true", "last_event_id": ahead},
    )
    assert read.status == 400, read.types
    assert read.body["error"]["code"] == "invalid_request"
    wait_for(
        lambda: http.get(f"/v1beta/interactions/{created['id']}").json()["status"] == "completed"
    )
    after = http.get(
        f"/v1beta/interactions/{created['id']}", params={"stream": "true", "last_event_id": ahead}
    )
    assert after.status_code == 400


def test_stream_create_whose_request_cannot_be_stored_ends(http: httpx.Client) -> None:
    body = {
        "model": "echo",
        "input": "deep",
        "stream": True,
        "webhook_config": {"user_metadata": _deep(300)},
    }
    read = read_stream(http, "POST", "/v1beta/interactions", json=body)
    if read.status == 400:  # a nesting limit at the HTTP edge refused it first: also right
        assert read.body["error"]["code"] == "invalid_request"
        return
    assert read.status == 200
    assert_ended_promptly(read)
    assert read.types[-1] == "error"
    assert error_code(read.events[-1]) == "api_error"
    assert "interaction.completed" not in read.types


def test_create_whose_request_cannot_be_stored_answers_a_clean_error(http: httpx.Client) -> None:
    before = http.get("/healthz").status_code
    response = http.post(
        "/v1beta/interactions",
        json={"model": "echo", "input": "deep", "webhook_config": {"user_metadata": _deep(300)}},
    )
    assert before == 200
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_upstream_token_count_past_64_bits_fails_the_run_and_ends_its_streams(
    http: httpx.Client,
) -> None:
    body = {"model": "faulty", "input": _script("huge"), "stream": True}
    read = read_stream(http, "POST", "/v1beta/interactions", json=body)
    assert_ended_promptly(read)
    assert read.types.count("interaction.completed") == 1
    assert read.types[-2:] == ["error", "interaction.completed"]
    assert error_code(read.events[-2]) == "api_error"
    assert read.events[-1]["interaction"]["status"] == "failed"
    interaction_id = read.events[0]["interaction"]["id"]
    got = http.get(f"/v1beta/interactions/{interaction_id}").json()
    assert got["status"] == "failed"
    assert got["errors"] and got["errors"][-1]["code"] == "api_error"
    again = read_stream(
        http, "GET", f"/v1beta/interactions/{interaction_id}", params={"stream": "true"}
    )
    assert_ended_promptly(again)
    assert again.types == read.types
    plain = http.post("/v1beta/interactions", json={"model": "faulty", "input": _script("huge")})
    assert plain.status_code == 200
    assert plain.json()["status"] == "failed"


def test_a_log_that_fails_its_group_commit_fails_alone(server: Server) -> None:
    """Events that cannot be stored (a token count past 64 bits) fail the group commit they are
    in: the other runs of that transaction are written alone and go on whole; the failing log
    ends `failed`; and no reader was sent an event that is not stored (each live stream equals
    the stored log's replay, in order)."""
    bodies = [{"model": "echo-slow", "input": "word " * 40, "stream": True} for _ in range(6)]
    bodies.insert(3, {"model": "faulty", "input": _script("huge"), "stream": True})
    reads = [Stream(0) for _ in bodies]
    threads = [
        threading.Thread(
            target=read_stream,
            args=(server.http(), "POST", "/v1beta/interactions"),
            kwargs={"json": body, "read": read},
        )
        for body, read in zip(bodies, reads, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE + 5)
    with server.http() as http:
        for body, read in zip(bodies, reads, strict=True):
            assert_ended_promptly(read)
            assert read.types.count("interaction.completed") == 1
            status = read.events[-1]["interaction"]["status"]
            assert status == ("failed" if body["model"] == "faulty" else "completed")
            interaction_id = read.events[0]["interaction"]["id"]
            seqs = [int(i.rpartition(".")[2]) for i in read.ids if i]
            assert seqs == list(range(1, len(seqs) + 1))  # each log in order, no gap
            again = read_stream(
                http, "GET", f"/v1beta/interactions/{interaction_id}", params={"stream": "true"}
            )
            assert again.events == read.events  # nothing was sent that is not stored


def test_a_run_whose_row_vanishes_ends_its_readers(server: Server, http: httpx.Client) -> None:
    created = http.post(
        "/v1beta/interactions",
        json={"model": "echo-idle", "input": "a slow answer " * 8, "background": True},
    ).json()
    reader: list[Stream] = []
    thread = threading.Thread(
        target=lambda: reader.append(
            read_stream(
                server.http(),
                "GET",
                f"/v1beta/interactions/{created['id']}",
                params={"stream": "true"},
            )
        )
    )
    thread.start()
    wait_for(lambda: len(http.get(f"/v1beta/interactions/{created['id']}").json()["steps"]) > 1)
    # Another writer on the same file (a purge, a second process) removes the row mid-run:
    # nothing the run appends can be stored any more, not even its terminal event.
    with sqlite3.connect(server.database, timeout=30) as conn:
        conn.execute("DELETE FROM events WHERE interaction_id = ?", (created["id"],))
        conn.execute("DELETE FROM interactions WHERE id = ?", (created["id"],))
    thread.join(DEADLINE + 5)
    assert reader, "the reader did not end"
    assert_ended_promptly(reader[0])
    assert reader[0].types[-1] == "error"
    assert error_code(reader[0].events[-1]) in ("api_error", "not_found")


# --- review findings -------------------------------------------------------------------------


def test_cancels_racing_the_end_of_background_runs(http: httpx.Client, server: Server) -> None:
    runs, racers = 24, 4
    statuses: list[int] = []
    ids: list[str] = []
    lock = threading.Lock()

    def output(got: dict[str, Any]) -> str:
        return "".join(
            item.get("text", "") for step in got["steps"][1:] for item in step.get("content") or []
        )

    def one(index: int) -> None:
        with server.http() as own:
            created = own.post(
                "/v1beta/interactions",
                json={"model": "echo-idle", "input": "x" * 34, "background": True},
            ).json()
            with lock:
                ids.append(created["id"])
            # "user: " + 34 characters: five deltas, 0.3 s apart. Cancel once the second,
            # third, fourth or last one is stored: while the run goes on, while it ends (a
            # cancel lands while the first cancel's terminal event is written), or after.
            threshold = (16, 24, 32, 40)[index % 4]
            path = f"/v1beta/interactions/{created['id']}"
            while True:
                got = own.get(path).json()
                if len(output(got)) >= threshold or got["status"] != "in_progress":
                    break

        def cancel() -> None:
            with server.http() as mine:
                status = mine.post(f"/v1beta/interactions/{created['id']}/cancel").status_code
            with lock:
                statuses.append(status)

        cancels = [threading.Thread(target=cancel) for _ in range(racers)]
        for thread in cancels:
            thread.start()
        for thread in cancels:
            thread.join(60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(ids) == runs
    assert len(statuses) == runs * racers
    assert all(status in (200, 400) for status in statuses), statuses
    for interaction_id in ids:
        path = f"/v1beta/interactions/{interaction_id}"
        wait_for(lambda p=path: http.get(p).json()["status"] in ("completed", "cancelled"))
        read = read_stream(http, "GET", path, params={"stream": "true"})
        assert read.types.count("interaction.completed") == 1, read.types
        assert read.types[-1] == "interaction.completed"
        seqs = [int(e["event_id"].rpartition(".")[2]) for e in read.events]
        assert seqs == list(range(1, len(seqs) + 1))


def test_shutdown_during_a_tool_call_is_not_a_user_cancel(tmp_path: Path, mcp_url: str) -> None:
    # The MCP client re-raises cancellation with a message of its own (an anyio cancel scope):
    # the run must still be recognised as stopped by the shutdown, then recovered at restart.
    data = tmp_path / "stop"
    server = start_server(data, CONFIG)
    tool = {
        "type": "mcp_server",
        "name": "calc",
        "url": mcp_url,
        "headers": {"x-test-token": "secret"},
    }
    try:
        with server.http() as http:
            created = http.post(
                "/v1beta/interactions",
                json={
                    "model": "echo",
                    "input": 'call wait {"seconds": 60}',
                    "tools": [tool],
                    "background": True,
                },
            ).json()
            wait_for(
                lambda: any(
                    s["type"] == "mcp_server_tool_call"
                    for s in http.get(f"/v1beta/interactions/{created['id']}").json()["steps"]
                )
            )
    finally:
        stop_server(server)
    restarted = start_server(data, CONFIG)
    try:
        with restarted.http() as http:
            got = http.get(f"/v1beta/interactions/{created['id']}").json()
        assert got["status"] == "failed", got["status"]
        assert got["errors"][-1]["code"] == "interrupted"
    finally:
        stop_server(restarted)


def test_sigterm_ends_open_streams_resumably_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "term"
    server = start_server(data, CONFIG)
    restarted: Server | None = None
    try:
        with server.http() as http:
            created = http.post(
                "/v1beta/interactions",
                json={"model": "echo-idle", "input": "a long answer " * 200, "background": True},
            ).json()
        path = f"/v1beta/interactions/{created['id']}"
        read = Stream(0)
        thread = threading.Thread(
            target=lambda: read_stream(
                server.http(), "GET", path, deadline=60, read=read, params={"stream": "true"}
            )
        )
        thread.start()
        wait_for(lambda: len(read.events) >= 4)
        sent = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)
        exited = time.monotonic() - sent
        thread.join(DEADLINE)
        assert exited < 20, exited  # the default shutdown_timeout_seconds is 10
        assert read.ended and read.done, read.types
        assert read.types[-1] == "error"
        assert error_code(read.events[-1]) == "service_unavailable"
        resume_from = read.events[-1]["event_id"]
        assert read.ids[-1] == resume_from
        assert resume_from == read.events[-2]["event_id"]  # the last event it did send
        restarted = start_server(data, CONFIG)
        with restarted.http() as http:
            rest = read_stream(
                http, "GET", path, params={"stream": "true", "last_event_id": resume_from}
            )
        assert_ended_promptly(rest)
        seqs = [int(e["event_id"].rpartition(".")[2]) for e in read.events[:-1] + rest.events]
        assert seqs == list(range(1, len(seqs) + 1))
        assert rest.types[-1] == "interaction.completed"
    finally:
        if server.process.poll() is None:
            server.process.kill()
        if restarted is not None:
            stop_server(restarted)


def test_fallback_call_ids_are_unique_across_turns(http: httpx.Client) -> None:
    weather = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    first = http.post(
        "/v1beta/interactions",
        json={"model": "faulty", "input": _script("call"), "tools": [weather]},
    ).json()
    assert first["status"] == "requires_action"
    call = next(s for s in first["steps"] if s["type"] == "function_call")
    second = http.post(
        "/v1beta/interactions",
        json={
            "model": "faulty",
            "previous_interaction_id": first["id"],
            "tools": [weather],
            "input": [
                {
                    "type": "function_result",
                    "call_id": call["id"],
                    "name": "get_weather",
                    "result": _script("call"),  # the upstream reads its script here
                }
            ],
        },
    ).json()
    assert second["status"] == "requires_action", second
    again = next(s for s in second["steps"] if s["type"] == "function_call")
    assert again["id"] != call["id"]
