"""The embedded model runs in a supervised child process: a crash of that process fails only
the interaction it was serving, the server keeps serving and restarts it, its queue is
bounded, and waiting for it never holds a thread the rest of the server needs."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import (
    CONFIG,
    EMBEDDED,
    EMBEDDED_CONFIG,
    Server,
    start_server,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.skipif(not EMBEDDED, reason="the `local` extra is not installed")

MODEL = "gemma-3-270m"
MAX_QUEUE = 3
BACKOFF = 0.2  # seconds before the first restart after a crash
IDLE_TIMEOUT = 5  # seconds a generation may go without a token

# A long answer, whatever the model would say: the grammar holds it to 900 characters.
LONG = {
    "model": MODEL,
    "input": "Write a long story.",
    "response_format": {"type": "string", "minLength": 900, "maxLength": 900},
    "generation_config": {"max_output_tokens": 2000, "temperature": 0.0},
}


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = (
        CONFIG
        + EMBEDDED_CONFIG
        + f"""
[embedded]
max_queue = {MAX_QUEUE}
restart_backoff_initial_seconds = {BACKOFF}
idle_timeout_seconds = {IDLE_TIMEOUT}
"""
    )
    running = start_server(tmp_path_factory.mktemp("gemma"), config)
    yield running
    stop_server(running)


def model_pid(server: Server) -> int | None:
    """The PID of the server's model process (a child running embedded_worker), or None."""
    pids = model_pids(server)
    return pids[0] if pids else None


def metric(server: Server, name: str) -> float:
    """The value of `name{model="gemma-3-270m"}` on /metrics (0 when absent)."""
    with server.http() as http:
        text = http.get("/metrics").text
    prefix = f'{name}{{model="{MODEL}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data: ") and line != "data: [DONE]":
            yield orjson.loads(line.removeprefix("data: "))


def test_sigkill_of_the_model_process_fails_only_its_interaction(gemma: Server) -> None:
    with gemma.http() as http:
        events: list[dict[str, Any]] = []
        killed = None
        with http.stream("POST", "/v1beta/interactions", json={**LONG, "stream": True}) as answer:
            assert answer.status_code == 200
            for event in sse_events(answer):
                events.append(event)
                if event["event_type"] == "step.delta" and killed is None:
                    killed = model_pid(gemma)
                    assert killed is not None
                    os.kill(killed, signal.SIGKILL)
        # the stream got an error event and ended with the terminal event
        kinds = [e["event_type"] for e in events]
        assert "error" in kinds
        assert kinds[-1] == "interaction.completed"
        assert events[-1]["interaction"]["status"] == "failed"

        interaction_id = events[0]["interaction"]["id"]
        stored = http.get(f"/v1beta/interactions/{interaction_id}").json()
        assert stored["status"] == "failed"
        message = stored["errors"][0]["message"]
        assert MODEL in message and "SIGKILL" in message and str(killed) in message

        # everything else is served at once, and the model answers again
        echo = http.post("/v1beta/interactions", json={"model": "echo", "input": "still here"})
        assert echo.status_code == 200 and echo.json()["status"] == "completed"
        again = http.post(
            "/v1beta/interactions",
            json={"model": MODEL, "input": "Hi", "generation_config": {"max_output_tokens": 8}},
            timeout=60,
        )
        assert again.status_code == 200, again.text
        assert again.json()["status"] in ("completed", "incomplete")
        assert model_pid(gemma) not in (None, killed)
    assert metric(gemma, "propylon_model_process_crashes_total") >= 1
    assert metric(gemma, "propylon_model_process_restarts_total") >= 1


def test_concurrent_creates_are_answered_or_refused_with_429(gemma: Server) -> None:
    results: list[httpx.Response] = []
    lock = threading.Lock()
    body = {
        "model": MODEL,
        "input": "Name a colour.",
        "generation_config": {"max_output_tokens": 12, "temperature": 0.0},
    }

    def create() -> None:
        with gemma.http() as http:
            response = http.post("/v1beta/interactions", json=body, timeout=120)
        with lock:
            results.append(response)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(r.status_code for r in results)
    assert set(statuses) <= {200, 429}, [r.text for r in results]
    assert statuses.count(200) >= MAX_QUEUE + 1  # one generating, MAX_QUEUE waiting
    assert statuses.count(429) >= 1  # eight at once do not fit
    for refused in (r for r in results if r.status_code == 429):
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert float(refused.headers["retry-after"]) >= 1
    for answered in (r for r in results if r.status_code == 200):
        assert answered.json()["status"] in ("completed", "incomplete")
    assert httpx.get(f"{gemma.url}/healthz").status_code == 200


