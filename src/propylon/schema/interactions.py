"""Pydantic models of the CreateInteraction body (reference §3): the only place that knows the
request's JSON field names. Validation failures become InvalidArgument (HTTP 400).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, get_args

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
    "STATUSES",
    "STEP_TYPES",
    "CreateInteraction",
    "InteractionStatus",
    "ServiceTier",
    "idempotency_key_of",
    "json_schema_of",
    "normalize_input",
    "output_media_of",
    "parse_create",
    "queue_priority",
    "without_idempotency_key",
]

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
    mode: ToolChoiceMode | None = None
    tools: list[str] | None = None


class ToolChoiceConfig(BaseModel):
    """`tool_choice` as an object: `{allowed_tools: {mode, tools}}` (reference §3.6)."""

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
    """Which branch of a string-or-object or list-or-object union `value` takes (bracketed,
    so that error messages leave it out of the field path)."""
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
    max_output_tokens: int | None = Field(default=None, gt=0, le=2**31 - 1)
    seed: Int64 | None = None
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


class GoogleSearchTool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["google_search"]
    search_types: list[Literal["web_search", "image_search", "enterprise_web_search"]] | None = None


class BareTool(BaseModel):
    """`url_context` and `code_execution`: built-in tools without settings."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["url_context", "code_execution"]


_TYPED_TOOLS = ("function", "mcp_server", "google_search", "url_context", "code_execution")


class ServerSideTool(BaseModel):
    """Another tool the upstream runs itself; its fields are the upstream's business."""

    model_config = _open
    type: Literal[tuple(t for t in get_args(ServerSideToolType) if t not in _TYPED_TOOLS)]  # type: ignore[valid-type]


def _tool_type(value: Any) -> str | None:
    """A tool's branch, bracketed so that error messages leave it out of the field path."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind in _TYPED_TOOLS:
        return f"[{kind}]"
    return "[server_side]" if kind in get_args(ServerSideToolType) else None


Tool = Annotated[
    Annotated[FunctionTool, Tag("[function]")]
    | Annotated[McpServerTool, Tag("[mcp_server]")]
    | Annotated[GoogleSearchTool, Tag("[google_search]")]
    | Annotated[BareTool, Tag("[url_context]")]
    | Annotated[BareTool, Tag("[code_execution]")]
    | Annotated[ServerSideTool, Tag("[server_side]")],
    Discriminator(
        _tool_type,
        custom_error_type="tool_type",
        custom_error_message="unknown tool `type`; it is one of "
        + ", ".join(f"'{t}'" for t in ("function", "mcp_server", *get_args(ServerSideToolType))),
    ),
]


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
    webhook_config: Annotated[dict[str, Any], KeptAs(WebhookConfig)] | None = None
    # The `Idempotency-Key` header's meaning, in the body: google-genai 3.x refuses the
    # keyword and sends it this way (`extra_body`). Not part of the request: never stored.
    idempotency_key: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _tools_are_well_formed(self) -> CreateInteraction:
        names: set[str] = set()
        for index, tool in enumerate(self.tools or []):
            if tool["type"] == "function":
                if tool["name"] in names:
                    raise ValueError(f"tools.{index}: function `{tool['name']}` is declared twice")
                names.add(tool["name"])
        choice = self.generation_config.tool_choice if self.generation_config else None
        mode = choice.allowed_tools.mode if isinstance(choice, ToolChoiceConfig) else choice
        if mode == "any" and not self.tools:
            raise ValueError(
                "`generation_config.tool_choice`: `any` forces a tool call, but `tools` "
                "declares none"
            )
        # An MCP server's tools are known only once it is called: names are checked without
        # one. Server-side tools are named by their type.
        allowed = choice.allowed_tools.tools if isinstance(choice, ToolChoiceConfig) else None
        if allowed and not any(t["type"] == "mcp_server" for t in self.tools or []):
            known = names | {str(t["type"]) for t in self.tools or []}
            for name in allowed:
                if name not in known:
                    raise ValueError(
                        f"`generation_config.tool_choice.allowed_tools.tools`: `{name}` is "
                        "not a tool that `tools` declares"
                    )
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
        if self.model and self.environment is not None:
            raise ValueError(
                "`environment` is for Google-hosted agents (`agent`); a model run has none"
            )
        return self

    def echoed_fields(self) -> dict[str, Any]:
        """The request fields the Interaction resource echoes (reference §4.1). `service_tier`
        only orders the background queue: a foreground run does not echo it (not honoured)."""
        exclude = {
            "input",
            "stream",
            "background",
            "store",
            "continuation_token",
            "idempotency_key",
        }
        if not self.background:
            exclude.add("service_tier")
        return self.model_dump(exclude_none=True, exclude=exclude)


def queue_priority(service_tier: str | None) -> int:
    """The background queue priority of a `service_tier` (unset: `standard`)."""
    return _TIER_PRIORITY.get(service_tier or "standard", 1)


def idempotency_key_of(header: str | None, request: CreateInteraction) -> str | None:
    """The create's idempotency key: the `Idempotency-Key` header or the body's
    `idempotency_key` (the same key in both is fine). Raises InvalidArgument when they differ."""
    body = request.idempotency_key
    if header is not None and body is not None and header != body:
        raise InvalidArgument(
            "`idempotency_key` differs from the `Idempotency-Key` header: send one key"
        )
    return header if header is not None else body


def without_idempotency_key(body: dict[str, Any]) -> dict[str, Any]:
    """The decoded body as the request it names: without `idempotency_key`, so a repeat
    matches its first request whichever way each sent the key."""
    return {name: value for name, value in body.items() if name != "idempotency_key"}


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
            raise InvalidArgument(describe(exc, prefix="response_format")) from None
    return modalities, image_config


def _dump(items: Sequence[BaseModel]) -> list[dict[str, Any]]:
    return [item.model_dump(exclude_none=True) for item in items]
