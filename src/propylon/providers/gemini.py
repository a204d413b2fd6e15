"""`gemini`: Google's `streamGenerateContent` (REST, `alt=sse`), mapped both ways; for a turn
nobody reads as it comes (`Turn.streamed` False), `generateContent`: the whole answer, read as
one chunk into the same events.

Steps -> `contents` (Gemini API reference, "Content" and "Part"): `user_input` and
`function_result` are `user` turns (`text`, `inlineData`, `fileData`, `functionResponse`);
`model_output`, `function_call` and `code_execution_call` / `_result` are `model` turns
(`text`, `inlineData`, `functionCall`, `executableCode`, `codeExecutionResult`). A `thought`
step's `signature` rides on the next model part as `thoughtSignature`, as Gemini requires.
Other server-side tool steps (a replayed `google_search_call`, ...) reach Gemini as text
(providers/capabilities.py). The answer is read by gemini_answer.py.

Request fields: `generation_config` (`thinking_level` / `thinking_summaries` ->
`thinkingConfig`, `image_config` -> `imageConfig`, `speech_config` -> `speechConfig`),
`response_modalities` (`text`, `image`, `audio`) -> `responseModalities`, `safety_settings`
-> `safetySettings`, and the built-in tools `google_search`, `url_context` and
`code_execution` -> `googleSearch`, `urlContext`, `codeExecution`. A continued answer is sent
back as the last model turn for Gemini to go on with, or, when Gemini cut it itself, as the
same request with its `continuationToken`.

A `Turn.native` generateContent body (the generateContent surface, api/gemini/) is forwarded
as it came, to `:generateContent` or `:streamGenerateContent?alt=sse` as the client asked, and
each answer chunk comes back unchanged (`NativeChunk`) with its usage; only its
`maxOutputTokens` is capped at the turn's (a key's token ceiling). A request naming a cached
content (`NativeRequest.cached`) carries this target's upstream copy of it as `cachedContent`,
or, when this target has none, the cached fields inline before the request's. Embeddings go
to `:batchEmbedContents` (`embed`); `count_tokens` to `:countTokens`; the copies of cached
contents are made, updated and deleted at `cachedContents` (`create_cache`, ...).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from propylon.errors import InvalidArgument
from propylon.providers.base import (
    Embeddings,
    NativeChunk,
    NativeRequest,
    ProviderEvent,
    Turn,
    UsageReport,
)
from propylon.providers.capabilities import BASE_STEPS, Capabilities, as_text_step
from propylon.providers.gemini_answer import AnswerReader, usage_of
from propylon.providers.http import Upstream

__all__ = ["DEFAULT_BASE_URL", "GeminiProvider", "build_request", "capped"]

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"

_CONFIG = {
    "temperature": "temperature",
    "top_p": "topP",
    "seed": "seed",
    "stop_sequences": "stopSequences",
    "max_output_tokens": "maxOutputTokens",
}
_MEDIA = frozenset({"image", "audio", "video", "document"})
# built-in tool type -> its generateContent Tool
_BUILT_IN = {
    "google_search": "googleSearch",
    "url_context": "urlContext",
    "code_execution": "codeExecution",
}
_SEARCH_TYPES = {"web_search": "webSearch", "image_search": "imageSearch"}
_CAPABILITIES = Capabilities(
    output_modalities=frozenset({"text", "image", "audio"}),
    safety_filter=True,
    native_steps=BASE_STEPS | {"code_execution_call", "code_execution_result"},
    continues=True,
)


class GeminiProvider:
    """Gemini model `model` at `base_url` (default Google's API), key sent as x-goog-api-key."""

    capabilities = _CAPABILITIES

    def __init__(
        self,
        base_url: str | None,
        model: str,
        api_key: str | None,
        timeout: float,
        max_line_bytes: int,
        label: str = "",
    ) -> None:
        root = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.model = model
        self.label = label  # its target's: the key of its copies of cached contents
        self.root = f"{root}/v1beta"
        self.base = f"{root}/v1beta/models/{model}"
        self.url = f"{self.base}:streamGenerateContent?alt=sse"
        headers = {"x-goog-api-key": api_key} if api_key else {}
        self.upstream = Upstream(timeout, headers, max_line_bytes)

    def check(self, turn: Turn) -> None:
        """Refuses tool types and settings that have no mapping here, naming the field
        (a native generateContent body is Google's to judge)."""
        if turn.native is None:
            build_request(turn)

    async def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        if turn.native is not None and turn.native.api == "generateContent":
            limit = turn.generation_config.get("max_output_tokens")
            async for event in self._native(turn.native, limit):
                yield event
            return
        reader = AnswerReader()
        if not turn.streamed:  # the whole answer, one chunk: cheaper to read than its stream
            answer = await self.upstream.whole(f"{self.base}:generateContent", build_request(turn))
            for event in reader.read(answer):
                yield event
        else:
            async for chunk in self.upstream.stream(self.url, build_request(turn)):
                for event in reader.read(chunk):
                    yield event
        for event in reader.end():
            yield event

    async def _native(
        self, native: NativeRequest, limit: int | None
    ) -> AsyncIterator[ProviderEvent]:
        """The client's generateContent body forwarded (its `maxOutputTokens` at most `limit`,
        a key's ceiling); Google's answer chunks unchanged."""
        body = (
            native.body
            if native.cached is None
            else native.cached.body_for(self.label, native.body)
        )
        body = body if limit is None else capped(body, limit)
        if native.stream:
            async for chunk in self.upstream.stream(self.url, body):
                yield NativeChunk(chunk)
                if chunk.get("usageMetadata"):
                    yield UsageReport(usage_of(chunk["usageMetadata"]))
            return
        answer = await self.upstream.whole(f"{self.base}:generateContent", body)
        yield NativeChunk(answer)
        if answer.get("usageMetadata"):
            yield UsageReport(usage_of(answer["usageMetadata"]))

    async def embed(self, texts: list[str], dimensions: int | None) -> Embeddings:
        """Google's `:batchEmbedContents` for `texts` (one request each). Raises
        UpstreamError."""
        extra: dict[str, Any] = {"outputDimensionality": dimensions} if dimensions else {}
        requests = [
            {"model": f"models/{self.model}", "content": {"parts": [{"text": t}]}, **extra}
            for t in texts
        ]
        answer = await self.upstream.post_json(
            f"{self.base}:batchEmbedContents", {"requests": requests}
        )
        vectors = [list(e.get("values") or []) for e in answer.get("embeddings") or []]
        usage = usage_of(answer.get("usageMetadata") or {})
        return Embeddings(vectors, usage)

    async def count_tokens(self, body: dict[str, Any]) -> int:
        """`totalTokens` of Google's `:countTokens` for a countTokens `body` (its
        `generateContentRequest.model`, if any, set to this target's model). Raises
        UpstreamError."""
        if isinstance(body.get("generateContentRequest"), dict):
            inner = {**body["generateContentRequest"], "model": f"models/{self.model}"}
            body = {**body, "generateContentRequest": inner}
        answer = await self.upstream.post_json(f"{self.base}:countTokens", body)
        return int(answer.get("totalTokens") or 0)

    async def create_cache(self, body: dict[str, Any]) -> dict[str, Any]:
        """Google's `CachedContent` made of a create `body` (`contents`, `systemInstruction`,
        `tools`, `toolConfig`, `expireTime`) for this target's model. Raises UpstreamError."""
        return await self.upstream.post_json(
            f"{self.root}/cachedContents", {**body, "model": f"models/{self.model}"}
        )

    async def update_cache(self, name: str, expire_time: str) -> None:
        """Set the expiry of the upstream cached content `name`. Raises UpstreamError."""
        await self.upstream.request_json(
            "PATCH", f"{self.root}/{name}?updateMask=expireTime", {"expireTime": expire_time}
        )

    async def delete_cache(self, name: str) -> None:
        """Delete the upstream cached content `name`. Raises UpstreamError."""
        await self.upstream.request_json("DELETE", f"{self.root}/{name}")

    async def close(self) -> None:
        await self.upstream.close()


def capped(body: dict[str, Any], limit: int) -> dict[str, Any]:
    """A generateContent `body` whose `maxOutputTokens` is at most `limit` (in whichever
    spelling the client used)."""
    key = "generation_config" if "generation_config" in body else "generationConfig"
    config = dict(body.get(key) or {})
    name = "max_output_tokens" if "max_output_tokens" in config else "maxOutputTokens"
    config[name] = min(config.get(name) or limit, limit)
    return {**body, key: config}


def build_request(turn: Turn) -> dict[str, Any]:
    """The `generateContent` body for `turn`. Raises InvalidArgument for what cannot map."""
    body: dict[str, Any] = {"contents": _contents(turn.history)}
    if turn.upstream_continuation:
        body["continuationToken"] = turn.upstream_continuation
    elif turn.continuation:  # Gemini goes on with a trailing model turn
        _add(body["contents"], "model", {"text": turn.continuation})
    if turn.system_instruction:
        body["systemInstruction"] = {"parts": [{"text": turn.system_instruction}]}
    config = _generation_config(turn)
    if config:
        body["generationConfig"] = config
    if turn.safety_settings:
        body["safetySettings"] = [_safety(setting) for setting in turn.safety_settings]
    tools = _tools(turn)
    if tools:
        body["tools"] = tools
    functions = [t for t in turn.tools if t.get("type") == "function"]
    if functions:
        choice = turn.tool_choice()
        calling: dict[str, Any] = {"mode": choice.mode.upper()}
        if choice.allowed is not None:
            calling["allowedFunctionNames"] = choice.allowed
        body["toolConfig"] = {"functionCallingConfig": calling}
    return body


def _generation_config(turn: Turn) -> dict[str, Any]:
    config: dict[str, Any] = {}
    thinking: dict[str, Any] = {}
    for name, value in turn.generation_config.items():
        if name in _CONFIG:
            config[_CONFIG[name]] = value
        elif name == "thinking_level":
            thinking["thinkingLevel"] = str(value).upper()
        elif name == "thinking_summaries":
            thinking["includeThoughts"] = value == "auto"
        elif name == "image_config":
            config["imageConfig"] = {
                {"aspect_ratio": "aspectRatio", "image_size": "imageSize"}[k]: v
                for k, v in value.items()
            }
        elif name == "speech_config":
            config["speechConfig"] = _speech(value)
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
    if turn.response_modalities:
        config["responseModalities"] = [m.upper() for m in turn.response_modalities]
    return config


def _speech(value: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """`speech_config` (one voice, a list, or `{speakers: [...]}`) as a SpeechConfig."""
    voices = value.get("speakers", []) if isinstance(value, dict) else value
    speech: dict[str, Any] = {}
    language = next((v["language"] for v in voices if v.get("language")), None)
    if language:
        speech["languageCode"] = language
    if len(voices) == 1 and not voices[0].get("speaker"):
        if voices[0].get("voice"):
            speech["voiceConfig"] = _voice(voices[0]["voice"])
        return speech
    for index, voice in enumerate(voices):
        if not voice.get("speaker") or not voice.get("voice"):
            raise InvalidArgument(
                f"`generation_config.speech_config.{index}`: with several voices, each "
                "needs `speaker` and `voice`"
            )
    speech["multiSpeakerVoiceConfig"] = {
        "speakerVoiceConfigs": [
            {"speaker": v["speaker"], "voiceConfig": _voice(v["voice"])} for v in voices
        ]
    }
    return speech


def _voice(name: str) -> dict[str, Any]:
    return {"prebuiltVoiceConfig": {"voiceName": name}}


def _safety(setting: dict[str, Any]) -> dict[str, Any]:
    mapped = {
        "category": "HARM_CATEGORY_" + str(setting["type"]).upper(),
        "threshold": str(setting["threshold"]).upper(),
    }
    if setting.get("method"):
        mapped["method"] = str(setting["method"]).upper()
    return mapped


def _tools(turn: Turn) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(turn.tools):
        kind = tool.get("type")
        if kind in _BUILT_IN:
            settings: dict[str, Any] = {}
            for search_type in tool.get("search_types") or []:
                if search_type not in _SEARCH_TYPES:
                    raise InvalidArgument(
                        f"`tools.{index}.search_types`: `{search_type}` is not offered by the "
                        "Gemini API (Vertex AI only)"
                    )
                settings.setdefault("searchTypes", {})[_SEARCH_TYPES[search_type]] = {}
            tools.append({_BUILT_IN[str(kind)]: settings})
        elif kind != "function":
            raise InvalidArgument(f"`tools.{index}`: `{kind}` tools are not mapped to Gemini here")
    functions = [t for t in turn.tools if t.get("type") == "function"]
    if functions:
        tools.append(
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
        )
    return tools


def _add(contents: list[dict[str, Any]], role: str, part: dict[str, Any]) -> None:
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].append(part)
    else:
        contents.append({"role": role, "parts": [part]})


def _contents(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    signature: str | None = None

    def add(role: str, part: dict[str, Any]) -> None:
        nonlocal signature
        if role == "model" and signature:
            part["thoughtSignature"] = signature
            signature = None
        _add(contents, role, part)

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
        elif kind in ("code_execution_call", "code_execution_result"):
            add("model", _code_part(step))
    return contents


def _code_part(step: dict[str, Any]) -> dict[str, Any]:
    """A code execution step as an `executableCode` / `codeExecutionResult` part; what
    Gemini cannot take (bash code, a result of content items) as text."""
    if step["type"] == "code_execution_call":
        arguments = step.get("arguments") or {}
        if arguments.get("language", "python") != "python":
            return {"text": as_text_step(step)["content"][0]["text"]}
        code = {"language": "PYTHON", "code": arguments.get("code") or ""}
        if not step["id"].startswith("gen_"):
            code["id"] = step["id"]
        return {"executableCode": code}
    if not isinstance(step.get("result"), str):
        return {"text": as_text_step(step)["content"][0]["text"]}
    outcome = {
        "outcome": "OUTCOME_FAILED" if step.get("is_error") else "OUTCOME_OK",
        "output": step["result"],
    }
    if not step["call_id"].startswith("gen_"):
        outcome["id"] = step["call_id"]
    return {"codeExecutionResult": outcome}


def _part(item: dict[str, Any]) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "text":
        return {"text": item.get("text", "")}
    if kind in _MEDIA:
        if item.get("data"):
            return {"inlineData": {"mimeType": item.get("mime_type") or "", "data": item["data"]}}
        return {"fileData": {"fileUri": item["uri"], "mimeType": item.get("mime_type") or ""}}
    raise InvalidArgument(f"content of type `{kind}` is not mapped to Gemini")
