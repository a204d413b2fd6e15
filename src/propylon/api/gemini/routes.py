"""The POST routes of the generateContent family (its `models` listing: api/models.py), and
the `batches` resource (api/gemini/batches.py). One
route per base path takes `{model}:{method}` as one segment and splits it at its last `:`
(Starlette's path parameters stop at `/` only), so an unknown method is a 404 in Google's
body, like an unknown path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.gemini import batches, embed, generate
from propylon.errors import NotFound

__all__ = ["routes"]

Method = Callable[[Request, str], Awaitable[Response]]

_METHODS: dict[str, Method] = {
    "generateContent": generate.generate_content,
    "streamGenerateContent": generate.stream_generate_content,
    "countTokens": generate.count_tokens,
    "embedContent": embed.embed_content,
    "batchEmbedContents": embed.batch_embed_contents,
    "batchGenerateContent": batches.batch_generate_content,
}


async def model_method(request: Request) -> Response:
    """`POST .../models/{model}:{method}`."""
    model, _, method = request.path_params["model_method"].rpartition(":")
    handler = _METHODS.get(method)
    if not model or handler is None:
        raise NotFound(
            f"no such method `{method}` of models; this server serves "
            + ", ".join(f"`:{name}`" for name in _METHODS)
        )
    return await handler(request, model)


def _routes(base: str) -> list[Route]:
    return [
        Route(f"{base}/models/{{model_method}}", model_method, methods=["POST"]),
    ]


# Any version segment (`v1`, `v1beta`, ...); Vertex names Google's models under a publisher.
routes = (
    _routes("/{version}")
    + _routes("/{version}/projects/{project}/locations/{location}/publishers/google")
    + batches.routes
)
