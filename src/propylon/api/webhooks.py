"""HTTP endpoints of the webhooks resource (reference §7.2)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument, NotFound
from propylon.service.webhooks import WebhookService

__all__ = ["routes"]


async def _service(request: Request) -> tuple[WebhookService, Caller]:
    service: WebhookService = request.app.state.webhooks
    return service, caller_of(request)


async def _body(request: Request) -> dict[str, Any]:
    body = await json_body(request, empty={})
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    return body


async def collection(request: Request) -> Response:
    service, caller = await _service(request)
    if request.method == "POST":
        return JSONResponse(await service.create(await _body(request), caller))
    try:
        size = int(request.query_params.get("page_size") or 50)
    except ValueError:
        raise InvalidArgument("`page_size` must be a number") from None
    return JSONResponse(await service.page(size, request.query_params.get("page_token"), caller))


async def item(request: Request) -> Response:
    service, caller = await _service(request)
    name = request.path_params["name"]
    if request.method == "GET":
        return JSONResponse(await service.get(name, caller))
    if request.method == "PATCH":
        body = await _body(request)
        return JSONResponse(
            await service.update(name, body, request.query_params.get("update_mask"), caller)
        )
    if request.method == "DELETE":
        await service.delete(name, caller)
        return JSONResponse({})
    webhook_id, _, verb = name.partition(":")  # POST /webhooks/{id}:ping, :rotateSigningSecret
    if verb == "ping":
        return JSONResponse(await service.ping(webhook_id, caller))
    if verb == "rotateSigningSecret":
        body = await _body(request)
        return JSONResponse(
            await service.rotate(webhook_id, body.get("revocation_behavior"), caller)
        )
    raise NotFound(f"no method `{verb}` on webhooks")


async def signing_secret(request: Request) -> Response:
    """`GET /{version}/webhooks:signingSecret[?tenant=]`: the secret that signs the caller's
    tenant's `webhook_config.uris` deliveries (Propylon's own; an admin may name a tenant)."""
    service, caller = await _service(request)
    return JSONResponse(service.signing_secret(caller, request.query_params.get("tenant")))


routes = [
    Route("/{version}/webhooks:signingSecret", signing_secret, methods=["GET"]),
    Route("/{version}/webhooks", collection, methods=["GET", "POST"]),
    Route("/{version}/webhooks/{name}", item, methods=["GET", "PATCH", "DELETE", "POST"]),
]
