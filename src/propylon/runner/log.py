"""The log of one running interaction: the only writer of its events.

`emit` folds an event into the projection and queues it. A stored log's events are written by
the process's one `LogWriter` (runner/writer.py): group commit, each tick one transaction for
the pending events of every log, and only once it is committed are they published to the bus,
so a reader never sees an event the store lacks. A log also keeps the fold of what it has
committed (`committed`): what `get` of a running interaction shows, at a cost that does not
grow with the log. A new log whose id nobody knows until it ends (a foreground create that is
not streamed) may hold its first events (`hold`): they go to the writer with its end, or when
the hold is over or someone drains it, so a quick run is one write of its row, events and end.

Two kinds behind one interface: `StoredLog` writes to the store; `MemoryLog` (`store=false`)
keeps the events in memory for the lifetime of the request, for its one reader, and hands
them to the bus as they are emitted.

Exactly one terminal event: once `interaction.completed` is emitted the log refuses anything
more. Once the terminal event is committed (kept, for a MemoryLog), the log's `on_ended` runs
(the ledger's settlement, token counts, metrics), and only then is that event published:
never for an end that was not written (a fenced-out writer settles nothing). A write that
fails ends the log: what can be stored is, then an `error` event and a `failed` end continue
the stored log (not the lost batch); when not even that can be written, the log is `failure`d
and its readers are woken to end their streams with that error.

Fencing: a stored log written under a run epoch (`StoredLog(epoch=...)`, see
`InteractionStore.claim_run`) appends only while the run is still its own. Once another
process has taken the run over (or ended it), an append is refused: the log is `fenced`, it
closes without writing anything more (the run's new owner writes its end), and the run's
later events are dropped. In a group commit a fenced-out log's events are refused alone.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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
    LogWrite,
    Snapshot,
    Store,
)

if TYPE_CHECKING:
    from propylon.runner.writer import LogWriter

__all__ = ["EventLog", "Fenced", "MemoryLog", "OnEnded", "OnTerminal", "StoredLog"]

logger = logging.getLogger("propylon.runner")

_PAGE = 500  # events per read when a failed log re-reads what it has stored
_FOLD_AFTER = 1024  # committed events kept unfolded (until a `committed()` read) at most

# The webhook deliveries an ending run enqueues (written with its terminal event).
OnTerminal = Callable[[InteractionRecord], Awaitable[list[Delivery]]]
# Told once the terminal event is written, by the writer that wrote it (a writer fenced out
# never is): the run's spend is settled there, so a log that lost its run settles nothing.
OnEnded = Callable[[InteractionRecord], Awaitable[None]]
# The state of a record a batch changes, put back when its write fails.
_Prior = tuple[str, list[dict[str, Any]], dict[str, Any] | None, list[dict[str, Any]], str]


class Fenced(Exception):
    """An append was refused: the run's epoch is no longer the stored one (another process
    took the run over), or the run has already ended."""


class EventLog(ABC):
    """Appends the events of `record`'s run; subclasses say where they go."""

    def __init__(
        self,
        record: InteractionRecord,
        bus: Bus,
        existing: Projection | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        """`existing`: the fold of a stored log to continue (a queued or recovered run); its
        events are already stored, so appends continue its sequence. `on_ended`: told once
        this log has written its terminal event (see OnEnded)."""
        self.record = record
        self.projection = existing or Projection()
        self._bus = bus
        self._on_ended = on_ended
        self._closed = self.projection.ended
        self._failure: dict[str, str] | None = None
        self._cause: BaseException | None = None
        self.fenced = False  # an append was refused: the run is no longer this log's
        self._lost: IdempotencyConflict | None = None  # its create lost its idempotency key
        # once the terminal event is written: `on_ended`, then that event's publication
        self._ending: asyncio.Future[None] | None = None

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
        self._queue(event)
        return event

    async def drain(self) -> None:
        """Wait until every emitted event is persisted and published (or the log has ended on
        a write failure), its terminal one after `on_ended` has run. A cancel that lands
        meanwhile is raised once that is done: a task never stops with its log half-written.

        Raises IdempotencyConflict when the interaction's row was not written because another
        holds its idempotency key (another process claimed it first), InvalidArgument when the
        interaction cannot be stored at all (its request cannot be encoded, say), Unavailable
        when the store failed even to take the log's end."""
        interrupted: asyncio.CancelledError | None = None
        while True:
            try:
                await self._written()
                if self._ending is not None:
                    await asyncio.shield(self._ending)
                break
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
    def _queue(self, event: Event) -> None:
        """Persist `event` (the log's next), now or later."""

    @abstractmethod
    async def published(self) -> None:
        """Return once the events emitted so far have reached the log's readers (or were
        dropped): at once for a log nobody can read yet (a held one) and for one kept in
        memory. Raises nothing: a write failure is the run's to see (`ended`, `drain`)."""

    @abstractmethod
    async def _written(self) -> None:
        """Return once every queued event is persisted and published (or dropped)."""

    def _end(self, batch: list[Event]) -> None:
        """`batch`, which ends the log, is written: settle (`on_ended`), then publish it."""
        self._ending = asyncio.ensure_future(self._ended(batch))

    async def _ended(self, batch: list[Event]) -> None:
        """Tell `on_ended` (its failure is logged, never raised: the end is stored already),
        then hand the end to the readers."""
        if self._on_ended is not None:
            try:
                await self._on_ended(self.record)
            except Exception:
                logger.exception("interaction %s: accounting for its end failed", self.record.id)
        self._bus.publish(self.record.id, batch)

    def _fold(self, kind: str, data: dict[str, Any]) -> Event:
        event = Event(self.projection.last_seq + 1, kind, data)
        self.projection.apply(event)
        return event

    def _failure_error(self) -> PropylonError:
        if isinstance(self._cause, TypeError | ValueError):  # the data cannot be encoded
            return InvalidArgument(f"the interaction cannot be stored: {self._cause}")
        return Unavailable("the interaction's log could not be written; try again")


class MemoryLog(EventLog):
    """A `store=false` log: nothing is written, the events stay here for the one reader,
    handed to the bus as they are emitted (no write to wait for)."""

    def __init__(
        self, record: InteractionRecord, bus: Bus, on_ended: OnEnded | None = None
    ) -> None:
        super().__init__(record, bus, on_ended=on_ended)
        self.events: list[Event] = []

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        return self.events[after_seq : after_seq + limit]

    def _queue(self, event: Event) -> None:
        self.events.append(event)
        if self._closed:  # nothing is stored, but an end is counted
            self.record.status, self.record.usage = self.projection.status, self.projection.usage
            self._end([event])
        else:
            self._bus.publish(self.record.id, [event])

    async def published(self) -> None:
        return  # (published as they are emitted)

    async def _written(self) -> None:
        return


class StoredLog(EventLog):
    """A log written to `store` by `writer`: each batch with the projection columns, in one
    transaction with the other logs' batches of the same tick."""

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
        writer: LogWriter | None = None,
        hold: float | None = None,
    ) -> None:
        """`writer`: the process's group commit, which writes this log (None: a writer of
        its own, for a log written alone). `hold`: seconds the log's first events may wait
        to be written with more (see LogWriter.hold; None: written at once): for a new
        interaction whose id nobody knows before it ends, so that a quick run is written in
        one transaction; its end, or a `drain`, writes them at once. `on_terminal`: the
        webhook deliveries an ending run enqueues, written with its terminal event;
        `on_outbox` is called once they are committed; `on_ended` once the terminal event is
        written (never when the append was fenced). `epoch`: the run epoch this log writes
        under (appends are fenced on it); None: the record's own (a new interaction's first
        epoch, or the one it was read with)."""
        super().__init__(record, bus, existing, on_ended)
        self._store = store
        if writer is None:
            from propylon.runner.writer import LogWriter

            writer = LogWriter(store)
        self._writer = writer
        self._deliveries = on_terminal
        self._on_outbox = on_outbox
        self._created = existing is not None
        self.epoch = record.run_epoch if epoch is None else epoch
        self._pending: list[Event] = []
        self._hold = hold
        self._held = False  # `_pending` waits for the hold's end (asked of the writer later)
        self._idle = asyncio.Event()
        self._idle.set()
        # the fold of what is committed: `_committed` plus the events in `_unfolded`
        self._committed = Projection() if existing is None else existing.copy()
        self._unfolded: list[Event] = []

    def committed(self) -> Projection:
        """The fold of the events committed so far (what a reader of the store finds). The
        projection is this log's: later commits change it in place."""
        for event in self._unfolded:
            self._committed.apply(event)
        self._unfolded = []
        return self._committed

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        if interaction_id == self.record.id and not (self._created or self._closed):
            # A new interaction whose row this log has not written yet: nothing of it can be
            # stored (nobody can claim a run without its row). Once written, or the log closed
            # (failed: a failed COMMIT may have written), the store is read.
            return []
        return await self._store.read_events(interaction_id, after_seq, limit)

    def _queue(self, event: Event) -> None:
        if not self._pending:
            self._idle.clear()
            if self._hold is not None and not self._closed:
                self._held = True
                self._writer.hold(self, self._hold)
            else:
                self._writer.request(self)
        elif self._held and self._closed:  # the end goes out at once
            self._release()
        self._pending.append(event)

    def _release(self) -> None:
        """Ask the writer for the held events now."""
        self._held = False
        self._writer.request(self)

    async def published(self) -> None:
        if not self._held:
            await self._idle.wait()

    async def _written(self) -> None:
        if self._held:  # someone waits for them
            self._release()
        await self._idle.wait()

    # What the writer (runner/writer.py) calls, in this order for each tick the log is in:
    # `_take`, then `_prepare` and, after the group's commit, `_commit` or `_fence` (on a
    # failed group: `_restore` and `_write_alone`), then `_settle`.

    def _take(self) -> list[Event]:
        """The events queued since the last tick."""
        batch, self._pending = self._pending, []
        self._hold, self._held = None, False  # only the first write is ever held
        return batch

    def _alone(self) -> bool:
        """True when the next write must be a transaction of its own: a create that claims
        an idempotency key (its conflict is an outcome, not a failure of the group)."""
        return not self._created and self.record.claim is not None

    async def _prepare(self, batch: list[Event]) -> tuple[LogWrite, _Prior]:
        """The write of `batch` (the terminal event, when it holds one, is last) and what the
        record said before it (see `_restore`)."""
        record, projection = self.record, self.projection
        prior: _Prior = (record.status, record.steps, record.usage, record.errors, record.updated)
        for event in batch:
            if event.type == STATUS_UPDATE:
                record.status = event.data["status"]
        deliveries: list[Delivery] = []
        if is_terminal_event(batch[-1]):  # the snapshot and the outbox go with the end
            record.status, record.steps = projection.status, projection.steps
            record.usage, record.errors = projection.usage, projection.errors
            record.updated = now()
            if self._deliveries is not None:
                try:
                    deliveries = await self._deliveries(record)
                except BaseException:
                    self._restore(prior)
                    raise
        if not self._created:
            return LogWrite(record.id, batch, record=record, deliveries=deliveries), prior
        snapshot = Snapshot(status=record.status, updated=now(), upstream_id=record.upstream_id)
        if is_terminal_event(batch[-1]):
            snapshot.steps, snapshot.usage = record.steps, record.usage
            snapshot.errors, snapshot.cost_usd = record.errors, record.cost_usd
            snapshot.deliveries = deliveries
        return LogWrite(record.id, batch, epoch=self.epoch, snapshot=snapshot), prior

    def _restore(self, prior: _Prior) -> None:
        """Put back what the record said before a write that failed, so the next batch's
        snapshot (a salvage, or the failed end) does not carry an end that was not stored."""
        record = self.record
        record.status, record.steps, record.usage, record.errors, record.updated = prior

    def _commit(self, write: LogWrite) -> None:
        """`write` is committed: publish its events (only now), fold them for `committed`."""
        self._created = True
        batch = write.events
        self._unfolded.extend(batch)
        if len(self._unfolded) > _FOLD_AFTER:
            self.committed()
        if is_terminal_event(batch[-1]):
            self._end(batch)  # settled, then published
        else:
            self._bus.publish(self.record.id, batch)
        outbox = write.deliveries or (write.snapshot is not None and write.snapshot.deliveries)
        if outbox and self._on_outbox is not None:
            self._on_outbox()

    def _settle(self) -> None:
        """After a tick: idle when nothing more is queued (else the writer has it again)."""
        if not self._pending:
            self._idle.set()

    async def _persist(self, batch: list[Event]) -> LogWrite:
        """Write `batch` in a transaction of its own. Raises Fenced, IdempotencyConflict, or
        what the store raised."""
        write, prior = await self._prepare(batch)
        try:
            if write.record is not None:
                await self._store.create(write.record, batch, write.deliveries)
            else:
                assert write.snapshot is not None
                if not await self._store.append_fenced(
                    write.interaction_id, write.epoch, batch, write.snapshot
                ):
                    raise Fenced(self.record.id)
        except BaseException:
            self._restore(prior)
            raise
        return write

    async def _write_alone(self, batch: list[Event]) -> None:
        """Write `batch` outside a group: a claimed create, or after the group's transaction
        failed (one bad log among good ones, or a transient failure)."""
        try:
            write = await self._persist(batch)
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
        self._commit(write)

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
                write = await self._persist([event])
            except Fenced:
                self._fence()
                return True
            except Exception:
                return False
            self._commit(write)
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
            self._committed, self._unfolded = self.projection.copy(), []
            # a failed COMMIT may have written the row: the end is then appended to it
            self._created = self._created or self.projection.last_seq > 0
            if self.projection.ended:  # the failure came after the end was committed
                self._bus.publish(self.record.id, [])  # readers re-check and find that end
                return
            end = [
                self._fold(ERROR, {"error": error}),
                self._fold(COMPLETED, {"interaction": self.summary("failed")}),
            ]
            write = await self._persist(end)
        except Fenced:
            self._fence()
            return
        except Exception as again:
            logger.error("interaction %s ended without a stored end: %s", self.record.id, again)
            self._failure, self._cause = error, again
            self._bus.publish(self.record.id, [])  # wake the readers: they stop with `failure`
            return
        self._commit(write)

    async def _stored(self) -> Projection:
        """The fold of the events this log has persisted."""
        projection = Projection()
        after = 0
        while True:
            # the store's, never `read_events`: a failed COMMIT may have written the row
            events = await self._store.read_events(self.record.id, after, _PAGE)
            for event in events:
                projection.apply(event)
            if len(events) < _PAGE:
                return projection
            after = events[-1].seq
