"""`gemini`: Google's `streamGenerateContent` (REST, `alt=sse`), mapped both ways.

Steps -> `contents` (Gemini API reference, "Content" and "Part"): `user_input` and
`function_result` are `user` turns (`text`, `inlineData`, `fileData`, `functionResponse`);
`model_output` and `function_call` are `model` turns (`text`, `functionCall`). A `thought`
step's `signature` rides on the next model part as `thoughtSignature`, as Gemini requires.
Answer parts -> provider events: `thought: true` text is a thought summary, a
`thoughtSignature` opens a thought step with that signature, `functionCall` is a call.
`usageMetadata` is cumulative per chunk; the last one wins.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument
from propylon.providers.base import (
    Finish,
    FunctionCall,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    Turn,
    UsageReport,
)
from propylon.providers.http import Upstream

__all__ = ["DEFAULT_BASE_URL", "GeminiProvider", "build_request", "parse_chunk"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "stop_sequences": "stopSequences",
    "max_output_tokens": "maxOutputTokens",
}
_MEDIA = frozenset({"image", "audio", "video", "document"})
_FAILURES = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "LANGUAGE",
        "OTHER",
        "MALFORMED_FUNCTION_CALL",
        "IMAGE_SAFETY",
    }
)


class GeminiProvider:
    """Gemini model `model` at `base_url` (default Google's API), key sent as x-goog-api-key."""

    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key: str | None,
        timeout: float,
        max_line_bytes: int,
    ) -> None:
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.url = f"{root}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        headers = {"x-goog-api-key": api_key} if api_key else {}
        self.upstream = Upstream(timeout, headers, max_line_bytes)

    def check(self, turn: Turn) -> None:
        """Refuses tool types and settings that have no mapping here, naming the field."""
        build_request(turn)

    async def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        finish = "stop"
        async for chunk in self.upstream.stream(self.url, build_request(turn)):
            for event in parse_chunk(chunk):
                if isinstance(event, Finish):
                    finish = event.reason
                else:
                    yield event
        yield Finish("max_tokens" if finish == "max_tokens" else "stop")

    async def close(self) -> None:
        await self.upstream.close()


def build_request(turn: Turn) -> dict[str, Any]:
    """The `generateContent` body for `turn`. Raises InvalidArgument for what cannot map."""
    body: dict[str, Any] = {"contents": _contents(turn.history)}
    if turn.system_instruction:
        body["systemInstruction"] = {"parts": [{"text": turn.system_instruction}]}
    config: dict[str, Any] = {}
    thinking: dict[str, Any] = {}
    for name, value in turn.generation_config.items():
        if name in _CONFIG:
            config[_CONFIG[name]] = value
        elif name == "thinking_level":
            thinking["thinkingLevel"] = str(value).upper()
        elif name == "thinking_summaries":
            thinking["includeThoughts"] = value == "auto"
        elif name != "tool_choice":
            raise InvalidArgument(
                f"`generation_config.{name}` is not supported by Gemini upstreams here"
            )
    if thinking:
        config["thinkingConfig"] = thinking
    if turn.json_schema is not None:
        config["responseMimeType"] = "application/json"
        if turn.json_schema:
            config["responseJsonSchema"] = turn.json_schema
    if config:
        body["generationConfig"] = config
    for index, tool in enumerate(turn.tools):
        if tool.get("type") != "function":
            raise InvalidArgument(
                f"`tools.{index}`: `{tool.get('type')}` tools are not mapped to Gemini here"
            )
    functions = [t for t in turn.tools if t.get("type") == "function"]
    if functions:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": f["name"],
                        "description": f.get("description") or "",
                        **(
                            {"parametersJsonSchema": f["parameters"]} if f.get("parameters") else {}
                        ),
                    }
                    for f in functions
                ]
            }
        ]
        choice = turn.tool_choice()
        calling: dict[str, Any] = {"mode": choice.mode.upper()}
        if choice.allowed is not None:
            calling["allowedFunctionNames"] = choice.allowed
        body["toolConfig"] = {"functionCallingConfig": calling}
    return body


def _contents(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    signature: str | None = None

    def add(role: str, part: dict[str, Any]) -> None:
        nonlocal signature
        if role == "model" and signature:
            part["thoughtSignature"] = signature
            signature = None
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].append(part)
        else:
            contents.append({"role": role, "parts": [part]})

    for step in history:
        kind = step.get("type")
        if kind == "user_input":
            for item in step.get("content") or []:
                add("user", _part(item))
        elif kind == "model_output":
            for item in step.get("content") or []:
                add("model", _part(item))
        elif kind == "thought":
            signature = step.get("signature") or signature
        elif kind in ("function_call", "mcp_server_tool_call"):
            call = {"name": step["name"], "args": step.get("arguments") or {}}
            if not step["id"].startswith("gen_"):
                call["id"] = step["id"]
            add("model", {"functionCall": call})
        elif kind in ("function_result", "mcp_server_tool_result"):
            result = step.get("result")
            response = result if isinstance(result, dict) else {"result": result}
            if step.get("is_error"):
                response = {"error": result}
            reply = {"name": step.get("name") or "", "response": response}
            if not step["call_id"].startswith("gen_"):
                reply["id"] = step["call_id"]
            add("user", {"functionResponse": reply})
    return contents


def _part(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "text":
        return {"text": item.get("text", "")}
    if kind in _MEDIA:
        if item.get("data"):
            return {"inlineData": {"mimeType": item.get("mime_type") or "", "data": item["data"]}}
        return {"fileData": {"fileUri": item["uri"], "mimeType": item.get("mime_type") or ""}}
    raise InvalidArgument(f"content of type `{kind}` is not mapped to Gemini")


def parse_chunk(chunk: dict[str, Any]) -> list[ProviderEvent]:
    """The provider events of one `GenerateContentResponse` (a stream chunk or a whole body).

    Raises ValueError when the prompt or the answer was blocked (the run ends `failed`).
    """
    events: list[ProviderEvent] = []
    blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
    if blocked:
        raise ValueError(f"Gemini blocked the prompt: {blocked}")
    for candidate in chunk.get("candidates") or []:
        for part in (candidate.get("content") or {}).get("parts") or []:
            if part.get("thoughtSignature"):
                events.append(ThoughtDelta(signature=part["thoughtSignature"]))
            if part.get("thought") and part.get("text"):
                events.append(ThoughtDelta(summary=part["text"]))
            elif part.get("text"):
                events.append(TextDelta(part["text"]))
            elif part.get("functionCall"):
                call = part["functionCall"]
                call_id = call.get("id") or "gen_" + secrets.token_hex(6)
                events.append(FunctionCall(call_id, call["name"], call.get("args") or {}))
        reason = candidate.get("finishReason")
        if reason in _FAILURES:
            raise ValueError(f"Gemini stopped the answer: {reason}")
        if reason == "MAX_TOKENS":
            events.append(Finish("max_tokens"))
        break  # one candidate is asked for
    if chunk.get("usageMetadata"):
        events.append(UsageReport(_usage(chunk["usageMetadata"])))
    return events


def _usage(data: dict[str, Any]) -> Usage:
    return Usage(
        input_tokens=data.get("promptTokenCount") or 0,
        output_tokens=data.get("candidatesTokenCount") or 0,
        thought_tokens=data.get("thoughtsTokenCount") or 0,
        cached_tokens=data.get("cachedContentTokenCount") or 0,
        tool_use_tokens=data.get("toolUsePromptTokenCount") or 0,
    )
