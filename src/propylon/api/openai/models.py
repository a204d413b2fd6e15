"""`GET /v1/models` and `GET /v1/models/{model}`: the served models and their aliases in
OpenAI's list shape, each `{id, object: "model", created: 0, owned_by: "propylon"}`. A key
whose policy lists `models` sees only those."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.domain.caller import Caller
from propylon.errors import NotFound, PermissionDenied
from propylon.gateway.registry import ModelRegistry
from propylon.service.quotas import Quotas

__all__ = ["routes"]


def _model(name: str) -> dict[str, Any]:
    # `created` is when the model was made; Propylon's models have no such date: 0.
    return {"id": name, "object": "model", "created": 0, "owned_by": "propylon"}


def _allowed(caller: Caller, name: str) -> bool:
    try:
        Quotas.allows(caller, name)
    except PermissionDenied:
        return False
    return True


async def list_models(request: Request) -> Response:
    """Every served model name and alias the caller's key may use."""
    models: ModelRegistry = request.app.state.stateless.models
    caller = caller_of(request)
    names = [name for model in models.models for name in (model.name, *model.aliases)]
    data = [_model(name) for name in names if _allowed(caller, name)]
    return JSONResponse({"object": "list", "data": data})


async def get_model(request: Request) -> Response:
    """One served model or alias. Raises NotFound (param `model`) for any other name."""
    models: ModelRegistry = request.app.state.stateless.models
    name = request.path_params["model"]
    models.resolve(name)
    if not _allowed(caller_of(request), name):
        raise NotFound(f"model `{name}` is not served here", param="model")
    return JSONResponse(_model(name))


routes = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model}", get_model, methods=["GET"]),
]
