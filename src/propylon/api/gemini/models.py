"""`GET /{v}/models` (paged: `pageSize`, `pageToken`) and `GET /{v}/models/{m}`: the served
models and aliases the caller's key may use, as Google's `Model` resources (routed by
api/models.py, which sends the OpenAI surface's callers of `/v1/models` to that surface's
handlers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.errors import InvalidArgument, NotFound
from propylon.gateway.registry import ModelRegistry
from propylon.schema.gemini.models import decode_page_token, encode_page_token, model_resource
from propylon.service.quotas import Quotas

__all__ = ["get_model", "list_models"]

_DEFAULT_PAGE = 50
_MAX_PAGE = 1000


def _names(models: ModelRegistry, request: Request) -> list[str]:
    caller = caller_of(request)
    names = [name for model in models.models for name in (model.name, *model.aliases)]
    return [name for name in names if Quotas.may_use(caller, name)]


async def list_models(request: Request) -> Response:
    """`{"models": [Model...], "nextPageToken"?}`, in configuration order."""
    raw_size = request.query_params.get("pageSize", str(_DEFAULT_PAGE))
    if not raw_size.isdigit():
        raise InvalidArgument("`pageSize` must be a non-negative integer")
    size = min(int(raw_size) or _DEFAULT_PAGE, _MAX_PAGE)
    token = request.query_params.get("pageToken")
    start = decode_page_token(token) if token else 0
    models: ModelRegistry = request.app.state.service.models
    names = _names(models, request)
    page = names[start : start + size]
    body: dict[str, object] = {
        "models": [model_resource(name, models.resolve(name)) for name in page]
    }
    if start + size < len(names):
        body["nextPageToken"] = encode_page_token(start + size)
    return JSONResponse(body)


async def get_model(request: Request) -> Response:
    """One `Model`. Raises NotFound for a name that is not served (or not to this key)."""
    name = request.path_params["model"].removeprefix("models/")
    models: ModelRegistry = request.app.state.service.models
    served = models.resolve(name)
    if not Quotas.may_use(caller_of(request), name):
        raise NotFound(f"model `{name}` is not served here")
    return JSONResponse(model_resource(name, served))
