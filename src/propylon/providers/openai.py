"""`openai`: any OpenAI-compatible Chat Completions server (vLLM, Ollama, llama.cpp's server,
OpenAI itself), streamed, or, for a turn nobody reads as it comes (`Turn.streamed` False),
asked for the whole answer in one `chat.completion` body (`stream: false`), read into the same
events.

Mapping (OpenAI's Chat Completions API reference): `user_input` -> user message (text and
`image_url` parts), `model_output` -> assistant message, `function_call` -> assistant
`tool_calls`, `function_result` -> `tool` message (MCP tool calls and results alike),
`thought` and the steps of server-side tools -> dropped (no equivalent).
`tool_choice`: auto/none as is, any/validated -> `required`, `allowed_tools` -> the offered
tools restricted (one tool: named). `response_format` -> `json_schema` (strict) or
`json_object`. Usage from the final chunk (`stream_options.include_usage`), or the whole answer's.

A turn from the Chat Completions surface (`Turn.chat_completions_body`) is sent as the client
wrote it, every field intact, with only `model` (the target's) and `stream` set, and, when
streamed, `stream_options.include_usage` (always on: usage is counted). Embeddings: `/embeddings`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument
from propylon.providers.base import (
    Embeddings,
    Finish,
    FunctionCall,
    ProviderEvent,
    TextDelta,
    ThoughtDelta,
    Turn,
    UpstreamError,
    UsageReport,
)
from propylon.providers.http import Upstream

__all__ = ["OpenAIProvider", "answer_events", "build_request", "passed_through"]

_CONFIG = {
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop_sequences": "stop",
    "max_output_tokens": "max_tokens",
}


class OpenAIProvider:
    """Chat Completions at `base_url` (ending in `/v1`) with upstream model id `model`."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        timeout: float,
        max_line_bytes: int,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.embeddings_url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.upstream = Upstream(timeout, headers, max_line_bytes)

    def check(self, turn: Turn) -> None:
        """Refuses server-side tool types, non-image media and unmapped generation settings
        (a Chat Completions body passed through is the upstream's to judge)."""
        if turn.chat_completions_body is None:
            build_request(turn, self.model)

    async def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        if turn.chat_completions_body is not None:
            cap = turn.generation_config.get("max_output_tokens")
            body = passed_through(turn.chat_completions_body, self.model, cap, turn.streamed)
        else:
            body = build_request(turn, self.model, turn.streamed)
        if not turn.streamed:  # one JSON answer: cheaper to read than its stream
            for event in answer_events(await self.upstream.whole(self.url, body)):
                yield event
            return
        calls: dict[int, dict[str, Any]] = {}
        finish = "stop"
        async for chunk in self.upstream.stream(self.url, body):
            if chunk.get("usage"):
                yield UsageReport(_usage(chunk["usage"]))
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                for event in _said(delta):
                    yield event
                for call in delta.get("tool_calls") or []:
                    _add_call(calls, call.get("index", 0), call)
                if choice.get("finish_reason") == "length":
                    finish = "max_tokens"
        for event in _ending(calls, finish):
            yield event

    async def embed(self, texts: list[str], dimensions: int | None) -> Embeddings:
        """The upstream's `/embeddings` for `texts` (as floats). Raises UpstreamError."""
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if dimensions is not None:
            body["dimensions"] = dimensions
        answer = await self.upstream.post_json(self.embeddings_url, body)
        try:
            rows = sorted(answer["data"], key=lambda row: row.get("index", 0))
            vectors = [[float(v) for v in row["embedding"]] for row in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"the upstream's embeddings are malformed: {exc!r}") from None
        tokens = int((answer.get("usage") or {}).get("prompt_tokens") or 0)
        return Embeddings(vectors, Usage(input_tokens=tokens))

    async def close(self) -> None:
        await self.upstream.close()


def passed_through(
    body: dict[str, Any], model: str, cap: int | None = None, streamed: bool = True
) -> dict[str, Any]:
    """A client's Chat Completions `body` as sent upstream: `model` set to the target's, and
    `streamed`: streamed with usage (the chunks become provider events; usage is counted),
    else `stream: false` (a whole answer has its usage). `cap`: an output token limit
    Propylon imposes (a key's ceiling), when under the body's own."""
    if streamed:
        options = dict(body.get("stream_options") or {})
        options["include_usage"] = True
        sent = {**body, "model": model, "stream": True, "stream_options": options}
    else:
        sent = {**body, "model": model, "stream": False}
    limit = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if cap is not None and (body.get(limit) is None or body[limit] > cap):
        sent[limit] = cap
    return sent


def answer_events(answer: dict[str, Any]) -> Iterator[ProviderEvent]:
    """The events of a whole (not streamed) `chat.completion` answer, as its stream gives
    them: thought and text, usage, the calls, the finish. Raises ValueError for a call whose
    arguments are not JSON (after the events before it, as when streamed)."""
    calls: dict[int, dict[str, Any]] = {}
    finish = "stop"
    for choice in answer.get("choices") or []:
        message = choice.get("message") or {}
        yield from _said(message)
        for index, call in enumerate(message.get("tool_calls") or []):
            _add_call(calls, index, call)
        if choice.get("finish_reason") == "length":
            finish = "max_tokens"
    if answer.get("usage"):
        yield UsageReport(_usage(answer["usage"]))
    yield from _ending(calls, finish)


