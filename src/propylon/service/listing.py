"""Listing interactions (Propylon's extension; Google's API has no list): pages of the
caller's tenant's interactions, newest first, by keyset.

A page token is opaque to clients: base64url of `{"c": created, "i": id, "f": filters}`, the
keyset of the page's last row and a digest of the filters it was made for; a token used with
other filters (or another tenant's scope) is refused, never silently reinterpreted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace
from typing import Any

import orjson

from propylon.domain import lifecycle
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument, PermissionDenied
from propylon.schema.listing import ListInteractions, wire_time
from propylon.service import reading
from propylon.service.interactions import to_resource
from propylon.store.base import EventSource
from propylon.store.listing import InteractionListing, ListQuery

__all__ = ["ListingService"]


class ListingService:
    """Pages of interactions over an InteractionListing; `events` is the store of their logs
    (a running interaction's steps, in `view=full`, are its log's projection, as in `get`)."""

    def __init__(self, store: InteractionListing, events: EventSource) -> None:
        self.store = store
        self.events = events

    async def page(
        self,
        params: ListInteractions,
        caller: Caller,
        id_contains: str | None = None,
        with_tenant: bool = False,
    ) -> dict[str, Any]:
        """`{"interactions": [...], "next_page_token"?: "..."}` for `caller`: its tenant's
        (an admin's: every tenant's, or `tenant`'s). For the console: `id_contains` keeps
        ids with this part; `with_tenant` adds each one's `tenant` (not a wire field).
        Each interaction as `get` shows it, without `steps` unless `view=full`. Raises
        PermissionDenied (a tenant key naming another tenant) or InvalidArgument (a page
        token that is not one of these filters')."""
        query = ListQuery(
            tenant=_scope(params.tenant, caller),
            limit=params.page_size + 1,  # one more: is there a next page?
            statuses=params.status,
            model=params.model,
            agent=params.agent,
            labels=params.label,
            created_after=wire_time(params.created_after) if params.created_after else None,
            created_before=wire_time(params.created_before) if params.created_before else None,
            id_contains=id_contains or None,
            full=params.view == "full",
        )
        digest = _digest(query)
        if params.page_token is not None:
            query = replace(query, after=_decode(params.page_token, digest))
        records = await self.store.list_interactions(query)
        shown = records[: params.page_size]
        interactions = []
        for record in shown:
            if not query.full:
                resource = to_resource(record)
                del resource["steps"]
            elif lifecycle.is_terminal(record.status):
                resource = to_resource(record)
            else:  # the row holds its steps once the run ends: until then, the log has them
                resource = to_resource(record, await reading.fold(self.events, record.id))
            if with_tenant:
                resource["tenant"] = record.tenant
            interactions.append(resource)
        answer: dict[str, Any] = {"interactions": interactions}
        if len(records) > params.page_size:
            last = shown[-1]
            answer["next_page_token"] = _encode(last.created, last.id, digest)
        return answer


def _scope(tenant: str | None, caller: Caller) -> str | None:
    """The tenant to list: an admin's choice (None: all), else the caller's own."""
    if caller.admin:
        return tenant
    if tenant is not None and tenant != caller.tenant:
        raise PermissionDenied(
            "query parameter `tenant`: only admin keys may list another tenant's interactions"
        )
    return caller.tenant


def _digest(query: ListQuery) -> str:
    """What a page token is bound to: the scope and the filters (not the page size or view)."""
    filters = [
        query.tenant,
        sorted(query.statuses),
        query.model,
        query.agent,
        sorted(query.labels, key=lambda pair: (pair[0], pair[1] or "")),
        query.created_after,
        query.created_before,
        query.id_contains,
    ]
    return hashlib.sha256(orjson.dumps(filters)).hexdigest()[:16]


def _encode(created: str, interaction_id: str, digest: str) -> str:
    raw = orjson.dumps({"c": created, "i": interaction_id, "f": digest})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(token: str, digest: str) -> tuple[str, str]:
    """The keyset in `token`. Raises InvalidArgument for a token that is not one, or not
    one of a listing with these filters."""
    try:
        value = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        value = None
    if not (
        isinstance(value, dict)
        and isinstance(value.get("c"), str)
        and isinstance(value.get("i"), str)
        and isinstance(value.get("f"), str)
    ):
        raise InvalidArgument("query parameter `page_token` is not a page token of this listing")
    if value["f"] != digest:
        raise InvalidArgument(
            "query parameter `page_token` belongs to a listing with other filters: "
            "send the same filters as for the page it came with"
        )
    return value["c"], value["i"]
