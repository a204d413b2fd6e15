"""The listing of interactions (`InteractionListing`): one query, newest first, by keyset.

Its own small interface, beside the `Store` of interactions and their logs: SQLite
(store/sqlite_listing.py) implements it over the same file; a PostgreSQL store would too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from propylon.store.base import InteractionRecord

__all__ = ["InteractionListing", "ListQuery"]


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Which interactions to list, and from where.

    tenant: whose (None: every tenant's). limit: at most this many rows. after: the keyset
    `(created, id)` of the last row of the previous page; rows strictly before it in the
    order (created descending, then id descending) follow. statuses: any of these (empty: any).
    model, agent: the request's `model` / `agent` exactly as it was sent. labels: pairs
    `(key, value)`, all of which must match (value None: the label is set, to anything).
    created_after, created_before: exclusive bounds, wire timestamps (`YYYY-MM-DDThh:mm:ssZ`).
    id_contains: a part of the id (the console's free-text filter).
    full: read the steps too (otherwise records come without input or steps).
    """

    tenant: str | None
    limit: int
    after: tuple[str, str] | None = None
    statuses: tuple[str, ...] = ()
    model: str | None = None
    agent: str | None = None
    labels: tuple[tuple[str, str | None], ...] = ()
    created_after: str | None = None
    created_before: str | None = None
    id_contains: str | None = None
    full: bool = False


class InteractionListing(Protocol):
    """Reads pages of interactions. Safe to call concurrently."""

    async def list_interactions(self, query: ListQuery) -> list[InteractionRecord]:
        """Up to `query.limit` interactions matching `query`, newest first (created
        descending, then id descending). An index range walk: the cost of a page does not
        grow with how many pages come before it."""
