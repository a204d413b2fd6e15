"""The Gemini API's batches: `models/{m}:batchGenerateContent` creates one; `GET /{v}/batches`
lists the caller's, `GET`, `DELETE /{v}/batches/{id}` and `POST /{v}/batches/{id}:cancel`
act on one. Thin translation between HTTP and service/batches.py; a batch is answered as
Google's long-running operation."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.errors import NotFound
from propylon.service.batches import BatchService

__all__ = ["batch_generate_content", "routes"]


def _service(request: Request) -> BatchService:
    service: BatchService = request.app.state.batches
    return service


async def batch_generate_content(request: Request, model: str) -> Response:
    """`POST .../models/{model}:batchGenerateContent`: the new batch, `BATCH_STATE_PENDING`."""
    body = await json_body(request)
    # a batch from a file writes its results as a file: its `uri` is under this URL
    path = request.url.path
    base = f"{request.url.scheme}://{request.url.netloc}{path[: path.index('/models/')]}"
    return JSONResponse(await _service(request).create(model, body, caller_of(request), base))


async def list_batches(request: Request) -> Response:
    """`GET /{v}/batches` (`pageSize`, `pageToken`): `{"operations", "nextPageToken"?}`."""
    params = request.query_params
    return JSONResponse(
        await _service(request).page(
            caller_of(request), params.get("pageSize"), params.get("pageToken")
        )
    )


async def batch(request: Request) -> Response:
    """`GET`, `DELETE /{v}/batches/{id}` and `POST /{v}/batches/{id}:cancel`."""
    service, caller = _service(request), caller_of(request)
    name = request.path_params["name"]
    if request.method == "GET":
        return JSONResponse(await service.get(name, caller))
    if request.method == "DELETE":
        return JSONResponse(await service.delete(name, caller))
    batch_id, _, verb = name.rpartition(":")
    if batch_id and verb == "cancel":
        return JSONResponse(await service.cancel(batch_id, caller))
    raise NotFound(f"no method `{verb or name}` of batches; this server serves `:cancel`")


routes = [
    Route("/{version}/batches", list_batches, methods=["GET"]),
    Route("/{version}/batches/{name}", batch, methods=["GET", "DELETE", "POST"]),
]
