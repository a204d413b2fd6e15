"""The `Idempotency-Key` protocol of create: a repeat of a request (same tenant, key and body)
within the window gets the first interaction, never a second run.

- The key is claimed by the write of the new interaction's row, in the same transaction (see
  Store.create): a key is never visible without its interaction, and of concurrent claimants
  (in any process) the first insert wins; the others write nothing and read the winner.
- In this process, duplicates of a key in flight queue behind the first one's claim (a lock
  per key), so they neither plan nor reserve in vain.
- A key found whose interaction cannot be read yet (a store replica behind) is polled for,
  up to a bound, then answered 503 (retryable).
- The same key with another body answers 400.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from propylon.errors import InvalidArgument, Unavailable
from propylon.store.base import (
    IdempotencyClaim,
    IdempotencyConflict,
    IdempotencyStore,
    InteractionRecord,
)

__all__ = ["Idempotency"]

T = TypeVar("T")

_POLL_SECONDS = 0.05


class Idempotency:
    """Decides, for a create with an `Idempotency-Key`, whether it runs or repeats."""

    def __init__(
        self, store: IdempotencyStore, window_seconds: float, wait_seconds: float = 10.0
    ) -> None:
        """`window_seconds`: how long a key keeps its first interaction. `wait_seconds`: how
        long a found key's interaction is waited for before answering 503."""
        self.store = store
        self.window = window_seconds
        self.wait = wait_seconds
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def claim(self, tenant: str, key: str, body: Any) -> IdempotencyClaim:
        """The claim of `key` (per tenant) for a request whose decoded body is `body`."""
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return IdempotencyClaim(f"{tenant}/{key}", digest, time.time() + self.window)

    async def first_or_create(
        self, claim: IdempotencyClaim, create: Callable[[IdempotencyClaim], Awaitable[T]]
    ) -> tuple[InteractionRecord | None, T | None]:
        """(the first interaction, None) for a repeat, or (None, what `create` returned) when
        this request claimed the key. `create` must write the claim with the new row (raising
        IdempotencyConflict when it lost) before it starts anything. Raises InvalidArgument
        for another body under the key, Unavailable when its interaction cannot be read."""
        self._users[claim.key] = self._users.get(claim.key, 0) + 1
        lock = self._locks.setdefault(claim.key, asyncio.Lock())
        try:
            async with lock:
                found = await self.store.find_idempotency_key(claim.key, time.time())
                if found is None:
                    try:
                        return None, await create(claim)
                    except IdempotencyConflict as lost:  # another process claimed it first
                        found = (lost.body_hash, lost.interaction_id)
        finally:
            self._users[claim.key] -= 1
            if not self._users[claim.key]:
                del self._users[claim.key], self._locks[claim.key]
        body_hash, interaction_id = found
        if body_hash != claim.body_hash:
            raise InvalidArgument("this `Idempotency-Key` was used with a different request body")
        return await self._first(interaction_id), None

    async def _first(self, interaction_id: str) -> InteractionRecord:
        deadline = time.monotonic() + self.wait
        while (record := await self.store.get(interaction_id)) is None:
            if time.monotonic() > deadline:
                raise Unavailable(
                    "the interaction of this `Idempotency-Key` cannot be read yet; retry"
                )
            await asyncio.sleep(_POLL_SECONDS)
        return record
