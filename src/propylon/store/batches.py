"""Gemini batches (`BatchStore`): a tenant's batch of generateContent requests, its requests in
order and each one's result once answered.

Its own small interface beside the `Store` of interactions: the stdlib sqlite3 store
(store/sqlite_batches.py) and the SQLAlchemy one (store/sql/batches.py) implement it over the
`batches` and `batch_requests` tables (migration 0016), sharing their SQL (store/queries.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "CANCELLED",
    "FAILED",
    "PENDING",
    "RUNNING",
    "SUCCEEDED",
    "UNFINISHED",
    "BatchCreateHook",
    "BatchItem",
    "BatchRecord",
    "BatchStore",
]

# The states of a batch, as Google's `metadata.state` names them.
PENDING = "BATCH_STATE_PENDING"
RUNNING = "BATCH_STATE_RUNNING"
SUCCEEDED = "BATCH_STATE_SUCCEEDED"
FAILED = "BATCH_STATE_FAILED"
CANCELLED = "BATCH_STATE_CANCELLED"
UNFINISHED = (PENDING, RUNNING)  # a batch in these may still run; the others never again


@dataclass(slots=True)
class BatchRecord:
    """One batch of `tenant`. `model`: the served model's name as the path gave it (no
    `models/`). `caller`: the creator's key id, admin flag, policy and revision, whose quotas
    and budgets its requests count against. `created`, `updated`, `ended`: wire timestamps.
    `succeeded`, `failed`: requests answered so far, by outcome. `error`: a failed batch's
    google.rpc.Status (`{"code", "message"}`)."""

    id: str
    tenant: str
    model: str
    display_name: str
    state: str
    created: str
    updated: str
    caller: dict[str, Any]
    request_count: int
    succeeded: int = 0
    failed: int = 0
    ended: str | None = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """Request number `index` (from 0) of a batch: the GenerateContentRequest as sent, its
    `metadata`, and its `result` once answered: `{"response": GenerateContentResponse}` or
    `{"error": google.rpc.Status}` (None: not run yet)."""

    index: int
    request: dict[str, Any]
    metadata: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


# Run inside the transaction that creates a batch's row, on the database driver's own
# connection (psycopg's on PostgreSQL): the batch's job is deferred with its row
# (jobs/procrastinate.py), so neither is ever written without the other.
BatchCreateHook = Callable[[Any, BatchRecord], Awaitable[None]]


class BatchStore(Protocol):
    """Persistence of batches. Safe to call concurrently, from several processes."""

    on_batch_create: BatchCreateHook | None  # called by `create_batch` in its transaction

    async def create_batch(self, batch: BatchRecord, items: list[BatchItem]) -> None:
        """Insert `batch` and its requests, atomically (with the hook's work, when set)."""

    async def get_batch(self, batch_id: str) -> BatchRecord | None:
        """The batch, or None."""

    async def list_batches(self, tenant: str, before: str | None, limit: int) -> list[BatchRecord]:
        """Up to `limit` of the tenant's batches, newest first (ids descending), with ids
        before `before`."""

    async def batch_items(self, batch_id: str) -> list[BatchItem]:
        """The batch's requests with their results, in request order."""

    async def start_batch(self, batch_id: str, now: str) -> bool:
        """Mark an unfinished batch `RUNNING`. False (nothing written) when it is gone or
        finished: a finished batch never runs again."""

    async def record_result(
        self, batch_id: str, index: int, result: dict[str, Any], ok: bool, now: str
    ) -> bool:
        """Store the result of request `index` (counted as succeeded when `ok`, else failed),
        only while the batch is `RUNNING` and the request has none yet. False, writing
        nothing, otherwise (the batch was cancelled, deleted or has ended)."""

    async def end_batch(
        self, batch_id: str, state: str, now: str, error: dict[str, Any] | None = None
    ) -> bool:
        """End an unfinished batch in `state` (`SUCCEEDED`, `FAILED`, `CANCELLED`). False
        (nothing written) when it is gone or had ended."""

    async def delete_batch(self, batch_id: str) -> bool:
        """Delete the batch and its requests. False when there was none."""

    async def unfinished_batches(self) -> list[str]:
        """Ids of the batches that are `PENDING` or `RUNNING`."""
