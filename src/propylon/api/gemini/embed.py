"""`:embedContent` (`{"embedding": {"values": [...]}}`) and `:batchEmbedContents`
(`{"embeddings": [...]}`, in request order): text parts only, one vector per request."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.errors import InvalidArgument
from propylon.schema.gemini.request import (
    BatchEmbedContentsRequest,
    EmbedContentRequest,
    parse,
)
from propylon.service.generate import GenerateService

__all__ = ["batch_embed_contents", "embed_content"]


def _text(request: EmbedContentRequest, where: str) -> str:
    """The request's text: its parts' text joined by newlines; other parts answer 400."""
    if not request.content.parts:
        raise InvalidArgument(f"`{where}content.parts`: there is nothing to embed")
    texts = []
    for index, part in enumerate(request.content.parts):
        if part.text is None or part.unknown():
            raise InvalidArgument(f"`{where}content.parts.{index}`: only text parts are embedded")
        texts.append(part.text)
    return "\n".join(texts)


def _embed_request(
    requests: list[EmbedContentRequest], prefix: str
) -> tuple[list[str], int | None]:
    """The texts and dimensions of requests that must agree on their settings (400 when
    not). `taskType` and `title` are retrieval hints for Google's models, dropped for others
    (docs/gemini-api.md)."""
    texts = [_text(r, prefix.format(i)) for i, r in enumerate(requests)]
    dimensions = {r.output_dimensionality for r in requests}
    task_types = {r.task_type for r in requests}
    if len(dimensions) > 1 or len(task_types) > 1:
        raise InvalidArgument(
            "`requests`: every request of a batch must ask for the same "
            "`outputDimensionality` and `taskType`"
        )
    for index, request in enumerate(requests):
        for key in request.unknown():
            raise InvalidArgument(f"`{prefix.format(index)}{key}` is not supported here")
    return texts, dimensions.pop()


async def embed_content(request: Request, model: str) -> Response:
    """`POST .../models/{model}:embedContent`: one vector."""
    body = parse(EmbedContentRequest, await json_body(request))
    service: GenerateService = request.app.state.generate
    made = await service.embed(model, *_embed_request([body], ""), caller_of(request))
    return JSONResponse({"embedding": {"values": made.vectors[0]}})


async def batch_embed_contents(request: Request, model: str) -> Response:
    """`POST .../models/{model}:batchEmbedContents`: one vector per request, in order; each
    request names the path's model or none."""
    body = parse(BatchEmbedContentsRequest, await json_body(request))
    for index, item in enumerate(body.requests):
        if item.model and item.model.removeprefix("models/") != model.removeprefix("models/"):
            raise InvalidArgument(
                f"`requests.{index}.model`: `{item.model}` differs from the model in the path"
            )
    service: GenerateService = request.app.state.generate
    made = await service.embed(
        model, *_embed_request(body.requests, "requests.{}."), caller_of(request)
    )
    return JSONResponse({"embeddings": [{"values": v} for v in made.vectors]})
