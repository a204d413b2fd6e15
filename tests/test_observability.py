"""Observability: Prometheus `/metrics` (parsed with prometheus_client's own parser) counts
what the test did; OpenTelemetry spans carry GenAI attributes and no prompt text; health."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from google import genai
from google.genai import types
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from propylon import Settings, create_app
from propylon.config import ModelSettings
from tests.conftest import API_KEY, Server, free_port


def _samples(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with server.http() as http:  # /metrics needs a key (`metrics_public` is off)
        text = http.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_what_happened(server: Server, client: genai.Client) -> None:
    before = _samples(server)
    answers = [client.interactions.create(model="echo", input=f"count {i} words") for i in range(3)]
    events = list(client.interactions.create(model="echo", input="streamed", stream=True))
    after = _samples(server)
    route = "/{version}/interactions"
    assert (
        _delta(
            before, after, "propylon_http_requests_total", method="POST", route=route, status="200"
        )
        == 4
    )
    assert (
        _delta(
            before,
            after,
            "propylon_http_request_duration_seconds_count",
            method="POST",
            route=route,
        )
        == 4
    )
    assert (
        _delta(
            before,
            after,
            "propylon_interactions_total",
            model="echo",
            tenant="default",
            status="completed",
        )
        == 4
    )
    inputs = sum(a.usage.total_input_tokens for a in answers)
    inputs += events[-1].interaction.usage.total_input_tokens
    assert (
        _delta(before, after, "propylon_tokens_total", model="echo", tenant="default", kind="input")
        == inputs
    )
    assert after[("propylon_active_streams", ())] == 0
    assert ("propylon_queue_depth", ()) in after


def test_health_and_readiness(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 401  # behind a key by default
    with server.http() as http:
        assert http.get("/readyz").json() == {"status": "ready"}


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, InMemorySpanExporter]]:
    """Propylon in this process (uvicorn on a free port, a real SQLite file) with an in-memory
    span exporter installed as the global tracer provider."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    port = free_port()
    settings = Settings(
        port=port,
        data_dir=Path(tmp_path_factory.mktemp("traced")),
        models=[ModelSettings(name="echo", provider="echo")],
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", exporter
    server.should_exit = True
    thread.join(timeout=20)


def test_spans_follow_the_genai_conventions_without_content(
    traced: tuple[str, InMemorySpanExporter],
) -> None:
    url, exporter = traced
    client = genai.Client(api_key=API_KEY, http_options=types.HttpOptions(base_url=url))
    secret = "my very secret prompt"
    answer = client.interactions.create(model="echo", input=secret)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    interaction, call = spans["interaction echo"], spans["chat echo"]
    assert interaction.attributes["gen_ai.operation.name"] == "chat"
    assert interaction.attributes["gen_ai.request.model"] == "echo"
    assert interaction.attributes["gen_ai.conversation.id"] == answer.id
    assert interaction.attributes["gen_ai.usage.input_tokens"] == 4
    assert interaction.attributes["propylon.interaction.status"] == "completed"
    assert call.parent is not None and call.parent.span_id == interaction.context.span_id
    assert call.kind == trace.SpanKind.CLIENT
    assert call.attributes["gen_ai.provider.name"] == "echo"
    assert call.attributes["gen_ai.usage.output_tokens"] == answer.usage.total_output_tokens
    for span in exporter.get_finished_spans():
        assert all(secret not in str(value) for value in span.attributes.values())
