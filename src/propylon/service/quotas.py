"""Per-key policy: which models a key may use, requests and tokens per minute. Checked before
a create; tokens are counted when a run ends (`store=false` runs too).

Policy fields (set with `propylon keys create`): `models` (names or aliases), `rpm`, `tpm`,
`budget_usd` with `budget_period` and `max_tokens_per_interaction` (both enforced by the
ledger, service/ledger.py). Rate windows are moving windows (a minute, `rate_window_seconds`)
kept in this process by the `limits` package.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from propylon.domain.caller import Caller
from propylon.errors import PermissionDenied, ResourceExhausted

__all__ = ["Quotas"]


class Quotas:
    """Enforces callers' policies."""

    def __init__(self, window_seconds: float = 60.0) -> None:
        self.window = max(1, round(window_seconds))
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

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
        if tpm and not self._limiter.test(self._item(tpm), caller.key_id, "tokens"):
            raise ResourceExhausted(
                f"tokens-per-minute limit of {tpm} reached",
                self._wait(self._item(tpm), caller.key_id, "tokens"),
            )
        rpm = policy.get("rpm")
        if rpm and not self._limiter.hit(self._item(rpm), caller.key_id, "requests"):
            raise ResourceExhausted(
                f"requests-per-minute limit of {rpm} reached",
                self._wait(self._item(rpm), caller.key_id, "requests"),
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

    def count_tokens(self, caller: Caller, tokens: int) -> None:
        """Charge a finished run's tokens to the caller's tokens-per-minute window."""
        tpm = caller.policy.get("tpm")
        if tpm and caller.key_id and tokens > 0:
            item = self._item(tpm)
            # a run larger than the whole window fills it rather than failing to count
            self._limiter.hit(item, caller.key_id, "tokens", cost=min(tokens, tpm))

    def _wait(self, item: RateLimitItem, *identifiers: str) -> float:
        reset = self._limiter.get_window_stats(item, *identifiers).reset_time
        return max(1.0, reset - time.time())
