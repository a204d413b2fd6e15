"""The store interface: interactions, their event logs, and the history chain.

SQLite (store/sqlite.py) is the embedded default; a PostgreSQL store satisfies the same
protocol. JSON columns hold wire-shaped objects (reference §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from propylon.domain.events import Event

__all__ = ["EventSource", "InteractionRecord", "Snapshot", "Store"]


@dataclass(slots=True)
class InteractionRecord:
    """An interaction as stored: the request it came from and the projection of its log.

    request: the echoed request fields (reference §4.1). input: the original `input` value, for
    `include_input`. input_steps: `input` normalised to steps. steps: the model-generated steps
    as of `last_seq` (complete once the status is terminal).
    """

    id: str
    status: str
    created: str
    updated: str
    request: dict[str, Any]
    input: Any
    input_steps: list[dict[str, Any]]
    previous_interaction_id: str | None = None
    background: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = 0
    cost_usd: float = 0.0

    def add_cost(self, cost_usd: float) -> None:
        """Add the cost of one upstream call, in USD."""
        self.cost_usd += cost_usd


@dataclass(slots=True)
class Snapshot:
    """The projection columns written together with a batch of events."""

    status: str
    updated: str
    steps: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    cost_usd: float | None = None


class EventSource(Protocol):
    """Something a reader can replay a log from: the store, or a store=false run's memory."""

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after_seq`, in order."""


class Store(Protocol):
    """Persistence of interactions and their logs. All methods are safe to call concurrently."""

    async def create(self, record: InteractionRecord, events: list[Event]) -> None:
        """Insert a new interaction with its first events, atomically."""

    async def append(self, interaction_id: str, events: list[Event], snapshot: Snapshot) -> None:
        """Append events (seqs continue the log without gaps) and update the projection columns,
        atomically. Raises KeyError when the interaction was deleted meanwhile."""

    async def get(self, interaction_id: str) -> InteractionRecord | None:
        """The interaction, or None."""

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after_seq`, in order. An index range read: its cost
        does not grow with the log's length."""

    async def history(self, interaction_id: str) -> list[dict[str, Any]]:
        """Every step of the chain ending at `interaction_id`, oldest first: for each
        interaction its input steps then its output steps."""

    async def find_idempotency_key(self, key: str, now: float) -> tuple[str, str] | None:
        """(body hash, interaction id) saved under `key` and not expired at `now` (Unix
        seconds), or None."""

    async def save_idempotency_key(
        self, key: str, body_hash: str, interaction_id: str, expires: float
    ) -> None:
        """Save `key` until `expires` (Unix seconds), replacing an expired entry."""

    async def unfinished(self) -> list[str]:
        """Ids of interactions whose status is not terminal (`in_progress`, `queued`)."""

    async def delete(self, interaction_id: str) -> bool:
        """Delete the interaction and its events. False when there was none."""

    async def close(self) -> None:
        """Release connections and threads."""
