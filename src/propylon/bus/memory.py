"""In-process bus: each subscriber has a bounded buffer; overflow drops it back to the store."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Generic, TypeVar

from propylon.domain.events import Event

__all__ = ["BufferedSubscription", "Fanout", "MemoryBus"]


class BufferedSubscription:
    """A subscriber's bounded buffer of live events (also the Redis bus's, bus/redis.py)."""

    def __init__(self, bus: Fanout[Any], interaction_id: str, limit: int) -> None:
        self._bus = bus
        self.interaction_id = interaction_id
        self._limit = limit
        self._events: list[Event] = []
        self._overflow = False
        self._ready = asyncio.Event()

    def _push(self, events: list[Event]) -> None:
        if self._overflow:
            return
        if len(self._events) + len(events) > self._limit:
            self._events.clear()
            self._overflow = True
        else:
            self._events.extend(events)
        self._ready.set()

    def _drop(self) -> None:
        """Forget what is buffered: the next `next` returns None (re-read the store)."""
        self._events.clear()
        self._overflow = True
        self._ready.set()

    async def ready(self) -> None:
        """At once: a publish reaches every subscriber registered before it."""

    async def next(self, timeout: float) -> list[Event] | None:
        if self._bus.closed:
            return []
        if not self._ready.is_set():
            try:  # not wait_for: its task of its own costs the woken reader a loop turn more
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return []
        return self._take()

    def _take(self) -> list[Event] | None:
        """What woke the reader: the buffered events, None after an overflow, [] for a wake."""
        self._ready.clear()
        if self._bus.closed:
            return []
        if self._overflow:
            self._overflow = False
            return None
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._bus._unsubscribe(self.interaction_id, self)


S = TypeVar("S", bound=BufferedSubscription)


class Fanout(Generic[S]):
    """This process's subscribers, by interaction: the in-process bus, and the local side of
    the Redis bus (bus/redis.py)."""

    def __init__(self) -> None:
        self._subscribers: dict[str, set[S]] = defaultdict(set)
        self.closed = False

    def _deliver(self, interaction_id: str, events: list[Event]) -> None:
        """Hand `events` to this process's subscribers of `interaction_id`."""
        for subscription in self._subscribers.get(interaction_id, ()):
            subscription._push(events)

    def _add(self, subscription: S) -> S:
        self._subscribers[subscription.interaction_id].add(subscription)
        return subscription

    def close(self) -> None:
        self.closed = True
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription._ready.set()

    def _unsubscribe(self, interaction_id: str, subscription: BufferedSubscription) -> None:
        subscribers = self._subscribers.get(interaction_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[interaction_id]
                self._abandoned(interaction_id)

    def _abandoned(self, interaction_id: str) -> None:
        """The last subscriber of `interaction_id` here has gone."""


class MemoryBus(Fanout[BufferedSubscription]):
    """Fan-out inside one process. `limit`: events buffered per subscriber before it is dropped
    back to reading the store (bounds a slow reader's memory)."""

    def __init__(self, limit: int = 1024) -> None:
        super().__init__()
        self._limit = limit

    def publish(self, interaction_id: str, events: list[Event]) -> None:
        self._deliver(interaction_id, events)

    def subscribe(self, interaction_id: str) -> BufferedSubscription:
        return self._add(BufferedSubscription(self, interaction_id, self._limit))

    async def aclose(self) -> None:
        """Nothing to release."""
