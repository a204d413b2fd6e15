"""Budgets as a ledger: every admitted interaction reserves its ceiling, and its run's end
settles the reservation to what it cost (CallRecord.cost_usd, summed on the record).

- Ceiling: the key's `max_tokens_per_interaction`, else the server's; a caller under a budget
  with neither gets `reservation_tokens`. The runner enforces the ceiling (past it the run ends
  `budget_exceeded`), so a reservation bounds its run, up to the overshoot of the model answer
  that crossed it. The request's `generation_config.max_output_tokens` is not a ceiling: it caps
  one model answer's output, not the input or the tool rounds of an interaction.
- USD reserved: the ceiling's tokens at the most expensive per-token price (input, cached or
  output) of the served model's targets, since any of them may end up answering.
- Admission: refused (429) while what a budget's scope has committed this period (settled
  spend plus open reservations) has reached the budget: the key's `budget_usd` per
  `budget_period`, and the tenant's (`tenants.<name>.budget_usd`). The check and the
  reservation are one store transaction (see LedgerStore.reserve), so concurrent admissions see
  each other: a period spends at most its budget plus one run's ceiling.
- Every run of a caller under a budget has an entry, `store=false` ones too; deleting or
  purging an interaction never refunds. A caller under no budget writes nothing here (a
  `store=false` create stays free of store writes); a tenant budget counts from when it is set.
- A run the process lost (a crash) keeps its reservation until the next start's recovery
  settles it: to the recorded cost when the run had ended, else to the reservation itself.
  Several processes on one database (PostgreSQL): each reservation names the process that
  made it (`owner`), and the reconciler settles those of dead processes (`recover_lost`),
  never a live one's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from propylon.config import Settings
from propylon.domain import lifecycle
from propylon.domain.caller import Caller
from propylon.domain.usage import Usage
from propylon.errors import BudgetExhausted
from propylon.gateway.registry import ServedModel
from propylon.store.base import InteractionRecord, LedgerStore, Reservation, SpendCap

__all__ = ["Ledger", "period_start", "price_per_token"]

logger = logging.getLogger("propylon")


def period_start(period: str, now: datetime | None = None) -> tuple[str, float]:
    """The wire timestamp where the current `day` or `month` (UTC) began, and seconds until the
    next one begins."""
    now = now or datetime.now(tz=UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
        following = start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)
    else:
        following = datetime.fromtimestamp(start.timestamp() + 86400, tz=UTC)
    return start.strftime("%Y-%m-%dT%H:%M:%SZ"), (following - now).total_seconds()


def price_per_token(served: ServedModel | None) -> float:
    """USD of one token at the dearest price of any of `served`'s targets (0 for none)."""
    prices = [
        price
        for target in (served.targets if served is not None else [])
        for price in (
            target.settings.price_input_per_million,
            target.settings.price_cached_per_million,
            target.settings.price_output_per_million,
        )
    ]
    return max(prices, default=0.0) / 1e6


