"""`GET /{v}/models` (paged: `pageSize`, `pageToken`) and `GET /{v}/models/{m}`: the served
models and aliases as Google's `Model` resources.

`/v1/models` is also the OpenAI surface's path: a caller without `x-goog-api-key` (the OpenAI
SDK sends only `Authorization: Bearer`) is the OpenAI surface's (api/surfaces.py), and is
answered by the handler the OpenAI surface installs as `app.state.openai_models` (a
Starlette endpoint taking the request); until one is installed, such a caller gets Google's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from propylon.api.errors import JSONResponse
from propylon.api.surfaces import Surface, surface_of
from propylon.errors import InvalidArgument
from propylon.gateway.registry import ModelRegistry
from propylon.schema.gemini.models import decode_page_token, encode_page_token, model_resource

__all__ = ["get_model", "list_models"]

_DEFAULT_PAGE = 50
_MAX_PAGE = 1000

Endpoint = Callable[[Request], Awaitable[Response]]


def _openai(request: Request) -> Endpoint | None:
    """The OpenAI surface's handler of this request, when it is that surface's."""
    handler: Endpoint | None = getattr(request.app.state, "openai_models", None)
    if handler is not None and surface_of(request.scope) is Surface.OPENAI:
        return handler
    return None


def _names(models: ModelRegistry) -> list[str]:
    return [name for model in models.models for name in (model.name, *model.aliases)]


async def list_models(request: Request) -> Response:
    """`{"models": [Model...], "nextPageToken"?}`, in configuration order."""
    openai = _openai(request)
    if openai is not None:
        return await openai(request)
    raw_size = request.query_params.get("pageSize", str(_DEFAULT_PAGE))
    if not raw_size.isdigit():
        raise InvalidArgument("`pageSize` must be a non-negative integer")
    size = min(int(raw_size) or _DEFAULT_PAGE, _MAX_PAGE)
    token = request.query_params.get("pageToken")
    start = decode_page_token(token) if token else 0
    models: ModelRegistry = request.app.state.service.models
    names = _names(models)
    page = names[start : start + size]
    body: dict[str, object] = {
        "models": [model_resource(name, models.resolve(name)) for name in page]
    }
    if start + size < len(names):
        body["nextPageToken"] = encode_page_token(start + size)
    return JSONResponse(body)


async def get_model(request: Request) -> Response:
    """One `Model`. Raises NotFound for a name that is not served."""
    openai = _openai(request)
    if openai is not None:
        return await openai(request)
    name = request.path_params["model"]
    models: ModelRegistry = request.app.state.service.models
    return JSONResponse(model_resource(name.removeprefix("models/"), models.resolve(name)))
