"""Retention: a tenant's interactions are deleted, with their events, once older than its
retention period (`tenants.<name>.retention_days`, else `retention_days`; none: kept).

The spend ledger is not the interactions': purging them refunds nothing. Its settled entries
are pruned once no budget period reaches them (before the previous UTC month began). Cached
contents are deleted once expired (their upstream copies expire on their own).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from propylon.config import Settings
from propylon.schema.gemini.caches import timestamp
from propylon.service.ledger import period_start
from propylon.store.base import LedgerStore, Store
from propylon.store.caches import CacheStore

__all__ = ["purge_expired", "retention_of"]


def retention_of(tenant: str, settings: Settings) -> float | None:
    """The tenant's retention in days, or None to keep everything."""
    override = settings.tenants.get(tenant)
    if override is not None and override.retention_days is not None:
        return override.retention_days
    return settings.retention_days


async def purge_expired(
    store: Store,
    settings: Settings,
    ledger: LedgerStore | None = None,
    caches: CacheStore | None = None,
) -> int:
    """Delete every tenant's expired interactions now (and, with `ledger`, the ledger entries
    no budget can need; with `caches`, the expired cached contents). Returns how many
    interactions were deleted."""
    removed = 0
    for tenant in await store.tenants():
        days = retention_of(tenant, settings)
        if days is None:
            continue
        before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - days * 86400))
        removed += await store.purge(tenant, before)
    if ledger is not None:
        this_month = datetime.strptime(period_start("month")[0], "%Y-%m-%dT%H:%M:%SZ")
        previous = (this_month - timedelta(days=1)).replace(day=1, tzinfo=UTC)
        await ledger.prune(previous.strftime("%Y-%m-%dT%H:%M:%SZ"))
    if caches is not None:
        await caches.purge_caches(timestamp(datetime.now(UTC)))
    return removed