def _said(part: dict[str, Any]) -> Iterator[ProviderEvent]:
    """The thought and the text of a streamed `delta` or a whole answer's `message`."""
    if part.get("reasoning_content"):
        yield ThoughtDelta(summary=part["reasoning_content"])
    if part.get("content"):
        yield TextDelta(part["content"])


def _add_call(calls: dict[int, dict[str, Any]], index: int, call: dict[str, Any]) -> None:
    """Add a `tool_calls` entry (a whole call, or a streamed piece of one) to the call at
    `index`: its id and name once given, its arguments appended."""
    entry = calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
    entry["id"] = call.get("id") or entry["id"]
    function = call.get("function") or {}
    # some servers (llama.cpp) repeat the name in every chunk
    entry["name"] = entry["name"] or function.get("name") or ""
    entry["arguments"] += function.get("arguments") or ""


def _ending(calls: dict[int, dict[str, Any]], finish: str) -> Iterator[ProviderEvent]:
    """The calls, in index order, then the Finish. Raises ValueError for a call whose
    arguments are not JSON."""
    for _, call in sorted(calls.items()):
        try:
            arguments = json.loads(call["arguments"]) if call["arguments"] else {}
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"the model's call of `{call['name']}` has invalid JSON arguments: {exc}"
            ) from None
        # an upstream that sends no id: a fresh one, unique across turns (not `call_0` again)
        yield FunctionCall(call["id"] or "call_" + secrets.token_hex(12), call["name"], arguments)
    yield Finish("max_tokens" if finish == "max_tokens" else "stop")


def build_request(turn: Turn, model: str, streamed: bool = True) -> dict[str, Any]:
    """The Chat Completions body for `turn`, asking for a stream (with usage) when
    `streamed`. Raises InvalidArgument naming what cannot map."""
    body: dict[str, Any] = {"model": model, "messages": _messages(turn), "stream": streamed}
    if streamed:
        body["stream_options"] = {"include_usage": True}
    for name, value in turn.generation_config.items():
        if name == "tool_choice":
            continue
        if name not in _CONFIG:
            raise InvalidArgument(
                f"`generation_config.{name}` is not supported by OpenAI-compatible upstreams"
            )
        body[_CONFIG[name]] = value
    for index, tool in enumerate(turn.tools):
        if tool.get("type") != "function":
            raise InvalidArgument(
                f"`tools.{index}`: OpenAI-compatible upstreams do not run "
                f"`{tool.get('type')}` tools"
            )
    functions = turn.functions()
    if functions:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": f["name"],
                    "description": f.get("description") or "",
                    "parameters": f.get("parameters") or {"type": "object", "properties": {}},
                },
            }
            for f in functions
        ]
        choice = turn.tool_choice()
        if choice.forced and len(functions) == 1:  # "required" with one tool: name it
            body["tool_choice"] = {"type": "function", "function": {"name": functions[0]["name"]}}
        else:
            body["tool_choice"] = "required" if choice.forced else "auto"
    if turn.json_schema is not None:
        body["response_format"] = (
            {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": turn.json_schema, "strict": True},
            }
            if turn.json_schema
            else {"type": "json_object"}
        )
    return body


def _messages(turn: Turn) -> list[dict[str, Any]]:
    """The history as Chat Completions messages. Steps arrive validated by the schema (or made
    by the runner); a result whose call is not in the history is refused (InvalidArgument),
    since the upstream would refuse a `tool` message that answers no `tool_calls` entry."""
    messages: list[dict[str, Any]] = []
    if turn.system_instruction:
        messages.append({"role": "system", "content": turn.system_instruction})
    called: set[str] = set()
    for step in turn.history:
        kind = step.get("type")
        if kind == "user_input":
            messages.append({"role": "user", "content": _parts(step.get("content") or [])})
        elif kind == "model_output":
            text = "".join(
                str(i.get("text", "")) for i in step.get("content") or [] if i.get("type") == "text"
            )
            messages.append({"role": "assistant", "content": text})
        elif kind in ("function_call", "mcp_server_tool_call"):
            call_id = str(step.get("id") or "")
            called.add(call_id)
            call = {
                "id": call_id,
                "type": "function",
                "function": {
                    "name": str(step.get("name") or ""),
                    "arguments": json.dumps(step.get("arguments") or {}),
                },
            }
            last = messages[-1] if messages else {}
            if last.get("role") == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind in ("function_result", "mcp_server_tool_result"):
            call_id = str(step.get("call_id") or "")
            if call_id not in called:
                raise InvalidArgument(
                    f"`{kind}` answers call `{call_id}`, which no earlier step makes; "
                    "OpenAI-compatible upstreams need the call before its result"
                )
            result = step.get("result")
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": result if isinstance(result, str) else json.dumps(result),
                }
            )
    return messages


def _parts(content: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(item.get("type") == "text" for item in content):
        return "".join(item.get("text", "") for item in content)
    parts: list[dict[str, Any]] = []
    for item in content:
        kind = item.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": item.get("text", "")})
        elif kind == "image":
            url = (
                item.get("uri")
                or f"data:{item.get('mime_type') or 'image/png'};base64,{item.get('data')}"
            )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise InvalidArgument(f"OpenAI-compatible upstreams do not take {kind} content")
    return parts


def _usage(data: dict[str, Any]) -> Usage:
    prompt = data.get("prompt_tokens") or 0
    cached = (data.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    completion = data.get("completion_tokens") or 0
    reasoning = (data.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return Usage(
        input_tokens=prompt,
        output_tokens=completion - reasoning,
        thought_tokens=reasoning,
        cached_tokens=cached,
    )
