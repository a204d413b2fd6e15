"""Pydantic models of a Chat Completions request (OpenAI's API reference, `POST
/chat/completions`): the only place that knows its JSON field names on the way in.

Closed models (`extra="forbid"`): a field Propylon does not know answers 400 naming it.
Which field is honoured, passed through, refused or harmless: docs/openai.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from propylon.errors import InvalidArgument
from propylon.schema.common import JsonSchema, validated

__all__ = [
    "PASSED_THROUGH",
    "AssistantMessage",
    "ChatRequest",
    "FunctionTool",
    "SystemMessage",
    "ToolMessage",
    "UserMessage",
    "parse_chat",
]

# Fields an OpenAI-compatible upstream honours and no other provider can: accepted only when
# every target of the model is `openai` (the request then reaches it with them intact).
PASSED_THROUGH = (
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "reasoning_effort",
    "verbosity",
    "prediction",
)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Part(_Closed):
    # harmless: a prompt-cache breakpoint is a hint to OpenAI's cache, passed to `openai` targets
    prompt_cache_breakpoint: dict[str, Any] | None = None


class TextPart(_Part):
    type: Literal["text"]
    text: str


class ImageUrl(_Closed):
    url: str = Field(min_length=1)
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Part):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_Closed):
    data: str = Field(min_length=1)
    format: Literal["wav", "mp3"]


class AudioPart(_Part):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(_Closed):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(_Part):
    type: Literal["file"]
    file: FileData


class RefusalPart(_Closed):
    type: Literal["refusal"]
    refusal: str


UserPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionArguments(_Closed):
    name: str
    arguments: str


class ToolCall(_Closed):
    id: str = Field(min_length=1)
    type: Literal["function"]
    function: FunctionArguments


class SystemMessage(_Closed):
    """`system` or `developer` (the same thing to every model Propylon serves)."""

    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_Closed):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(_Closed):
    """An earlier answer, as the SDK serialises one it received: `annotations` (harmless,
    replayed output), and `audio` / `function_call` null."""

    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    name: str | None = None
    annotations: list[dict[str, Any]] | None = None
    audio: None = None
    function_call: None = None


class ToolMessage(_Closed):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str = Field(min_length=1)


def _role(value: Any) -> str | None:
    role = value.get("role") if isinstance(value, dict) else getattr(value, "role", None)
    return {
        "system": "System",
        "developer": "System",
        "user": "User",
        "assistant": "Assistant",
        "tool": "Tool",
    }.get(str(role))


Message = Annotated[
    Annotated[SystemMessage, Tag("System")]
    | Annotated[UserMessage, Tag("User")]
    | Annotated[AssistantMessage, Tag("Assistant")]
    | Annotated[ToolMessage, Tag("Tool")],
    Discriminator(
        _role,
        custom_error_type="invalid_role",
        custom_error_message=(
            "`role` must be one of system, developer, user, assistant, tool "
            "(`function` messages are not supported: use `tool`)"
        ),
    ),
]


class FunctionDefinition(_Closed):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: JsonSchema | None = None
    strict: bool | None = None


class FunctionTool(_Closed):
    type: Literal["function"]
    function: FunctionDefinition


class FunctionName(_Closed):
    name: str


class NamedTool(_Closed):
    """A function by name: `tool_choice` naming one, or an entry of `allowed_tools`."""

    type: Literal["function"]
    function: FunctionName


class AllowedTools(_Closed):
    mode: Literal["auto", "required"]
    tools: list[NamedTool] = Field(min_length=1)


class AllowedToolsChoice(_Closed):
    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


ToolChoice = (
    Literal["none", "auto", "required"]
    | Annotated[NamedTool | AllowedToolsChoice, Field(discriminator="type")]
)


class JsonSchemaFormat(_Closed):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    schema_: JsonSchema | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextFormat(_Closed):
    type: Literal["text"]


class JsonObjectFormat(_Closed):
    type: Literal["json_object"]


class JsonSchemaResponseFormat(_Closed):
    type: Literal["json_schema"]
    json_schema: JsonSchemaFormat


ResponseFormat = Annotated[
    TextFormat | JsonObjectFormat | JsonSchemaResponseFormat, Field(discriminator="type")
]


class StreamOptions(_Closed):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None  # harmless: Propylon never pads chunks


class ChatRequest(_Closed):
    """A Chat Completions request. The fields typed `Any` are either passed through to
    OpenAI-compatible upstreams (PASSED_THROUGH, validated there) or refused when set."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, ge=1)
    # harmless (docs/openai.md): kept out of generation, passed on to OpenAI-compatible upstreams
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_options: dict[str, Any] | None = None
    prompt_cache_retention: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    # passed through to OpenAI-compatible upstreams only
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    reasoning_effort: str | None = None
    verbosity: str | None = None
    prediction: dict[str, Any] | None = None
    # refused when set (their answer would need fields Propylon does not give back)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    moderation: dict[str, Any] | None = None


_REFUSED = {
    "top_logprobs": "log probabilities are not returned",
    "audio": "audio output is not produced",
    "web_search_options": "web search is not run for Chat Completions",
    "functions": "use `tools` (the deprecated `functions` is not supported)",
    "function_call": "use `tool_choice` (the deprecated `function_call` is not supported)",
    "moderation": "Propylon runs no moderation",
}


def parse_chat(body: Any) -> ChatRequest:
    """Validate a decoded JSON body. Raises InvalidArgument naming the offending field
    (`param`): an unknown field, a bad value, `n` over 1, a refused field."""
    request = validated(ChatRequest, body)
    if request.n is not None and request.n > 1:
        raise InvalidArgument("`n`: only one choice per request (n=1) is supported", param="n")
    if request.logprobs:
        raise InvalidArgument("`logprobs`: log probabilities are not returned", param="logprobs")
    if request.modalities is not None and request.modalities != ["text"]:
        raise InvalidArgument('`modalities`: only `["text"]` is produced', param="modalities")
    for name, why in _REFUSED.items():
        if getattr(request, name) is not None:
            raise InvalidArgument(f"`{name}`: {why}", param=name)
    if request.stream_options is not None and not request.stream:
        raise InvalidArgument(
            "`stream_options` is only allowed with `stream: true`", param="stream_options"
        )
    if isinstance(request.stop, list) and len(request.stop) > 4:
        raise InvalidArgument("`stop`: at most 4 sequences", param="stop")
    return request
