"""Observability: Prometheus metrics (one registry per app, no globals), HTTP request metrics as
a pure ASGI middleware, and OpenTelemetry spans that follow the GenAI semantic conventions
(`gen_ai.*` attributes). Prompts and outputs never go into metrics, logs or spans unless the
operator sets `trace_content`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import orjson
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from propylon.domain.usage import Usage
from propylon.providers.embedded_process import ProcessStats

__all__ = ["Metrics", "MetricsMiddleware", "traced_run", "tracer"]

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


_Labelled = Counter | Gauge | Histogram


_tracers: dict[trace.TracerProvider, trace.Tracer] = {}


def tracer() -> trace.Tracer | None:
    """Propylon's tracer, or None while no tracer provider is set (`otel_exporter` is `none`
    and nobody installed one): callers then build no span at all, not even a no-op one
    (creating and filling no-op spans costs several microseconds per request)."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return None
    found = _tracers.get(provider)
    if found is None:
        found = _tracers[provider] = provider.get_tracer("propylon")
    return found


class Metrics:
    """Every metric Propylon exports, on its own registry (`registry`)."""

    def __init__(self) -> None:
        self._children: dict[tuple[object, ...], Any] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "propylon_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "propylon_http_request_duration_seconds",
            "Time to answer an HTTP request (to the response start for streams), in seconds.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.interactions = Counter(
            "propylon_interactions",
            "Interactions that ended.",
            ["model", "tenant", "status"],
            registry=r,
        )
        self.tokens = Counter(
            "propylon_tokens",
            "Tokens used by interactions and stateless calls that ended.",
            ["model", "tenant", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "propylon_cost_usd",
            "Cost of interactions and stateless calls that ended, in USD.",
            ["model", "tenant"],
            registry=r,
        )
        self.active_streams = Gauge("propylon_active_streams", "Open SSE streams.", registry=r)
        self.queue_depth = Gauge(
            "propylon_queue_depth", "Background interactions waiting for a worker.", registry=r
        )
        self.upstream_calls = Counter(
            "propylon_upstream_calls",
            "Upstream calls by outcome.",
            ["target", "outcome"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "propylon_upstream_errors",
            "Upstream calls that failed, per target.",
            ["target"],
            registry=r,
        )
        self.log_commits = Counter(
            "propylon_log_commits",
            "Group commits of the stored logs' events (transactions).",
            registry=r,
        )
        self.log_committed_events = Counter(
            "propylon_log_committed_events",
            "Events written by the group commits.",
            registry=r,
        )
        self.log_committed_logs = Counter(
            "propylon_log_committed_logs",
            "Log batches written by the group commits (one per log and commit).",
            registry=r,
        )

    def log_committed(self, events: int, logs: int) -> None:
        """One group commit of `events` events from `logs` logs."""
        self.log_commits.inc()
        self.log_committed_events.inc(events)
        self.log_committed_logs.inc(logs)

    def watch_model_processes(
        self, processes: Callable[[], list[tuple[str, ProcessStats]]]
    ) -> None:
        """Export the counters of the model processes `processes()` lists (model name, stats),
        read at each scrape."""
        self.registry.register(_ModelProcesses(processes))

    def interaction_ended(self, record: Any, usage: Usage) -> None:
        model = str(record.request.get("model") or record.request.get("agent") or "")
        self.child(self.interactions, model, record.tenant, record.status).inc()
        self.model_used(model, record.tenant, usage, record.cost_usd)

    def model_used(self, model: str, tenant: str, usage: Usage, cost_usd: float) -> None:
        """Count the tokens and cost (USD) of an interaction or a stateless call that ended."""
        for kind, value in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("thought", usage.thought_tokens),
            ("cached", usage.cached_tokens),
            ("tool_use", usage.tool_use_tokens),
        ):
            if value:
                self.child(self.tokens, model, tenant, kind).inc(value)
        if cost_usd:
            self.child(self.cost, model, tenant).inc(cost_usd)

    def upstream_call(self, call: Any, tenant: str) -> None:
        target = call.target.name if call.target else "none"
        self.child(self.upstream_calls, target, call.outcome).inc()
        if call.outcome != "ok":
            self.child(self.upstream_errors, target).inc()

    def child(self, metric: _Labelled, *labels: object) -> Any:
        """`metric.labels(*labels)`, resolved once per metric and label values (prometheus
        client's `labels` validates and locks on every call)."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*(str(label) for label in labels))
        return found


class MetricsMiddleware:
    """Counts requests and times them per method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = _route(scope)
                self.metrics.child(self.metrics.latency, scope["method"], route).observe(
                    time.perf_counter() - began
                )
                self.metrics.child(self.metrics.requests, scope["method"], route, status).inc()
            await send(message)

        await self.app(scope, receive, timed_send)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def traced_run(
    run: Coroutine[Any, Any, None], log: Any, model: str, content: bool
) -> Coroutine[Any, Any, None]:
    """`run` (one interaction's turn) inside its span: GenAI attributes, the final status and
    usage; the input and output steps only when `content` (`trace_content`) is on. With no
    tracer (tracing off), `run` itself."""
    spans = tracer()
    return run if spans is None else _traced(spans, run, log, model, content)


async def _traced(
    spans: trace.Tracer, run: Coroutine[Any, Any, None], log: Any, model: str, content: bool
) -> None:
    record = log.record
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": model,
        "gen_ai.conversation.id": record.id,
        "propylon.tenant": record.tenant,
    }
    if content:
        attributes["gen_ai.input.messages"] = orjson.dumps(record.input_steps).decode()
    with spans.start_as_current_span(f"interaction {model}", attributes=attributes) as span:
        try:
            await run
        finally:
            usage = Usage.from_wire(log.projection.usage)
            span.set_attribute("propylon.interaction.status", log.projection.status)
            span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
            if content:
                span.set_attribute(
                    "gen_ai.output.messages", orjson.dumps(log.projection.steps).decode()
                )
            if log.projection.status == "failed":
                span.set_status(trace.StatusCode.ERROR)


