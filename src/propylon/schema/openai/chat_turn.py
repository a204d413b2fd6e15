"""A Chat Completions request as a provider Turn: messages become steps, the rest the
generation settings, tools and response format every provider understands.

- `system` / `developer` messages: the system instruction (their texts joined by a blank line,
  wherever they stand in the conversation).
- `user`: a `user_input` step; `image_url` parts become image content (a `data:` URL inline),
  `input_audio` audio content, `file` with `file_data` document content (`file_id`: 400, there
  is no files API here).
- `assistant`: a `model_output` step with its text (a `refusal` replayed as text), then one
  `function_call` step per `tool_calls` entry (its `arguments` must be a JSON object).
- `tool`: a `function_result` step answering `tool_call_id` (`result`: the content's text).
- `tool_choice`: `none`/`auto` as is, `required` -> `any`, a named function or
  `allowed_tools` -> `allowed_tools` with those names.
- `max_completion_tokens` (else `max_tokens`) -> `max_output_tokens`; `stop` ->
  `stop_sequences`; `temperature`, `top_p`, `seed` as is.
- `response_format`: `json_schema` -> the schema, `json_object` -> any JSON object.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from propylon.errors import InvalidArgument
from propylon.providers.base import Turn
from propylon.runner.history import check_function_results
from propylon.schema.openai.chat import (
    AllowedToolsChoice,
    AssistantMessage,
    AudioPart,
    ChatRequest,
    FilePart,
    ImagePart,
    JsonSchemaResponseFormat,
    SystemMessage,
    TextPart,
    ToolMessage,
    UserMessage,
)

__all__ = ["to_turn"]

_DATA_URL = re.compile(r"^data:([^;,]+)?(?:;[^,]*)?;base64,(.*)$", re.DOTALL)
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def to_turn(request: ChatRequest, body: dict[str, Any]) -> Turn:
    """The Turn for `request` (decoded from `body`, which OpenAI-compatible upstreams get as
    it is). Raises InvalidArgument naming the field that cannot be translated."""
    system: list[str] = []
    steps: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        where = f"messages.{index}"
        if isinstance(message, SystemMessage):
            system.append(_text(message.content))
        elif isinstance(message, UserMessage):
            steps.append({"type": "user_input", "content": _user_content(message, where)})
        elif isinstance(message, AssistantMessage):
            steps.extend(_assistant_steps(message, where))
        elif isinstance(message, ToolMessage):
            steps.append(
                {
                    "type": "function_result",
                    "call_id": message.tool_call_id,
                    "name": _called(steps, message.tool_call_id),
                    "result": _text(message.content),
                }
            )
    try:
        check_function_results([], steps)
    except InvalidArgument as exc:
        raise InvalidArgument(f"`messages`: {exc.message}", param="messages") from None
    tools = [
        {
            "type": "function",
            "name": tool.function.name,
            "description": tool.function.description or "",
            "parameters": tool.function.parameters or {"type": "object", "properties": {}},
        }
        for tool in request.tools or []
    ]
    return Turn(
        history=steps,
        system_instruction="\n\n".join(system) or None,
        tools=tools,
        generation_config=_generation(request, {str(t["name"]) for t in tools}),
        json_schema=_json_schema(request),
        chat_completions_body=body,
        streamed=bool(request.stream),
    )


def _text(content: str | list[TextPart]) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


def _user_content(message: UserMessage, where: str) -> list[dict[str, Any]]:
    if isinstance(message.content, str):
        return [{"type": "text", "text": message.content}]
    content: list[dict[str, Any]] = []
    for index, part in enumerate(message.content):
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            content.append(_media("image", part.image_url.url))
        elif isinstance(part, AudioPart):
            audio = part.input_audio
            content.append(
                {"type": "audio", "data": audio.data, "mime_type": _AUDIO_TYPES[audio.format]}
            )
        elif isinstance(part, FilePart):
            field = f"{where}.content.{index}.file"
            if part.file.file_id is not None or not part.file.file_data:
                raise InvalidArgument(
                    f"`{field}`: send the file inline as `file_data` (there is no files API "
                    "for `file_id`)",
                    param=f"{field}.file_id",
                )
            document = _media("document", part.file.file_data)
            document.setdefault("mime_type", "application/pdf")
            content.append(document)
    return content


def _media(kind: str, url: str) -> dict[str, Any]:
    """Media content from a URL: a `data:` URL inline (base64 and its type), else by URI."""
    match = _DATA_URL.match(url)
    if match is None:
        return {"type": kind, "uri": url}
    media: dict[str, Any] = {"type": kind, "data": match.group(2)}
    if match.group(1):
        media["mime_type"] = match.group(1)
    return media


def _assistant_steps(message: AssistantMessage, where: str) -> list[dict[str, Any]]:
    texts: list[str] = []
    if isinstance(message.content, str):
        texts.append(message.content)
    elif message.content is not None:
        texts.extend(p.text if isinstance(p, TextPart) else p.refusal for p in message.content)
    if message.refusal:
        texts.append(message.refusal)
    steps: list[dict[str, Any]] = []
    text = "".join(texts)
    if text:
        steps.append({"type": "model_output", "content": [{"type": "text", "text": text}]})
    for index, call in enumerate(message.tool_calls or []):
        field = f"{where}.tool_calls.{index}.function.arguments"
        try:
            arguments = orjson.loads(call.function.arguments or "{}")
        except orjson.JSONDecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise InvalidArgument(f"`{field}` must be a JSON object", param=field)
        steps.append(
            {
                "type": "function_call",
                "id": call.id,
                "name": call.function.name,
                "arguments": arguments,
            }
        )
    return steps


def _called(steps: list[dict[str, Any]], call_id: str) -> str | None:
    """The name of the function call `call_id` answers (None: no such call, refused later)."""
    for step in reversed(steps):
        if step.get("type") == "function_call" and step.get("id") == call_id:
            return str(step["name"])
    return None


def _generation(request: ChatRequest, declared: set[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name in ("temperature", "top_p", "seed"):
        value = getattr(request, name)
        if value is not None:
            config[name] = value
    limit = request.max_completion_tokens or request.max_tokens
    if limit is not None:
        config["max_output_tokens"] = limit
    if request.stop is not None:
        config["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    choice = request.tool_choice
    if choice is None:
        return config
    if isinstance(choice, str):
        if choice == "required" and not declared:
            raise InvalidArgument(
                "`tool_choice` `required` forces a function call, but `tools` declares none",
                param="tool_choice",
            )
        config["tool_choice"] = {"required": "any"}.get(choice, choice)
        return config
    if isinstance(choice, AllowedToolsChoice):
        mode = "any" if choice.allowed_tools.mode == "required" else "auto"
        names = [tool.function.name for tool in choice.allowed_tools.tools]
    else:
        mode, names = "any", [choice.function.name]
    for name in names:
        if name not in declared:
            raise InvalidArgument(
                f"`tool_choice` names function `{name}`, which `tools` does not declare",
                param="tool_choice",
            )
    config["tool_choice"] = {"allowed_tools": {"mode": mode, "tools": names}}
    return config


def _json_schema(request: ChatRequest) -> dict[str, Any] | None:
    """The answer's JSON Schema: `{}` (any JSON) for `json_object`, None for text."""
    found = request.response_format
    if isinstance(found, JsonSchemaResponseFormat):
        return found.json_schema.schema_ or {}
    return {} if found is not None and found.type == "json_object" else None
