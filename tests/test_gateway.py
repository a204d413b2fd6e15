"""The front door: bounded retries, fallback and the circuit breaker against a fault-injecting
upstream on loopback; each test asserts the exact number of upstream attempts."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY_DIGEST, Server, start_server, stop_server, wait_for
from tests.fault_upstream import BIG


def _target(upstream: str, model: str, name: str, attempts: int) -> str:
    return f"""
[[models.targets]]
provider = "openai"
name = "{name}"
base_url = "{upstream}/v1"
model = "{model}"
timeout_seconds = 0.5
max_attempts = {attempts}
price_input_per_million = 1.0
price_output_per_million = 2.0
price_cached_per_million = 0.5
"""


@pytest.fixture(scope="module")
def gateway(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # each fallback test has its own model, so its own breakers
    fallbacks = "".join(
        f'\n[[models]]\nname = "{name}"\naliases = {json.dumps(aliases)}\n'
        + _target(upstream, "primary", "primary", 2)
        + _target(upstream, "backup", "backup", 2)
        for name, aliases in [
            ("faulty-fb", []),
            ("fb-400", []),
            ("fb-cut", []),
            ("fb-usage", ["fast"]),
        ]
    )
    config = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
[retry]
initial_seconds = 0.01
max_seconds = 0.05
[breaker]
failures = 3
cooldown_seconds = 1.0

[[models]]
name = "faulty"
{_target(upstream, "primary", "primary", 3)}

[[models]]
name = "doomed"
{_target(upstream, "primary", "primary", 3)}

{fallbacks}

[[models]]
name = "breaker"
{_target(upstream, "primary", "breaker-primary", 1)}
{_target(upstream, "backup", "breaker-backup", 1)}

[[models]]
name = "breaker-400"
{_target(upstream, "primary", "b400-primary", 1)}
{_target(upstream, "backup", "b400-backup", 1)}

[[models]]
name = "breaker-gone"
{_target(upstream, "primary", "gone-primary", 1)}
{_target(upstream, "backup", "gone-backup", 1)}

[[models]]
name = "big"
{_target(upstream, "primary", "big", 3)}
"""
    data = tmp_path_factory.mktemp("gateway")
    running = start_server(data, config, log=data / "server.log")
    yield running
    stop_server(running)


def _calls(upstream: str, run: str) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{upstream}/calls/{run}").json()
    return counts


def _create(gateway: Server, model: str, script: str, **kwargs: Any) -> tuple[str, Any]:
    run = uuid.uuid4().hex[:12]
    client = gateway.client()
    result = client.interactions.create(model=model, input=f"id={run} {script}", **kwargs)
    if kwargs.get("stream"):
        result = list(result)
    return run, result


@pytest.mark.parametrize(
    ("script", "primary_calls"),
    [
        ("primary=429,ok", 2),
        ("primary=500,ok", 2),
        ("primary=500,500,ok", 3),
        ("primary=timeout,ok", 2),
        ("primary=reset,ok", 2),
    ],
)
def test_retries_recover(gateway: Server, upstream: str, script: str, primary_calls: int) -> None:
    run, answer = _create(gateway, "faulty", script)
    assert answer.status == "completed", answer.errors
    assert answer.output_text == "hello from primary"
    assert _calls(upstream, run) == {"primary": primary_calls}


def test_every_attempt_failing_ends_failed_naming_the_upstream(
    gateway: Server, upstream: str
) -> None:
    run, answer = _create(gateway, "doomed", "primary=500")  # its own breaker: this opens it
    assert answer.status == "failed"
    assert _calls(upstream, run) == {"primary": 3}
    message = answer.errors[0].message
    assert "upstream `primary`" in message and "HTTP 500" in message


def test_a_request_error_is_not_retried_nor_sent_elsewhere(gateway: Server, upstream: str) -> None:
    run, answer = _create(gateway, "fb-400", "primary=400 backup=ok")
    assert answer.status == "failed"
    assert _calls(upstream, run) == {"primary": 1}
    assert "HTTP 400" in answer.errors[0].message


def test_fallback_to_the_second_target(gateway: Server, upstream: str) -> None:
    run, answer = _create(gateway, "faulty-fb", "primary=500 backup=ok")
    assert answer.status == "completed"
    assert answer.output_text == "hello from backup"
    assert _calls(upstream, run) == {"primary": 2, "backup": 1}


