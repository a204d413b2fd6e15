"""Per-key policy: which models a key may use, requests and tokens per minute. Checked before
a create; tokens are counted when a run ends (`store=false` runs too).

Policy fields (set with `propylon keys create`): `models` (names or aliases), `rpm`, `tpm`,
`budget_usd` with `budget_period` and `max_tokens_per_interaction` (both enforced by the
ledger, service/ledger.py). Rate windows are moving windows (a minute, `rate_window_seconds`)
counted by the `limits` package: in this process, or in Redis (`redis_url`) so that every
process sharing it counts the same windows. While Redis cannot be reached each process counts
on its own (logged), rather than refusing or admitting everything.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from propylon.domain.caller import Caller
from propylon.errors import PermissionDenied, ResourceExhausted

__all__ = ["Quotas"]

logger = logging.getLogger("propylon.quotas")

_RETRY_SHARED = 2.0  # seconds of counting locally after Redis failed, before trying it again


def _storage_uri(redis_url: str) -> str:
    """The `limits` package's URI of a Redis URL (`redis://`, `rediss://`, `unix://`)."""
    if redis_url.startswith("unix://"):
        return "async+redis+unix://" + redis_url.removeprefix("unix://")
    return "async+" + redis_url


class Quotas:
    """Enforces callers' policies. `redis_url`: where the rate windows are shared (None: in
    this process only)."""

    def __init__(self, window_seconds: float = 60.0, redis_url: str | None = None) -> None:
        self.window = max(1, round(window_seconds))
        self._local = MovingWindowRateLimiter(MemoryStorage())
        self._shared: MovingWindowRateLimiter | None = None
        if redis_url is not None:
            storage = RedisStorage(
                _storage_uri(redis_url),
                wrap_exceptions=True,
                implementation="redispy",
                key_prefix="propylon-limits",
                socket_connect_timeout=1.0,
                socket_timeout=1.0,
                client_name=f"propylon-limits-{os.getpid()}",
            )
            self._shared = MovingWindowRateLimiter(storage)
        self._local_until = 0.0  # Redis failed: count locally until then

    async def _limit(self, call: str, *args: Any, **kwargs: Any) -> Any:
        """`call` (`hit`, `test`, `get_window_stats`) on the shared windows, or on this
        process's while Redis cannot be reached."""
        if self._shared is not None and time.monotonic() >= self._local_until:
            try:
                result = await getattr(self._shared, call)(*args, **kwargs)
            except StorageError as exc:
                if self._local_until == 0.0:
                    logger.warning("Redis unreachable, rate limits count per process: %s", exc)
                self._local_until = time.monotonic() + _RETRY_SHARED
            else:
                if self._local_until:
                    logger.warning("Redis reachable again, rate limits are shared")
                self._local_until = 0.0
                return result
        return await getattr(self._local, call)(*args, **kwargs)

    def _item(self, amount: int) -> RateLimitItem:
        """`amount` per window (a minute by default: rpm and tpm)."""
        return RateLimitItemPerSecond(amount, self.window)

    async def admit(self, caller: Caller, model: str) -> None:
        """Raise PermissionDenied (model not allowed) or ResourceExhausted (a rate is spent,
        with seconds until it may pass) before a create runs; counts the request."""
        policy = caller.policy
        if not policy or caller.key_id is None:
            return
        self.allows(caller, model)
        tpm = policy.get("tpm")
        if tpm and not await self._limit("test", self._item(tpm), caller.key_id, "tokens"):
            raise ResourceExhausted(
                f"tokens-per-minute limit of {tpm} reached",
                await self._wait(self._item(tpm), caller.key_id, "tokens"),
            )
        rpm = policy.get("rpm")
        if rpm and not await self._limit("hit", self._item(rpm), caller.key_id, "requests"):
            raise ResourceExhausted(
                f"requests-per-minute limit of {rpm} reached",
                await self._wait(self._item(rpm), caller.key_id, "requests"),
            )

    @staticmethod
    def allows(caller: Caller, model: str) -> None:
        """Raise PermissionDenied when the caller's key may not use `model` (a model, alias
        or agent name)."""
        models = caller.policy.get("models")
        if models and caller.key_id is not None and model.removeprefix("models/") not in models:
            raise PermissionDenied(
                f"this API key may not use model `{model}`; it may use {', '.join(models)}"
            )

    @staticmethod
    def may_use(caller: Caller, model: str) -> bool:
        """Whether the caller's key may use `model` (for listings: no error)."""
        try:
            Quotas.allows(caller, model)
        except PermissionDenied:
            return False
        return True

    async def count_tokens(self, caller: Caller, tokens: int) -> None:
        """Charge a finished run's tokens to the caller's tokens-per-minute window."""
        tpm = caller.policy.get("tpm")
        if tpm and caller.key_id and tokens > 0:
            item, key = self._item(tpm), caller.key_id
            # a run larger than what the window has left fills it rather than counting nothing
            # (a moving window refuses a hit that does not fit whole)
            if not await self._limit("hit", item, key, "tokens", cost=min(tokens, tpm)):
                left = (await self._limit("get_window_stats", item, key, "tokens")).remaining
                if left > 0:
                    await self._limit("hit", item, key, "tokens", cost=left)

    async def _wait(self, item: RateLimitItem, *identifiers: str) -> float:
        """Seconds until `item`'s window lets one more through (at least 1)."""
        stats = await self._limit("get_window_stats", item, *identifiers)
        return max(1.0, float(stats.reset_time) - time.time())
