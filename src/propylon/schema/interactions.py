"""Pydantic models of the CreateInteraction body (reference §3): the only place that knows the
request's JSON field names. Validation failures become InvalidArgument (HTTP 400).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from propylon.errors import InvalidArgument
from propylon.schema.common import JsonSchema, KeptAs, Url, check_json_schema, describe
from propylon.schema.steps import CONTENT_TYPES, STEP_TYPES, Content, InputShape, Step

__all__ = [
    "CONTENT_TYPES",
    "STEP_TYPES",
    "CreateInteraction",
    "json_schema_of",
    "normalize_input",
    "parse_create",
]

# Tools the upstream runs itself (reference §3.5); providers that lack one refuse it.
ServerSideToolType = Literal[
    "google_search",
    "code_execution",
    "url_context",
    "file_search",
    "google_maps",
    "computer_use",
    "retrieval",
    "tool_search",
]
# Integers the store and the upstreams can hold.
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]

_open = ConfigDict(extra="allow")

_content_list = TypeAdapter(list[Content])
_step_list = TypeAdapter(list[Step])


class AllowedTools(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["auto", "any", "none", "validated"] | None = None
    tools: list[str] | None = None


class ToolChoiceConfig(BaseModel):
    """`{allowed_tools: {mode, tools}}` (reference §3.6)."""

    model_config = ConfigDict(extra="forbid")
    allowed_tools: AllowedTools


ToolChoice = Annotated[
    Annotated[Literal["auto", "any", "none", "validated"], Tag("mode")]
    | Annotated[ToolChoiceConfig, Tag("config")],
    Discriminator(lambda value: "mode" if isinstance(value, str) else "config"),
]


class GenerationConfig(BaseModel):
    """reference §3.6. Unknown fields are refused so no setting is silently ignored."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = Field(default=None, gt=0, le=2**31 - 1)
    seed: Int64 | None = None
    stop_sequences: list[str] | None = None
    thinking_level: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None
    thinking_summaries: Literal["auto", "none"] | None = None
    tool_choice: ToolChoice | None = None
    image_config: dict[str, Any] | None = None
    speech_config: dict[str, Any] | list[dict[str, Any]] | None = None
    transcription_config: dict[str, Any] | None = None
    video_config: dict[str, Any] | None = None


class FunctionTool(BaseModel):
    """A client-side function the model may call (reference §3.5)."""

    model_config = _open
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: JsonSchema | None = None


def _header_name(name: str) -> bool:
    return bool(name) and all(
        ch.isascii() and (ch.isalnum() or ch in "!#$%&'*+-.^_`|~") for ch in name
    )


def _headers(value: dict[str, str]) -> dict[str, str]:
    for name, header in value.items():
        if not _header_name(name):
            raise ValueError(f"`{name}` is not a valid HTTP header name")
        if any((ord(ch) < 0x20 and ch != "\t") or ord(ch) == 0x7F for ch in header):
            raise ValueError(f"the value of header `{name}` has control characters")
    return value


class McpServerTool(BaseModel):
    """An MCP server Propylon itself calls (Streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["mcp_server"]
    name: str = Field(min_length=1)
    url: Url
    headers: Annotated[dict[str, str], AfterValidator(_headers)] | None = None
    allowed_tools: list[AllowedTools] | None = None


class ServerSideTool(BaseModel):
    """A tool the upstream runs itself; its fields are the upstream's business."""

    model_config = _open
    type: ServerSideToolType


Tool = Annotated[FunctionTool | McpServerTool | ServerSideTool, Field(discriminator="type")]


class WebhookConfig(BaseModel):
    """Per-request webhooks (reference §7.2): deliveries go to `uris` instead of the
    registered webhooks; `user_metadata` comes back in every delivery."""

    model_config = ConfigDict(extra="forbid")
    uris: list[Url] | None = None
    user_metadata: dict[str, Any] | None = None


def _formats(value: dict[str, Any] | list[dict[str, Any]]) -> Any:
    """Each `response_format` entry's schema must be a JSON Schema (reference §3.7)."""
    for entry in value if isinstance(value, list) else [value]:
        kind = entry.get("type")
        if kind == "text":
            if not isinstance(entry.get("mime_type", ""), str):
                raise ValueError("`mime_type` must be a string")
            if "schema" in entry:
                check_json_schema(entry["schema"])
        elif kind not in ("audio", "image", "video"):
            check_json_schema(entry)  # a raw JSON Schema
    return value


