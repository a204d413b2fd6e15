"""HTTP endpoints of the Interactions API (reference §2): thin translation to the service."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import ERROR_BODIES, JSONResponse
from propylon.api.interactions_errors import interactions_error_body
from propylon.api.limits import json_body
from propylon.api.query import flag
from propylon.api.revision import view_of
from propylon.api.sse import event_stream_response
from propylon.api.surfaces import Surface
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument
from propylon.schema.interactions import (
    idempotency_key_of,
    parse_create,
    without_idempotency_key,
)
from propylon.service.interactions import InteractionService

__all__ = ["routes"]

# This surface's error body (also for /agents and /webhooks, and refusals before routing).
ERROR_BODIES[Surface.INTERACTIONS] = interactions_error_body


async def _service(request: Request) -> tuple[InteractionService, Caller]:
    service: InteractionService = request.app.state.service
    return service, caller_of(request)


async def create(request: Request) -> Response:
    service, caller = await _service(request)
    view = view_of(request)
    body: Any = view.request(await json_body(request))
    parsed = parse_create(body)  # a JSON object from here on
    key = idempotency_key_of(request.headers.get("idempotency-key") or None, parsed)
    created = await service.create(parsed, caller, key, without_idempotency_key(body))
    if created.events is not None:
        return event_stream_response(
            created.interaction_id,
            view.events(created.interaction_id, created.events),
            request.app.state.metrics.active_streams,
        )
    return JSONResponse(view.resource(created.resource or {}))


async def get(request: Request) -> Response:
    service, caller = await _service(request)
    view = view_of(request)
    interaction_id = request.path_params["interaction_id"]
    last_event_id = request.query_params.get("last_event_id")
    if flag(request, "stream"):
        events = await view.stream(service, interaction_id, last_event_id, caller)
        return event_stream_response(
            interaction_id, events, request.app.state.metrics.active_streams
        )
    if last_event_id is not None:
        raise InvalidArgument("`last_event_id` can only be used with `stream=true`")
    resource = await service.get(
        interaction_id,
        caller,
        flag(request, "include_input"),
        include_input_steps=not view.legacy,  # legacy `outputs` are the model's only
    )
    return JSONResponse(view.resource(resource))


async def cancel(request: Request) -> Response:
    service, caller = await _service(request)
    view = view_of(request)
    interaction_id = request.path_params["interaction_id"]
    resource = await service.cancel(interaction_id, caller, include_input_steps=not view.legacy)
    return JSONResponse(view.resource(resource))


async def delete(request: Request) -> Response:
    service, caller = await _service(request)
    view_of(request)  # a bad `Api-Revision` is refused here too
    await service.delete(request.path_params["interaction_id"], caller)
    return JSONResponse({})


def _routes(base: str) -> list[Route]:
    return [
        Route(f"{base}/interactions", create, methods=["POST"]),
        Route(f"{base}/interactions/{{interaction_id}}", get, methods=["GET"]),
        Route(f"{base}/interactions/{{interaction_id}}", delete, methods=["DELETE"]),
        Route(f"{base}/interactions/{{interaction_id}}/cancel", cancel, methods=["POST"]),
    ]


# The version segment is opaque (`v1` is the Python SDK's default, `v1beta` the docs',
# `v1beta1` Vertex's, reference §1.1); Vertex adds a project and location.
routes = _routes("/{version}") + _routes("/{version}/projects/{project}/locations/{location}")
