"""`POST /v1/embeddings`: one vector per input text, from the model's first target that makes
embeddings (echo's deterministic ones, an OpenAI-compatible upstream's `/embeddings`), as
floats or, with `encoding_format: base64` (the openai SDK's default), base64 of little-endian
float32 values. Admitted and accounted like a chat call (service/stateless.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from propylon.api.auth import caller_of
from propylon.api.errors import JSONResponse
from propylon.api.limits import json_body
from propylon.schema.openai.embeddings import embeddings_answer, parse_embeddings
from propylon.service.stateless import StatelessCalls

__all__ = ["routes"]


async def create(request: Request) -> Response:
    """Embed the request's input (see the module)."""
    calls: StatelessCalls = request.app.state.stateless
    body: Any = await json_body(request)
    asked = parse_embeddings(body)
    texts = asked.texts()
    made = await calls.embed(caller_of(request), asked.model, texts, asked.dimensions, {})
    return JSONResponse(
        embeddings_answer(asked.model, made.vectors, made.usage, asked.encoding_format)
    )


routes = [Route("/v1/embeddings", create, methods=["POST"])]
