"""Retention: a tenant's interactions are deleted, with their events, once older than its
retention period (`tenants.<name>.retention_days`, else `retention_days`; none: kept)."""

from __future__ import annotations

import time

from propylon.config import Settings
from propylon.store.base import Store

__all__ = ["purge_expired", "retention_of"]


def retention_of(tenant: str, settings: Settings) -> float | None:
    """The tenant's retention in days, or None to keep everything."""
    override = settings.tenants.get(tenant)
    if override is not None and override.retention_days is not None:
        return override.retention_days
    return settings.retention_days


async def purge_expired(store: Store, settings: Settings) -> int:
    """Delete every tenant's expired interactions now. Returns how many were deleted."""
    removed = 0
    for tenant in await store.tenants():
        days = retention_of(tenant, settings)
        if days is None:
            continue
        before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - days * 86400))
        removed += await store.purge(tenant, before)
    return removed
