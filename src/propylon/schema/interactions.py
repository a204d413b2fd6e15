"""Pydantic models of the CreateInteraction body (reference §3): the only place that knows the
request's JSON field names. Validation failures become InvalidArgument (HTTP 400).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import (
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

__all__ = [
    "CONTENT_TYPES",
    "STATUSES",
    "STEP_TYPES",
    "CreateInteraction",
    "InteractionStatus",
    "ServiceTier",
    "json_schema_of",
    "normalize_input",
    "output_media_of",
    "parse_create",
    "queue_priority",
]

CONTENT_TYPES = frozenset({"text", "image", "audio", "video", "document"})
# Enumerations of the SDK's types (types/interactions/): a value outside them answers 400
# naming the field and the allowed values (pydantic's literal_error).
ThinkingLevel = Literal["minimal", "low", "medium", "high", "xhigh"]
ThinkingSummaries = Literal["auto", "none"]
ToolChoiceMode = Literal["auto", "any", "none", "validated"]
ResponseModality = Literal["text", "image", "audio", "video", "document"]
ServiceTier = Literal["flex", "standard", "priority", "deferred"]
InteractionStatus = Literal[
    "in_progress",
    "requires_action",
    "completed",
    "failed",
    "cancelled",
    "incomplete",
    "budget_exceeded",
    "queued",
    "requires_continuation",
]
STATUSES: frozenset[str] = frozenset(get_args(InteractionStatus))
# Propylon's meaning of `service_tier`: the background queue's order (lower runs first).
_TIER_PRIORITY = {"priority": 0, "standard": 1, "flex": 2, "deferred": 3}
HarmCategory = Literal[
    "hate_speech",
    "dangerous_content",
    "harassment",
    "sexually_explicit",
    "civic_integrity",
    "image_hate",
    "image_dangerous_content",
    "image_harassment",
    "image_sexually_explicit",
    "jailbreak",
]
HarmThreshold = Literal[
    "block_low_and_above", "block_medium_and_above", "block_only_high", "block_none", "off"
]
AspectRatio = Literal[
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:8", "8:1", "1:4",
    "4:1",
]  # fmt: skip
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


class GoogleSearchArguments(BaseModel):
    model_config = _open
    queries: list[str] | None = None


class GoogleSearchCallStep(BaseModel):
    model_config = _open
    type: Literal["google_search_call"]
    id: str
    arguments: GoogleSearchArguments
    search_type: Literal["web_search", "image_search", "enterprise_web_search"] | None = None
    signature: str | None = None


class GoogleSearchResult(BaseModel):
    model_config = _open
    search_suggestions: str | None = None


class GoogleSearchResultStep(BaseModel):
    model_config = _open
    type: Literal["google_search_result"]
    call_id: str
    result: list[GoogleSearchResult]
    is_error: bool | None = None
    signature: str | None = None


class UrlContextArguments(BaseModel):
    model_config = _open
    urls: list[str] | None = None


class UrlContextCallStep(BaseModel):
    model_config = _open
    type: Literal["url_context_call"]
    id: str
    arguments: UrlContextArguments
    signature: str | None = None


class UrlContextResult(BaseModel):
    model_config = _open
    url: str | None = None
    status: Literal["success", "error", "paywall", "unsafe"] | None = None


class UrlContextResultStep(BaseModel):
    model_config = _open
    type: Literal["url_context_result"]
    call_id: str
    result: list[UrlContextResult]
    is_error: bool | None = None
    signature: str | None = None


class CodeExecutionArguments(BaseModel):
    model_config = _open
    code: str | None = None
    language: Literal["python", "bash"] | None = None


class CodeExecutionCallStep(BaseModel):
    model_config = _open
    type: Literal["code_execution_call"]
    id: str
    arguments: CodeExecutionArguments
    signature: str | None = None


class CodeExecutionResultStep(BaseModel):
    model_config = _open
    type: Literal["code_execution_result"]
    call_id: str
    result: str | list[Content]
    is_error: bool | None = None
    signature: str | None = None


_TYPED_TOOL_STEPS = (
    "google_search_call",
    "google_search_result",
    "url_context_call",
    "url_context_result",
    "code_execution_call",
    "code_execution_result",
)


class OtherStep(BaseModel):
    """Other server-side tool steps replayed by a client: kept as sent."""

    model_config = _open
    type: Literal[tuple(t for t in get_args(ToolStepType) if t not in _TYPED_TOOL_STEPS)]  # type: ignore[valid-type]


Step = Annotated[
    ContentStep
    | ThoughtStep
    | FunctionCallStep
    | FunctionResultStep
    | GoogleSearchCallStep
    | GoogleSearchResultStep
    | UrlContextCallStep
    | UrlContextResultStep
    | CodeExecutionCallStep
    | CodeExecutionResultStep
    | OtherStep,
    Field(discriminator="type"),
]

_content_list = TypeAdapter(list[Content])
_step_list = TypeAdapter(list[Step])


class AllowedTools(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: ToolChoiceMode | None = None
    tools: list[str] | None = None


class ToolChoiceConfig(BaseModel):
    """`tool_choice` as an object: `{allowed_tools: {mode, tools}}`."""

    model_config = ConfigDict(extra="forbid")
    allowed_tools: AllowedTools


class ImageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    aspect_ratio: AspectRatio | None = None
    image_size: Literal["512", "1K", "2K", "4K"] | None = None


class SpeechConfig(BaseModel):
    """One voice: `voice` (a prebuilt voice name), `language` (BCP-47), `speaker` (the name
    a multi-speaker prompt uses for it)."""

    model_config = ConfigDict(extra="forbid")
    voice: str | None = None
    language: str | None = None
    speaker: str | None = None


class SpeakerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    speakers: list[SpeechConfig]


def _shape(value: Any) -> str:
    """Which branch of a string-or-object or list-or-object union `value` takes."""
    if isinstance(value, str):
        return "[string]"
    return "[list]" if isinstance(value, list) else "[object]"


ToolChoice = Annotated[
    Annotated[ToolChoiceMode, Tag("[string]")] | Annotated[ToolChoiceConfig, Tag("[object]")],
    Discriminator(_shape),
]
SpeechConfigs = Annotated[
    Annotated[SpeakerConfig, Tag("[object]")] | Annotated[list[SpeechConfig], Tag("[list]")],
    Discriminator(_shape),
]


class GenerationConfig(BaseModel):
    """reference §3.6. Unknown fields are refused so no setting is silently ignored; the
    enumerated ones are checked against the SDK's values."""

    model_config = ConfigDict(extra="forbid")
    temperature: float | None = None
    top_p: float | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    stop_sequences: list[str] | None = None
    thinking_level: ThinkingLevel | None = None
    thinking_summaries: ThinkingSummaries | None = None
    tool_choice: ToolChoice | None = None
    image_config: ImageConfig | None = None
    speech_config: SpeechConfigs | None = None
    transcription_config: dict[str, Any] | None = None
    video_config: dict[str, Any] | None = None