def test_reset_before_the_first_streamed_token_is_retried(gateway: Server, upstream: str) -> None:
    run, events = _create(gateway, "faulty", "primary=reset,ok", stream=True)
    assert events[-1].interaction.status == "completed"
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta")
    assert text == "hello from primary"
    assert _calls(upstream, run) == {"primary": 2}


def test_reset_after_the_first_streamed_token_is_never_retried(
    gateway: Server, upstream: str
) -> None:
    run, events = _create(gateway, "fb-cut", "primary=cut backup=ok", stream=True)
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta")
    assert text == "hello "  # what the client saw stays the truth: no second answer appended
    errors = [e for e in events if e.event_type == "error"]
    assert len(errors) == 1 and "upstream `primary`" in errors[0].error.message
    assert events[-1].interaction.status == "failed"
    assert _calls(upstream, run) == {"primary": 1}


def test_the_circuit_opens_then_closes(gateway: Server, upstream: str) -> None:
    failing = [_create(gateway, "breaker", "primary=500 backup=ok") for _ in range(3)]
    for run, answer in failing:  # each: one failed attempt on primary, then the backup
        assert answer.output_text == "hello from backup"
        assert _calls(upstream, run) == {"primary": 1, "backup": 1}
    run, answer = _create(gateway, "breaker", "primary=ok backup=ok")
    assert answer.output_text == "hello from backup"
    assert _calls(upstream, run) == {"backup": 1}  # open: primary is not even tried
    time.sleep(1.1)  # the cooldown under test (breaker.cooldown_seconds = 1)
    run, answer = _create(gateway, "breaker", "primary=ok backup=ok")
    assert answer.output_text == "hello from primary"  # the half-open probe succeeded
    assert _calls(upstream, run) == {"primary": 1}
    run, answer = _create(gateway, "breaker", "primary=ok backup=ok")
    assert answer.output_text == "hello from primary"  # closed again


def _open_circuit(gateway: Server, upstream: str, model: str) -> None:
    """Three failed attempts on the model's primary open its circuit; then its cooldown
    passes (breaker.cooldown_seconds = 1): the next call is the half-open probe."""
    for _ in range(3):
        run, _ = _create(gateway, model, "primary=500 backup=ok")
        assert _calls(upstream, run) == {"primary": 1, "backup": 1}
    run, _ = _create(gateway, model, "primary=ok backup=ok")
    assert _calls(upstream, run) == {"backup": 1}  # open
    time.sleep(1.1)  # the cooldown under test


def test_the_circuit_recovers_after_a_probe_that_got_400(gateway: Server, upstream: str) -> None:
    _open_circuit(gateway, upstream, "breaker-400")
    run, answer = _create(gateway, "breaker-400", "primary=400 backup=ok")
    assert answer.status == "failed" and _calls(upstream, run) == {"primary": 1}
    # a refused request says nothing of the target's health: the next call probes again
    run, answer = _create(gateway, "breaker-400", "primary=ok backup=ok")
    assert answer.output_text == "hello from primary"
    assert _calls(upstream, run) == {"primary": 1}


def test_the_circuit_recovers_after_a_probe_whose_client_left(
    gateway: Server, upstream: str
) -> None:
    _open_circuit(gateway, upstream, "breaker-gone")
    run = uuid.uuid4().hex[:12]
    body = {
        "model": "breaker-gone",
        "input": f"id={run} primary=hold backup=ok",
        "stream": True,
        "store": False,  # its run lives as long as its client
    }
    with gateway.http() as http, http.stream("POST", "/v1beta/interactions", json=body) as sent:
        assert sent.status_code == 200
        wait_for(lambda: _calls(upstream, run) == {"primary": 1})  # the probe is upstream
    # the client left: its run is cancelled, and the probe with it

    def primary_answers() -> bool:
        _, answer = _create(gateway, "breaker-gone", "primary=ok backup=ok")
        return bool(answer.output_text == "hello from primary")

    wait_for(primary_answers, 10)


def test_an_sse_line_over_a_mebibyte_is_read(gateway: Server, upstream: str) -> None:
    run, events = _create(gateway, "big", "primary=big", stream=True)
    assert events[-1].interaction.status == "completed"
    assert "".join(e.delta.text for e in events if e.event_type == "step.delta") == "x" * BIG
    assert _calls(upstream, run) == {"primary": 1}


