"""Pydantic models of OpenAI's CreateResponse and compact bodies: the only place that knows
their JSON field names (the input items are response_items'), and the translation of a
CreateResponse into a CreateInteraction body.

A Response is a view of an interaction (docs/openai-responses.md): `input` items become steps,
`instructions` (with any system or developer messages) the system instruction, the sampling
fields `generation_config`, `text.format` the `response_format`, `metadata` the labels. Every
field is honoured, refused with 400 naming it, or harmless (documented); unknown ones are
refused. Validation failures become InvalidArgument (HTTP 400).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from propylon.errors import InvalidArgument
from propylon.schema.common import JsonSchema, Url, validated
from propylon.schema.openai.response_items import Input, input_steps

__all__ = [
    "CompactRequest",
    "CreateResponse",
    "include_problem",
    "parse_compact",
    "parse_create_response",
    "to_create_interaction",
]

_closed = ConfigDict(extra="forbid")


class FunctionTool(BaseModel):
    """A function the model may call. `strict` is kept and echoed (docs/openai-responses.md)."""

    model_config = _closed
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: JsonSchema | None = None
    strict: bool | None = None


class McpTool(BaseModel):
    """An MCP server Propylon calls itself, as on the Interactions surface."""

    model_config = _closed
    type: Literal["mcp"]
    server_label: str = Field(min_length=1)
    server_url: Url | None = None
    headers: dict[str, str] | None = None
    allowed_tools: list[str] | dict[str, Any] | None = None
    require_approval: Literal["never"] | dict[str, Any] | None = None
    server_description: str | None = None

    @model_validator(mode="after")
    def _supported(self) -> McpTool:
        if not self.server_url:
            raise ValueError("`server_url` is required: Propylon has no MCP connectors")
        if isinstance(self.require_approval, dict):
            never = self.require_approval.get("never")
            if set(self.require_approval) != {"never"} or not isinstance(never, dict):
                raise ValueError(
                    "`require_approval`: only 'never' is supported (Propylon runs MCP calls "
                    "itself, without approval requests)"
                )
        if isinstance(self.allowed_tools, dict):
            names = self.allowed_tools.get("tool_names")
            if set(self.allowed_tools) != {"tool_names"} or not isinstance(names, list):
                raise ValueError("`allowed_tools`: a list of names or `{tool_names: [...]}`")
        return self

    def tool_names(self) -> list[str] | None:
        if isinstance(self.allowed_tools, dict):
            return [str(name) for name in self.allowed_tools["tool_names"]]
        return self.allowed_tools


def _tool_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"[{kind}]" if kind in ("function", "mcp") else None


Tool = Annotated[
    Annotated[FunctionTool, Tag("[function]")] | Annotated[McpTool, Tag("[mcp]")],
    Discriminator(
        _tool_type,
        custom_error_type="tool_type",
        custom_error_message="unsupported tool `type`; Propylon runs 'function' and 'mcp' tools",
    ),
]


class NamedFunction(BaseModel):
    model_config = _closed
    type: Literal["function"]
    name: str


class AllowedTools(BaseModel):
    model_config = _closed
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[NamedFunction]


def _choice_type(value: Any) -> str | None:
    if isinstance(value, str):
        return "[string]"
    kind = value.get("type") if isinstance(value, dict) else None
    return f"[{kind}]" if kind in ("function", "allowed_tools") else None


ToolChoice = Annotated[
    Annotated[Literal["auto", "none", "required"], Tag("[string]")]
    | Annotated[NamedFunction, Tag("[function]")]
    | Annotated[AllowedTools, Tag("[allowed_tools]")],
    Discriminator(
        _choice_type,
        custom_error_type="tool_choice_type",
        custom_error_message="`tool_choice` is 'auto', 'none', 'required', "
        "{type: 'function', name} or {type: 'allowed_tools', mode, tools}",
    ),
]


class TextFormatText(BaseModel):
    model_config = _closed
    type: Literal["text"]


class TextFormatJsonObject(BaseModel):
    model_config = _closed
    type: Literal["json_object"]


class TextFormatJsonSchema(BaseModel):
    model_config = _closed
    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    schema_: JsonSchema = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


def _format_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"[{kind}]" if kind in ("text", "json_object", "json_schema") else None


TextFormat = Annotated[
    Annotated[TextFormatText, Tag("[text]")]
    | Annotated[TextFormatJsonObject, Tag("[json_object]")]
    | Annotated[TextFormatJsonSchema, Tag("[json_schema]")],
    Discriminator(
        _format_type,
        custom_error_type="format_type",
        custom_error_message="`text.format.type` is 'text', 'json_object' or 'json_schema'",
    ),
]


class TextConfig(BaseModel):
    model_config = _closed
    format: TextFormat | None = None
    verbosity: Literal["medium"] | None = None  # the only one every model honours: the default


class ReasoningConfig(BaseModel):
    model_config = _closed
    effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(BaseModel):
    model_config = _closed
    include_obfuscation: bool | None = None  # harmless: Propylon never pads its events


_TIERS = {"default": "standard", "flex": "flex", "priority": "priority"}
_HARMLESS_INCLUDES = frozenset(
    {
        "reasoning.encrypted_content",
        "message.input_image.image_url",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "code_interpreter_call.outputs",
        "computer_call_output.output.image_url",
    }
)


# Fields whose other values Propylon cannot honour: the value it takes, and why.
_ACCEPTED: dict[str, Any] = {
    "parallel_tool_calls": True,
    "truncation": "disabled",
    "top_logprobs": 0,
}
_REFUSED = {
    "parallel_tool_calls": "false is not supported: a model may call several functions at once",
    "truncation": "'auto' is not supported: Propylon never drops input items",
    "top_logprobs": "log probabilities are not available; only 0 is accepted",
    "max_tool_calls": "not supported: the server's `max_tool_rounds` bounds tool calls",
}


class CreateResponse(BaseModel):
    """OpenAI's CreateResponse body (`POST /v1/responses`)."""

    model_config = _closed

    model: str = Field(min_length=1)
    input: Input | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool | None = None
    background: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_output_tokens: int | None = Field(default=None, gt=0, le=2**31 - 1)
    metadata: dict[str, str] | None = None
    reasoning: ReasoningConfig | None = None
    service_tier: Literal["auto", "default", "flex", "priority"] | None = None
    truncation: Literal["disabled", "auto"] | None = None
    include: list[str] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tool_calls: int | None = Field(default=None, ge=1)
    # identifiers for OpenAI's own abuse monitoring and prompt caching: harmless here
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: Literal["in_memory", "24h", "in-memory"] | None = None

    @field_validator("parallel_tool_calls", "truncation", "top_logprobs", "max_tool_calls")
    @classmethod
    def _honoured(cls, value: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        if value is not None and value != _ACCEPTED.get(name):
            raise ValueError(_REFUSED[name])
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None and len(value) > 16:
            raise ValueError("at most 16 pairs")
        for key, item in (value or {}).items():
            if len(key) > 64 or len(item) > 512:
                raise ValueError("keys are at most 64 characters, values at most 512")
        return value

    @field_validator("include")
    @classmethod
    def _include(cls, value: list[str] | None) -> list[str] | None:
        problem = include_problem(value or [])
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("tools")
    @classmethod
    def _unique(cls, value: list[Any] | None) -> list[Any] | None:
        names = [tool.name for tool in value or [] if isinstance(tool, FunctionTool)]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"function `{name}` is declared twice")
        return value


