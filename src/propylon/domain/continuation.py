"""Continuation tokens: how a turn cut short (`requires_continuation`) is continued.

A token is opaque to clients (`ct1.` + base64url JSON). For a stored interaction it names the
interaction that was cut (`i`); the next hop names it as `previous_interaction_id` and its
stored steps hold the partial answer. With `store=false` nothing is kept, so the token itself
carries the partial answer's text (`t`) and the output tokens spent on it so far (`o`). When
the upstream cut the answer itself, its own token rides along (`u`).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Continuation", "decode", "encode", "trailing_answer"]

_PREFIX = "ct1."


@dataclass(frozen=True, slots=True)
class Continuation:
    """interaction_id: the stored interaction that was cut. text and output_tokens: the
    partial answer and its output tokens, for `store=false`. upstream: the upstream's own
    continuation token, when it cut the answer."""

    interaction_id: str | None = None
    text: str | None = None
    output_tokens: int = 0
    upstream: str | None = None


def encode(continuation: Continuation) -> str:
    """The token for `continuation`."""
    data: dict[str, object] = {}
    if continuation.interaction_id is not None:
        data["i"] = continuation.interaction_id
    if continuation.text is not None:
        data["t"] = continuation.text
        data["o"] = continuation.output_tokens
    if continuation.upstream is not None:
        data["u"] = continuation.upstream
    raw = base64.urlsafe_b64encode(orjson.dumps(data)).decode().rstrip("=")
    return _PREFIX + raw


def decode(token: str) -> Continuation:
    """Parse a token. Raises ValueError when it is not one of Propylon's."""
    if not token.startswith(_PREFIX):
        raise ValueError("not a continuation token")
    raw = token[len(_PREFIX) :]
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise ValueError("not a continuation token") from None
    if not isinstance(data, dict):
        raise ValueError("not a continuation token")
    interaction_id, text, tokens = data.get("i"), data.get("t"), data.get("o", 0)
    upstream = data.get("u")
    if (
        not all(isinstance(v, str | None) for v in (interaction_id, text, upstream))
        or not isinstance(tokens, int)
        or (interaction_id is None) == (text is None)
    ):
        raise ValueError("not a continuation token")
    return Continuation(interaction_id, text, tokens, upstream)


def trailing_answer(steps: list[dict[str, Any]]) -> tuple[int, str]:
    """Where the answer that ends `steps` begins (its trailing `model_output` steps, thoughts
    among them included) and that answer's text."""
    start = len(steps)
    while start > 0 and steps[start - 1].get("type") in ("model_output", "thought"):
        start -= 1
    text = "".join(
        item.get("text", "")
        for step in steps[start:]
        if step.get("type") == "model_output"
        for item in step.get("content") or []
        if item.get("type") == "text"
    )
    return start, text
