"""Console pages of interactions: the filterable table (the listing service, keyset pages),
one row (polled while it runs), one interaction (its chain, timeline, usage), its live tail
(the interaction's event stream), and cancel / delete (the same use cases as the API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.console.render import endpoint, go, render, settings_of
from propylon.api.console.timeline import entries, shown_event
from propylon.api.sse import event_stream_response
from propylon.domain import lifecycle
from propylon.domain.caller import Caller
from propylon.schema.listing import parse_list
from propylon.service.interactions import InteractionService
from propylon.service.listing import ListingService
from propylon.service.reading import Batch
from propylon.store.base import Store
from propylon.store.console import ConsoleReads

__all__ = ["routes"]

PAGE_SIZE = 50
CHAIN_LIMIT = 25
STATUSES = sorted(lifecycle.RUNNING | lifecycle.TERMINAL)


def _service(request: Request) -> InteractionService:
    service: InteractionService = request.app.state.service
    return service


def _reads(request: Request) -> ConsoleReads:
    reads: ConsoleReads = request.app.state.console.reads
    return reads


def _stamp(value: str) -> str:
    """A `datetime-local` value (`2026-12-05T10:00`, taken as UTC) as RFC 3339."""
    value = value.strip()
    if len(value) == 16:
        value += ":00"
    return value if value.endswith("Z") or "+" in value else value + "Z"


def _filters(request: Request, caller: Caller) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The filter form's values (to show them again) and the listing's query parameters."""
    q = request.query_params
    shown: dict[str, Any] = {
        "status": q.getlist("status"),
        "model": q.get("model", "").strip(),
        "tenant": q.get("tenant", "").strip() if caller.admin else "",
        "label": q.get("label", "").strip(),
        "after": q.get("after", "").strip(),
        "before": q.get("before", "").strip(),
        "q": q.get("q", "").strip(),
    }
    items = [("page_size", str(PAGE_SIZE))]
    items += [("status", s) for s in shown["status"] if s]
    items += [(name, shown[name]) for name in ("model", "tenant") if shown[name]]
    items += [("label", part.strip()) for part in shown["label"].split(",") if part.strip()]
    items += [
        (field, _stamp(shown[name]))
        for field, name in (("created_after", "after"), ("created_before", "before"))
        if shown[name]
    ]
    if q.get("page_token"):
        items.append(("page_token", q["page_token"]))
    return shown, items


@endpoint
async def table(request: Request, caller: Caller) -> Response:
    """The interactions page; an htmx request for `#results` gets the table alone."""
    listing: ListingService = request.app.state.listing
    shown, items = _filters(request, caller)
    page = await listing.page(
        parse_list(items), caller, id_contains=shown["q"], with_tenant=caller.admin
    )
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "page_token"]
    context = {
        "filters": shown,
        "statuses": STATUSES,
        "interactions": page["interactions"],
        "next_token": page.get("next_page_token"),
        "query": query,
        "page_size": PAGE_SIZE,
    }
    fragment = request.headers.get("hx-target") == "results"
    template = "interactions_table.html" if fragment else "interactions.html"
    return render(request, template, context, caller=caller)


@endpoint
async def row(request: Request, caller: Caller) -> Response:
    """One table row, as it is now (polled by the table while the interaction runs)."""
    interaction_id = request.path_params["interaction_id"]
    resource = await _service(request).get(interaction_id, caller)  # NotFound: not the caller's
    record = await request.app.state.store.get(interaction_id)
    resource["tenant"] = record.tenant if record else ""
    return render(request, "interaction_row.html", {"i": resource}, caller=caller)


async def _detail_context(request: Request, caller: Caller) -> dict[str, Any]:
    interaction_id = request.path_params["interaction_id"]
    resource = await _service(request).get(interaction_id, caller)  # NotFound: not the caller's
    store: Store = request.app.state.store
    record = await store.get(interaction_id)
    input_count = len(record.input_steps) if record else 0
    resource["tenant"] = record.tenant if record else ""
    reads = _reads(request)
    back = await reads.chain_back(interaction_id, CHAIN_LIMIT)
    forward = await reads.chain_forward(interaction_id, CHAIN_LIMIT)
    show = settings_of(request).console_content
    return {
        "i": resource,
        "record_background": bool(record and record.background),
        "running": not lifecycle.is_terminal(resource["status"]),
        "cost_usd": record.cost_usd if record else 0.0,
        "entries": entries(resource, input_count, show),
        "show_content": show,
        "back": [link for link in reversed(back) if caller.sees(link.tenant)],
        "forward": [link for link in forward if caller.sees(link.tenant)],
    }


@endpoint
async def detail(request: Request, caller: Caller) -> Response:
    """One interaction: chain, timeline, usage and cost, and its live tail while it runs."""
    context = await _detail_context(request, caller)
    return render(request, "interaction.html", context, caller=caller)


@endpoint
async def timeline(request: Request, caller: Caller) -> Response:
    """The timeline, status and usage of one interaction (swapped in when a live tail ends)."""
    context = await _detail_context(request, caller)
    return render(request, "interaction_body.html", context, caller=caller)


async def _shown(batches: AsyncIterator[Batch], show: bool) -> AsyncIterator[Batch]:
    async for batch in batches:
        yield None if batch is None else [shown_event(event, show) for event in batch]


@endpoint
async def events(request: Request, caller: Caller) -> Response:
    """The interaction's event stream (server-sent events). A reconnecting EventSource sends
    `Last-Event-ID` and gets the events after it (`last_event_id` in the query does too)."""
    interaction_id = request.path_params["interaction_id"]
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    stream = await _service(request).stream(interaction_id, last or None, caller)
    return event_stream_response(
        interaction_id,
        _shown(stream, settings_of(request).console_content),
        request.app.state.metrics.active_streams,
    )


@endpoint
async def cancel(request: Request, caller: Caller) -> Response:
    """Cancel a background run (the API's cancel); back to its page."""
    interaction_id = request.path_params["interaction_id"]
    await _service(request).cancel(interaction_id, caller)
    return go(request, f"/interactions/{interaction_id}")


@endpoint
async def delete(request: Request, caller: Caller) -> Response:
    """Delete the interaction (the API's delete); back to the table."""
    await _service(request).delete(request.path_params["interaction_id"], caller)
    return go(request, "/interactions")


routes = [
    Route("/interactions", table, methods=["GET"]),
    Route("/interactions/{interaction_id}", detail, methods=["GET"]),
    Route("/interactions/{interaction_id}/row", row, methods=["GET"]),
    Route("/interactions/{interaction_id}/timeline", timeline, methods=["GET"]),
    Route("/interactions/{interaction_id}/events", events, methods=["GET"]),
    Route("/interactions/{interaction_id}/cancel", cancel, methods=["POST"]),
    Route("/interactions/{interaction_id}/delete", delete, methods=["POST"]),
]
