"""The log of one running interaction: the only writer of its events.

`emit` folds an event into the projection and queues it; one flusher task per log persists the
queue in batches (group commit: whatever queued while a write was in flight goes in the next
one) and only then publishes to the bus, so a reader never sees an event the store lacks.

Two kinds behind one interface: `StoredLog` writes to the store; `MemoryLog` (`store=false`)
keeps the events in memory for the lifetime of the request, for its one reader.

Exactly one terminal event: once `interaction.completed` is emitted the log refuses anything
more. A write that fails ends the log: what can be stored is, then an `error` event and a
`failed` end continue the stored log (not the lost batch); when not even that can be written,
the log is `failure`d and its readers are woken to end their streams with that error.

Fencing: a stored log written under a run epoch (`StoredLog(epoch=...)`, see
`InteractionStore.claim_run`) appends only while the run is still its own. Once another
process has taken the run over (or ended it), an append is refused: the log is `fenced`, it
closes without writing anything more (the run's new owner writes its end), and the run's
later events are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from propylon.bus.base import Bus
from propylon.domain.clock import now
from propylon.domain.events import COMPLETED, ERROR, STATUS_UPDATE, Event, is_terminal_event
from propylon.domain.projection import Projection
from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument, PropylonError, Unavailable
from propylon.store.base import (
    Delivery,
    IdempotencyConflict,
    InteractionRecord,
    Snapshot,
    Store,
)

__all__ = ["EventLog", "Fenced", "MemoryLog", "OnEnded", "OnTerminal", "StoredLog"]

logger = logging.getLogger("propylon.runner")

_PAGE = 500  # events per read when a failed log re-reads what it has stored

# The webhook deliveries an ending run enqueues (written with its terminal event).
OnTerminal = Callable[[InteractionRecord], Awaitable[list[Delivery]]]
# Told once the terminal event is written, by the writer that wrote it (a writer fenced out
# never is): the run's spend is settled there, so a log that lost its run settles nothing.
OnEnded = Callable[[InteractionRecord], Awaitable[None]]


class Fenced(Exception):
    """An append was refused: the run's epoch is no longer the stored one (another process
    took the run over), or the run has already ended."""


class EventLog(ABC):
    """Appends the events of `record`'s run; subclasses say where a batch goes."""

    def __init__(
        self,
        record: InteractionRecord,
        bus: Bus,
        existing: Projection | None = None,
        on_terminal: OnTerminal | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        """`existing`: the fold of a stored log to continue (a queued or recovered run); its
        events are already stored, so appends continue its sequence. `on_ended`: told once
        this log has written its terminal event (see OnEnded)."""
        self.record = record
        self.projection = existing or Projection()
        self._bus = bus
        self._on_terminal = on_terminal
        self._on_ended = on_ended
        self._pending: list[Event] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = self.projection.ended
        self._failure: dict[str, str] | None = None
        self._cause: BaseException | None = None
        self.fenced = False  # an append was refused: the run is no longer this log's
        self._lost: IdempotencyConflict | None = None  # its create lost its idempotency key

    @property
    def interaction_id(self) -> str:
        return self.record.id

    @property
    def ended(self) -> bool:
        """True once the log has its end (or, failing, is ending): it refuses any new event."""
        return self._closed

    @property
    def failure(self) -> dict[str, str] | None:
        """The error (`{"code", "message"}`) of a log whose end could not be written either, so
        its readers must stop with it; None while the log is sound."""
        return self._failure

    def summary(
        self,
        status: str,
        usage: Usage | dict[str, Any] | None = None,
        continuation_token: str | None = None,
    ) -> dict[str, Any]:
        """The partial Interaction that `interaction.created` and `interaction.completed`
        carry: id, status, model, timestamps, and `usage` when given (a wire usage object is
        passed on as it is, per-modality lists included), and the `continuation_token` of an
        answer cut short (status `requires_continuation`)."""
        record = self.record
        interaction: dict[str, Any] = {
            "id": record.id,
            "object": "interaction",
            "status": status,
            "model": record.request.get("model"),
            "created": record.created,
            "updated": now(),
        }
        if usage is not None:
            interaction["usage"] = usage.to_wire() if isinstance(usage, Usage) else usage
        if continuation_token is not None:
            interaction["continuation_token"] = continuation_token
        return interaction

    def emit(self, kind: str, data: dict[str, Any]) -> Event | None:
        """Append an event (seq assigned here) and schedule its persistence. Returns None,
        appending nothing, once the log has ended: a log has exactly one terminal event."""
        if self._closed:
            return None
        event = self._fold(kind, data)
        self._closed = is_terminal_event(event)
        self._pending.append(event)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return event

    async def drain(self) -> None:
        """Wait until every emitted event is persisted and published (or the log has ended on
        a write failure). A cancel that lands meanwhile is raised once the write in flight is
        done: a task never stops with its log half-written.

        Raises IdempotencyConflict when the interaction's row was not written because another
        holds its idempotency key (another process claimed it first), InvalidArgument when the
        interaction cannot be stored at all (its request cannot be encoded, say), Unavailable
        when the store failed even to take the log's end."""
        interrupted: asyncio.CancelledError | None = None
        while self._flusher is not None and not self._flusher.done():
            try:
                await asyncio.shield(self._flusher)
            except asyncio.CancelledError as exc:
                interrupted = exc
        if interrupted is not None:
            raise interrupted
        if self._lost is not None:
            raise self._lost
        if self._failure is not None:
            raise self._failure_error()

    @abstractmethod
    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to `limit` persisted events after `after_seq` (an EventSource)."""

    @abstractmethod
    async def _persist(self, batch: list[Event]) -> None:
        """Write `batch` (the terminal event, when it holds one, is last)."""

    def _fold(self, kind: str, data: dict[str, Any]) -> Event:
        event = Event(self.projection.last_seq + 1, kind, data)
        self.projection.apply(event)
        return event

    async def _flush(self) -> None:
        while self._pending and self._failure is None:
            batch, self._pending = self._pending, []
            try:
                await self._persist(batch)
            except Fenced:
                self._fence()
                return
            except IdempotencyConflict as lost:  # nothing was written: the key is another's
                self._closed, self._pending, self._lost = True, [], lost
                return
            except Exception as exc:
                if not await self._salvage(batch):
                    await self._fail(exc)
                    return
                continue
            self._bus.publish(self.record.id, batch)

    async def _ended(self) -> None:
        """The terminal event is written: tell `on_ended`. Its failure is logged, never
        raised: the end is stored already."""
        if self._on_ended is None:
            return
        try:
            await self._on_ended(self.record)
        except Exception:
            logger.exception("interaction %s: accounting for its end failed", self.record.id)

    def _fence(self) -> None:
        """The run was taken over: write nothing more (its new owner ends it)."""
        logger.warning(
            "interaction %s: an append was refused (the run was taken over or has ended)",
            self.record.id,
        )
        self.fenced = self._closed = True
        self._pending = []

    async def _salvage(self, batch: list[Event]) -> bool:
        """After a failed batch: write its events one at a time (a transient failure, or one
        bad event among good ones). True when every one was written."""
        if len(batch) == 1:
            return False
        for event in batch:
            try:
                await self._persist([event])
            except Fenced:
                self._fence()
                return True
            except Exception:
                return False
            self._bus.publish(self.record.id, [event])
        return True

    async def _fail(self, exc: Exception) -> None:
        """End the log after a write failed: the events from the failed one on are dropped, and
        the stored log ends with an `error` event and `interaction.completed` (`failed`)."""
        self._closed = True
        self._pending = []
        reason = f"{type(exc).__name__}: {exc}"[:200]
        logger.error("the log of interaction %s could not be written: %s", self.record.id, reason)
        error = {
            "code": "api_error",
            "message": f"the interaction's log could not be written ({reason})",
        }
        try:
            self.projection = await self._stored()
            if self.projection.ended:  # the failure came after the end was committed
                self._bus.publish(self.record.id, [])  # readers re-check and find that end
                return
            end = [
                self._fold(ERROR, {"error": error}),
                self._fold(COMPLETED, {"interaction": self.summary("failed")}),
            ]
            await self._persist(end)
        except Fenced:
            self._fence()
            return
        except Exception as again:
            logger.error("interaction %s ended without a stored end: %s", self.record.id, again)
            self._failure, self._cause = error, again
            self._bus.publish(self.record.id, [])  # wake the readers: they stop with `failure`
            return
        self._bus.publish(self.record.id, end)

    async def _stored(self) -> Projection:
        """The fold of the events this log has persisted."""
        projection = Projection()
        after = 0
        while True:
            events = await self.read_events(self.record.id, after, _PAGE)
            for event in events:
                projection.apply(event)
            if len(events) < _PAGE:
                return projection
            after = events[-1].seq

    def _failure_error(self) -> PropylonError:
        if isinstance(self._cause, TypeError | ValueError):  # the data cannot be encoded
            return InvalidArgument(f"the interaction cannot be stored: {self._cause}")
        return Unavailable("the interaction's log could not be written; try again")


class MemoryLog(EventLog):
    """A `store=false` log: nothing is written, the events stay here for the one reader."""

    def __init__(
        self, record: InteractionRecord, bus: Bus, on_ended: OnEnded | None = None
    ) -> None:
        super().__init__(record, bus, on_ended=on_ended)
        self.events: list[Event] = []

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        return self.events[after_seq : after_seq + limit]

    async def _persist(self, batch: list[Event]) -> None:
        self.events.extend(batch)
        if is_terminal_event(batch[-1]):  # nothing is stored, but an end is counted
            self.record.status, self.record.usage = self.projection.status, self.projection.usage
            await self._ended()


class StoredLog(EventLog):
    """A log written to `store`: each batch in one transaction with the projection columns."""

    def __init__(
        self,
        record: InteractionRecord,
        store: Store,
        bus: Bus,
        existing: Projection | None = None,
        on_terminal: OnTerminal | None = None,
        on_outbox: Callable[[], None] | None = None,
        epoch: int | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        """`on_terminal`: the webhook deliveries an ending run enqueues, written with its
        terminal event; `on_outbox` is called once they are committed; `on_ended` once the
        terminal event is written (never when the append was fenced). `epoch`: the run
        epoch this log writes under (appends are fenced on it); None: the record's own (a
        new interaction's first epoch, or the one it was read with)."""
        super().__init__(record, bus, existing, on_terminal, on_ended)
        self._store = store
        self._on_outbox = on_outbox
        self._created = existing is not None
        self.epoch = record.run_epoch if epoch is None else epoch

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        return await self._store.read_events(interaction_id, after_seq, limit)

    async def _persist(self, batch: list[Event]) -> None:
        record, projection = self.record, self.projection
        terminal = is_terminal_event(batch[-1])
        # what the record said before: put back when the write fails, so the next batch's
        # snapshot (a salvage, or the failed end) does not carry an end that was not stored
        prior = (record.status, record.steps, record.usage, record.errors, record.updated)
        for event in batch:
            if event.type == STATUS_UPDATE:
                record.status = event.data["status"]
        deliveries: list[Delivery] = []
        try:
            if terminal:  # the snapshot and the outbox go in the terminal event's transaction
                record.status, record.steps = projection.status, projection.steps
                record.usage, record.errors = projection.usage, projection.errors
                record.updated = now()
                if self._on_terminal is not None:
                    deliveries = await self._on_terminal(record)
            if not self._created:
                await self._store.create(record, batch, deliveries)
                self._created = True
            else:
                await self._append(batch, terminal, deliveries)
        except BaseException:
            record.status, record.steps, record.usage, record.errors, record.updated = prior
            raise
        if deliveries and self._on_outbox is not None:
            self._on_outbox()
        if terminal:  # written by this log (a fenced append raised above): settled here
            await self._ended()

    async def _append(self, batch: list[Event], terminal: bool, deliveries: list[Delivery]) -> None:
        record = self.record
        snapshot = Snapshot(status=record.status, updated=now(), upstream_id=record.upstream_id)
        if terminal:
            snapshot.steps, snapshot.usage = record.steps, record.usage
            snapshot.errors, snapshot.cost_usd = record.errors, record.cost_usd
            snapshot.deliveries = deliveries
        if not await self._store.append_fenced(record.id, self.epoch, batch, snapshot):
            raise Fenced(record.id)