class Ledger:
    """Admission, settlement and recovery of reservations, over a LedgerStore."""

    def __init__(self, store: LedgerStore, settings: Settings, owner: str | None = None) -> None:
        """`owner`: this process, recorded on each reservation it makes (None: one process
        owns the database)."""
        self.store = store
        self.settings = settings
        self.owner = owner
        self._open: set[str] = set()  # reservations this process settles when their runs end

    def ceiling(self, caller: Caller) -> int | None:
        """The token ceiling of one interaction of `caller` (None: none)."""
        ceiling: int | None = (
            caller.policy.get("max_tokens_per_interaction")
            or self.settings.max_tokens_per_interaction
        )
        if ceiling is None and self._caps(caller):
            return self.settings.reservation_tokens
        return ceiling

    def _caps(self, caller: Caller) -> list[tuple[SpendCap, str, str]]:
        """The budgets `caller` is under: (cap, its period, who it belongs to)."""
        caps = []
        budget = caller.policy.get("budget_usd")
        if budget is not None and caller.key_id is not None:
            period = caller.policy.get("budget_period", "month")
            since = period_start(period)[0]
            caps.append((SpendCap(budget, since, api_key_id=caller.key_id), period, "API key"))
        tenant = self.settings.tenants.get(caller.tenant)
        if tenant is not None and tenant.budget_usd is not None:
            since = period_start(tenant.budget_period)[0]
            cap = SpendCap(tenant.budget_usd, since, tenant=caller.tenant)
            caps.append((cap, tenant.budget_period, f"tenant `{caller.tenant}`"))
        return caps

    async def reserve(
        self, record: InteractionRecord, caller: Caller, served: ServedModel | None
    ) -> None:
        """Admit `record`'s run for `caller` and reserve its ceiling. Raises ResourceExhausted
        (with seconds until the period ends) when a budget is spent; nothing is written then."""
        caps = self._caps(caller)
        if not caps:
            return  # nothing to enforce: no entry
        tokens = self.ceiling(caller) or self.settings.reservation_tokens
        reservation = Reservation(
            interaction_id=record.id,
            tenant=record.tenant,
            api_key_id=record.api_key_id,
            created=record.created,
            usd=tokens * price_per_token(served),
            tokens=tokens,
            owner=self.owner,
        )
        refused = await self.store.reserve(reservation, [cap for cap, _, _ in caps])
        if refused is not None:
            _, period, owner = next(c for c in caps if c[0] == refused)
            raise BudgetExhausted(
                f"the spend budget of {refused.usd} USD of this {owner} for this {period} is spent",
                period_start(period)[1],
            )
        self._open.add(record.id)

    async def settle(self, record: InteractionRecord) -> None:
        """`record`'s run ended: replace its reservation with its cost and tokens. Once per
        reservation of this process; a failure leaves it open for the next start's recovery."""
        if record.id not in self._open:
            return
        self._open.discard(record.id)
        tokens = Usage.from_wire(record.usage).total_tokens
        try:
            await self.store.settle(record.id, record.cost_usd, tokens)
        except Exception as exc:
            logger.warning("settling interaction %s failed: %s", record.id, exc)

    async def release(self, interaction_id: str) -> None:
        """Drop the reservation of a create that was refused after admission (never ran)."""
        if interaction_id in self._open:
            self._open.discard(interaction_id)
            await self.store.release(interaction_id)

    def adopt(self, interaction_id: str) -> None:
        """A previous process's run that runs again here: this process settles it."""
        self._open.add(interaction_id)

    async def settle_at(self, interaction_id: str, usd: float, tokens: int) -> None:
        """Settle a run's reservation at `usd` and `tokens`, whichever process made it (a run
        that never ran, cancelled: what it spent is known to be nothing)."""
        self._open.discard(interaction_id)
        await self.store.settle(interaction_id, usd, tokens)

    async def charge(self, interaction_id: str) -> None:
        """Settle a lost run at its reservation: what it cost upstream is not known."""
        self._open.discard(interaction_id)
        await self.store.settle(interaction_id, None, None)

    async def recover(self, lookup: Callable[[str], Awaitable[InteractionRecord | None]]) -> int:
        """Settle the reservations a previous process left open and nothing here will settle:
        an ended run at its recorded cost, any other (unfinished, deleted, `store=false`) at its
        reservation. Returns how many."""
        settled = 0
        for interaction_id in await self.store.unsettled():
            if interaction_id not in self._open:
                settled += await self._recover(interaction_id, await lookup(interaction_id))
        return settled

    async def recover_lost(
        self,
        interaction_ids: list[str],
        lookup: Callable[[str], Awaitable[InteractionRecord | None]],
    ) -> int:
        """Settle the open reservations `interaction_ids` of processes that died (the
        reconciler's pass): an ended run at its recorded cost, a deleted or `store=false` one
        at its reservation. A run still unfinished is left: whoever ends it (a worker, or the
        reconciler taking it over) settles it, or a later pass does once it has ended.
        Returns how many."""
        settled = 0
        for interaction_id in interaction_ids:
            record = await lookup(interaction_id)
            if interaction_id in self._open or (
                record is not None and not lifecycle.is_terminal(record.status)
            ):
                continue
            settled += await self._recover(interaction_id, record)
        return settled

    async def _recover(self, interaction_id: str, record: InteractionRecord | None) -> bool:
        if record is not None and lifecycle.is_terminal(record.status):
            tokens = Usage.from_wire(record.usage).total_tokens
            return await self.store.settle(interaction_id, record.cost_usd, tokens)
        return await self.store.settle(interaction_id, None, None)
