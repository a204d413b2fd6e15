"""The store interface: interactions, their event logs, and the history chain.

SQLite (store/sqlite.py) is the embedded default; a PostgreSQL store satisfies the same
protocol. JSON columns hold wire-shaped objects (reference §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from propylon.domain.events import Event

__all__ = ["ApiKey", "Delivery", "EventSource", "InteractionRecord", "Snapshot", "Store"]


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
    tenant: str = "default"
    api_key_id: str | None = None
    upstream_id: str | None = None  # a mirrored agent interaction's id at Google

    def add_cost(self, cost_usd: float) -> None:
        """Add the cost of one upstream call, in USD."""
        self.cost_usd += cost_usd


@dataclass(slots=True)
class ApiKey:
    """A stored API key: only the SHA-256 of the secret is kept. `policy` holds the per-key
    limits (see service/quotas.py)."""

    id: str
    key_hash: str
    tenant: str
    name: str = ""
    admin: bool = False
    policy: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    revoked: str | None = None


@dataclass(slots=True)
class Delivery:
    """One webhook message to send (the outbox). `id` is the `webhook-id` header, stable
    across retries; `webhook_id` None means a per-request `webhook_config.uris` target."""

    id: str
    uri: str
    payload: str
    webhook_id: str | None = None
    attempts: int = 0
    next_attempt: float = 0.0


@dataclass(slots=True)
class Snapshot:
    """The projection columns written together with a batch of events."""

    status: str
    updated: str
    steps: list[dict[str, Any]] | None = None
    usage: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None
    cost_usd: float | None = None
    upstream_id: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)  # written in the same transaction


class EventSource(Protocol):
    """Something a reader can replay a log from: the store, or a store=false run's memory."""

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after_seq`, in order."""


class Store(Protocol):
    """Persistence of interactions and their logs. All methods are safe to call concurrently."""

    async def create(
        self,
        record: InteractionRecord,
        events: list[Event],
        deliveries: list[Delivery] | None = None,
    ) -> None:
        """Insert a new interaction with its first events (and, when they end it, its webhook
        deliveries), atomically."""

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

    async def save_webhook(self, webhook: dict[str, Any]) -> None:
        """Insert or replace a webhook (its `id` and `tenant` set)."""

    async def list_webhooks(
        self, tenant: str | None, after: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """A tenant's webhooks (every tenant's with None) ordered by id, after id `after`."""

    async def get_webhook(self, webhook_id: str) -> dict[str, Any] | None:
        """The webhook, or None."""

    async def delete_webhook(self, webhook_id: str) -> bool:
        """Delete the webhook and its pending deliveries. False when there was none."""

    async def enqueue(self, deliveries: list[Delivery]) -> None:
        """Add deliveries to the outbox."""

    async def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Pending deliveries whose next attempt is due at `now` (Unix seconds), and whose
        webhook, if registered, is enabled: read here, not cached. The pending deliveries of a
        webhook that is not enabled end `failed`, never sent."""

    async def delivery_done(
        self,
        delivery: Delivery,
        ok: bool,
        error: str | None,
        next_attempt: float | None,
        disable_after: int,
    ) -> None:
        """Record an attempt: delivered (`ok`), to retry at `next_attempt`, or failed for good
        (`next_attempt` None). Counts the webhook's consecutive failed attempts; at
        `disable_after` its state becomes `disabled_due_to_failed_deliveries`."""

    async def save_api_key(self, key: ApiKey) -> None:
        """Insert or replace an API key."""

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes to `key_hash` (revoked ones included), or None."""

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

    async def count_api_keys(self) -> int:
        """How many keys are not revoked."""

    async def spend(self, api_key_id: str, since: str) -> float:
        """USD spent by a key's interactions created at or after `since` (wire timestamp)."""

    async def tenants(self) -> list[str]:
        """Every tenant that has interactions."""

    async def purge(self, tenant: str, before: str) -> int:
        """Delete a tenant's interactions created before `before`, with their events.
        Returns how many."""

    async def export(self, tenant: str) -> list[tuple[InteractionRecord, list[Event]]]:
        """Every interaction of a tenant with its whole log, oldest first."""

    async def unfinished(self) -> list[str]:
        """Ids of interactions whose status is not terminal (`in_progress`, `queued`)."""

    async def delete(self, interaction_id: str) -> bool:
        """Delete the interaction and its events. False when there was none."""

    async def close(self) -> None:
        """Release connections and threads."""
