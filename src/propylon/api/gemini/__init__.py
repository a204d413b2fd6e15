"""HTTP endpoints of the Gemini API's generateContent family: `models/{m}:generateContent`,
`:streamGenerateContent`, `:countTokens`, `:embedContent`, `:batchEmbedContents`,
`:batchGenerateContent` with the `batches` it creates, and the `models` listing, under every
version segment (and, but for batches, Vertex's publisher path)."""

from propylon.api.gemini.routes import routes

__all__ = ["routes"]
