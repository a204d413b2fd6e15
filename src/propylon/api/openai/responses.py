"""HTTP endpoints of OpenAI's Responses API (`/v1/responses`): thin translation to the
ResponseService, rendering its interactions as Responses (responses_view, responses_stream).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.api.openai import responses_ws
from propylon.api.openai.responses_stream import ResponseEvents, response_stream
from propylon.api.openai.responses_view import input_items, response_object
from propylon.api.query import flag, integer
from propylon.domain.caller import Caller
from propylon.errors import InvalidArgument
from propylon.schema.openai.response_items import compaction_token
from propylon.schema.openai.responses import (
    include_problem,
    parse_compact,
    parse_create_response,
)
from propylon.service.responses import ResponseService, Stream, View

__all__ = ["routes"]

_MAX_LIMIT = 100


def _service(request: Request) -> tuple[ResponseService, Caller]:
    service: ResponseService = request.app.state.responses
    return service, caller_of(request)


def _shown(view: View) -> JSONResponse:
    return JSONResponse(
        response_object(view.interaction, background=view.background, store=view.store)
    )


def _streamed(request: Request, stream: Stream, after: int | None = None) -> Response:
    translator = ResponseEvents(stream.base, background=stream.background, store=stream.store)
    return response_stream(
        stream.events, translator, after, request.app.state.metrics.active_streams
    )


def _check_include(request: Request) -> None:
    """A read's `include` (harmless, as on create: see docs/openai-responses.md)."""
    values = request.query_params.getlist("include") + request.query_params.getlist("include[]")
    problem = include_problem(values)
    if problem is not None:
        raise InvalidArgument(f"include: {problem}", param="include")


async def create(request: Request) -> Response:
    service, caller = _service(request)
    body: Any = await json_body(request)
    key = request.headers.get("idempotency-key") or None
    result = await service.create(parse_create_response(body), caller, key, body)
    if isinstance(result, Stream):
        return _streamed(request, result)
    return _shown(result)


async def get(request: Request) -> Response:
    service, caller = _service(request)
    response_id = request.path_params["response_id"]
    after = integer(request, "starting_after", None, 0, 2**62)
    _check_include(request)  # `include_obfuscation` is harmless: events are never padded
    if flag(request, "stream"):
        return _streamed(request, await service.stream(response_id, caller), after)
    if after is not None:
        raise InvalidArgument(
            "`starting_after` can only be used with `stream=true`", param="starting_after"
        )
    return _shown(await service.get(response_id, caller))


async def cancel(request: Request) -> Response:
    service, caller = _service(request)
    return _shown(await service.cancel(request.path_params["response_id"], caller))


async def delete(request: Request) -> Response:
    service, caller = _service(request)
    response_id = request.path_params["response_id"]
    await service.delete(response_id, caller)
    return JSONResponse({"id": response_id, "object": "response", "deleted": True})


async def list_input_items(request: Request) -> Response:
    """`{object: "list", data, first_id, last_id, has_more}`: newest first unless
    `order=asc`; `after`: an item id of this list; `limit`: 1 to 100 (20)."""
    service, caller = _service(request)
    response_id = request.path_params["response_id"]
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidArgument("query parameter `order` must be `asc` or `desc`", param="order")
    limit = integer(request, "limit", 20, 1, _MAX_LIMIT) or 20
    _check_include(request)
    items = input_items(response_id, await service.input_steps(response_id, caller))
    if order == "desc":
        items.reverse()
    after = request.query_params.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise InvalidArgument(
                f"`after`: `{after}` is not an input item of `{response_id}`", param="after"
            )
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return JSONResponse(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )


async def compact(request: Request) -> Response:
    """A `response.compaction` whose one `compaction` item carries the conversation (see
    schema.openai.responses.compaction_token); no model runs, so its usage is zero."""
    service, caller = _service(request)
    steps = await service.compact(parse_compact(await json_body(request)), caller)
    compaction_id = "cmp_" + secrets.token_urlsafe(18)
    item = {
        "type": "compaction",
        "id": f"{compaction_id}_0",
        "encrypted_content": compaction_token(steps),
    }
    usage = {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }
    return JSONResponse(
        {
            "id": compaction_id,
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": [item],
            "usage": usage,
        }
    )


routes: list[BaseRoute] = [
    *responses_ws.routes,  # the same path over a WebSocket
    Route("/v1/responses/compact", compact, methods=["POST"]),
    Route("/v1/responses", create, methods=["POST"]),
    Route("/v1/responses/{response_id}", get, methods=["GET"]),
    Route("/v1/responses/{response_id}", delete, methods=["DELETE"]),
    Route("/v1/responses/{response_id}/cancel", cancel, methods=["POST"]),
    Route("/v1/responses/{response_id}/input_items", list_input_items, methods=["GET"]),
]
