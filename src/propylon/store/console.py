"""The operator console's reads that no API resource serves (`ConsoleReads`): usage per day,
the chain of an interaction, a webhook's last deliveries. Read-only, each one index walk.

SQLite implements it in store/sqlite_console.py; a PostgreSQL store would too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["ChainLink", "ConsoleReads", "DeliveryRow", "UsageQuery", "UsageRow"]

Group = Literal["model", "tenant", "label"]


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """Usage of interactions created in [since, until) (wire timestamps), of `tenant` (None:
    every tenant), per UTC day and per `group`: the request's model (or agent), the tenant,
    or the value of the label `label_key` (interactions without it: series None)."""

    since: str
    until: str
    tenant: str | None = None
    group: Group = "model"
    label_key: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One day's usage of one series: `day` is `YYYY-MM-DD` (UTC); tokens are counts; cost
    in USD."""

    day: str
    series: str | None
    interactions: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class ChainLink:
    """An interaction of a chain: enough to name and link it."""

    id: str
    status: str
    created: str
    tenant: str


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    """One outbox entry of a webhook: `event` and `timestamp` from its payload; `state` is
    `pending`, `delivered` or `failed`; `last_error` of its last attempt."""

    id: str
    event: str
    timestamp: str
    state: str
    attempts: int
    last_error: str | None


class ConsoleReads(Protocol):
    """Read-only queries of the console. Safe to call concurrently."""

    async def usage(self, query: UsageQuery) -> list[UsageRow]:
        """Rows ordered by day then series; only (day, series) pairs with interactions."""

    async def chain_back(self, interaction_id: str, limit: int) -> list[ChainLink]:
        """The interactions before `interaction_id` by `previous_interaction_id`, nearest
        first, at most `limit` (any tenant: the caller filters)."""

    async def chain_forward(self, interaction_id: str, limit: int) -> list[ChainLink]:
        """Interactions whose `previous_interaction_id` is `interaction_id`, oldest first."""

    async def deliveries(self, webhook_id: str, limit: int) -> list[DeliveryRow]:
        """The webhook's last `limit` deliveries, newest first."""
