"""Reading logs: replay from a source, then follow live events until the terminal one."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

from propylon.bus.base import Subscription
from propylon.domain.events import ERROR, Event, is_terminal_event
from propylon.domain.projection import Projection
from propylon.store.base import EventSource

__all__ = ["Folds", "Watch", "cancel_on_close", "empty", "fold", "replay", "tail"]

# Asked on every keep-alive tick of a stream: None while its run may still append events, else
# the error (`{"code", "message"}`) to end the stream with, after whatever the log holds.
Watch = Callable[[], Awaitable[dict[str, str] | None]]

_FIRST_PAGE = 32  # events in the first read of a replay: the first event goes out fast
_PAGE = 500  # events per later read


async def replay(source: EventSource, interaction_id: str, after: int) -> AsyncIterator[Event]:
    """Every stored event after seq `after`, in pages."""
    page = _FIRST_PAGE
    while True:
        events = await source.read_events(interaction_id, after, page)
        for event in events:
            yield event
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
) -> AsyncIterator[Event | None]:
    """Replay after `after`, then follow live events until the terminal one; None items are
    keep-alive ticks (after `keepalive` seconds with nothing sent, or when the bus wakes the
    reader).

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
                async for event in replay(source, interaction_id, seq):
                    yield event
                    sent, seq = True, event.seq
                    if is_terminal_event(event):
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
                async for event in replay(source, interaction_id, seq):
                    yield event
                    seq = event.seq
                    if is_terminal_event(event):
                        return
                yield Event(seq, ERROR, {"error": error})
                return
            for event in live:
                if event.seq <= seq:
                    continue
                if event.seq != seq + 1:
                    catch_up = True
                    break
                yield event
                seq = event.seq
                quiet_until = clock() + keepalive
                if is_terminal_event(event):
                    return
    finally:
        subscription.close()


async def empty() -> AsyncIterator[Event | None]:
    """A stream with nothing left to send."""
    return
    yield


async def cancel_on_close(
    events: AsyncIterator[Event | None], task: asyncio.Task[None]
) -> AsyncIterator[Event | None]:
    """A store=false stream: its run lives only as long as its one reader."""
    try:
        async for event in events:
            yield event
    finally:
        task.cancel()
