"""Reading logs: replay from a source, then follow live events until the terminal one.

A live log is read in batches (`Batch`): the events of a stored page, or those one publish
brought; a stream sends a batch as one write (one `send` through every middleware and one
socket write instead of one per event: that was the largest single cost of a streamed answer).
`each` flattens batches for readers that take one event at a time."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from propylon.bus.base import Subscription
from propylon.domain.events import ERROR, Event, is_terminal_event
from propylon.domain.projection import Projection
from propylon.store.base import EventSource

__all__ = [
    "Batch",
    "Folds",
    "Watch",
    "cancel_on_close",
    "each",
    "empty",
    "fold",
    "replay",
    "singles",
    "tail",
]

# Asked on every keep-alive tick of a stream: None while its run may still append events, else
# the error (`{"code", "message"}`) to end the stream with, after whatever the log holds.
Watch = Callable[[], Awaitable[dict[str, str] | None]]
# Events of a log, in order and never empty; None: a keep-alive tick.
Batch = list[Event] | None
T = TypeVar("T")

_FIRST_PAGE = 32  # events in the first read of a replay: the first event goes out fast
_PAGE = 500  # events per later read


async def replay(source: EventSource, interaction_id: str, after: int) -> AsyncIterator[Event]:
    """Every stored event after seq `after`, in pages."""
    async for page in _pages(source, interaction_id, after):
        for event in page:
            yield event


async def _pages(
    source: EventSource, interaction_id: str, after: int
) -> AsyncIterator[list[Event]]:
    """The stored events after seq `after`, a page (never empty) at a time."""
    page = _FIRST_PAGE
    while True:
        events = await source.read_events(interaction_id, after, page)
        if events:
            yield events
        if len(events) < page:
            return
        after = events[-1].seq
        page = _PAGE


async def fold(source: EventSource, interaction_id: str) -> Projection:
    """The projection of a whole stored log."""
    projection = Projection()
    async for event in replay(source, interaction_id, 0):
        projection.apply(event)
    return projection


class Folds:
    """The folds of logs read here, kept and brought up to date with the events they lack
    (a range read after their last seq), so reading a long running log again costs what is
    new in it, not its length. The `limit` most recently read are kept."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._folds: OrderedDict[str, Projection] = OrderedDict()

    async def current(self, source: EventSource, interaction_id: str) -> Projection:
        """The fold of `interaction_id`'s whole stored log, as of now. It is kept: later
        calls change it in place."""
        projection = self._folds.pop(interaction_id, None) or Projection()
        self._folds[interaction_id] = projection
        while len(self._folds) > self._limit:
            self._folds.popitem(last=False)
        async for event in replay(source, interaction_id, projection.last_seq):
            if event.seq == projection.last_seq + 1:  # a concurrent call may have folded it
                projection.apply(event)
        return projection

    def forget(self, interaction_id: str) -> None:
        """The log has ended: its fold is not needed any more."""
        self._folds.pop(interaction_id, None)


async def tail(
    source: EventSource,
    interaction_id: str,
    after: int,
    subscription: Subscription,
    keepalive: float,
    watch: Watch,
) -> AsyncIterator[Batch]:
    """Replay after `after`, then follow live events until the terminal one, in batches;
    None items are keep-alive ticks (after `keepalive` seconds with nothing sent, or when the
    bus wakes the reader).

    The subscription was opened before the replay and is `ready` before it reads, so an event
    is either replayed or received live (duplicates are dropped by seq); a gap, an overflow or
    a bus that lost what was published (`next` returns None) re-reads the source. On each tick
    `watch` says whether the run can still append: when it can, the source is read again
    (the bus is a hint: a lost one, the last above all, must not hang the stream); when it
    cannot (it ended, its log failed, it was deleted, the server is stopping), the stream reads
    what the source has and ends, with an `error` event when that holds no terminal one. That
    event is not in the log: it carries the seq of the last event sent, so a client resumes
    after it.
    """
    clock = asyncio.get_running_loop().time
    try:
        await subscription.ready()
        seq = after
        catch_up = True
        tick = False
        quiet_until = clock() + keepalive
        while True:
            if catch_up:
                sent = False
                async for page in _pages(source, interaction_id, seq):
                    batch = _to_end(page)
                    yield batch
                    sent, seq = True, batch[-1].seq
                    if is_terminal_event(batch[-1]):
                        return
                catch_up = False
                if sent:
                    quiet_until = clock() + keepalive
                elif tick:
                    yield None
                    quiet_until = clock() + keepalive
                tick = False
            live = await subscription.next(max(0.0, quiet_until - clock()))
            if live is None:
                catch_up = True
                continue
            if not live:
                error = await watch()
                if error is None:
                    catch_up = tick = True
                    continue
                async for page in _pages(source, interaction_id, seq):
                    batch = _to_end(page)
                    yield batch
                    seq = batch[-1].seq
                    if is_terminal_event(batch[-1]):
                        return
                yield [Event(seq, ERROR, {"error": error})]
                return
            fresh: list[Event] = []
            for event in live:
                if event.seq <= seq:
                    continue
                if event.seq != seq + 1:
                    catch_up = True
                    break
                fresh.append(event)
                seq = event.seq
                if is_terminal_event(event):
                    break
            if fresh:
                yield fresh
                quiet_until = clock() + keepalive
                if is_terminal_event(fresh[-1]):
                    return
    finally:
        subscription.close()


def _to_end(events: list[Event]) -> list[Event]:
    """`events` up to the terminal one (nothing follows it in a stream)."""
    for index, event in enumerate(events):
        if is_terminal_event(event):
            return events[: index + 1]
    return events


async def each(batches: AsyncIterator[Batch]) -> AsyncIterator[Event | None]:
    """The events of `batches` one at a time (None ticks passed on). Closing this closes
    `batches` (a reader that leaves ends a store=false run at once)."""
    try:
        async for batch in batches:
            if batch is None:
                yield None
            else:
                for event in batch:
                    yield event
    finally:
        await _close(batches)


async def singles(items: AsyncIterator[T | None]) -> AsyncIterator[list[T] | None]:
    """Batches of one item each (None ticks passed on); closing this closes `items`."""
    try:
        async for item in items:
            yield None if item is None else [item]
    finally:
        await _close(items)


async def _close(iterator: AsyncIterator[object]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def empty() -> AsyncIterator[Batch]:
    """A stream with nothing left to send."""
    return
    yield


async def cancel_on_close(events: AsyncIterator[T], task: asyncio.Task[None]) -> AsyncIterator[T]:
    """A store=false stream: its run lives only as long as its one reader."""
    try:
        async for event in events:
            yield event
    finally:
        task.cancel()
