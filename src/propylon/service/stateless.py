"""Stateless model calls: one model answer (or one embedding) for a surface that keeps no
state, such as OpenAI's Chat Completions. Nothing is stored: no interaction, no event log.

A call goes through the same collaborators as an interaction: the model registry (aliases,
targets), the key's policy (`Quotas`: allowed models, rpm, tpm), the spend `Ledger` (its
ceiling reserved under the call's id, settled to its cost when it ends), the gateway (retries,
fallback, breaker, one `upstream call` log line per call, with `interaction_id` set to the
call's id) and the metrics (tokens and cost per model and tenant). A key's token ceiling
(`max_tokens_per_interaction`) caps the call's output tokens, since one call is one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import orjson

from propylon.domain.caller import Caller
from propylon.domain.clock import now
from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument, PropylonError, ResourceExhausted, Unavailable
from propylon.gateway.registry import ModelRegistry, ServedModel
from propylon.gateway.router import CallRecord
from propylon.observability import Metrics
from propylon.providers.base import (
    Embeddings,
    ProviderEvent,
    Ticket,
    Turn,
    UpstreamError,
    UsageReport,
)
from propylon.service.ledger import Ledger
from propylon.service.quotas import Quotas
from propylon.store.base import InteractionRecord

__all__ = ["Call", "StatelessCalls", "upstream_failure"]


@dataclass(slots=True)
class Call:
    """A model call under way: iterate `events` (the first one already fetched, so a failure
    before any output was raised by `StatelessCalls.answer`), then `close` it. Its accounting
    runs once, when the events end or at `close`, whichever comes first."""

    id: str
    events: AsyncGenerator[ProviderEvent, None]
    usage: Usage = field(default_factory=Usage)
    ending: Callable[[str], Awaitable[None]] | None = None

    async def end(self, status: str) -> None:
        """Stop the upstream call and do the call's accounting (once; later calls: nothing).
        The accounting runs to its end even when the caller is cancelled meanwhile (a client
        that went away cancels the response's tasks, again at each await): else the call's
        reservation would stay open in the ledger, holding the key's budget."""
        ending, self.ending = self.ending, None
        if ending is not None:
            await asyncio.shield(asyncio.ensure_future(ending(status)))

    async def close(self) -> None:
        """End the call whether or not its events were read (a client that went away)."""
        await _close(self.events)
        await self.end("failed")


class StatelessCalls:
    """Admits, routes and accounts for stateless calls."""

    def __init__(
        self,
        models: ModelRegistry,
        quotas: Quotas,
        ledger: Ledger,
        metrics: Metrics | None = None,
    ) -> None:
        self.models = models  # replaced on a reload, like the interaction service's
        self.quotas = quotas
        self.ledger = ledger
        self.metrics = metrics

    def resolve(self, name: str) -> ServedModel:
        """The served model called `name`. Raises NotFound (param `model`)."""
        return self.models.resolve(name)

    async def answer(
        self,
        caller: Caller,
        name: str,
        turn: Turn,
        labels: dict[str, str],
        prefix: str = "call",
    ) -> Call:
        """Start `turn` on the model `name` for `caller`; the Call's id is `prefix-<random>`.

        Raises, before any output, NotFound, PermissionDenied, ResourceExhausted (rpm/tpm,
        budget, a busy model), InvalidArgument (a target cannot honour the turn, or the
        upstream refused it) or Unavailable (every target failed)."""
        served = self.resolve(name)
        self.quotas.allows(caller, name)
        served.check(turn)  # before the rpm count: a refused request spends none of it
        await self.quotas.admit(caller, name)
        ceiling = self.ledger.ceiling(caller)
        if ceiling is not None:
            asked = turn.generation_config.get("max_output_tokens")
            turn.generation_config["max_output_tokens"] = min(asked or ceiling, ceiling)
        record = _record(f"{prefix}-{secrets.token_hex(12)}", caller, name)
        ticket = served.admit()
        try:
            await self.ledger.reserve(record, caller, served)
        except BaseException:
            ticket.release()
            raise
        bound = served.bind(record.id, name, labels, lambda done: self._costed(done, record))
        events = bound.stream(turn)
        call = Call(record.id, _noop())

        async def end(status: str) -> None:
            try:
                await _close(events)
            finally:
                await self._end(call, record, caller, ticket, status)

        call.ending = end
        try:
            first = await anext(events, None)
        except BaseException as exc:
            await call.end("failed")
            if isinstance(exc, UpstreamError):
                raise upstream_failure(exc) from None
            raise
        call.events = self._accounted(call, first, events)
        return call

    async def embed(
        self,
        caller: Caller,
        name: str,
        texts: list[str],
        dimensions: int | None,
        labels: dict[str, str],
    ) -> Embeddings:
        """The embeddings of `texts` from the model `name`, admitted and accounted like a
        call. Raises what `answer` raises before output."""
        served = self.resolve(name)
        await self.quotas.admit(caller, name)
        record = _record(f"embedding-{secrets.token_hex(12)}", caller, name)
        await self.ledger.reserve(record, caller, served)
        call = Call(record.id, _noop())
        call_record = self._call_record(served, name, labels, record)
        status = "failed"
        try:
            made: Embeddings | None = None
            async for event in served.embed(texts, dimensions, call_record):
                if isinstance(event, Embeddings):
                    made = event
                    call.usage = event.usage
            if made is None:
                raise Unavailable(f"model `{name}` answered no embeddings")
            status = "completed"
            return made
        except UpstreamError as exc:
            raise upstream_failure(exc) from None
        finally:
            await self._end(call, record, caller, Ticket(), status)

    def _call_record(
        self, served: ServedModel, alias: str, labels: dict[str, str], record: InteractionRecord
    ) -> CallRecord:
        return CallRecord(
            model=served.name,
            alias=alias,
            labels=labels,
            interaction_id=record.id,
            on_done=lambda done: self._costed(done, record),
        )

    def _costed(self, done: CallRecord, record: InteractionRecord) -> None:
        record.add_cost(done.cost_usd())
        if self.metrics is not None:
            self.metrics.upstream_call(done, record.tenant)

    async def _accounted(
        self, call: Call, first: ProviderEvent | None, events: AsyncIterator[ProviderEvent]
    ) -> AsyncGenerator[ProviderEvent, None]:
        """`first`, then the rest of `events`; the call's usage kept from its reports, and
        the call ended when the events end, however they end."""
        status = "failed"
        try:
            if first is not None:
                self._count(call, first)
                yield first
                async for event in events:
                    self._count(call, event)
                    yield event
            status = "completed"
        finally:
            await call.end(status)

    @staticmethod
    def _count(call: Call, event: ProviderEvent) -> None:
        if isinstance(event, UsageReport):
            call.usage = event.usage

    async def _end(
        self, call: Call, record: InteractionRecord, caller: Caller, ticket: Ticket, status: str
    ) -> None:
        """Settle the reservation to the call's cost, count its tokens and metrics."""
        ticket.release()
        record.status = status
        record.usage = call.usage.to_wire()
        await self.ledger.settle(record)
        await self.quotas.count_tokens(caller, call.usage.total_tokens)
        if self.metrics is not None:
            self.metrics.model_used(
                record.request["model"], record.tenant, call.usage, record.cost_usd
            )


def _record(call_id: str, caller: Caller, model: str) -> InteractionRecord:
    """The ledger's view of a stateless call (never stored as an interaction)."""
    timestamp = now()
    return InteractionRecord(
        id=call_id,
        status="in_progress",
        created=timestamp,
        updated=timestamp,
        request={"model": model},
        input=None,
        input_steps=[],
        tenant=caller.tenant,
        api_key_id=caller.key_id,
    )


async def _noop() -> AsyncGenerator[ProviderEvent, None]:
    return
    yield  # an empty async generator


async def _close(events: AsyncIterator[ProviderEvent]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        # "already running": a task cut short is reading it and ends it as it unwinds
        with contextlib.suppress(RuntimeError):
            await close()


def upstream_failure(exc: UpstreamError) -> PropylonError:
    """The client-facing error of a call every target failed before any output: the
    upstream's refusal of the request (400), its rate limit (429), else unavailable (503)."""
    where = f"upstream `{exc.target}`" if exc.target else "the upstream"
    message = _upstream_message(exc)
    if exc.request_error:
        return InvalidArgument(f"{where} refused the request: {message}")
    if exc.status == 429:
        return ResourceExhausted(f"{where} is rate limited: {message}", exc.retry_after or 1)
    return Unavailable(f"{where} failed: {message}")


def _upstream_message(exc: UpstreamError) -> str:
    """The upstream's own `error.message` (Google's and OpenAI's bodies both have one), else
    the error's message."""
    try:
        return str(orjson.loads(exc.body or "")["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return exc.message
