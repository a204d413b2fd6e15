"""A model's answer as Chat Completions: the `chat.completion` object, and the
`chat.completion.chunk` objects of a stream. The only place that knows their field names.

Provider events map as follows: text deltas -> `content`; function calls -> `tool_calls`
(`arguments` as a JSON string); usage -> `usage` (`prompt_tokens`, `completion_tokens`
including reasoning, `prompt_tokens_details.cached_tokens`,
`completion_tokens_details.reasoning_tokens`); the finish -> `finish_reason`: `tool_calls`
when the model called a function, `length` when it hit its token limit, else `stop`.
Thoughts are not part of a Chat Completions answer (only their tokens are counted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from propylon.domain.usage import Usage
from propylon.providers.base import Finish, FunctionCall, ProviderEvent, TextDelta, UsageReport

__all__ = ["Answer", "chunk", "usage_of"]


def usage_of(usage: Usage) -> dict[str, Any]:
    """The Chat Completions `usage` object of `usage`."""
    completion = usage.output_tokens + usage.thought_tokens
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": completion,
        "total_tokens": usage.input_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.thought_tokens},
    }


def tool_call(call: FunctionCall) -> dict[str, Any]:
    """A `tool_calls` entry."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
    }


@dataclass(slots=True)
class Answer:
    """A Chat Completions answer assembled from provider events (`add`), rendered whole
    (`completion`) or piece by piece (`delta` per event)."""

    id: str
    created: int
    model: str
    text: list[str] = field(default_factory=list)
    calls: list[FunctionCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cut: bool = False  # the model hit its token limit

    def add(self, event: ProviderEvent) -> dict[str, Any] | None:
        """Take `event` in; the stream `delta` it makes, if any."""
        if isinstance(event, TextDelta):
            self.text.append(event.text)
            return {"content": event.text}
        if isinstance(event, FunctionCall):
            self.calls.append(event)
            return {"tool_calls": [{"index": len(self.calls) - 1, **tool_call(event)}]}
        if isinstance(event, UsageReport):
            self.usage = event.usage
        elif isinstance(event, Finish) and event.reason != "stop":
            self.cut = True
        return None

    @property
    def finish_reason(self) -> str:
        if self.calls:
            return "tool_calls"
        return "length" if self.cut else "stop"

    def completion(self) -> dict[str, Any]:
        """The whole `chat.completion` object."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.text) if self.text or not self.calls else None,
            "refusal": None,
            "annotations": [],
        }
        if self.calls:
            message["tool_calls"] = [tool_call(call) for call in self.calls]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": usage_of(self.usage),
            "system_fingerprint": None,
        }

    def chunk(
        self, delta: dict[str, Any] | None, finish_reason: str | None = None, usage: bool = False
    ) -> dict[str, Any]:
        """A `chat.completion.chunk`: one choice with `delta` (None: no choice, the usage
        chunk). `usage`: the stream reports usage (`stream_options.include_usage`), so every
        chunk has a `usage` field, null except on the last."""
        return chunk(self.id, self.created, self.model, delta, finish_reason, usage, self.usage)


def chunk(
    chunk_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None,
    with_usage: bool,
    usage: Usage,
) -> dict[str, Any]:
    """One `chat.completion.chunk` (see `Answer.chunk`)."""
    body: dict[str, Any] = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if with_usage:
        body["usage"] = usage_of(usage) if delta is None else None
    return body
