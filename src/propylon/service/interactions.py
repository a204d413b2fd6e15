"""Use cases of the Interactions API: create, get, stream, cancel, delete (reference §2), plus
the background worker's `execute` and start-up `recover`.

Every check that can refuse a request runs before anything is stored, so bad input changes
nothing. Runs execute as tasks of their own: a client that goes away does not stop a stored run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from propylon.bus.base import Bus
from propylon.config import Settings
from propylon.domain import lifecycle
from propylon.domain.caller import SYSTEM, Caller
from propylon.domain.clock import now
from propylon.domain.continuation import Continuation, encode
from propylon.domain.ids import new_interaction_id, parse_event_id
from propylon.domain.projection import Projection, copy_json
from propylon.domain.redaction import redact_request
from propylon.domain.usage import Usage
from propylon.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from propylon.gateway.registry import ModelRegistry
from propylon.gateway.router import CallRecord
from propylon.jobs.base import JobQueue
from propylon.jobs.local import LocalQueue
from propylon.observability import Metrics, traced_run
from propylon.outbound import OutboundPolicy
from propylon.providers.base import Ticket
from propylon.providers.google_interactions import GoogleInteractions
from propylon.runner.ceiling import Ceiling
from propylon.runner.log import EventLog, MemoryLog, StoredLog
from propylon.runner.mirror import mirror_turn
from propylon.runner.turn import announce, finish_unstarted, run_turn
from propylon.runner.writer import LogWriter
from propylon.schema.interactions import CreateInteraction, queue_priority
from propylon.service import reading
from propylon.service.custom_agents import AgentLookup, base_of
from propylon.service.files import FileService
from propylon.service.idempotency import Idempotency
from propylon.service.ledger import Ledger
from propylon.service.plan import AgentPlan, Plan, plan, request_of
from propylon.service.quotas import Quotas
from propylon.service.webhooks import WebhookService
from propylon.store.base import (
    Delivery,
    EventSource,
    IdempotencyClaim,
    InteractionRecord,
    Store,
)
from propylon.store.caches import CacheStore

__all__ = ["Created", "InteractionService", "to_resource"]

_INTERRUPTED = {
    "code": "interrupted",
    "message": "the server stopped while this interaction was running",
}
_STOPPED_UNENDED = {"code": "api_error", "message": "the run stopped without ending"}
_SHUTTING_DOWN = {
    "code": "service_unavailable",
    "message": "the server is shutting down: resume with `last_event_id` set to this event's id",
}


@dataclass(slots=True)
class Created:
    """The outcome of create: the resource (non-stream) or an event stream (stream=true, also
    with background=true: the background run's log, which goes on when its reader leaves)."""

    resource: dict[str, Any] | None = None
    events: AsyncIterator[reading.Batch] | None = None  # (batches of the log: reading.tail)
    interaction_id: str = ""
    task: asyncio.Task[None] | None = None  # a foreground run still to wait for
    log: EventLog | None = None
    # a store=false foreground run, to run inline by whoever waits for it, then `ticket`
    inline: Coroutine[Any, Any, None] | None = None
    ticket: Ticket | None = None


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
        **redact_request(record.request),  # credentials stay in the store only
        "steps": (record.input_steps + steps) if include_input_steps else list(steps),
    }
    if usage is not None:
        resource["usage"] = usage
    token = projection.continuation_token if projection else None
    if token is None and status == "requires_continuation":  # a stored one: named by its id
        token = encode(Continuation(interaction_id=record.id))
    if token is not None:
        resource["continuation_token"] = token
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
        *,
        ledger: Ledger,
        idempotency: Idempotency,
        webhooks: WebhookService | None = None,
        on_outbox: Callable[[], None] | None = None,
        metrics: Metrics | None = None,
        agents: dict[str, GoogleInteractions] | None = None,
        custom_agents: AgentLookup | None = None,
        caches: CacheStore | None = None,
        files: FileService | None = None,
    ) -> None:
        """`ledger` admits and settles spend; `idempotency` decides repeats of a create;
        `webhooks` computes an ending interaction's deliveries; `on_outbox` is told when
        new ones are committed (the delivery worker's wake-up); `metrics` counts what runs;
        `files` resolves content that names an uploaded file (service/files.py)."""
        self.files = files
        self.webhooks = webhooks
        self.metrics = metrics
        self.agents = agents or {}
        self.custom_agents = custom_agents  # the tenants' own agents (service/agents.py)
        self.caches = caches  # the tenants' cached contents (service/caches.py)
        self.quotas = Quotas(settings.rate_window_seconds, settings.redis_url)
        self.ledger = ledger
        self.idempotency = idempotency
        self.on_outbox = on_outbox
        self.store = store
        self.bus = bus
        self.models = models
        self.settings = settings
        self.keepalive = settings.stream_keepalive_seconds
        # the in-process queue; a distributed deployment puts procrastinate's here (app.py)
        self.jobs: JobQueue = LocalQueue(self.execute, settings.background_workers)
        # every stored log's events, one transaction per tick (group commit)
        self.writer = LogWriter(store, metrics.log_committed if metrics is not None else None)
        self._folds = reading.Folds()  # running interactions that run elsewhere, folded
        self._foreground: dict[str, asyncio.Task[None]] = {}
        self._callers: dict[str, Caller] = {}  # runs under way: whose tokens to count
        self._live: dict[str, EventLog] = {}  # runs under way here, by interaction id
        self._cancels: dict[str, asyncio.Future[InteractionRecord]] = {}
        self.stopping = False  # set once, by begin_shutdown

    async def create(
        self,
        request: CreateInteraction,
        caller: Caller,
        idempotency_key: str | None = None,
        body: Any = None,
    ) -> Created:
        """Validate, store and run one turn for `caller`'s tenant. With `idempotency_key` (and
        the decoded `body`), a repeat of the same body returns the first interaction instead of
        running again. Raises InvalidArgument, NotFound, FailedPrecondition, PermissionDenied
        or ResourceExhausted before anything is written."""
        target = request.model or request.agent or ""
        if request.agent and self.custom_agents is not None:  # a key's models cover its bases
            target = await base_of(self.custom_agents, caller.tenant, request.agent) or target
        self.quotas.allows(caller, target)  # the rpm/tpm count waits for a valid request
        if idempotency_key is None:
            return await self._finish(await self._create(request, caller, target))
        if not request.store:
            raise InvalidArgument(
                "`idempotency_key` (or the `Idempotency-Key` header) needs `store=true`: "
                "with `store=false` there is no interaction to return again"
            )
        first, started = await self.idempotency.first_or_create(
            self.idempotency.claim(caller.tenant, idempotency_key, body),
            lambda claim: self._create(request, caller, target, claim),
        )
        if first is not None:
            return await self._repeat(first, request)
        assert started is not None
        return await self._finish(started)

    async def _finish(self, created: Created) -> Created:
        """Wait for a foreground run's end and answer with its resource."""
        log = created.log
        if created.inline is not None and log is not None:
            # store=false: the run is this request's alone (its client leaving stops it), so
            # it runs here, in the request's task, not in a task of its own
            try:
                await created.inline
            finally:
                if created.ticket is not None:
                    created.ticket.release()
        elif created.task is not None and log is not None:
            await asyncio.shield(created.task)
        else:
            return created
        return Created(
            to_resource(log.record, log.projection, include_input_steps=False),
            interaction_id=log.record.id,
        )

    async def _create(
        self,
        request: CreateInteraction,
        caller: Caller,
        target: str,
        claim: IdempotencyClaim | None = None,
    ) -> Created:
        """Plan, admit (count the request against `target`'s rpm/tpm, reserve the run's
        ceiling), store and start one turn. A request refused while planning spends no rpm.
        With `claim`, the key and the row are written together before the run starts
        (IdempotencyConflict when another interaction holds the key)."""
        planned = await plan(
            request,
            self.store,
            self.models,
            self.settings,
            caller,
            self.agents,
            self.custom_agents,
            self.caches,
            files=self.files,
        )
        ticket = planned.ticket if isinstance(planned, Plan) else Ticket()
        try:
            await self.quotas.admit(caller, target)
            return await self._admitted(request, caller, claim, planned, ticket)
        except BaseException:
            ticket.release()  # refused (budget, idempotency, store): its place goes back
            raise

    async def _admitted(
        self,
        request: CreateInteraction,
        caller: Caller,
        claim: IdempotencyClaim | None,
        planned: Plan | AgentPlan,
        ticket: Ticket,
    ) -> Created:
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
            claim=claim,
        )
        await self.ledger.reserve(
            record, caller, planned.served if isinstance(planned, Plan) else None
        )
        self._callers[record.id] = caller
        # a foreground create that is not streamed: its id is nobody's until it answers
        unseen = not (request.background or request.stream or claim is not None)
        log = self._log(record, stored=request.store, hold=unseen)

        if request.background:
            announce(log, "in_progress" if self.jobs.has_capacity() else "queued")
            await self._stored(log)
            # stream=true: the creator reads the run's log; leaving stops the reading only.
            tail = self._tail(record.id) if request.stream else None
            if not self.jobs.transactional:  # else its job was deferred with its row
                await self.jobs.submit(record.id, queue_priority(request.service_tier))
            else:  # a worker runs it, under its key's policy read there (`execute`)
                self._callers.pop(record.id, None)
            if tail is not None:
                return Created(events=tail, interaction_id=record.id)
            return Created(
                to_resource(record, log.projection, include_input_steps=False),
                interaction_id=record.id,
            )

        announce(log, "in_progress")
        if claim is not None:
            await self._stored(log)  # the claim is decided before anything runs
        run = self._run(log, planned, request)
        if request.stream:
            # Subscribe before the run starts so the creator misses nothing.
            events = self._tail(record.id, source=log)
            task = self._start(record.id, run, stored=request.store, ticket=ticket)
            if not request.store:
                events = reading.cancel_on_close(events, task)
            # Let the run send its upstream request before this task builds the response:
            # the model starts on the answer while the stream's first events go out. Two loop
            # turns: the run's, then aiohttp's request body writer (a task of its own before
            # Python 3.12, started eagerly after).
            for _ in range(2):
                await asyncio.sleep(0)
            return Created(events=events, interaction_id=record.id)
        if not request.store:
            return Created(interaction_id=record.id, log=log, inline=run, ticket=ticket)
        task = self._start(record.id, run, stored=request.store, ticket=ticket)
        return Created(interaction_id=record.id, task=task, log=log)

    async def _stored(self, log: EventLog) -> None:
        """Wait until the new interaction's row is written; if it cannot be (or lost its
        idempotency key), the run is not admitted after all."""
        try:
            await log.drain()
        except BaseException:
            self._callers.pop(log.record.id, None)
            await self.ledger.release(log.record.id)
            raise

    async def _repeat(self, record: InteractionRecord, request: CreateInteraction) -> Created:
        """The answer to a repeated idempotent create: the first interaction, never a rerun."""
        if request.stream:
            return Created(events=self._tail(record.id), interaction_id=record.id)
        if not record.background and not lifecycle.is_terminal(record.status):
            async for _ in self._tail(record.id, record.last_seq):
                pass  # wait for the first request's run to end
            record = await self._record(record.id, SYSTEM)
        return Created(
            to_resource(await self._current(record), include_input_steps=False),
            interaction_id=record.id,
        )

    def _run(
        self, log: EventLog, planned: Plan | AgentPlan, request: CreateInteraction
    ) -> Coroutine[Any, Any, None]:
        record = log.record
        if isinstance(planned, AgentPlan):
            mirrored = mirror_turn(log, planned.agent, planned.body, stopping=self._stopping)
            return self._supervised(
                log,
                self._settled(
                    traced_run(mirrored, log, request.agent or "", self.settings.trace_content),
                    log,
                ),
            )
        caller = self._callers.get(record.id) or Caller(
            tenant=record.tenant, key_id=record.api_key_id
        )

        def on_done(call: CallRecord) -> None:
            record.add_cost(call.cost_usd())
            if self.metrics is not None:
                self.metrics.upstream_call(call, record.tenant)

        name = request.model or planned.served.name  # a custom agent's: its base
        provider = planned.served.bind(record.id, name, request.labels or {}, on_done)
        ceiling = self._ceiling(planned, request)
        # Only the whole answer matters to a foreground create that is not streamed and
        # cannot be cut (a background run may go on for long: it streams).
        armed = ceiling is not None and ceiling.armed
        planned.turn.streamed = request.stream or request.background or armed
        run = run_turn(
            log,
            provider,
            planned.turn,
            planned.mcp_servers,
            max_tool_rounds=self.settings.max_tool_rounds,
            tool_timeout=self.settings.tool_timeout_seconds,
            token_ceiling=self.ledger.ceiling(caller),  # what its admission reserved
            ceiling=ceiling,
            stopping=self._stopping,
            outbound=OutboundPolicy.from_settings(self.settings),
        )
        return self._supervised(
            log,
            self._settled(traced_run(run, log, name, self.settings.trace_content), log),
        )

    def _ceiling(self, planned: Plan, request: CreateInteraction) -> Ceiling | None:
        """A foreground run's per-turn ceilings (none for background runs, which go on with
        a cut answer themselves, nor for models that cannot continue one)."""
        if request.background or not planned.served.continues:
            return None
        return Ceiling(
            self.settings.continuation_after_seconds,
            self.settings.continuation_after_tokens,
            planned.prior_output_tokens,
        )

    async def _settled(self, run: Coroutine[Any, Any, None], log: EventLog) -> None:
        """`run`, then its reservation settled even when no terminal event was written (the
        log failed), unless the run was taken over (its log fenced out: the new owner
        settles it). A shutdown's cancel propagates unsettled: the next start recovers it."""
        try:
            await run
        except Exception:
            if not log.fenced:
                await self.ledger.settle(log.record)
            raise
        if not log.fenced:
            await self.ledger.settle(log.record)

    def _stopping(self) -> bool:
        return self.stopping

    async def _supervised(self, log: EventLog, run: Coroutine[Any, Any, None]) -> None:
        """Run one turn with its log registered as live here (its readers ask the log, not
        the store, how it goes). A run that stops without an end while the process is not
        stopping is ended here: never left `in_progress`."""
        self._live[log.interaction_id] = log
        try:
            await run
        except BaseException as exc:
            if not log.ended and not self.stopping:
                if isinstance(exc, asyncio.CancelledError):
                    finish_unstarted(log, "cancelled")
                else:
                    finish_unstarted(log, "failed", _STOPPED_UNENDED)
                await log.drain()
            raise
        finally:
            if self._live.get(log.interaction_id) is log:
                del self._live[log.interaction_id]

    def _start(
        self,
        interaction_id: str,
        run: Coroutine[Any, Any, None],
        *,
        stored: bool,
        ticket: Ticket | None = None,
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(run)

        def done(_: asyncio.Task[None]) -> None:  # one callback: each is a loop turn
            if ticket is not None:  # the run's place in its model's queue, until it ends
                ticket.release()
            # a stream's run is not awaited: its log failure was logged and told to its readers
            if not task.cancelled():
                task.exception()
            if stored:
                self._foreground.pop(interaction_id, None)

        task.add_done_callback(done)
        if stored:
            self._foreground[interaction_id] = task
        return task

    async def execute(self, interaction_id: str) -> None:
        """Run a stored background interaction (the job queue's handler): take the run over
        (a new run epoch: whoever ran it before can no longer write), rebuild its turn from
        the store and continue its log. A run taken over after it had produced steps (its
        worker died or stopped) ends `failed` with code `interrupted`; a turn that can no
        longer be planned (its model was removed, say) ends `failed`.

        A cancel while the process is not stopping is a user's: wherever it lands, the run
        ends `cancelled` here, at once (never left for a retry, nor only to the canceller,
        which may die before it ends the run). A stopping process's cancel leaves the run
        unfinished: it is handed back."""
        log: StoredLog | MemoryLog | None = None
        epoch: int | None = None
        try:
            epoch = await self.store.claim_run(interaction_id)
            if epoch is None:
                return  # deleted or finished meanwhile: never run twice
            record = await self.store.get(interaction_id)
            if record is None or lifecycle.is_terminal(record.status):
                return
            self.ledger.adopt(interaction_id)  # its end here settles its reservation
            if interaction_id not in self._callers:  # created by another process
                self._callers[interaction_id] = await self._owner(record)
            projection = await reading.fold(self.store, interaction_id)
            log = self._log(record, existing=projection, epoch=epoch)
            if projection.steps:  # it was under way elsewhere: no step is run twice
                await self.ledger.charge(interaction_id)  # as after a restart: its reservation
                finish_unstarted(log, "failed", _INTERRUPTED)
                await log.drain()
                return
            try:
                request = request_of(record)  # a value an older version stored may be refused
                planned = await plan(
                    request,
                    self.store,
                    self.models,
                    self.settings,
                    Caller(tenant=record.tenant, key_id=record.api_key_id),
                    self.agents,
                    self.custom_agents,
                    self.caches,
                    files=self.files,
                )
            except (InvalidArgument, NotFound, FailedPrecondition) as exc:
                error = {"code": "invalid_request", "message": exc.message}
                finish_unstarted(log, "failed", error)
                await log.drain()
                return
        except asyncio.CancelledError:
            if not self.stopping:
                await self._cancelled_early(interaction_id, epoch, log)
            raise
        finally:
            if log is None or log.ended:
                self._callers.pop(interaction_id, None)
        try:
            await self._run(log, planned, request)  # a cancel there ends it (`_supervised`)
        finally:
            self._callers.pop(interaction_id, None)

    async def _owner(self, record: InteractionRecord) -> Caller:
        """The caller whose key created `record`, with that key's policy (its token ceiling
        and token rate bind the run wherever it runs); no policy when the key is gone."""
        key = await self.store.api_key_by_id(record.api_key_id) if record.api_key_id else None
        return Caller(
            tenant=record.tenant,
            key_id=record.api_key_id,
            policy=dict(key.policy) if key is not None else {},
        )

    async def _cancelled_early(
        self, interaction_id: str, epoch: int | None, log: EventLog | None
    ) -> None:
        """A user's cancel reached `execute` before its run began: end the run `cancelled`
        with the log it had, else under the claim it had made (`epoch`; None: cancelled while
        claiming it, so it is taken over)."""
        if log is None:
            await self.close_cancelled(interaction_id, epoch)
            return
        finish_unstarted(log, "cancelled")
        await log.drain()

    async def get(
        self,
        interaction_id: str,
        caller: Caller,
        include_input: bool = False,
        *,
        include_input_steps: bool = True,
    ) -> dict[str, Any]:
        """The Interaction with its `user_input` steps (without: its output steps only).
        Raises NotFound (also for another tenant's)."""
        return to_resource(
            await self.current(interaction_id, caller),
            include_input=include_input,
            include_input_steps=include_input_steps,
        )

    async def current(self, interaction_id: str, caller: Caller) -> InteractionRecord:
        """The stored interaction, with the projection of its log while it still runs (the
        view other surfaces render). Raises NotFound (also for another tenant's)."""
        return await self._current(await self._record(interaction_id, caller))

    async def _current(self, record: InteractionRecord) -> InteractionRecord:
        """`record` with the projection of its log when it is still running: the committed
        fold its log keeps when it runs here, else this process's fold of the stored log,
        brought up to date with the events it lacks (either way the cost does not grow with
        the log's length)."""
        if lifecycle.is_terminal(record.status):
            self._folds.forget(record.id)
            return record
        live = self._live.get(record.id)
        if isinstance(live, StoredLog) and not live.fenced:  # a fenced one is out of date
            projection = live.committed()
        else:
            projection = await self._folds.current(self.store, record.id)
        record.status = projection.status
        # copies: the fold goes on changing in place while the answer is rendered
        record.steps, record.errors = copy_json(projection.steps), list(projection.errors)
        record.usage = projection.usage
        return record

    async def stream(
        self,
        interaction_id: str,
        last_event_id: str | None,
        caller: Caller,
        *,
        from_start: bool = False,
    ) -> AsyncIterator[reading.Batch]:
        """The log from the start (or after `last_event_id`), then live until its terminal
        event; None items are keep-alive ticks. Raises NotFound, or InvalidArgument when the
        event id is not one of this interaction's (or not yet: ahead of its log), Unavailable
        while the server is stopping. `from_start`: check `last_event_id` but send the log
        from its first event (for a view that skips up to it itself)."""
        record = await self._record(interaction_id, caller)
        if self.stopping:
            raise Unavailable("the server is shutting down; try again")
        after = 0
        if last_event_id:
            seq = parse_event_id(interaction_id, last_event_id)
            if seq is None or seq > record.last_seq:
                raise InvalidArgument(
                    f"`last_event_id` `{last_event_id}` is not an event of "
                    f"interaction `{interaction_id}`"
                )
            after = 0 if from_start else seq
        if lifecycle.is_terminal(record.status) and after >= record.last_seq:
            return reading.empty()
        return self._tail(interaction_id, after)

    def _tail(
        self, interaction_id: str, after: int = 0, source: EventSource | None = None
    ) -> AsyncIterator[reading.Batch]:
        """The log of `interaction_id` after event `after` (from `source`, by default the
        store), then live until its terminal event. Subscribes at once, so nothing
        appended from now on is missed."""
        return reading.tail(
            self.store if source is None else source,
            interaction_id,
            after,
            self.bus.subscribe(interaction_id),
            self.keepalive,
            self._watcher(interaction_id),
        )

    def _watcher(self, interaction_id: str) -> reading.Watch:
        """What a stream of `interaction_id` asks on each keep-alive tick (see reading.tail):
        the server stopping ends it; a run live here answers from its log; any other from
        the store's status (ended, or deleted)."""

        async def watch() -> dict[str, str] | None:
            if self.stopping:
                return _SHUTTING_DOWN
            live = self._live.get(interaction_id)
            if live is not None and not live.ended:
                return None
            if live is not None and live.failure is not None:
                return live.failure
            record = await self.store.get(interaction_id)
            if record is None:
                if live is not None:  # its end is still being written
                    return None
                return {"code": "not_found", "message": "the interaction no longer exists"}
            if lifecycle.is_terminal(record.status):
                return {
                    "code": "api_error",
                    "message": "the interaction ended without a last event",
                }
            return None

        return watch

    async def cancel(
        self, interaction_id: str, caller: Caller, *, include_input_steps: bool = True
    ) -> dict[str, Any]:
        """Cancel a queued or running background interaction; it ends `cancelled` with exactly
        one terminal event. Cancelling it again gives the same answer. Raises NotFound, or
        FailedPrecondition for a finished or foreground interaction."""
        record = await self._record(interaction_id, caller)
        if record.status == "cancelled":
            return to_resource(record, include_input_steps=include_input_steps)
        if not record.background:
            raise FailedPrecondition(
                "only background interactions can be cancelled; "
                f"`{interaction_id}` is a foreground interaction"
            )
        if not lifecycle.is_terminal(record.status):
            # One cancel at a time per interaction: concurrent ones share its outcome.
            ending = self._cancels.get(interaction_id)
            if ending is None:
                ending = asyncio.ensure_future(self._end_cancelled(interaction_id, caller))
                self._cancels[interaction_id] = ending
                ending.add_done_callback(lambda _: self._cancels.pop(interaction_id, None))
            record = await asyncio.shield(ending)
        if record.status != "cancelled":
            raise FailedPrecondition(
                f"interaction `{interaction_id}` has already finished (status `{record.status}`)"
            )
        return to_resource(record, include_input_steps=include_input_steps)

    async def _end_cancelled(self, interaction_id: str, caller: Caller) -> InteractionRecord:
        """Stop the run wherever it runs (its log ends it `cancelled`, unless it ended first)
        and wait until its log is written; a run that had not begun, or did not stop in the
        queue's bounded wait, is taken over and ended here."""
        await self.jobs.cancel(interaction_id)
        record = await self._record(interaction_id, caller)
        if not lifecycle.is_terminal(record.status):  # it had not begun, or did not stop
            await self.close_cancelled(interaction_id)
            record = await self._record(interaction_id, caller)
        return record

    async def close_cancelled(self, interaction_id: str, epoch: int | None = None) -> bool:
        """End an unfinished background run `cancelled` after its user's cancel and settle its
        reservation: a run nobody had begun spent nothing; one that somebody had claimed is
        charged its reservation (what it spent is not known here). `epoch`: the caller's own
        claim of the run, ended under it; None: the run is taken over (its old writer is
        fenced out). False when it had ended or was deleted first, or the claim was lost."""
        record = await self.store.get(interaction_id)
        if record is None or lifecycle.is_terminal(record.status):
            return False
        begun = record.run_epoch - (0 if epoch is None else 1)  # claims before this one
        if begun > 0:
            await self.ledger.charge(interaction_id)
        closed = await self.close_run(interaction_id, "cancelled", epoch=epoch)
        if closed and begun == 0:
            await self.ledger.settle_at(interaction_id, 0.0, 0)
        return closed

    async def close_run(
        self,
        interaction_id: str,
        status: str,
        error: dict[str, str] | None = None,
        *,
        epoch: int | None = None,
    ) -> bool:
        """Take an unfinished run over (a new run epoch: its old writer is fenced out) and end
        it with `status` (and an `error` event); with `epoch`, end it under that claim of the
        caller's instead. False when it had ended or was deleted first, or the claim was
        taken over since (nothing written)."""
        if epoch is None:
            epoch = await self.store.claim_run(interaction_id)
        record = await self.store.get(interaction_id) if epoch is not None else None
        if epoch is None or record is None:
            return False
        existing = await reading.fold(self.store, interaction_id)
        if existing.ended:  # it ended meanwhile (under `epoch`, the claim was still ours)
            return False
        log = self._log(record, existing=existing, epoch=epoch)
        finish_unstarted(log, status, error)
        await log.drain()
        return not log.fenced

    async def delete(self, interaction_id: str, caller: Caller) -> None:
        """Delete the interaction and its events, stopping a running one first.
        Raises NotFound. Its spend stays in the ledger (no refund)."""
        record = await self._record(interaction_id, caller)
        task = self._foreground.get(interaction_id)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self.jobs.cancel(interaction_id)
        await self.ledger.settle(record)  # one that never ran (queued): at its cost so far
        if not await self.store.delete(interaction_id):
            raise NotFound(f"interaction `{interaction_id}` not found")

    async def recover(self) -> tuple[int, int]:
        """Bring every run a previous process left unfinished to an end, once, at start-up:
        a background run that had produced no step yet runs again from the start (queued);
        any other ends `failed` with an `errors` entry saying it was interrupted and is
        charged its reservation. Then every reservation left open is settled (the ledger).

        Returns (re-queued, closed)."""
        requeued = closed = 0
        for interaction_id in await self.store.unfinished():
            record = await self.store.get(interaction_id)
            if record is None:
                continue
            projection = await reading.fold(self.store, interaction_id)
            if record.background and not projection.steps:
                self.ledger.adopt(interaction_id)  # its run here settles its reservation
                await self.jobs.submit(
                    interaction_id, queue_priority(record.request.get("service_tier"))
                )
                requeued += 1
                continue
            await self.ledger.charge(interaction_id)
            closed += await self.close_run(interaction_id, "failed", _INTERRUPTED)
        await self.ledger.recover(self.store.get)
        return requeued, closed

    def begin_shutdown(self) -> None:
        """The process is stopping: from now on a cancelled run is left unfinished (the next
        start recovers it) and every open stream ends, with an `error` event that names the
        last event sent (a client resumes from it after the restart). Idempotent."""
        self.stopping = True
        self.bus.close()

    async def shutdown(self) -> None:
        """Stop every run still going without ending it: the next start recovers each."""
        self.begin_shutdown()
        tasks = list(self._foreground.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.jobs.stop()
        await self.writer.close()

    def _log(
        self,
        record: InteractionRecord,
        *,
        stored: bool = True,
        existing: Projection | None = None,
        epoch: int | None = None,
        hold: bool = False,
    ) -> StoredLog | MemoryLog:
        """The log writer of `record` (store=false: kept in memory only), appending under run
        `epoch` (by default the record's). `hold`: its first events may wait up to
        `foreground_hold_seconds` to be written with more (a new run nobody can read yet)."""
        if not stored:
            return MemoryLog(record, self.bus, on_ended=self._account)
        return StoredLog(
            record,
            self.store,
            self.bus,
            existing=existing,
            on_terminal=self._deliveries,
            on_outbox=self.on_outbox,
            epoch=epoch,
            on_ended=self._account,
            writer=self.writer,
            hold=(self.settings.foreground_hold_seconds or None) if hold else None,
        )

    async def _deliveries(self, record: InteractionRecord) -> list[Delivery]:
        """A stored run is ending: the webhook deliveries it sends (written with its end)."""
        if self.webhooks is None:
            return []
        return await self.webhooks.deliveries_for(record)

    async def _account(self, record: InteractionRecord) -> None:
        """A run ended (`store=false` ones too): settle its spend, count its tokens and
        metrics. Once its terminal event is written by this writer (one fenced out of its run
        settles nothing: the run's new owner does), before its readers are told of it."""
        await self.ledger.settle(record)
        usage = Usage.from_wire(record.usage)
        caller = self._callers.pop(record.id, None)
        if caller is not None:
            await self.quotas.count_tokens(caller, usage.total_tokens)
        if self.metrics is not None:
            self.metrics.interaction_ended(record, usage)

    async def _record(self, interaction_id: str, caller: Caller) -> InteractionRecord:
        record = await self.store.get(interaction_id)
        if record is None or not caller.sees(record.tenant):
            raise NotFound(f"interaction `{interaction_id}` not found")
        return record
