"""Background interactions: a worker pool, cancel, recovery after SIGKILL with exactly-once
upstream calls for finished runs, and Idempotency-Key under concurrent duplicates."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import (
    CONFIG,
    Server,
    one_process_only,
    start_server,
    stop_server,
    wait_for,
)

TERMINAL = {"completed", "failed", "cancelled", "incomplete", "requires_action", "budget_exceeded"}


def _status(client: genai.Client, interaction_id: str) -> str:
    return str(client.interactions.get(interaction_id).status)


def _config(upstream: str, workers: int, window: float = 60) -> str:
    return (
        f"""
background_workers = {workers}
idempotency_window_seconds = {window}
"""
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


@pytest.fixture(scope="module")
def server(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("background"), _config(upstream, 8))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: Server) -> genai.Client:
    return server.client()


def _calls(upstream: str, run: str) -> int:
    return int(httpx.get(f"{upstream}/calls/{run}").json().get("primary", 0))


def test_twenty_concurrent_background_creates_all_complete(client: genai.Client) -> None:
    created: list[Any] = [None] * 20

    def create(index: int) -> None:
        created[index] = client.interactions.create(
            model="echo-idle", input=f"job {index}", background=True
        )

    threads = [threading.Thread(target=create, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert {c.status for c in created} <= {"in_progress", "queued"}
    assert "queued" in {c.status for c in created}  # 8 workers for 20 runs
    wait_for(lambda: all(_status(client, c.id) == "completed" for c in created), 60)
    for index, interaction in enumerate(created):
        assert client.interactions.get(interaction.id).output_text == f"user: job {index}"


def test_cancel_mid_run(client: genai.Client) -> None:
    running = client.interactions.create(
        model="echo-idle", input="a long answer " * 5, background=True
    )
    wait_for(lambda: bool(client.interactions.get(running.id).steps[1:]))  # output started
    cancelled = client.interactions.cancel(running.id)
    assert cancelled.status == "cancelled"
    assert client.interactions.cancel(running.id).status == "cancelled"  # same answer again
    events = list(client.interactions.get(running.id, stream=True))
    assert [e.event_type for e in events].count("interaction.completed") == 1
    assert events[-1].interaction.status == "cancelled"
    finished = client.interactions.create(model="echo", input="done", background=True)
    wait_for(lambda: _status(client, finished.id) == "completed")
    foreground = client.interactions.create(model="echo", input="fg")
    for interaction_id in (finished.id, foreground.id):
        with pytest.raises(errors.BadRequestError) as caught:
            client.interactions.cancel(interaction_id)
        assert caught.value.body["error"]["code"] == "failed_precondition"


def test_cancel_while_queued(upstream: str, tmp_path: Path) -> None:
    server = start_server(tmp_path / "one-worker", _config(upstream, 1))
    client = server.client()
    try:
        busy = client.interactions.create(model="echo-idle", input="x " * 20, background=True)
        waiting = client.interactions.create(model="echo", input="later", background=True)
        assert waiting.status == "queued"
        assert client.interactions.cancel(waiting.id).status == "cancelled"
        client.interactions.cancel(busy.id)
        events = list(client.interactions.get(waiting.id, stream=True))
        assert [e.event_type for e in events] == ["interaction.created", "interaction.completed"]
        assert events[0].interaction.status == "queued"
    finally:
        stop_server(server)


@one_process_only
def test_sigkill_mid_run_then_restart(upstream: str, tmp_path: Path) -> None:
    data = tmp_path / "crash"
    server = start_server(data, _config(upstream, 2))
    client = server.client()
    runs = {name: uuid.uuid4().hex[:10] for name in "ABCDEF"}

    def start(name: str, script: str) -> str:
        interaction = client.interactions.create(
            model="counted", input=f"id={runs[name]} primary={script}", background=True
        )
        return str(interaction.id)

    ids = {name: start(name, "ok") for name in "AB"}
    wait_for(lambda: all(_status(client, ids[n]) == "completed" for n in "AB"))
    ids |= {name: start(name, "slow") for name in "CDEF"}  # C, D run; E, F wait for a worker
    wait_for(lambda: all(client.interactions.get(ids[n]).steps[1:] for n in "CD"))
    assert {_status(client, ids[n]) for n in "EF"} == {"queued"}
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)

    restarted = start_server(data, _config(upstream, 2))
    client = restarted.client()
    try:
        wait_for(lambda: all(_status(client, i) in TERMINAL for i in ids.values()), 60)
        final = {name: client.interactions.get(i) for name, i in ids.items()}
        for name in "AB":  # finished before the crash: untouched
            assert final[name].status == "completed"
        for name in "CD":  # had produced output: closed, never run twice
            assert final[name].status == "failed"
            assert final[name].errors[0].code == "interrupted"
        for name in "EF":  # had produced nothing: run again from the start
            assert final[name].status == "completed"
            assert final[name].output_text == "0 1 2 3 4 5 6 7 8 9 "
        assert {name: _calls(upstream, run) for name, run in runs.items()} == dict.fromkeys(
            "ABCDEF", 1
        )
    finally:
        stop_server(restarted)


def test_concurrent_duplicates_with_one_idempotency_key(
    client: genai.Client, upstream: str
) -> None:
    run = uuid.uuid4().hex[:10]
    key = f"key-{run}"
    results: list[Any] = [None] * 10

    def create(index: int) -> None:
        results[index] = client.interactions.create(
            model="counted", input=f"id={run} primary=slow", extra_headers={"Idempotency-Key": key}
        )

    threads = [threading.Thread(target=create, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len({r.id for r in results}) == 1
    assert {r.status for r in results} == {"completed"}
    assert {r.output_text for r in results} == {"0 1 2 3 4 5 6 7 8 9 "}
    assert _calls(upstream, run) == 1
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(
            model="counted", input=f"id={run} primary=ok", extra_headers={"Idempotency-Key": key}
        )
    assert "different request body" in caught.value.body["error"]["message"]


def test_idempotency_keys_expire(upstream: str, tmp_path: Path) -> None:
    server = start_server(tmp_path / "window", _config(upstream, 2, window=1))
    client = server.client()
    key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
    try:
        first = client.interactions.create(model="echo", input="x", extra_headers=key)
        assert client.interactions.create(model="echo", input="x", extra_headers=key).id == first.id
        time.sleep(1.1)  # the window under test (idempotency_window_seconds = 1)
        later = client.interactions.create(model="echo", input="x", extra_headers=key)
        assert later.id != first.id
    finally:
        stop_server(server)


def _text(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events if e.event_type == "step.delta")


def test_background_stream_answers_the_runs_events(client: genai.Client) -> None:
    events = list(
        client.interactions.create(
            model="echo-slow", input="watch this run", background=True, stream=True
        )
    )
    kinds = [e.event_type for e in events]
    assert kinds[0] == "interaction.created"
    assert kinds.count("interaction.completed") == 1 and kinds[-1] == "interaction.completed"
    assert "error" not in kinds
    ids = [int(e.event_id.rpartition(".")[2]) for e in events]
    assert ids == list(range(1, len(events) + 1))  # the whole log, in order
    interaction_id = events[0].interaction.id
    stored = client.interactions.get(interaction_id)
    assert stored.status == "completed" and stored.output_text == "user: watch this run"
    assert _text(events) == stored.output_text


def test_background_stream_run_goes_on_when_the_client_leaves(client: genai.Client) -> None:
    words = "one two three four five six seven eight nine ten"
    stream = client.interactions.create(
        model="echo-idle", input=words, background=True, stream=True
    )
    seen = [next(stream), next(stream)]
    stream.close()  # the client leaves after two events
    interaction_id = seen[0].interaction.id
    assert [e.event_type for e in seen] == ["interaction.created", "interaction.status_update"]
    assert _status(client, interaction_id) in ("queued", "in_progress")  # 0.3 s per delta
    wait_for(lambda: _status(client, interaction_id) == "completed", 60)
    assert client.interactions.get(interaction_id).output_text == f"user: {words}"
    events = list(client.interactions.get(interaction_id, stream=True))
    assert [e.event_type for e in events].count("interaction.completed") == 1


def test_background_stream_over_http(server: Server) -> None:
    body = {"model": "echo", "input": "plain", "background": True, "stream": True}
    with server.http() as http:
        with http.stream("POST", "/v1beta/interactions", json=body) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        payloads = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert payloads[0]["event_type"] == "interaction.created"
        assert payloads[-1]["event_type"] == "interaction.completed"
        assert payloads[-1]["interaction"]["status"] == "completed"
        stored = http.get(f"/v1beta/interactions/{payloads[0]['interaction']['id']}").json()
    assert stored["status"] == "completed"  # a stored background interaction, readable again
    assert stored["steps"][-1]["type"] == "model_output"
