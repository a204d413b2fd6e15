"""The one place where upstream failures are handled: bounded attempts per target with
exponential backoff and jitter (honouring `Retry-After`), fallback to the next target, a
circuit breaker per target, and one structured log line per upstream call.

Retries and fallback happen only before the first provider event reaches the runner: once
anything has been emitted to a client, a failure ends the interaction.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from opentelemetry import trace
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from propylon.config import RetrySettings, TargetSettings
from propylon.domain.usage import Usage
from propylon.gateway.breaker import CircuitBreaker, Permit
from propylon.observability import tracer
from propylon.providers import capabilities
from propylon.providers.base import Provider, ProviderEvent, Turn, UpstreamError, UsageReport

__all__ = ["CallRecord", "CircuitOpen", "Open", "Target", "route"]

logger = logging.getLogger("propylon.upstream")


@dataclass(slots=True)
class Target:
    """A configured upstream with its provider and breaker."""

    settings: TargetSettings
    provider: Provider
    breaker: CircuitBreaker

    @property
    def name(self) -> str:
        return self.settings.label


@dataclass(slots=True)
class CallRecord:
    """What a routed call did, for the log line, usage and cost. `target`: the one that answered
    (or last tried)."""

    model: str
    alias: str
    labels: dict[str, str]
    interaction_id: str
    target: Target | None = None
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    outcome: str = "ok"
    started: float = field(default_factory=time.perf_counter)
    on_done: Callable[[CallRecord], None] | None = None

    def cost_usd(self) -> float:
        """The call's cost from its target's price table (USD per million tokens)."""
        if self.target is None:
            return 0.0
        prices, u = self.target.settings, self.usage
        uncached = max(0, u.input_tokens - u.cached_tokens)
        return (
            uncached * prices.price_input_per_million
            + u.cached_tokens * prices.price_cached_per_million
            + (u.output_tokens + u.thought_tokens) * prices.price_output_per_million
        ) / 1e6

    def log(self) -> None:
        """One JSON line: ids, model, alias, target, tokens, latency, attempts, outcome, cost.
        Then hands the record to `on_done` (cost and metrics)."""
        if self.on_done is not None:
            self.on_done(self)
        if not logger.isEnabledFor(logging.INFO):
            return  # (the line's fields are not even built)
        logger.info(
            "upstream call",
            extra={
                "event": "upstream_call",
                "interaction_id": self.interaction_id,
                "model": self.model,
                "alias": self.alias,
                "target": self.target.name if self.target else None,
                "attempts": self.attempts,
                "outcome": self.outcome,
                "latency_ms": round((time.perf_counter() - self.started) * 1000, 1),
                "usage": self.usage.to_wire(),
                "cost_usd": round(self.cost_usd(), 8),
                "labels": self.labels,
            },
        )


Open = Callable[[Target], AsyncIterator[ProviderEvent]]
"""How one attempt on a target starts its stream of events (by default: the turn's answer)."""

# Seconds of a burst of upstream events handed on before other tasks get to run (`route`).
_SLICE = 0.001
# The same for an answer nobody reads as it comes (`Turn.streamed` False): no reader waits for
# its first event, but the process's other tasks (other clients' streams) must not wait for its
# whole fold: a provider may stream it anyway (`echo`: thousands of events without a read).
_WHOLE_SLICE = 0.02

# A target that answered: its stream, the stream's first event (None: it ended at once) and
# the breaker permit held until the stream is over.
_Connected = tuple[Target, AsyncIterator[ProviderEvent], ProviderEvent | None, Permit]


def _delay(retry: RetrySettings, failed: int, exc: BaseException | None) -> float:
    """Seconds to wait after the `failed`-th attempt failed with `exc`: its `Retry-After`, else
    exponential backoff with full jitter."""
    if isinstance(exc, UpstreamError) and exc.retry_after:
        return exc.retry_after
    ceiling = min(retry.max_seconds, retry.initial_seconds * 2 ** (failed - 1))
    return random.uniform(0, ceiling)


def _retryable(retry: RetrySettings, exc: BaseException) -> bool:
    return (
        isinstance(exc, UpstreamError)
        and exc.retryable
        and (exc.retry_after or 0) <= retry.max_retry_after_seconds
    )


async def route(
    targets: list[Target],
    turn: Turn | None,
    record: CallRecord,
    retry: RetrySettings,
    call: Open | None = None,
    operation: str = "chat",
) -> AsyncIterator[ProviderEvent]:
    """Stream `turn` from the first target that answers (or, with `call`, what `call` starts
    on a target: an embedding; `operation` names it in the span). Raises the last
    UpstreamError (its `target` set) when every target failed before its first event."""
    spans = tracer()
    span = None
    if spans is not None:
        span = spans.start_span(
            f"{operation} {record.model}",
            kind=trace.SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": operation, "propylon.alias": record.alias},
        )

    def answer(target: Target) -> AsyncIterator[ProviderEvent]:
        assert turn is not None
        found = capabilities.capabilities_of(target.provider)
        return target.provider.stream(capabilities.prepare(turn, found))

    try:
        target, stream, first, permit = await _connect(targets, call or answer, record, retry)
        # The permit (perhaps the half-open probe) is held until the stream is over, and given
        # back however it ends: a refused request or a cancelled caller must not wedge it.
        try:
            if first is None:
                return
            # From here on the client has seen output: no retry, no fallback.
            clock = asyncio.get_running_loop().time
            if turn is None or turn.streamed:
                every, yielded = _SLICE, -_SLICE  # the first event goes out at once
            else:  # (an answer read whole has no reader before its end: only other tasks wait)
                every, yielded = _WHOLE_SLICE, clock()
            try:
                yield first
                if isinstance(first, UsageReport):
                    record.usage = first.usage
                async for event in stream:
                    if clock() - yielded >= every:
                        # One upstream read can hold many events (a fast model, a burst):
                        # the consumer's readers (and the log's writer) get the first at
                        # once, then a slice at a time, not the whole burst once folded.
                        await asyncio.sleep(0)
                        yielded = clock()
                    if isinstance(event, UsageReport):
                        record.usage = event.usage
                    yield event
            except UpstreamError as exc:
                exc.target = target.name
                target.breaker.record_failure()
                raise
            target.breaker.record_success()
        finally:
            target.breaker.release(permit)
            # A consumer that stops early (a cut, a cancel) ends the upstream call now, not
            # when the abandoned stream is collected.
            close = getattr(stream, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:  # the call's own outcome (or cancel) stands
                    logger.warning("closing the stream of %s failed: %r", target.name, exc)
    except BaseException as exc:
        record.outcome = (
            (f"http_{exc.status}" if exc.status else "unreachable")
            if isinstance(exc, UpstreamError)
            else type(exc).__name__
        )
        raise
    finally:
        record.log()
        if span is not None:
            _end_span(span, record)


async def _connect(
    targets: list[Target], call: Open, record: CallRecord, retry: RetrySettings
) -> _Connected:
    """The first target, in order, whose stream yields a first event (or ends cleanly), with
    that stream and event, and the breaker permit the caller must release. Each target gets
    its bounded attempts; an open circuit is skipped. A failed attempt's permit is released
    here, whatever the failure (a cancellation included)."""
    last_error: UpstreamError | None = None
    for target in targets:
        record.target = target
        try:
            return await _on_target(target, call, record, retry)
        except UpstreamError as exc:
            exc.target = target.name
            last_error = exc
            if exc.request_error:
                raise
    raise last_error or UpstreamError("no target is configured")


async def _on_target(
    target: Target, call: Open, record: CallRecord, retry: RetrySettings
) -> _Connected:
    """Up to the target's `max_attempts`; raises the last attempt's error. The first attempt
    runs alone (the common case, an answer, pays for no retry machinery); tenacity runs the
    retries, each after the backoff its failed predecessor calls for."""
    attempts = target.settings.max_attempts
    try:
        return await _attempt(target, call, record)
    except UpstreamError as exc:
        if attempts < 2 or not _retryable(retry, exc):
            raise
        delay = _delay(retry, 1, exc)
    await asyncio.sleep(delay)

    def wait(state: RetryCallState) -> float:  # retry k is attempt k + 1
        exc = state.outcome.exception() if state.outcome else None
        return _delay(retry, state.attempt_number + 1, exc)

    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(attempts - 1),
        wait=wait,
        retry=retry_if_exception(lambda exc: _retryable(retry, exc)),
        reraise=True,
    ):
        with attempt:
            connected = await _attempt(target, call, record)
    return connected


async def _attempt(target: Target, call: Open, record: CallRecord) -> _Connected:
    """One attempt on `target`: its breaker's permit, the stream and its first event."""
    permit = target.breaker.allow()
    if permit is None:
        raise CircuitOpen(target.name)
    record.attempts += 1
    try:
        stream = call(target)
        first = await _first(stream, target)
    except BaseException:
        target.breaker.release(permit)
        raise
    return target, stream, first, permit


def _end_span(span: trace.Span, record: CallRecord) -> None:
    """GenAI attributes of the upstream call (semantic conventions); never content."""
    if record.target is not None:
        settings = record.target.settings
        span.set_attribute("gen_ai.provider.name", settings.provider)
        span.set_attribute("gen_ai.request.model", settings.model or record.model)
        span.set_attribute("propylon.target", record.target.name)
        if settings.base_url:
            span.set_attribute("server.address", settings.base_url)
    span.set_attribute("gen_ai.usage.input_tokens", record.usage.input_tokens)
    span.set_attribute("gen_ai.usage.output_tokens", record.usage.output_tokens)
    span.set_attribute("propylon.attempts", record.attempts)
    if record.outcome != "ok":
        span.set_attribute("error.type", record.outcome)
        span.set_status(trace.StatusCode.ERROR)
    span.end()


async def _first(stream: AsyncIterator[ProviderEvent], target: Target) -> ProviderEvent | None:
    """The stream's first event; an UpstreamError counts against the target's breaker."""
    try:
        return await anext(stream)
    except StopAsyncIteration:
        target.breaker.record_success()
        return None
    except UpstreamError as exc:
        if not exc.request_error:  # a refused request says nothing of the target's health
            target.breaker.record_failure()
        raise


class CircuitOpen(UpstreamError):
    """The target's circuit is open: skip it without an attempt."""

    def __init__(self, target: str) -> None:
        super().__init__(f"circuit open for target `{target}`", status=503)

    @property
    def retryable(self) -> bool:
        return False