def test_dns_work_proceeds_while_embedded_requests_queue(gemma: Server, mcp_url: str) -> None:
    """Seven long background runs queue on the model; an MCP call to a name that must be
    resolved (`localhost`) completes before any of them ends. Then cancelling them stops
    the one generating and leaves the rest of the queue."""
    with gemma.http() as http:
        ids = [
            http.post("/v1beta/interactions", json={**LONG, "background": True}).json()["id"]
            for _ in range(7)
        ]
        wait_for(lambda: metric(gemma, "propylon_model_queue_waiting") >= 6, seconds=60)

        tool = {
            "type": "mcp_server",
            "name": "calc",
            "url": mcp_url.replace("127.0.0.1", "localhost"),
            "headers": {"x-test-token": "secret"},
        }
        answer = http.post(
            "/v1beta/interactions",
            json={"model": "echo", "tools": [tool], "input": 'call add {"a": 2, "b": 3}'},
            timeout=60,
        ).json()
        assert answer["status"] == "completed", answer
        assert [s["type"] for s in answer["steps"]][:2] == [
            "mcp_server_tool_call",
            "mcp_server_tool_result",
        ]
        statuses = [http.get(f"/v1beta/interactions/{i}").json()["status"] for i in ids]
        assert set(statuses) == {"in_progress"}, statuses  # none ended meanwhile

        stopped_before = metric(gemma, "propylon_model_generations_cancelled_total")
        handed_before = metric(gemma, "propylon_model_generations_total")
        # the queued ones first (newest first), then the one generating
        for interaction_id in [*reversed(ids[1:]), ids[0]]:
            cancelled = http.post(f"/v1beta/interactions/{interaction_id}/cancel")
            assert cancelled.status_code == 200
            assert cancelled.json()["status"] == "cancelled"
    wait_for(
        lambda: metric(gemma, "propylon_model_generations_cancelled_total") == stopped_before + 1,
        seconds=30,
    )
    assert metric(gemma, "propylon_model_queue_waiting") == 0
    # a cancelled queued run left the queue without ever reaching the model
    assert metric(gemma, "propylon_model_generations_total") == handed_before


def model_pids(server: Server) -> list[int]:
    """Every model process of the server (there should be at most one)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                command = (entry / "cmdline").read_bytes()
            except (OSError, IndexError, ValueError):
                continue
            if ppid == server.process.pid and b"embedded_worker" in command:
                pids.append(int(entry.name))
    return pids


def test_a_config_reload_keeps_the_one_model_process(gemma: Server) -> None:
    short = {"model": MODEL, "input": "Hi", "generation_config": {"max_output_tokens": 4}}
    with gemma.http() as http:
        assert http.post("/v1beta/interactions", json=short).status_code == 200
        before = model_pids(gemma)
        assert len(before) == 1
        gemma.process.send_signal(signal.SIGHUP)
        for _ in range(2):  # the second surely after the reload
            assert http.post("/v1beta/interactions", json=short).status_code == 200
    assert model_pids(gemma) == before


def test_a_hung_model_process_is_killed_and_its_interaction_fails(gemma: Server) -> None:
    crashes = metric(gemma, "propylon_model_process_crashes_total")
    with gemma.http() as http:
        events: list[dict[str, Any]] = []
        stopped = None
        with http.stream("POST", "/v1beta/interactions", json={**LONG, "stream": True}) as answer:
            for event in sse_events(answer):
                events.append(event)
                if event["event_type"] == "step.delta" and stopped is None:
                    stopped = model_pid(gemma)
                    assert stopped is not None
                    os.kill(stopped, signal.SIGSTOP)  # alive, but silent
        assert events[-1]["interaction"]["status"] == "failed"
        stored = http.get(f"/v1beta/interactions/{events[0]['interaction']['id']}").json()
        assert f"sent nothing for {IDLE_TIMEOUT} s" in stored["errors"][0]["message"]
        short = {"model": MODEL, "input": "Hi", "generation_config": {"max_output_tokens": 4}}
        assert http.post("/v1beta/interactions", json=short, timeout=60).status_code == 200
    assert metric(gemma, "propylon_model_process_crashes_total") == crashes + 1
    assert model_pid(gemma) not in (None, stopped)


def test_crashes_in_a_row_back_off_doubling(gemma: Server) -> None:
    restarts = metric(gemma, "propylon_model_process_restarts_total")
    for crash in range(3):
        pid = model_pid(gemma)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda pid=pid: model_pid(gemma) not in (None, pid), seconds=60)  # type: ignore[misc]
        assert metric(gemma, "propylon_model_process_restart_backoff_seconds") == BACKOFF * 2**crash
    assert metric(gemma, "propylon_model_process_restarts_total") == restarts + 3
    with gemma.http() as http:  # and it answers again (which resets the backoff)
        short = {"model": MODEL, "input": "Hi", "generation_config": {"max_output_tokens": 4}}
        assert http.post("/v1beta/interactions", json=short, timeout=60).status_code == 200


def test_the_model_loads_without_extra_buffer_types() -> None:
    """The AMX crash fix: weights never go to llama.cpp's extra (AMX, repack) buffers."""
    from propylon.providers import embedded
    from propylon.providers.embedded_worker import load_model

    llama = load_model(str(embedded.default_model_path()), 1, 256)
    try:
        assert llama.model_params.use_extra_bufts is False
    finally:
        llama.close()
