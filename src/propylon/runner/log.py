"""The log of one running interaction: the only writer of its events.

`emit` folds an event into the projection and queues it; one flusher task per log persists the
queue in batches (group commit: whatever queued while a write was in flight goes in the next
one) and only then publishes to the bus, so a reader never sees an event the store lacks.

Two kinds behind one interface: `StoredLog` writes to the store; `MemoryLog` (`store=false`)
keeps the events in memory for the lifetime of the request, for its one reader.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from propylon.bus.base import Bus
from propylon.domain.clock import now
from propylon.domain.events import STATUS_UPDATE, Event, is_terminal_event
from propylon.domain.projection import Projection
from propylon.store.base import Delivery, InteractionRecord, Snapshot, Store

__all__ = ["EventLog", "MemoryLog", "OnTerminal", "StoredLog"]

# The webhook deliveries an ending run enqueues (written with its terminal event).
OnTerminal = Callable[[InteractionRecord], Awaitable[list[Delivery]]]


class EventLog(ABC):
    """Appends the events of `record`'s run; subclasses say where a batch goes."""

    def __init__(
        self,
        record: InteractionRecord,
        bus: Bus,
        existing: Projection | None = None,
        on_terminal: OnTerminal | None = None,
    ) -> None:
        """`existing`: the fold of a stored log to continue (a queued or recovered run); its
        events are already stored, so appends continue its sequence."""
        self.record = record
        self.projection = existing or Projection()
        self._bus = bus
        self._on_terminal = on_terminal
        self._pending: list[Event] = []
        self._flusher: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @property
    def interaction_id(self) -> str:
        return self.record.id

    def emit(self, kind: str, data: dict[str, Any]) -> Event:
        """Append an event (seq assigned here) and schedule its persistence."""
        event = Event(self.projection.last_seq + 1, kind, data)
        self.projection.apply(event)
        self._pending.append(event)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return event

    async def drain(self) -> None:
        """Wait until every emitted event is persisted and published; re-raise a write failure."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        if self._error is not None:
            raise self._error

    @abstractmethod
    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to `limit` persisted events after `after_seq` (an EventSource)."""

    @abstractmethod
    async def _persist(self, batch: list[Event]) -> None:
        """Write `batch` (the terminal event, when it holds one, is last)."""

    async def _flush(self) -> None:
        while self._pending and self._error is None:
            batch, self._pending = self._pending, []
            try:
                await self._persist(batch)
            except BaseException as exc:  # surfaced by drain(); nothing more is written
                self._error = exc
                return
            self._bus.publish(self.record.id, batch)


class MemoryLog(EventLog):
    """A `store=false` log: nothing is written, the events stay here for the one reader."""

    def __init__(
        self, record: InteractionRecord, bus: Bus, on_terminal: OnTerminal | None = None
    ) -> None:
        super().__init__(record, bus, on_terminal=on_terminal)
        self.events: list[Event] = []

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        return self.events[after_seq : after_seq + limit]

    async def _persist(self, batch: list[Event]) -> None:
        self.events.extend(batch)
        if is_terminal_event(batch[-1]) and self._on_terminal is not None:
            # nothing is stored, but an end is counted
            self.record.status, self.record.usage = self.projection.status, self.projection.usage
            await self._on_terminal(self.record)


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
    ) -> None:
        """`on_terminal`: the webhook deliveries an ending run enqueues, written with its
        terminal event; `on_outbox` is called once they are committed."""
        super().__init__(record, bus, existing, on_terminal)
        self._store = store
        self._on_outbox = on_outbox
        self._created = existing is not None

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        return await self._store.read_events(interaction_id, after_seq, limit)

    async def _persist(self, batch: list[Event]) -> None:
        record, projection = self.record, self.projection
        terminal = is_terminal_event(batch[-1])
        for event in batch:
            if event.type == STATUS_UPDATE:
                record.status = event.data["status"]
        deliveries: list[Delivery] = []
        if terminal:  # the snapshot and the outbox go in the terminal event's transaction
            record.status, record.steps = projection.status, projection.steps
            record.usage, record.errors = projection.usage, projection.errors
            record.updated = now()
            if self._on_terminal is not None:
                deliveries = await self._on_terminal(record)
        if not self._created:
            self._created = True
            await self._store.create(record, batch, deliveries)
        else:
            await self._append(batch, terminal, deliveries)
        if deliveries and self._on_outbox is not None:
            self._on_outbox()

    async def _append(self, batch: list[Event], terminal: bool, deliveries: list[Delivery]) -> None:
        record = self.record
        snapshot = Snapshot(status=record.status, updated=now(), upstream_id=record.upstream_id)
        if terminal:
            snapshot.steps, snapshot.usage = record.steps, record.usage
            snapshot.errors, snapshot.cost_usd = record.errors, record.cost_usd
            snapshot.deliveries = deliveries
        await self._store.append(record.id, batch, snapshot)