class _ModelProcesses(Collector):
    """Crashes, restarts and queue length of each supervised model process."""

    def __init__(self, processes: Callable[[], list[tuple[str, ProcessStats]]]) -> None:
        self._processes = processes

    def collect(self) -> Iterator[Metric]:
        crashes = CounterMetricFamily(
            "propylon_model_process_crashes",
            "Times a model's child process ended unexpectedly (signal or exit code).",
            labels=["model"],
        )
        restarts = CounterMetricFamily(
            "propylon_model_process_restarts",
            "Times a model's child process was started again after the first start.",
            labels=["model"],
        )
        waiting = GaugeMetricFamily(
            "propylon_model_queue_waiting",
            "Requests waiting for a model's process while it generates another answer.",
            labels=["model"],
        )
        cancelled = CounterMetricFamily(
            "propylon_model_generations_cancelled",
            "Generations a model's process stopped early because their request went away.",
            labels=["model"],
        )
        generations = CounterMetricFamily(
            "propylon_model_generations",
            "Requests handed to a model's process.",
            labels=["model"],
        )
        backoff = GaugeMetricFamily(
            "propylon_model_process_restart_backoff_seconds",
            "The wait before a model process's latest restart, in seconds.",
            labels=["model"],
        )
        for model, stats in self._processes():
            generations.add_metric([model], stats.generations)
            backoff.add_metric([model], stats.backoff_seconds)
            crashes.add_metric([model], stats.crashes)
            restarts.add_metric([model], stats.restarts)
            waiting.add_metric([model], stats.waiting)
            cancelled.add_metric([model], stats.cancelled)
        yield from (crashes, restarts, waiting, cancelled, generations, backoff)

    def describe(self) -> Iterator[Metric]:
        return iter(())
