"""Pydantic model of an embeddings request (OpenAI's `POST /embeddings`) and its answer."""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument
from propylon.schema.common import validated

__all__ = ["EmbeddingsRequest", "embeddings_answer", "parse_embeddings"]

MAX_INPUTS = 2048


class EmbeddingsRequest(BaseModel):
    """`input`: one text or a list of texts (token arrays are refused: Propylon has no
    tokenizer to read them back). `user`: harmless, not used."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    def texts(self) -> list[str]:
        """The input texts. Raises InvalidArgument (param `input`) for tokens, an empty
        list or text, or more than MAX_INPUTS texts."""
        texts = [self.input] if isinstance(self.input, str) else self.input
        if not texts:
            raise InvalidArgument("`input` must not be empty", param="input")
        if len(texts) > MAX_INPUTS:
            raise InvalidArgument(f"`input`: at most {MAX_INPUTS} texts", param="input")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise InvalidArgument(
                    "`input`: token arrays are not supported; send text", param="input"
                )
            if not text:
                raise InvalidArgument(f"`input.{index}` must not be empty", param="input")
        return [str(text) for text in texts]


def parse_embeddings(body: Any) -> EmbeddingsRequest:
    """Validate a decoded JSON body. Raises InvalidArgument naming the offending field."""
    return validated(EmbeddingsRequest, body)


def _encoded(vector: list[float], encoding: str) -> list[float] | str:
    """The vector as floats, or base64 of its little-endian float32 values."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings_answer(
    model: str, vectors: list[list[float]], usage: Usage, encoding: str
) -> dict[str, Any]:
    """The `list` of `embedding` objects, in input order, with the input tokens as usage."""
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding)}
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
    }
