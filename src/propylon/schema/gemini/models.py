"""The Gemini API's `Model` resource for a served model or alias, and the listing's pages."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from propylon.errors import InvalidArgument
from propylon.gateway.registry import ServedModel
from propylon.providers.base import Embedder

__all__ = ["decode_page_token", "encode_page_token", "model_resource"]

_GENERATES = ["generateContent", "streamGenerateContent"]


def model_resource(name: str, served: ServedModel) -> dict[str, Any]:
    """`Model` for `name` (the served model's own name or one of its aliases):
    `supportedGenerationMethods` are what every target of it can answer."""
    targets = served.targets
    methods = list(_GENERATES)
    if targets and targets[0].settings.provider in ("gemini", "echo"):
        methods.append("countTokens")
    if any(isinstance(t.provider, Embedder) for t in targets):
        methods += ["embedContent", "batchEmbedContents"]
    resource: dict[str, Any] = {
        "name": f"models/{name}",
        "baseModelId": served.name,
        "version": "001",
        "displayName": name,
        "description": (
            f"`{served.name}` served by Propylon"
            + (f" (alias `{name}`)" if name != served.name else "")
            + ": "
            + ", ".join(t.name for t in targets)
        ),
        "inputTokenLimit": served.input_token_limit,
        "outputTokenLimit": served.output_token_limit,
        "supportedGenerationMethods": methods,
    }
    return resource


def encode_page_token(offset: int) -> str:
    """An opaque page token for the listing's `offset`."""
    return base64.urlsafe_b64encode(f"models:{offset}".encode()).decode()


def decode_page_token(token: str) -> int:
    """The offset of a page token. Raises InvalidArgument naming `pageToken`."""
    try:
        kind, _, offset = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "models" or not offset.isdigit():
            raise ValueError(token)
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument("`pageToken` is not a token of this listing") from None
