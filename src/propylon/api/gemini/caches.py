"""`cachedContents` (service/caches.py): `POST` and `GET /{v}/cachedContents` (paged:
`pageSize`, `pageToken`), `GET`, `PATCH` (`ttl` or `expireTime`; query `updateMask`) and
`DELETE /{v}/cachedContents/{id}`, answering Google's `CachedContent` resource."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.errors import InvalidArgument
from propylon.schema.gemini.caches import parse_create, parse_update
from propylon.service.caches import CacheService

__all__ = ["routes"]


def _service(request: Request) -> CacheService:
    service: CacheService = request.app.state.caches
    return service


async def create(request: Request) -> Response:
    body = parse_create(await json_body(request))
    return JSONResponse(await _service(request).create(body, caller_of(request)))


async def list_caches(request: Request) -> Response:
    raw_size = request.query_params.get("pageSize", "0")
    if not raw_size.isdigit():
        raise InvalidArgument("`pageSize` must be a non-negative integer")
    token = request.query_params.get("pageToken") or None
    return JSONResponse(await _service(request).page(int(raw_size), token, caller_of(request)))


async def get(request: Request) -> Response:
    cache_id = request.path_params["cache_id"]
    return JSONResponse(await _service(request).get(cache_id, caller_of(request)))


async def update(request: Request) -> Response:
    body = parse_update(await json_body(request), request.query_params.get("updateMask"))
    cache_id = request.path_params["cache_id"]
    return JSONResponse(await _service(request).update(cache_id, body, caller_of(request)))


async def delete(request: Request) -> Response:
    await _service(request).delete(request.path_params["cache_id"], caller_of(request))
    return JSONResponse({})


def _routes(base: str) -> list[Route]:
    return [
        Route(f"{base}/cachedContents", create, methods=["POST"]),
        Route(f"{base}/cachedContents", list_caches, methods=["GET"]),
        Route(f"{base}/cachedContents/{{cache_id}}", get, methods=["GET"]),
        Route(f"{base}/cachedContents/{{cache_id}}", update, methods=["PATCH"]),
        Route(f"{base}/cachedContents/{{cache_id}}", delete, methods=["DELETE"]),
    ]


routes = _routes("/{version}")
