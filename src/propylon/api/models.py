"""`GET /{version}/models` and `GET /{version}/models/{model}`, which two surfaces share at
`/v1/models`: a caller of the OpenAI surface (api/surfaces.py: no `x-goog-api-key`, as the
OpenAI SDK sends only `Authorization: Bearer`) gets OpenAI's list; every other caller, and
every other version segment, Google's `Model` resources."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.gemini import models as google
from propylon.api.openai import models as openai
from propylon.api.surfaces import Surface, surface_of

__all__ = ["routes"]

Endpoint = Callable[[Request], Awaitable[Response]]


def _by_surface(for_google: Endpoint, for_openai: Endpoint) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        if surface_of(request.scope) is Surface.OPENAI:
            return await for_openai(request)
        return await for_google(request)

    return endpoint


_list = _by_surface(google.list_models, openai.list_models)
_get = _by_surface(google.get_model, openai.get_model)


def _routes(base: str) -> list[Route]:
    return [
        Route(f"{base}/models", _list, methods=["GET"]),
        Route(f"{base}/models/{{model}}", _get, methods=["GET"]),
    ]


# Any version segment; Vertex names Google's models under a publisher.
routes = _routes("/{version}") + _routes(
    "/{version}/projects/{project}/locations/{location}/publishers/google"
)