def include_problem(values: list[str]) -> str | None:
    """Why `include` (of a create, or a read's query) cannot be honoured, or None: only log
    probabilities are refused; the rest name outputs Propylon never has."""
    for name in values:
        if name not in _HARMLESS_INCLUDES:
            return f"`{name}` is not supported (no log probabilities)"
    return None


def parse_create_response(body: Any) -> CreateResponse:
    """Validate a decoded JSON body. Raises InvalidArgument naming the offending field (also
    a `tool_choice` naming a function `tools` does not declare)."""
    request = validated(CreateResponse, body)
    choice = request.tool_choice
    if choice == "required" and not request.tools:
        raise InvalidArgument(
            "`tool_choice` `required` forces a tool call, but `tools` declares none",
            param="tool_choice",
        )
    if isinstance(choice, NamedFunction | AllowedTools):
        named = [choice] if isinstance(choice, NamedFunction) else choice.tools
        declared = {t.name for t in request.tools or [] if isinstance(t, FunctionTool)}
        for function in named:
            if function.name not in declared:
                raise InvalidArgument(
                    f"`tool_choice` names function `{function.name}`, which `tools` does not "
                    "declare",
                    param="tool_choice",
                )
    return request


class CompactRequest(BaseModel):
    """The body of `POST /v1/responses/compact`. `instructions` and `prompt_cache_key` are
    harmless: instructions are per request, never part of a compacted conversation."""

    model_config = _closed
    model: str = Field(min_length=1)
    input: Input | None = None
    previous_response_id: str | None = None
    instructions: str | None = None
    prompt_cache_key: str | None = None

    def input_steps(self) -> list[dict[str, Any]]:
        """`input` as steps; system and developer messages are not part of a conversation
        that is compacted (they are instructions)."""
        return input_steps(self.input)[0]


