"""Cached contents (`CacheStore`): a tenant's `cachedContents` resources, by id, until they
expire.

Its own small interface beside the `Store` of interactions, over the same database: SQLite
(store/sqlite_caches.py) and SQLAlchemy (store/sql/caches.py) implement it over the
`cached_contents` table (migration 0015). Timestamps are wire strings of one fixed width
(`YYYY-MM-DDThh:mm:ss.ffffffZ`, UTC), so they compare as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["CacheRecord", "CacheStore"]


@dataclass(frozen=True, slots=True)
class CacheRecord:
    """One cached content of `tenant`.

    model: the served model (or alias) it was made for, without `models/`.
    content: what it holds, in the generateContent wire spelling as sent: `contents`,
    `systemInstruction`, `tools`, `toolConfig` (each present only when given).
    tokens: its `usageMetadata.totalTokenCount` (None: not known).
    created, updated, expires: wire timestamps (see the module).
    upstream: per `gemini` target label, the name of the copy made on that upstream
    (`cachedContents/...`); a target with none gets the content inline.
    """

    tenant: str
    id: str
    model: str
    display_name: str | None
    content: dict[str, Any]
    tokens: int | None
    created: str
    updated: str
    expires: str
    upstream: dict[str, str] = field(default_factory=dict)


class CacheStore(Protocol):
    """Persistence of cached contents. Ids are unique per tenant. Safe to call concurrently.
    Reads return expired rows too (until `purge_caches` removes them): expiry is the
    service's to judge, against its clock."""

    async def create_cache(self, cache: CacheRecord) -> bool:
        """Insert `cache`; False, writing nothing, when its tenant has one of that id."""

    async def get_cache(self, tenant: str, cache_id: str) -> CacheRecord | None:
        """The tenant's cached content, or None."""

    async def list_caches(
        self, tenant: str, after: str | None, limit: int, now: str
    ) -> list[CacheRecord]:
        """Up to `limit` of the tenant's cached contents that expire after `now`, ordered
        by id, with ids after `after`."""

    async def update_cache(self, cache: CacheRecord) -> bool:
        """Store `cache`'s `expires`, `updated` and `upstream` over the row of its tenant and
        id. False when there is none."""

    async def delete_cache(self, tenant: str, cache_id: str) -> bool:
        """Delete the tenant's cached content. False when there was none."""

    async def purge_caches(self, now: str) -> int:
        """Delete every tenant's cached contents that expired at or before `now` (their
        upstream copies expire on their own, at the same time); returns how many."""
