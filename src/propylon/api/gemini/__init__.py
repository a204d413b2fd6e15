"""HTTP endpoints of the Gemini API's generateContent family: `models/{m}:generateContent`,
`:streamGenerateContent`, `:countTokens`, `:embedContent`, `:batchEmbedContents`,
`:batchGenerateContent` with the `batches` it creates, and the `models` listing, under every
version segment (and, but for batches, Vertex's publisher path); and the `cachedContents`
resource (api/gemini/caches.py), under every version segment."""

from propylon.api.gemini import caches
from propylon.api.gemini.routes import routes as _model_routes

routes = _model_routes + caches.routes

__all__ = ["routes"]