def parse_compact(body: Any) -> CompactRequest:
    """Validate a decoded compact body. Raises InvalidArgument naming the offending field."""
    return validated(CompactRequest, body)


def to_create_interaction(request: CreateResponse) -> dict[str, Any]:
    """The CreateInteraction body (before its own validation) that runs `request`: the
    Response is a view of that interaction. Raises InvalidArgument naming an OpenAI field the
    interaction cannot carry."""
    if request.store is False and request.previous_response_id:
        raise InvalidArgument(
            "`previous_response_id` needs `store` true: a response with `store` false is "
            "not kept; send the whole conversation as `input`",
            param="previous_response_id",
        )
    if request.store is False and request.background:
        raise InvalidArgument("`background` needs `store` true", param="background")
    steps, system = input_steps(request.input)
    instructions = "\n\n".join([*([request.instructions] if request.instructions else []), *system])
    body: dict[str, Any] = {
        "model": request.model,
        "input": steps if steps else None,
        "stream": bool(request.stream),
        "background": bool(request.background),
        "store": request.store is not False,
    }
    if instructions:
        body["system_instruction"] = instructions
    if request.previous_response_id:
        body["previous_interaction_id"] = request.previous_response_id
    if request.metadata:
        body["labels"] = request.metadata
    if request.tools:
        body["tools"] = [_tool(tool) for tool in request.tools]
    config = _generation_config(request)
    if config:
        body["generation_config"] = config
    form = request.text.format if request.text else None
    if isinstance(form, TextFormatJsonObject):
        body["response_mime_type"] = "application/json"
    elif isinstance(form, TextFormatJsonSchema):
        # `name` (and `strict`, `description`) stay with the entry: the Response echoes them
        entry: dict[str, Any] = {"type": "text", "mime_type": "application/json"}
        entry.update(schema=form.schema_, name=form.name)
        if form.strict is not None:
            entry["strict"] = form.strict
        if form.description is not None:
            entry["description"] = form.description
        body["response_format"] = entry
    tier = _TIERS.get(request.service_tier or "")
    if tier is not None:
        body["service_tier"] = tier
    return body


def _generation_config(request: CreateResponse) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for name in ("temperature", "top_p", "max_output_tokens"):
        value = getattr(request, name)
        if value is not None:
            config[name] = value
    choice = request.tool_choice
    if choice == "required":
        config["tool_choice"] = "any"
    elif isinstance(choice, str):
        config["tool_choice"] = choice
    elif isinstance(choice, NamedFunction):
        config["tool_choice"] = {"allowed_tools": {"mode": "any", "tools": [choice.name]}}
    elif isinstance(choice, AllowedTools):
        mode = "any" if choice.mode == "required" else "auto"
        names = [tool.name for tool in choice.tools]
        config["tool_choice"] = {"allowed_tools": {"mode": mode, "tools": names}}
    reasoning = request.reasoning
    if reasoning is not None:
        if reasoning.effort is not None:
            config["thinking_level"] = reasoning.effort
        if (reasoning.summary or reasoning.generate_summary) is not None:
            config["thinking_summaries"] = "auto"
    return config


def _tool(tool: FunctionTool | McpTool) -> dict[str, Any]:
    if isinstance(tool, FunctionTool):
        return tool.model_dump(exclude_none=True)
    server: dict[str, Any] = {
        "type": "mcp_server",
        "name": tool.server_label,
        "url": tool.server_url,
    }
    if tool.headers:
        server["headers"] = tool.headers
    names = tool.tool_names()
    if names is not None:
        server["allowed_tools"] = [{"tools": names}]
    return server
