"""A provider's answer as `GenerateContentResponse` bodies (Gemini API reference), for targets
that do not speak generateContent: streamed chunk by chunk, or merged into one response.

Each chunk has one candidate (`index` 0, role `model`) with the parts of that provider event:
text, a thought summary (`thought: true`), a `functionCall` (with its `id`), media as
`inlineData` / `fileData`. A thought signature rides on the next part, as Gemini sends it (or
on an empty text part at the end). The last chunk adds `finishReason` (`STOP`, `MAX_TOKENS`)
and `usageMetadata`; every chunk carries `modelVersion` and `responseId`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from propylon.domain.usage import Usage
from propylon.providers.base import (
    Finish,
    FunctionCall,
    MediaDelta,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    UsageReport,
)

__all__ = ["ResponseBuilder", "error_chunk", "usage_metadata"]

_FINISH = {"stop": "STOP", "max_tokens": "MAX_TOKENS", "continuation": "MAX_TOKENS"}


def usage_metadata(usage: Usage) -> dict[str, Any]:
    """Usage as `usageMetadata` (token counts; per-modality details where known)."""
    data: dict[str, Any] = {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.total_tokens,
    }
    if usage.thought_tokens:
        data["thoughtsTokenCount"] = usage.thought_tokens
    if usage.cached_tokens:
        data["cachedContentTokenCount"] = usage.cached_tokens
    if usage.tool_use_tokens:
        data["toolUsePromptTokenCount"] = usage.tool_use_tokens
    for key, counts in (
        ("promptTokensDetails", usage.input_by_modality),
        ("candidatesTokensDetails", usage.output_by_modality),
    ):
        if counts:
            data[key] = [{"modality": m.upper(), "tokenCount": n} for m, n in counts.items()]
    return data


def error_chunk(code: int, status: str, message: str) -> dict[str, Any]:
    """The last chunk of a stream that failed after its first chunk: Google's error body."""
    return {"error": {"code": code, "message": message, "status": status}}


@dataclass
class ResponseBuilder:
    """Turns provider events into response chunks (`chunk`, then `last`), or one merged
    response (`merged`, after every event went through `chunk`)."""

    model_version: str
    response_id: str
    usage: Usage = field(default_factory=Usage)
    finish: str = "STOP"
    calls: list[FunctionCall] = field(default_factory=list)
    _signature: str | None = None
    _parts: list[dict[str, Any]] = field(default_factory=list)

    def chunk(self, event: ProviderEvent) -> dict[str, Any] | None:
        """The chunk for `event`, or None when it adds no part (usage, finish, a signature
        waiting for its part)."""
        part: dict[str, Any] | None = None
        if isinstance(event, TextDelta):
            part = {"text": event.text}
        elif isinstance(event, ThoughtDelta):
            if event.signature is not None:
                self._signature = event.signature
            if event.summary is not None:
                part = {"text": event.summary, "thought": True}
        elif isinstance(event, FunctionCall):
            self.calls.append(event)
            part = {"functionCall": {"id": event.id, "name": event.name, "args": event.arguments}}
        elif isinstance(event, MediaDelta):
            mime = event.mime_type or ""
            part = (
                {"inlineData": {"mimeType": mime, "data": event.data}}
                if event.data is not None
                else {"fileData": {"mimeType": mime, "fileUri": event.uri or ""}}
            )
        elif isinstance(event, UsageReport):
            self.usage = event.usage
        elif isinstance(event, Finish):
            self.finish = _FINISH[event.reason]
        if part is None:
            return None
        if self._signature is not None:
            part["thoughtSignature"], self._signature = self._signature, None
        self._parts.append(part)
        return self._body([part])

    def last(self) -> dict[str, Any]:
        """The closing chunk: finish reason and usage (and a signature still waiting)."""
        parts = []
        if self._signature is not None:
            parts.append({"text": "", "thoughtSignature": self._signature})
            self._parts.append(parts[0])
        return self._body(parts, final=True)

    def merged(self) -> dict[str, Any]:
        """The whole answer as one response: consecutive text of one kind joined."""
        self.last()
        parts: list[dict[str, Any]] = []
        for part in self._parts:
            previous = parts[-1] if parts else None
            if (
                previous is not None
                and "text" in part
                and "text" in previous
                and part.get("thought") == previous.get("thought")
                and "thoughtSignature" not in part
            ):
                previous["text"] += part["text"]
            else:
                parts.append(dict(part))
        return self._body(parts, final=True)

    def _body(self, parts: list[dict[str, Any]], final: bool = False) -> dict[str, Any]:
        content: dict[str, Any] = {"role": "model"}
        if parts:
            content["parts"] = parts
        candidate: dict[str, Any] = {"content": content, "index": 0}
        body: dict[str, Any] = {"candidates": [candidate]}
        if final:
            candidate["finishReason"] = self.finish
            body["usageMetadata"] = usage_metadata(self.usage)
        body["modelVersion"] = self.model_version
        body["responseId"] = self.response_id
        return body
