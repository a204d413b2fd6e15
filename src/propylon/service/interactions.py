"""Use cases of the Interactions API: create, get, stream, cancel, delete (reference §2).

Every check that can refuse a request runs before anything is stored, so bad input changes
nothing. Runs execute as tasks of their own: a client that goes away does not stop a stored run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

from propylon.bus.base import Bus, Subscription
from propylon.config import Settings
from propylon.domain import lifecycle
from propylon.domain.clock import now
from propylon.domain.events import COMPLETED, ERROR, Event, is_terminal_event
from propylon.domain.ids import new_interaction_id, parse_event_id
from propylon.domain.projection import Projection
from propylon.errors import FailedPrecondition, InvalidArgument, NotFound
from propylon.gateway.registry import ModelRegistry
from propylon.outbound import check_url
from propylon.providers.base import Turn
from propylon.runner.history import check_function_results
from propylon.runner.log import EventLog
from propylon.runner.turn import run_turn
from propylon.schema.interactions import CreateInteraction, json_schema_of, normalize_input
from propylon.store.base import EventSource, InteractionRecord, Snapshot, Store

__all__ = ["Created", "InteractionService", "to_resource"]

_FIRST_PAGE = 32  # events in the first store read of a replay
_PAGE = 500  # events per later store read


@dataclass(slots=True)
class Created:
    """The outcome of create: the resource (non-stream) or an event stream (stream=true)."""

    resource: dict[str, Any] | None = None
    events: AsyncIterator[Event | None] | None = None
    interaction_id: str = ""


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
    """The use cases, over a store, a bus and the model registry."""

    def __init__(self, store: Store, bus: Bus, models: ModelRegistry, settings: Settings) -> None:
        self.store = store
        self.bus = bus
        self.models = models
        self.settings = settings
        self.keepalive = settings.stream_keepalive_seconds
        self._runs: dict[str, asyncio.Task[None]] = {}

    async def create(self, request: CreateInteraction) -> Created:
        """Validate, store and run one turn. Raises InvalidArgument, NotFound or
        FailedPrecondition before anything is written."""
        if not request.store and request.previous_interaction_id:
            raise InvalidArgument(
                "`previous_interaction_id` needs `store=true`: nothing is "
                "kept with `store=false`; send the whole history as steps"
            )
        if not request.store and request.background:
            raise InvalidArgument("`background=true` needs `store=true`")
        if request.agent:
            raise NotFound(f"agent `{request.agent}` is not served here")
        assert request.model is not None
        served = self.models.resolve(request.model)
        input_steps = normalize_input(request.input)
        if not input_steps:
            raise InvalidArgument("`input` is required")

        history: list[dict[str, Any]] = []
        if request.previous_interaction_id:
            previous = await self.store.get(request.previous_interaction_id)
            if previous is None:
                raise NotFound(
                    f"previous interaction `{request.previous_interaction_id}` not found"
                )
            if previous.status not in lifecycle.CONTINUABLE:
                raise FailedPrecondition(
                    f"previous interaction `{previous.id}` has not finished "
                    f"(status `{previous.status}`)"
                )
            history = await self.store.history(previous.id)
        check_function_results(history, input_steps)

        tools = request.tools or []
        mcp_servers = [tool for tool in tools if tool.get("type") == "mcp_server"]
        for server in mcp_servers:
            await check_url(
                server["url"],
                allow_private=self.settings.allow_private_network_targets,
                what=f"MCP server `{server['name']}`",
            )

        config = request.generation_config
        turn = Turn(
            history=history + input_steps,
            system_instruction=request.system_instruction,
            tools=[tool for tool in tools if tool.get("type") != "mcp_server"],
            generation_config=config.model_dump(exclude_none=True) if config else {},
            json_schema=json_schema_of(request),
        )
        served.check(turn)

        timestamp = now()
        record = InteractionRecord(
            id=new_interaction_id(),
            status="in_progress",
            created=timestamp,
            updated=timestamp,
            request=request.echoed_fields(),
            input=request.input,
            input_steps=input_steps,
            previous_interaction_id=request.previous_interaction_id,
            background=request.background,
        )
        log = EventLog(record, self.store if request.store else None, self.bus)

        run = run_turn(
            log,
            served.bind(record.id, request.model, request.labels or {}, record.add_cost),
            turn,
            mcp_servers,
            max_tool_rounds=self.settings.max_tool_rounds,
            tool_timeout=self.settings.tool_timeout_seconds,
        )
        if request.stream:
            # Subscribe before the run starts so the creator misses nothing.
            source: EventSource = log if log.events is not None else self.store
            events = self._tail(record.id, source, 0, subscription=self.bus.subscribe(record.id))
            task = self._start(log.interaction_id, run, stored=request.store)
            if not request.store:
                events = _cancel_on_close(events, task)
            return Created(events=events, interaction_id=record.id)

        task = self._start(log.interaction_id, run, stored=request.store)
        if request.background:
            await log.drain()
            return Created(
                resource=to_resource(record, log.projection, include_input_steps=False),
                interaction_id=record.id,
            )
        await asyncio.shield(task) if request.store else await task
        return Created(
            resource=to_resource(record, log.projection, include_input_steps=False),
            interaction_id=record.id,
        )

    def _start(
        self, interaction_id: str, run: Coroutine[Any, Any, None], *, stored: bool
    ) -> asyncio.Task[None]:
        task = asyncio.create_task(run)
        if stored:
            self._runs[interaction_id] = task
            task.add_done_callback(lambda _: self._runs.pop(interaction_id, None))
        return task

    async def get(self, interaction_id: str, include_input: bool = False) -> dict[str, Any]:
        """The Interaction with its `user_input` steps. Raises NotFound."""
        record = await self._record(interaction_id)
        projection = None
        if not lifecycle.is_terminal(record.status):
            projection = Projection()
            async for event in self._replay(interaction_id, self.store, 0):
                projection.apply(event)
        return to_resource(record, projection, include_input=include_input)

    async def stream(
        self, interaction_id: str, last_event_id: str | None
    ) -> AsyncIterator[Event | None]:
        """The log from the start (or after `last_event_id`), then live until its terminal
        event; None items are keep-alive ticks. Raises NotFound, or InvalidArgument when the
        event id is not one of this interaction's."""
        record = await self._record(interaction_id)
        after = 0
        if last_event_id:
            seq = parse_event_id(interaction_id, last_event_id)
            if seq is None or (seq > record.last_seq and lifecycle.is_terminal(record.status)):
                raise InvalidArgument(
                    f"`last_event_id` `{last_event_id}` is not an event of interaction "
                    f"`{interaction_id}`"
                )
            after = seq
        if lifecycle.is_terminal(record.status) and after >= record.last_seq:
            return _empty()
        return self._tail(interaction_id, self.store, after, self.bus.subscribe(interaction_id))

    async def cancel(self, interaction_id: str) -> dict[str, Any]:
        """Cancel a running background interaction. Raises NotFound, or FailedPrecondition when
        it has finished or is not a background run."""
        record = await self._record(interaction_id)
        task = self._runs.get(interaction_id)
        if record.status == "cancelled":
            return to_resource(record)
        if lifecycle.is_terminal(record.status) or task is None:
            raise FailedPrecondition(
                f"interaction `{interaction_id}` is `{record.status}`: only running background "
                "interactions can be cancelled"
            )
        if not record.background:
            raise FailedPrecondition("only background interactions can be cancelled")
        task.cancel()
        await asyncio.shield(task)
        return to_resource(await self._record(interaction_id))

    async def delete(self, interaction_id: str) -> None:
        """Delete the interaction and its events, stopping a running one first.

        Raises NotFound."""
        task = self._runs.get(interaction_id)
        if task is not None:
            task.cancel()
            await asyncio.shield(task)
        if not await self.store.delete(interaction_id):
            raise NotFound(f"interaction `{interaction_id}` not found")

    async def recover(self) -> int:
        """End every run a previous process left unfinished as `failed` (it was interrupted).

        Returns how many were closed. Called once at start-up, before serving.
        """
        closed = 0
        for interaction_id in await self.store.unfinished():
            record = await self.store.get(interaction_id)
            if record is None:
                continue
            projection = Projection()
            async for event in self._replay(interaction_id, self.store, 0):
                projection.apply(event)
            seq = projection.last_seq
            error = {
                "code": "interrupted",
                "message": "the server stopped while this interaction was running",
            }
            interaction = {
                "id": interaction_id,
                "object": "interaction",
                "status": "failed",
                "model": record.request.get("model"),
                "created": record.created,
                "updated": now(),
            }
            if projection.usage is not None:
                interaction["usage"] = projection.usage
            events = [
                Event(seq + 1, ERROR, {"error": error}),
                Event(seq + 2, COMPLETED, {"interaction": interaction}),
            ]
            for event in events:
                projection.apply(event)
            await self.store.append(
                interaction_id,
                events,
                Snapshot(
                    status="failed",
                    updated=now(),
                    steps=projection.steps,
                    usage=projection.usage,
                    errors=projection.errors,
                ),
            )
            closed += 1
        return closed

    async def shutdown(self) -> None:
        """Stop every run still going; each ends `cancelled` with its terminal event stored."""
        tasks = list(self._runs.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _record(self, interaction_id: str) -> InteractionRecord:
        record = await self.store.get(interaction_id)
        if record is None:
            raise NotFound(f"interaction `{interaction_id}` not found")
        return record

    async def _replay(
        self, interaction_id: str, source: EventSource, after: int
    ) -> AsyncIterator[Event]:
        # A small first page gets the first event out fast; later pages amortise the reads.
        page = _FIRST_PAGE
        while True:
            events = await source.read_events(interaction_id, after, page)
            for event in events:
                yield event
            if len(events) < page:
                return
            after = events[-1].seq
            page = _PAGE

    async def _tail(
        self, interaction_id: str, source: EventSource, after: int, subscription: Subscription
    ) -> AsyncIterator[Event | None]:
        """Replay from `source` after `after`, then follow live events until the terminal one.

        The subscription was opened before the replay, so an event is either replayed or
        received live (duplicates are dropped by seq); a gap or an overflow re-reads the source.
        """
        try:
            seq = after
            catch_up = True
            while True:
                if catch_up:
                    async for event in self._replay(interaction_id, source, seq):
                        yield event
                        seq = event.seq
                        if is_terminal_event(event):
                            return
                    catch_up = False
                live = await subscription.next(self.keepalive)
                if live is None:
                    catch_up = True
                    continue
                if not live:
                    yield None
                    continue
                for event in live:
                    if event.seq <= seq:
                        continue
                    if event.seq != seq + 1:
                        catch_up = True
                        break
                    yield event
                    seq = event.seq
                    if is_terminal_event(event):
                        return
        finally:
            subscription.close()


async def _cancel_on_close(
    events: AsyncIterator[Event | None], task: asyncio.Task[None]
) -> AsyncIterator[Event | None]:
    """A store=false stream: its run lives only as long as its one reader."""
    try:
        async for event in events:
            yield event
    finally:
        task.cancel()


async def _empty() -> AsyncIterator[Event | None]:
    return
    yield
