"""Use cases of the Interactions API: create, get, stream, cancel, delete (reference §2), plus
the background worker's `execute` and start-up `recover`.

Every check that can refuse a request runs before anything is stored, so bad input changes
nothing. Runs execute as tasks of their own: a client that goes away does not stop a stored run.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import orjson

from propylon.bus.base import Bus
from propylon.config import Settings
from propylon.domain import lifecycle
from propylon.domain.caller import ANONYMOUS, Caller
from propylon.domain.clock import now
from propylon.domain.events import Event
from propylon.domain.ids import new_interaction_id, parse_event_id
from propylon.domain.projection import Projection
from propylon.domain.usage import Usage
from propylon.errors import FailedPrecondition, InvalidArgument, NotFound
from propylon.gateway.registry import ModelRegistry
from propylon.gateway.router import CallRecord
from propylon.jobs.base import SHUTDOWN
from propylon.jobs.local import LocalQueue
from propylon.observability import Metrics, traced_run
from propylon.outbound import OutboundPolicy
from propylon.providers.google_interactions import GoogleInteractions
from propylon.runner.log import EventLog
from propylon.runner.mirror import mirror_turn
from propylon.runner.turn import announce, finish_unstarted, run_turn
from propylon.schema.interactions import CreateInteraction
from propylon.service import reading
from propylon.service.plan import AgentPlan, Plan, plan, request_of
from propylon.service.quotas import Quotas
from propylon.service.webhooks import WebhookService
from propylon.store.base import Delivery, EventSource, InteractionRecord, Store

__all__ = ["Created", "InteractionService", "to_resource"]

_INTERRUPTED = {
    "code": "interrupted",
    "message": "the server stopped while this interaction was running",
}


@dataclass(slots=True)
class Created:
    """The outcome of create: the resource (non-stream) or an event stream (stream=true)."""

    resource: dict[str, Any] | None = None
    events: AsyncIterator[Event | None] | None = None
    interaction_id: str = ""
    task: asyncio.Task[None] | None = None  # a foreground run still to wait for
    log: EventLog | None = None


def to_resource(
    record: InteractionRecord,
    projection: Projection | None = None,
    *,
    include_input_steps: bool = True,
    include_input: bool = False,
) -> dict[str, Any]:
    """The wire Interaction (reference §4.1) for `record`, with the status, steps and usage of
    `projection` when given (a live run) or of the record's stored snapshot."""
    status = projection.status if projection else record.status
    steps = projection.steps if projection else record.steps
    usage = projection.usage if projection else record.usage
    errors = projection.errors if projection else record.errors
    resource: dict[str, Any] = {
        "id": record.id,
        "object": "interaction",
        "status": status,
        "created": record.created,
        "updated": (projection.updated if projection else None) or record.updated,
        **record.request,
        "steps": (record.input_steps + steps) if include_input_steps else list(steps),
    }
    if usage is not None:
        resource["usage"] = usage
    if errors:
        resource["errors"] = errors
    if include_input and record.input is not None:
        resource["input"] = record.input
    return resource


