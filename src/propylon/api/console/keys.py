"""The console's keys and webhooks page: list; create a key (its secret shown once, admin
keys only), revoke one; create a webhook (its signing secret shown once), delete one; each
webhook with its last deliveries."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.console.render import endpoint, go, render
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument
from propylon.service.keys import KeyService
from propylon.service.webhooks import EVENTS, WebhookService
from propylon.store.console import ConsoleReads

__all__ = ["routes"]

LAST_DELIVERIES = 5
_INTEGERS = {"rpm": "rpm", "tpm": "tpm", "max_tokens": "max_tokens_per_interaction"}


async def _context(request: Request, caller: Caller, **extra: Any) -> dict[str, Any]:
    keys: KeyService = request.app.state.console.keys
    hooks: WebhookService = request.app.state.webhooks
    reads: ConsoleReads = request.app.state.console.reads
    webhooks = (await hooks.page(100, None, caller))["webhooks"]
    deliveries = {w["id"]: await reads.deliveries(w["id"], LAST_DELIVERIES) for w in webhooks}
    return {
        "keys": await keys.list(caller),
        "webhooks": webhooks,
        "deliveries": deliveries,
        "events": sorted(EVENTS),
        **extra,
    }


def _policy(form: FormData) -> dict[str, Any]:
    """A key's policy from the create form. Raises InvalidArgument naming the field."""
    policy: dict[str, Any] = {}
    models = [m.strip() for m in str(form.get("models") or "").split(",") if m.strip()]
    if models:
        policy["models"] = models
    for field, name in _INTEGERS.items():
        value = str(form.get(field) or "").strip()
        if value:
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument(f"`{field}` must be a whole number above 0")
            policy[name] = int(value)
    budget = str(form.get("budget_usd") or "").strip()
    if budget:
        try:
            policy["budget_usd"] = float(budget)
        except ValueError:
            raise InvalidArgument("`budget_usd` must be a number of dollars") from None
        if policy["budget_usd"] < 0:
            raise InvalidArgument("`budget_usd` must not be negative")
        period = str(form.get("budget_period") or "month")
        if period not in ("day", "month"):
            raise InvalidArgument("`budget_period` must be `day` or `month`")
        policy["budget_period"] = period
    return policy


@endpoint
async def page(request: Request, caller: Caller) -> Response:
    """Keys and webhooks."""
    return render(request, "keys.html", await _context(request, caller), caller=caller)


@endpoint
async def create_key(request: Request, caller: Caller) -> Response:
    """Make a key; the page shows its secret this once."""
    form = await request.form()
    tenant = str(form.get("tenant") or "").strip()
    if not tenant:
        raise InvalidArgument("`tenant` is required: the tenant the key acts in")
    keys: KeyService = request.app.state.console.keys
    key, secret = await keys.create(
        caller,
        tenant,
        str(form.get("name") or "").strip(),
        form.get("admin") == "on",
        _policy(form),
    )
    context = await _context(request, caller, new_key=key, new_secret=secret)
    return render(request, "keys.html", context, caller=caller)


@endpoint
async def revoke_key(request: Request, caller: Caller) -> Response:
    """Revoke a key (admin keys only); back to the page."""
    keys: KeyService = request.app.state.console.keys
    await keys.revoke(caller, request.path_params["key_id"])
    return go(request, "/keys")


@endpoint
async def create_webhook(request: Request, caller: Caller) -> Response:
    """Register a webhook; the page shows its signing secret this once."""
    form = await request.form()
    body: dict[str, Any] = {
        "uri": str(form.get("uri") or "").strip(),
        "subscribed_events": [str(e) for e in form.getlist("subscribed_events")],
    }
    if form.get("name"):
        body["name"] = str(form["name"]).strip()
    hooks: WebhookService = request.app.state.webhooks
    created = await hooks.create(body, caller)
    context = await _context(
        request, caller, new_webhook=created, new_secret=created["new_signing_secret"]
    )
    return render(request, "keys.html", context, caller=caller)


@endpoint
async def delete_webhook(request: Request, caller: Caller) -> Response:
    """Delete a webhook of the caller's tenant; back to the page."""
    hooks: WebhookService = request.app.state.webhooks
    await hooks.delete(request.path_params["webhook_id"], caller)
    return go(request, "/keys")


routes = [
    Route("/keys", page, methods=["GET"]),
    Route("/keys", create_key, methods=["POST"]),
    Route("/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
    Route("/webhooks", create_webhook, methods=["POST"]),
    Route("/webhooks/{webhook_id}/delete", delete_webhook, methods=["POST"]),
]
