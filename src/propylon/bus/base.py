"""The bus interface: live fan-out of new events to readers of the same interaction.

A hint, never the truth: a reader that misses a hint, or gets one out of order, reads the store.
Two implementations: the in-process bus (bus/memory.py) and Redis pub/sub (bus/redis.py) for
several processes; `bus_for` (bus/__init__.py) picks one from the settings.
"""

from __future__ import annotations

from typing import Protocol

from propylon.domain.events import Event

__all__ = ["Bus", "Subscription"]


class Subscription(Protocol):
    """One reader's view of an interaction's new events."""

    async def ready(self) -> None:
        """Wait until everything published from now on will reach this subscription (Redis:
        the SUBSCRIBE is acknowledged), or until the bus knows it cannot promise that (Redis
        unreachable: `next` then returns None every few seconds, so the reader polls the
        store). Call once, before replaying the store. Raises nothing."""

    async def next(self, timeout: float) -> list[Event] | None:
        """Events published since the last call, waiting up to `timeout` seconds for some.

        Returns [] on timeout or when woken without events (an empty publish, or the bus
        closing): the reader then re-checks its interaction's state. Returns None when events
        were dropped (the reader was too slow and its bounded buffer overflowed): the reader
        must then re-read the store.
        """

    def close(self) -> None:
        """Stop receiving."""


class Bus(Protocol):
    """Publish events of an interaction; subscribe to them."""

    def publish(self, interaction_id: str, events: list[Event]) -> None:
        """Hand `events` (already persisted) to the interaction's current subscribers; an empty
        list only wakes them (the log's state changed without a new event)."""

    def subscribe(self, interaction_id: str) -> Subscription:
        """Start receiving events published from now on."""

    def close(self) -> None:
        """The server is stopping: wake every subscriber, now and from now on (`next` returns
        [] at once), so that each reader re-checks its state and ends. Publishing goes on (runs
        still ending here announce it to other processes) until `aclose`."""

    async def aclose(self) -> None:
        """Release the bus's connections and tasks (the last step of a stop)."""
