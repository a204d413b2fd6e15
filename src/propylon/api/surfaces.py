"""Which wire surface a request path belongs to: each surface answers errors in its own body.

Decided from the path alone (and, for `/v1/models`, the key header), so middleware that answers
before routing (auth, body limits) uses the same body as the routes behind it.
"""

from __future__ import annotations

import enum
import re

from starlette.types import Scope

__all__ = ["Surface", "surface_of"]


class Surface(enum.Enum):
    """A wire format with an error body of its own."""

    GOOGLE = "google"  # generateContent and the rest of the Gemini API; also the fallback
    INTERACTIONS = "interactions"  # the Interactions API and its siblings (agents, webhooks)
    OPENAI = "openai"  # Chat Completions, Responses, models, embeddings


# Matched at the end of the path, so a configured `path_prefix` in front changes nothing.
_INTERACTIONS = re.compile(
    r"/[^/]+(?:/projects/[^/]+/locations/[^/]+)?/(?:interactions|agents|webhooks)(?:/[^/]*)*$"
)
_OPENAI = re.compile(r"/v1/(?:chat/completions|responses(?:/[^/]*)*|embeddings)$")
# `/v1/models/{m}:generateContent` and its siblings are Google's whatever the key header
_MODELS = re.compile(
    r"/v1/models(?:/(?![^/]*:(?:generateContent|streamGenerateContent|countTokens"
    r"|embedContent|batchEmbedContents|batchGenerateContent)$)[^/]+)?$"
)


def surface_of(scope: Scope) -> Surface:
    """The surface of an HTTP request's `scope`. `/v1/models` is OpenAI's when the caller
    sends no `x-goog-api-key` (the OpenAI SDK sends `Authorization: Bearer` only)."""
    path: str = scope["path"]
    if _INTERACTIONS.search(path):
        return Surface.INTERACTIONS
    if _OPENAI.search(path):
        return Surface.OPENAI
    if _MODELS.search(path) and not any(
        name == b"x-goog-api-key" for name, _ in scope.get("headers", ())
    ):
        return Surface.OPENAI
    return Surface.GOOGLE