class InteractionService:
    """The use cases, over a store, a bus, the model registry and the background job queue."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        models: ModelRegistry,
        settings: Settings,
        webhooks: WebhookService | None = None,
        on_outbox: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        agents: dict[str, GoogleInteractions] | None = None,
    ) -> None:
        """`webhooks` computes an ending interaction's deliveries; `on_outbox` is told when
        new ones are committed (the delivery worker's wake-up); `metrics` counts what runs."""
        self.webhooks = webhooks
        self.metrics = metrics
        self.agents = agents or {}
        self.quotas = Quotas(store, settings.rate_window_seconds)
        self.on_outbox = on_outbox
        self.store = store
        self.bus = bus
        self.models = models
        self.settings = settings
        self.keepalive = settings.stream_keepalive_seconds
        self.jobs = LocalQueue(self.execute, settings.background_workers)
        self._foreground: dict[str, asyncio.Task[None]] = {}
        self._key_locks: dict[str, asyncio.Lock] = {}
        self._key_users: dict[str, int] = {}
        self._callers: dict[str, Caller] = {}  # runs under way: whose tokens to count

    async def create(
        self,
        request: CreateInteraction,
        caller: Caller = ANONYMOUS,
        idempotency_key: str | None = None,
        body: Any = None,
    ) -> Created:
        """Validate, store and run one turn for `caller`'s tenant. With `idempotency_key` (and
        the decoded `body`), a repeat of the same body returns the first interaction instead of
        running again. Raises InvalidArgument, NotFound, FailedPrecondition, PermissionDenied
        or ResourceExhausted before anything is written."""
        await self.quotas.admit(caller, request.model or request.agent or "")
        if idempotency_key is None:
            return await self._finish(await self._create(request, caller))
        idempotency_key = f"{caller.tenant}/{idempotency_key}"  # keys are per tenant
        if not request.store:
            raise InvalidArgument(
                "`Idempotency-Key` needs `store=true`: with `store=false` "
                "there is no interaction to return again"
            )
        body_hash = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        # The lock covers the look-up and the claim only: duplicates wait for the first run
        # outside it. Across processes the store's key table decides.
        lock = self._key_locks.setdefault(idempotency_key, asyncio.Lock())
        self._key_users[idempotency_key] = self._key_users.get(idempotency_key, 0) + 1
        try:
            async with lock:
                found = await self.store.find_idempotency_key(idempotency_key, time.time())
                first = None
                if found is not None:
                    first_hash, interaction_id = found
                    if first_hash != body_hash:
                        raise InvalidArgument(
                            "this `Idempotency-Key` was used with a different request body"
                        )
                    first = await self.store.get(interaction_id)
                if first is None:
                    started = await self._create(request, caller, (idempotency_key, body_hash))
        finally:
            self._key_users[idempotency_key] -= 1
            if not self._key_users[idempotency_key]:
                del self._key_users[idempotency_key], self._key_locks[idempotency_key]
        if first is not None:
            return await self._repeat(first, request)
        return await self._finish(started)

    async def _finish(self, created: Created) -> Created:
        """Wait for a foreground run's end and answer with its resource."""
        if created.task is None or created.log is None:
            return created
        task, log = created.task, created.log
        await (asyncio.shield(task) if log.events is None else task)
        return Created(
            to_resource(log.record, log.projection, include_input_steps=False),
            interaction_id=log.record.id,
        )

    async def _create(
        self, request: CreateInteraction, caller: Caller, key: tuple[str, str] | None = None
    ) -> Created:
        planned = await plan(request, self.store, self.models, self.settings, caller, self.agents)
        timestamp = now()
        record = InteractionRecord(
            id=new_interaction_id(),
            status="in_progress",
            created=timestamp,
            updated=timestamp,
            request=request.echoed_fields(),
            input=request.input,
            input_steps=planned.input_steps,
            previous_interaction_id=request.previous_interaction_id,
            background=request.background,
            tenant=caller.tenant,
            api_key_id=caller.key_id,
        )
        self._callers[record.id] = caller
        if key is not None:
            await self.store.save_idempotency_key(
                key[0], key[1], record.id, time.time() + self.settings.idempotency_window_seconds
            )
        log = self._log(record, stored=request.store)

        if request.background:
            announce(log, "in_progress" if self.jobs.has_capacity() else "queued")
            await log.drain()
            self.jobs.submit(record.id)
            return Created(
                to_resource(record, log.projection, include_input_steps=False),
                interaction_id=record.id,
            )

        announce(log, "in_progress")
        run = self._run(log, planned, request)
        if request.stream:
            # Subscribe before the run starts so the creator misses nothing.
            source: EventSource = log if log.events is not None else self.store
            events = reading.tail(
                source, record.id, 0, self.bus.subscribe(record.id), self.keepalive
            )
            task = self._start(record.id, run, stored=request.store)
            if not request.store:
                events = reading.cancel_on_close(events, task)
            return Created(events=events, interaction_id=record.id)
        task = self._start(record.id, run, stored=request.store)
        return Created(interaction_id=record.id, task=task, log=log)

    async def _repeat(self, record: InteractionRecord, request: CreateInteraction) -> Created:
        """The answer to a repeated idempotent create: the first interaction, never a rerun."""
        if request.stream:
            events = reading.tail(
                self.store, record.id, 0, self.bus.subscribe(record.id), self.keepalive
            )
            return Created(events=events, interaction_id=record.id)
        if not record.background and not lifecycle.is_terminal(record.status):
            async for _ in reading.tail(
                self.store,
                record.id,
                record.last_seq,
                self.bus.subscribe(record.id),
                self.keepalive,
            ):
                pass  # wait for the first request's run to end
            record = await self._record(record.id)
        return Created(
            to_resource(await self._current(record), include_input_steps=False),
            interaction_id=record.id,
        )

    def _run(
        self, log: EventLog, planned: Plan | AgentPlan, request: CreateInteraction
    ) -> Coroutine[Any, Any, None]:
        record = log.record
        if isinstance(planned, AgentPlan):
            return traced_run(
                mirror_turn(log, planned.agent, planned.body),
                log,
                request.agent or "",
                self.settings.trace_content,
            )
        caller = self._callers.get(record.id)
        policy = caller.policy if caller else {}

        def on_done(call: CallRecord) -> None:
            record.add_cost(call.cost_usd())
            if self.metrics is not None:
                self.metrics.upstream_call(call, record.tenant)

        provider = planned.served.bind(
            record.id, request.model or "", request.labels or {}, on_done
        )
        run = run_turn(
            log,
            provider,
            planned.turn,
            planned.mcp_servers,
            max_tool_rounds=self.settings.max_tool_rounds,
            tool_timeout=self.settings.tool_timeout_seconds,
            token_ceiling=policy.get("max_tokens_per_interaction")
            or self.settings.max_tokens_per_interaction,
            outbound=OutboundPolicy.from_settings(self.settings),
        )
        return traced_run(run, log, request.model or "", self.settings.trace_content)

    def _start(
        self, interaction_id: str, run: Coroutine[Any, Any, None], *, stored: bool
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(run)
        if stored:
            self._foreground[interaction_id] = task
            task.add_done_callback(lambda _: self._foreground.pop(interaction_id, None))
        return task

    async def execute(self, interaction_id: str) -> None:
        """Run a stored background interaction (the job queue's handler): rebuild its turn from
        the store and continue its log. A turn that can no longer be planned (its model was
        removed, say) ends `failed`."""
        record = await self.store.get(interaction_id)
        if record is None or lifecycle.is_terminal(record.status):
            return  # deleted or finished meanwhile: never run twice
        log = self._log(record, existing=await reading.fold(self.store, interaction_id))
        request = request_of(record)
        try:
            planned = await plan(
                request,
                self.store,
                self.models,
                self.settings,
                Caller(tenant=record.tenant, key_id=record.api_key_id),
                self.agents,
            )
        except (InvalidArgument, NotFound, FailedPrecondition) as exc:
            finish_unstarted(log, "failed", {"code": "invalid_request", "message": exc.message})
            await log.drain()
            return
        except asyncio.CancelledError as exc:
            if exc.args != (SHUTDOWN,):
                finish_unstarted(log, "cancelled")
                await log.drain()
            raise
        await self._run(log, planned, request)

    async def get(
        self, interaction_id: str, caller: Caller = ANONYMOUS, include_input: bool = False
    ) -> dict[str, Any]:
        """The Interaction with its `user_input` steps. Raises NotFound (also for another
        tenant's)."""
        record = await self._current(await self._record(interaction_id, caller))
        return to_resource(record, include_input=include_input)

    async def _current(self, record: InteractionRecord) -> InteractionRecord:
        """`record` with the projection of its log when it is still running."""
        if lifecycle.is_terminal(record.status):
            return record
        projection = await reading.fold(self.store, record.id)
        record.status = projection.status
        record.steps, record.errors = projection.steps, projection.errors
        record.usage = projection.usage
        return record

    async def stream(
        self, interaction_id: str, last_event_id: str | None, caller: Caller = ANONYMOUS
    ) -> AsyncIterator[Event | None]:
        """The log from the start (or after `last_event_id`), then live until its terminal
        event; None items are keep-alive ticks. Raises NotFound, or InvalidArgument when the
        event id is not one of this interaction's."""
        record = await self._record(interaction_id, caller)
        after = 0
        if last_event_id:
            seq = parse_event_id(interaction_id, last_event_id)
            if seq is None or (seq > record.last_seq and lifecycle.is_terminal(record.status)):
                raise InvalidArgument(
                    f"`last_event_id` `{last_event_id}` is not an event of "
                    f"interaction `{interaction_id}`"
                )
            after = seq
        if lifecycle.is_terminal(record.status) and after >= record.last_seq:
            return reading.empty()
        return reading.tail(
            self.store, interaction_id, after, self.bus.subscribe(interaction_id), self.keepalive
        )

    async def cancel(self, interaction_id: str, caller: Caller = ANONYMOUS) -> dict[str, Any]:
        """Cancel a queued or running background interaction; it ends `cancelled` with exactly
        one terminal event. Cancelling it again gives the same answer. Raises NotFound, or
        FailedPrecondition for a finished or foreground interaction."""
        record = await self._record(interaction_id, caller)
        if record.status == "cancelled":
            return to_resource(record)
        if not record.background:
            raise FailedPrecondition(
                "only background interactions can be cancelled; "
                f"`{interaction_id}` is a foreground interaction"
            )
        if lifecycle.is_terminal(record.status):
            raise FailedPrecondition(
                f"interaction `{interaction_id}` has already finished (status `{record.status}`)"
            )
        if self.jobs.cancel(interaction_id):
            await self.jobs.wait(interaction_id)
        record = await self._record(interaction_id)
        if not lifecycle.is_terminal(record.status):  # cancelled before its run began
            log = self._log(record, existing=await reading.fold(self.store, interaction_id))
            finish_unstarted(log, "cancelled")
            await log.drain()
            record = await self._record(interaction_id)
        return to_resource(record)

    async def delete(self, interaction_id: str, caller: Caller = ANONYMOUS) -> None:
        """Delete the interaction and its events, stopping a running one first.
        Raises NotFound."""
        await self._record(interaction_id, caller)
        task = self._foreground.get(interaction_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if self.jobs.cancel(interaction_id):
            await self.jobs.wait(interaction_id)
        if not await self.store.delete(interaction_id):
            raise NotFound(f"interaction `{interaction_id}` not found")

    async def recover(self) -> tuple[int, int]:
        """Bring every run a previous process left unfinished to an end, once, at start-up:
        a background run that had produced no step yet runs again from the start (queued);
        any other ends `failed` with an `errors` entry saying it was interrupted.

        Returns (re-queued, closed)."""
        requeued = closed = 0
        for interaction_id in await self.store.unfinished():
            record = await self.store.get(interaction_id)
            if record is None:
                continue
            projection = await reading.fold(self.store, interaction_id)
            if record.background and not projection.steps:
                self.jobs.submit(interaction_id)
                requeued += 1
                continue
            log = self._log(record, existing=projection)
            finish_unstarted(log, "failed", _INTERRUPTED)
            await log.drain()
            closed += 1
        return requeued, closed

    async def shutdown(self) -> None:
        """Stop every run still going without ending it: the next start recovers each."""
        tasks = list(self._foreground.values())
        for task in tasks:
            task.cancel(SHUTDOWN)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.jobs.stop()

    def _log(
        self, record: InteractionRecord, *, stored: bool = True, existing: Projection | None = None
    ) -> EventLog:
        """The log writer of `record` (store=false: kept in memory only)."""
        if not stored:
            return EventLog(record, None, self.bus)
        return EventLog(
            record,
            self.store,
            self.bus,
            existing=existing,
            on_terminal=self._ended,
            on_outbox=self.on_outbox,
        )

    async def _ended(self, record: InteractionRecord) -> list[Delivery]:
        """A run ended: count its tokens and metrics; the webhook deliveries it sends."""
        usage = Usage.from_wire(record.usage)
        caller = self._callers.pop(record.id, None)
        if caller is not None:
            self.quotas.count_tokens(caller, usage.total_tokens)
        if self.metrics is not None:
            self.metrics.interaction_ended(record, usage)
        if self.webhooks is None:
            return []
        return await self.webhooks.deliveries_for(record)

    async def _record(self, interaction_id: str, caller: Caller = ANONYMOUS) -> InteractionRecord:
        record = await self.store.get(interaction_id)
        if record is None or not caller.sees(record.tenant):
            raise NotFound(f"interaction `{interaction_id}` not found")
        return record