class SafetySetting(BaseModel):
    """reference §3.9: a harm category and the threshold to block it at."""

    model_config = ConfigDict(extra="forbid")
    type: HarmCategory
    threshold: HarmThreshold
    method: Literal["severity", "probability"] | None = None


class FunctionTool(BaseModel):
    """A client-side function the model may call (reference §3.5)."""

    model_config = _open
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class McpServerTool(BaseModel):
    """An MCP server Propylon itself calls (Streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["mcp_server"]
    name: str = Field(min_length=1)
    url: str
    headers: dict[str, str] | None = None
    allowed_tools: list[AllowedTools] | None = None


class GoogleSearchTool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["google_search"]
    search_types: list[Literal["web_search", "image_search", "enterprise_web_search"]] | None = None


class BareTool(BaseModel):
    """`url_context` and `code_execution`: built-in tools without settings."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["url_context", "code_execution"]


_tool_validators: dict[str, TypeAdapter[Any]] = {
    "function": TypeAdapter(FunctionTool),
    "mcp_server": TypeAdapter(McpServerTool),
    "google_search": TypeAdapter(GoogleSearchTool),
    "url_context": TypeAdapter(BareTool),
    "code_execution": TypeAdapter(BareTool),
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
    response_mime_type: Literal["application/json", "text/plain"] | None = None
    response_modalities: list[ResponseModality] | None = None
    safety_settings: list[SafetySetting] | None = None
    stream: bool = False
    background: bool = False
    store: bool = True
    previous_interaction_id: str | None = None
    continuation_token: str | None = None
    cached_content: str | None = None
    environment: str | dict[str, Any] | None = None
    labels: dict[str, str] | None = None
    service_tier: ServiceTier | None = None
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
                raise ValueError(_errors(exc, prefix=f"tools.{index}")) from None
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
        if self.model and self.cached_content is not None:
            raise ValueError(
                "`cached_content` is not supported: Propylon has no cached-contents resource "
                "yet; send the content in `input` or the history"
            )
        if self.model and self.environment is not None:
            raise ValueError(
                "`environment` is for Google-hosted agents (`agent`); a model run has none"
            )
        return self

    def echoed_fields(self) -> dict[str, Any]:
        """The request fields the Interaction resource echoes (reference §4.1). `service_tier`
        only orders the background queue: a foreground run does not echo it (not honoured)."""
        exclude = {"input", "stream", "background", "store", "continuation_token"}
        if not self.background:
            exclude.add("service_tier")
        return self.model_dump(exclude_none=True, exclude=exclude)


def queue_priority(service_tier: str | None) -> int:
    """The background queue priority of a `service_tier` (unset: `standard`)."""
    return _TIER_PRIORITY.get(service_tier or "standard", 1)


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
    list of entries, or a raw JSON Schema. Media entries are `output_media_of`'s.
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
        elif kind not in _MEDIA_FORMATS:
            return entry  # a raw JSON Schema
    return None


# response_format media entry type -> the fields Propylon maps (into `image_config`)
_MEDIA_FORMATS: dict[str, dict[str, str]] = {
    "image": {"aspect_ratio": "aspect_ratio", "image_size": "image_size"},
    "audio": {},
    "video": {},
}


def output_media_of(request: CreateInteraction) -> tuple[list[str], dict[str, Any]]:
    """The output modalities a request asks for (`response_modalities` and the media
    entries of `response_format`) and the `image_config` its image entry implies.

    Raises InvalidArgument naming an entry field that cannot be honoured: answers arrive
    inline (`delivery: uri` is refused) in the upstream's own encoding (`mime_type`,
    `sample_rate`, `bit_rate`, `duration`, ... are refused).
    """
    modalities: list[str] = list(dict.fromkeys(request.response_modalities or []))
    image_config: dict[str, Any] = {}
    value = request.response_format
    entries = value if isinstance(value, list) else [value] if value is not None else []
    media = [e for e in entries if e.get("type") in _MEDIA_FORMATS]
    if media and len(media) < len(entries) and "text" not in modalities:
        modalities.insert(0, "text")  # a text entry (or a schema) beside the media
    for index, entry in enumerate(entries):
        kind = entry.get("type")
        if kind not in _MEDIA_FORMATS:
            continue
        if kind not in modalities:
            modalities.append(str(kind))
        for name, setting in entry.items():
            where = f"`response_format{'.' + str(index) if isinstance(value, list) else ''}"
            if name == "type" or (name == "delivery" and setting == "inline"):
                continue
            if name not in _MEDIA_FORMATS[str(kind)]:
                raise InvalidArgument(
                    f"{where}.{name}`: not supported; media answers come inline, in the "
                    "model's own encoding"
                )
            image_config[_MEDIA_FORMATS[str(kind)][name]] = setting
    if image_config:
        try:
            ImageConfig.model_validate(image_config)
        except ValidationError as exc:
            raise InvalidArgument(_describe(exc, prefix="response_format")) from None
    return modalities, image_config


def _dump(items: Sequence[BaseModel]) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in items]


def _describe(exc: ValidationError, prefix: str = "") -> str:
    return "invalid request: " + _errors(exc, prefix)


def _errors(exc: ValidationError, prefix: str = "") -> str:
    """Up to three errors as `field.path: message`. Union branches (pydantic puts their names,
    such as `literal[...]` or a class name, into the location) are left out, and only the
    first error of each field is kept, so a bad enum value reads as its allowed values."""
    parts: list[str] = []
    seen: set[str] = set()
    for error in exc.errors():
        path = [p for p in (prefix, *error["loc"]) if p != "" and not _is_branch(p)]
        loc = ".".join(str(p) for p in path)
        if loc in seen:
            continue
        seen.add(loc)
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
        if len(parts) == 3:
            break
    return "; ".join(parts)


def _is_branch(part: int | str) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or "[" in part)