def test_an_unstreamed_answer_over_a_mebibyte_is_read(gateway: Server, upstream: str) -> None:
    run, answer = _create(gateway, "big", "primary=big")  # one JSON body: no SSE lines
    assert answer.status == "completed", answer.errors
    assert answer.output_text == "x" * BIG
    assert _calls(upstream, run) == {"primary": 1}


def test_an_sse_line_over_the_limit_fails_naming_the_setting(
    upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
upstream_max_line_bytes = 65536

[[models]]
name = "big"
{_target(upstream, "primary", "big", 3)}
"""
    server = start_server(tmp_path_factory.mktemp("small-lines"), config)
    try:
        run, events = _create(server, "big", "primary=big", stream=True)
    finally:
        stop_server(server)
    assert events[-1].interaction.status == "failed"
    [error] = [e for e in events if e.event_type == "error"]
    message = error.error.message
    assert "65536" in message and "upstream_max_line_bytes" in message
    assert _calls(upstream, run) == {"primary": 1}  # the same answer again would not fit either


def test_usage_cost_and_one_log_line_per_upstream_call(gateway: Server, upstream: str) -> None:
    run, answer = _create(gateway, "fast", "primary=500 backup=ok", labels={"job": "nightly"})
    assert answer.usage.total_input_tokens == 7
    assert answer.usage.total_cached_tokens == 2
    assert answer.usage.total_output_tokens == 3
    with sqlite3.connect(gateway.database) as conn:
        [(cost,)] = conn.execute("SELECT cost_usd FROM interactions WHERE id = ?", (answer.id,))
    assert cost == pytest.approx((5 * 1.0 + 2 * 0.5 + 3 * 2.0) / 1e6)
    log = (gateway.data_dir / "server.log").read_text().splitlines()
    records = [json.loads(line) for line in log if line.startswith("{")]
    lines = [
        r for r in records if r.get("event") == "upstream_call" and r["interaction_id"] == answer.id
    ]
    assert len(lines) == 1
    [line] = lines
    assert line["target"] == "backup" and line["attempts"] == 3 and line["outcome"] == "ok"
    assert line["model"] == "fb-usage" and line["alias"] == "fast"
    assert line["labels"] == {"job": "nightly"}
    assert line["usage"]["total_tokens"] == 10
    assert line["cost_usd"] == pytest.approx(cost)
    assert line["latency_ms"] > 0
    assert f"id={run}" not in "\n".join(log)  # no prompt text in the logs


@pytest.fixture(scope="module")
def retry_after(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """No backoff of its own (0 s): what separates attempts is the upstream's `Retry-After`
    (0.05 s on each 429), honoured up to `max_retry_after_seconds`."""
    config = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
[retry]
initial_seconds = 0
max_seconds = 0

[[models]]
name = "honours"
{_target(upstream, "primary", "primary", 4)}

[[models]]
name = "too-long"
{_target(upstream, "primary", "primary", 3)}
{_target(upstream, "backup", "backup", 1)}
"""
    data = tmp_path_factory.mktemp("retry-after")
    config = config.replace("[retry]", "[retry]\nmax_retry_after_seconds = 1")
    running = start_server(data, config, log=data / "server.log")
    yield running
    stop_server(running)


def test_retry_after_separates_the_attempts(retry_after: Server, upstream: str) -> None:
    run, answer = _create(retry_after, "honours", "primary=429,429,429,ok")
    assert answer.status == "completed", answer.errors
    assert _calls(upstream, run) == {"primary": 4}
    log = (retry_after.data_dir / "server.log").read_text().splitlines()
    [line] = [
        record
        for record in map(json.loads, filter(lambda line: line.startswith("{"), log))
        if record.get("event") == "upstream_call" and record["interaction_id"] == answer.id
    ]
    assert line["attempts"] == 4
    assert line["latency_ms"] >= 3 * 50  # each of the three waited its Retry-After (0.05 s)


def test_a_retry_after_over_the_ceiling_falls_back_at_once(
    retry_after: Server, upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = (retry_after.data_dir / "propylon.toml").read_text()
    server = start_server(
        tmp_path_factory.mktemp("retry-after-short"),
        config.replace("max_retry_after_seconds = 1", "max_retry_after_seconds = 0.01"),
    )
    try:
        run, answer = _create(server, "too-long", "primary=429,ok backup=ok")
    finally:
        stop_server(server)
    assert answer.status == "completed", answer.errors
    assert answer.output_text == "hello from backup"
    assert _calls(upstream, run) == {"primary": 1, "backup": 1}  # 0.05 s is over 0.01 s
