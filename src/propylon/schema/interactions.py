"""Pydantic models of the CreateInteraction body (reference §3): the only place that knows the
request's JSON field names. Validation failures become InvalidArgument (HTTP 400).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from propylon.errors import InvalidArgument

__all__ = [
    "CONTENT_TYPES",
    "STEP_TYPES",
    "CreateInteraction",
    "json_schema_of",
    "normalize_input",
    "parse_create",
]

CONTENT_TYPES = frozenset({"text", "image", "audio", "video", "document"})
# Steps of server-side tools, which a client may replay in a stateless history.
ToolStepType = Literal[
    "code_execution_call",
    "code_execution_result",
    "google_search_call",
    "google_search_result",
    "url_context_call",
    "url_context_result",
    "google_maps_call",
    "google_maps_result",
    "file_search_call",
    "file_search_result",
    "mcp_server_tool_call",
    "mcp_server_tool_result",
    "retrieval_call",
    "retrieval_result",
    "tool_search_call",
    "tool_search_result",
    "processing_call",
    "processing_result",
]
STEP_TYPES = frozenset(
    {
        "user_input",
        "model_output",
        "thought",
        "function_call",
        "function_result",
        *get_args(ToolStepType),
    }
)

_open = ConfigDict(extra="allow")


class TextContent(BaseModel):
    model_config = _open
    type: Literal["text"]
    text: str


class MediaContent(BaseModel):
    """image, audio, video or document content: inline base64 `data` or a `uri`."""

    model_config = _open
    type: Literal["image", "audio", "video", "document"]
    data: str | None = None
    uri: str | None = None
    mime_type: str | None = None

    @model_validator(mode="after")
    def _data_or_uri(self) -> MediaContent:
        if not self.data and not self.uri:
            raise ValueError(f"{self.type} content needs `data` or `uri`")
        return self


Content = Annotated[TextContent | MediaContent, Field(discriminator="type")]


class ContentStep(BaseModel):
    """user_input and model_output steps: a list of content."""

    model_config = _open
    type: Literal["user_input", "model_output"]
    content: list[Content] = Field(default_factory=list)


class ThoughtStep(BaseModel):
    model_config = _open
    type: Literal["thought"]
    signature: str | None = None
    summary: list[Content] | None = None


class FunctionCallStep(BaseModel):
    model_config = _open
    type: Literal["function_call"]
    id: str
    name: str
    arguments: dict[str, Any]


class FunctionResultStep(BaseModel):
    model_config = _open
    type: Literal["function_result"]
    call_id: str
    result: Any
    name: str | None = None
    is_error: bool | None = None


class OtherStep(BaseModel):
    """Server-side tool steps replayed by a client: kept as sent."""

    model_config = _open
    type: ToolStepType


Step = Annotated[
    ContentStep | ThoughtStep | FunctionCallStep | FunctionResultStep | OtherStep,
    Field(discriminator="type"),
]

_content_list = TypeAdapter(list[Content])
_step_list = TypeAdapter(list[Step])


class GenerationConfig(BaseModel):
    """reference §3.6. Unknown fields are refused so no setting is silently ignored."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    stop_sequences: list[str] | None = None
    thinking_level: str | None = None
    thinking_summaries: str | None = None
    tool_choice: str | dict[str, Any] | None = None
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
    parameters: dict[str, Any] | None = None


class AllowedTools(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["auto", "any", "none", "validated"] | None = None
    tools: list[str] | None = None


class McpServerTool(BaseModel):
    """An MCP server Propylon itself calls (Streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["mcp_server"]
    name: str = Field(min_length=1)
    url: str
    headers: dict[str, str] | None = None
    allowed_tools: list[AllowedTools] | None = None


_tool_validators: dict[str, TypeAdapter[Any]] = {
    "function": TypeAdapter(FunctionTool),
    "mcp_server": TypeAdapter(McpServerTool),
}


class CreateInteraction(BaseModel):
    """The CreateInteraction body (reference §3.1); `model` xor `agent`."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    agent: str | None = None
    agent_config: dict[str, Any] | None = None
    input: str | dict[str, Any] | list[dict[str, Any]] | None = None
    system_instruction: str | None = None
    tools: list[dict[str, Any]] | None = None
    generation_config: GenerationConfig | None = None
    response_format: dict[str, Any] | list[dict[str, Any]] | None = None
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
    webhook_config: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _tools_are_well_formed(self) -> CreateInteraction:
        names: set[str] = set()
        for index, tool in enumerate(self.tools or []):
            validator = _tool_validators.get(str(tool.get("type")))
            if validator is None:
                continue  # server-side tool types are refused by the providers that lack them
            try:
                validator.validate_python(tool)
            except ValidationError as exc:
                raise ValueError(f"tools.{index}: {_describe(exc)}") from None
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
        raise InvalidArgument(_describe(exc)) from None


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
    kinds = {item.get("type") for item in items}
    try:
        if kinds <= STEP_TYPES:
            return _dump(_step_list.validate_python(items))
        if kinds <= CONTENT_TYPES:
            return [{"type": "user_input", "content": _dump(_content_list.validate_python(items))}]
    except ValidationError as exc:
        raise InvalidArgument(_describe(exc, prefix="input")) from None
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


def _describe(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for error in exc.errors()[:3]:
        loc = ".".join(str(p) for p in (prefix, *error["loc"]) if p != "")
        parts.append(f"{loc}: {error['msg']}" if loc else error["msg"])
    return "invalid request: " + "; ".join(parts)
