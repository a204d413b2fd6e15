"""The OpenAI surface: Chat Completions, models and embeddings (and Responses), in OpenAI's
wire format and error body. Importing the package installs the error body (errors.py)."""

from propylon.api.openai import errors as errors

__all__ = ["errors"]
