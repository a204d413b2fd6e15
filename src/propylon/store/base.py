"""The store interfaces, one per aggregate, each owning its tables: interactions, their event
logs and the history chain (`InteractionStore`); API keys (`KeyStore`); webhooks and their
outbox (`WebhookStore`); idempotency keys (`IdempotencyStore`); the spend and token ledger
(`LedgerStore`). `Store` is the first four over one database. Agents, the listing and the
console's reads have theirs in store/agents.py, store/listing.py, store/console.py.

Two implementations: the embedded default on the stdlib `sqlite3` driver (store/sqlite*.py)
and SQLAlchemy Core, async, on PostgreSQL or SQLite (store/sql/). JSON columns hold
wire-shaped objects (reference §4).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from propylon.domain.events import Event

__all__ = [
    "ApiKey",
    "CreateHook",
    "Delivery",
    "EventSource",
    "IdempotencyClaim",
    "IdempotencyConflict",
    "IdempotencyStore",
    "InteractionRecord",
    "InteractionStore",
    "KeyStore",
    "LedgerStore",
    "LogWrite",
    "Reservation",
    "Snapshot",
    "SpendCap",
    "Store",
    "WebhookStore",
]


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """An `Idempotency-Key` (tenant-scoped) claimed by the create of a new interaction, with
    the SHA-256 of the request body and when the claim lapses (Unix seconds)."""

    key: str
    body_hash: str
    expires: float


class IdempotencyConflict(Exception):
    """Another interaction holds the claimed key: `interaction_id`, created from a body whose
    hash is `body_hash`. Nothing of the losing create was written."""

    def __init__(self, interaction_id: str, body_hash: str) -> None:
        super().__init__(interaction_id)
        self.interaction_id = interaction_id
        self.body_hash = body_hash


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
    run_epoch: int = 0  # bumped by each `claim_run`: the fence of `append_fenced`
    # the key this interaction is created under: written with its row, in one transaction
    claim: IdempotencyClaim | None = None

    def add_cost(self, cost_usd: float) -> None:
        """Add the cost of one upstream call, in USD."""
        self.cost_usd += cost_usd


@dataclass(slots=True)
class ApiKey:
    """A stored API key: only the SHA-256 of the secret is kept. `policy` holds the per-key
    limits (see service/quotas.py); `api_revision` the default wire revision of its requests
    (a date `YYYY-MM-DD`; None: the server's)."""

    id: str
    key_hash: str
    tenant: str
    name: str = ""
    admin: bool = False
    policy: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    revoked: str | None = None
    api_revision: str | None = None


@dataclass(slots=True)
class Delivery:
    """One webhook message to send (the outbox). `id` is the `webhook-id` header, stable
    across retries; `webhook_id` None means a per-request `webhook_config.uris` target, signed
    with the secret of `tenant`."""

    id: str
    uri: str
    payload: str
    webhook_id: str | None = None
    attempts: int = 0
    next_attempt: float = 0.0
    tenant: str = "default"


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


@dataclass(slots=True)
class LogWrite:
    """One log's part of a group commit (`InteractionStore.write_logs`): a new interaction's
    row with its first events and, when they end it, its webhook `deliveries` (`record` set;
    never one with an idempotency `claim`: that create is written alone), or `events` appended
    under the run `epoch` with the projection columns of `snapshot`."""

    interaction_id: str
    events: list[Event]
    record: InteractionRecord | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    epoch: int = 0
    snapshot: Snapshot | None = None


# Run inside the transaction that creates an interaction's row, on the database driver's own
# connection (psycopg's AsyncConnection on PostgreSQL): a background run's job is deferred
# with its row (jobs/procrastinate.py), so neither is ever written without the other.
CreateHook = Callable[[Any, "InteractionRecord"], Awaitable[None]]


class EventSource(Protocol):
    """Something a reader can replay a log from: the store, or a store=false run's memory."""

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after_seq`, in order."""


class InteractionStore(Protocol):
    """Owns the `interactions` and `events` tables: interactions, their logs and the history
    chain. All methods are safe to call concurrently."""

    on_create: CreateHook | None  # called by `create` in its transaction, when set

    async def create(
        self,
        record: InteractionRecord,
        events: list[Event],
        deliveries: list[Delivery] | None = None,
    ) -> None:
        """Insert a new interaction with its first events (and, when they end it, its webhook
        deliveries), atomically. With `record.claim`, the idempotency key is claimed in the
        same transaction (an expired holder is replaced); raises IdempotencyConflict, writing
        nothing, when another interaction holds it."""

    async def claim_run(self, interaction_id: str) -> int | None:
        """Take the run of an unfinished interaction: bump its `run_epoch` and return the new
        epoch, to pass to `append_fenced`; None (nothing written) when the interaction is gone
        or its status is terminal. Whoever held an older epoch can no longer write."""

    async def append_fenced(
        self, interaction_id: str, epoch: int, events: list[Event], snapshot: Snapshot
    ) -> bool:
        """Append events (seqs continue the log without gaps) and update the projection columns,
        atomically, only while the stored row has `run_epoch = epoch` and a status that is not
        terminal (`UPDATE ... WHERE id = :id AND run_epoch = :epoch AND status IN (running)`).
        True when it was written; False, writing nothing, when the interaction is gone, another
        claim took the run over, or the run has already ended (so a log keeps exactly one
        terminal event)."""

    async def write_logs(self, writes: list[LogWrite]) -> list[bool]:
        """Every write in one transaction (group commit: the events of many logs, one
        commit): a create as `create`, an append as `append_fenced`. Returns, per write, True
        when it was written, False when its append was fenced out (nothing of it is written;
        the other writes are). Raises when the transaction failed: then nothing was written."""

    async def get(self, interaction_id: str) -> InteractionRecord | None:
        """The interaction, or None."""

    async def read_events(self, interaction_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after_seq`, in order. An index range read: its cost
        does not grow with the log's length."""

    async def history(self, interaction_id: str) -> list[dict[str, Any]]:
        """Every step of the chain ending at `interaction_id`, oldest first: for each
        interaction its input steps then its output steps."""

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
        """Delete the interaction, its events and the idempotency keys that name it. False
        when there was none."""


class KeyStore(Protocol):
    """Owns the `api_keys` table (a key names its tenant; tenants have no table of their
    own). Safe to call concurrently."""

    async def save_api_key(self, key: ApiKey) -> None:
        """Insert or replace an API key (by id)."""

    async def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes to `key_hash` (revoked ones included), or None."""

    async def api_key_by_id(self, key_id: str) -> ApiKey | None:
        """The key `key_id` (revoked ones included), or None."""

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

    async def count_api_keys(self) -> int:
        """How many keys are not revoked."""


class WebhookStore(Protocol):
    """Owns the `webhooks` and `deliveries` tables (the outbox). Safe to call concurrently."""

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
        """Add deliveries to the outbox (one already there, by id, is left as it is)."""

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


class IdempotencyStore(Protocol):
    """Owns the `idempotency_keys` table. A key is claimed by `InteractionStore.create`, in the
    transaction that writes its row (`INSERT ... ON CONFLICT DO NOTHING`, then a re-read that
    names the holder); this reads them."""

    async def find_idempotency_key(self, key: str, now: float) -> tuple[str, str] | None:
        """(body hash, interaction id) saved under `key` and not expired at `now` (Unix
        seconds), or None."""

    async def get(self, interaction_id: str) -> InteractionRecord | None:
        """The interaction, or None."""


class Store(InteractionStore, KeyStore, WebhookStore, IdempotencyStore, Protocol):
    """The store's parts over one database, as one object (each part's methods are its own:
    see the part's Protocol for which tables it owns)."""

    async def open(self) -> None:
        """Connect and migrate the schema to head (safe when several processes start at once)."""

    async def close(self) -> None:
        """Release connections and threads."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """What one interaction may spend, held from admission until it is settled: `usd` and
    `tokens` of its ceiling. `created`: wire timestamp (the budget period it counts in)."""

    interaction_id: str
    tenant: str
    api_key_id: str | None
    created: str
    usd: float
    tokens: int
    owner: str | None = None  # the process that made it (several share the database)


@dataclass(frozen=True, slots=True)
class SpendCap:
    """A budget checked at admission: `usd` over the ledger entries of `api_key_id` (or, when
    it is None, of `tenant`) created at or after `since` (wire timestamp)."""

    usd: float
    since: str
    api_key_id: str | None = None
    tenant: str | None = None


class LedgerStore(Protocol):
    """The spend and token ledger: one entry per admitted interaction, reserved at admission
    and settled to what the run cost. Entries outlive their interactions: deleting or purging
    an interaction never refunds it. What counts against a budget is the committed amount:
    the settled spend plus the open reservations."""

    async def reserve(self, reservation: Reservation, caps: list[SpendCap]) -> SpendCap | None:
        """Atomically with every other admission: the first cap whose committed USD is at or
        over its `usd` (nothing written), or None after writing `reservation`."""

    async def settle(self, interaction_id: str, usd: float | None, tokens: int | None) -> bool:
        """Replace an open reservation with what the run spent (None: charge the reservation
        itself, when the spend is not known). False when there is no open one."""

    async def release(self, interaction_id: str) -> None:
        """Drop an open reservation of a create that never ran (refused after admission)."""

    async def committed(
        self, since: str, api_key_id: str | None = None, tenant: str | None = None
    ) -> tuple[float, int]:
        """(USD, tokens) committed by a key (or a tenant) since `since`: settled spend plus
        open reservations."""

    async def unsettled(self) -> list[str]:
        """Interaction ids of the open reservations."""

    async def prune(self, before: str) -> int:
        """Delete settled entries created before `before` (no budget period reaches back that
        far). Returns how many."""