class CreateInteraction(BaseModel):
    """The CreateInteraction body (reference §3.1); `model` xor `agent`."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    agent: str | None = None
    agent_config: dict[str, Any] | None = None
    input: Annotated[str | dict[str, Any] | list[dict[str, Any]], KeptAs(InputShape)] | None = None
    system_instruction: str | None = None
    tools: Annotated[list[dict[str, Any]], KeptAs(list[Tool])] | None = None
    generation_config: GenerationConfig | None = None
    response_format: (
        Annotated[dict[str, Any] | list[dict[str, Any]], AfterValidator(_formats)] | None
    ) = None
    response_mime_type: str | None = None
    response_modalities: list[str] | None = None
    safety_settings: list[dict[str, Any]] | None = None
    stream: bool = False
    background: bool = False
    store: bool = True
    previous_interaction_id: str | None = None
    continuation_token: str | None = None
    cached_content: str | None = None
    environment: str | dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    service_tier: str | None = None
    webhook_config: Annotated[dict[str, Any], KeptAs(WebhookConfig)] | None = None

    @model_validator(mode="after")
    def _tools_are_well_formed(self) -> CreateInteraction:
        names: set[str] = set()
        for index, tool in enumerate(self.tools or []):
            if tool["type"] == "function":
                if tool["name"] in names:
                    raise ValueError(f"tools.{index}: function `{tool['name']}` is declared twice")
                names.add(tool["name"])
        return self

    @model_validator(mode="after")
    def _model_xor_agent(self) -> CreateInteraction:
        if self.model and self.agent:
            raise ValueError("`model` and `agent` are mutually exclusive: set one")
        if not self.model and not self.agent:
            raise ValueError("one of `model` or `agent` is required")
        if self.agent and (self.generation_config or self.cached_content):
            raise ValueError(
                "`generation_config` and `cached_content` go with `model`, not with `agent`"
            )
        return self

    def echoed_fields(self) -> dict[str, Any]:
        """The request fields the Interaction resource echoes (reference §4.1)."""
        return self.model_dump(
            exclude_none=True,
            exclude={"input", "stream", "background", "store", "continuation_token"},
        )


def parse_create(body: Any) -> CreateInteraction:
    """Validate a decoded JSON body. Raises InvalidArgument naming the offending field."""
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    try:
        return CreateInteraction.model_validate(body)
    except ValidationError as exc:
        raise InvalidArgument(describe(exc)) from None


def normalize_input(
    value: str | dict[str, Any] | list[dict[str, Any]] | None,
) -> list[dict[str, Any]]:
    """Turn `input` in any of its four shapes (reference §3.3) into a list of steps.

    A string or content becomes one `user_input` step; a list whose items carry step types is
    taken as a list of steps. Raises InvalidArgument for anything else.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "user_input", "content": [{"type": "text", "text": value}]}]
    items = [value] if isinstance(value, dict) else value
    if not items:
        raise InvalidArgument("`input` must not be empty")
    kinds = {str(item.get("type")) for item in items}
    try:
        if kinds <= STEP_TYPES:
            return _dump(_step_list.validate_python(items))
        if kinds <= CONTENT_TYPES:
            return [{"type": "user_input", "content": _dump(_content_list.validate_python(items))}]
    except ValidationError as exc:
        raise InvalidArgument(describe(exc, prefix="input")) from None
    unknown = sorted(str(k) for k in kinds - STEP_TYPES - CONTENT_TYPES)
    if unknown:
        raise InvalidArgument(f"`input` has items of unknown type: {', '.join(unknown)}")
    raise InvalidArgument("`input` mixes content items and steps: send one or the other")


def json_schema_of(request: CreateInteraction) -> dict[str, Any] | None:
    """The JSON Schema the output must satisfy (reference §3.7), or None for free text.

    `response_format` may be an entry `{type: "text", mime_type: "application/json", schema}`, a
    list of entries, or a raw JSON Schema. Raises InvalidArgument for non-text formats.
    """
    value = request.response_format
    if value is None:
        return {} if request.response_mime_type == "application/json" else None
    entries = value if isinstance(value, list) else [value]
    for entry in entries:
        kind = entry.get("type")
        if kind == "text":
            if "schema" in entry:
                schema: dict[str, Any] = entry["schema"]
                return schema
            if entry.get("mime_type") == "application/json":
                return {}
        elif kind in ("audio", "image", "video"):
            raise InvalidArgument(f"`response_format` of type `{kind}` is not supported")
        else:
            return entry  # a raw JSON Schema
    return None


def _dump(items: Sequence[BaseModel]) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in items]
