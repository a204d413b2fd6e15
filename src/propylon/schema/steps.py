"""Pydantic models of content and steps (reference §3.2, §3.3, §4.3), as a request's `input`
carries them: the only place that knows their JSON field names. Open models (`extra="allow"`):
fields Propylon does not read are kept as sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

__all__ = ["CONTENT_TYPES", "STEP_TYPES", "Content", "InputShape", "Step"]

CONTENT_TYPES = frozenset({"text", "image", "audio", "video", "document"})
# Steps of server-side tools, which a client may replay in a stateless history (reference §4.3).
# Those without a step model of their own share ToolCallStep and ToolResultStep.
OtherToolCallType = Literal[
    "google_maps_call", "file_search_call", "retrieval_call", "tool_search_call", "processing_call"
]
OtherToolResultType = Literal[
    "google_maps_result",
    "file_search_result",
    "retrieval_result",
    "tool_search_result",
    "processing_result",
]
ToolCallType = Literal[
    "code_execution_call", "google_search_call", "url_context_call", OtherToolCallType
]
ToolResultType = Literal[
    "code_execution_result", "google_search_result", "url_context_result", OtherToolResultType
]
STEP_TYPES = frozenset(
    {
        "user_input",
        "model_output",
        "thought",
        "function_call",
        "function_result",
        "mcp_server_tool_call",
        "mcp_server_tool_result",
        *get_args(ToolCallType),
        *get_args(ToolResultType),
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


class McpToolCallStep(BaseModel):
    """A call of a tool on an MCP server, replayed by a client."""

    model_config = _open
    type: Literal["mcp_server_tool_call"]
    id: str
    name: str
    server_name: str
    arguments: dict[str, Any]


class McpToolResultStep(BaseModel):
    model_config = _open
    type: Literal["mcp_server_tool_result"]
    call_id: str
    result: Any
    name: str | None = None
    server_name: str | None = None


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


class ToolCallStep(BaseModel):
    """Another server-side tool's call (maps, file search, ...), replayed by a client."""

    model_config = _open
    type: OtherToolCallType
    id: str
    arguments: dict[str, Any] | None = None
    signature: str | None = None


class ToolResultStep(BaseModel):
    """Another server-side tool's result, replayed by a client."""

    model_config = _open
    type: OtherToolResultType
    call_id: str
    result: Any = None
    is_error: bool | None = None
    signature: str | None = None


Step = Annotated[
    ContentStep
    | ThoughtStep
    | FunctionCallStep
    | FunctionResultStep
    | McpToolCallStep
    | McpToolResultStep
    | GoogleSearchCallStep
    | GoogleSearchResultStep
    | UrlContextCallStep
    | UrlContextResultStep
    | CodeExecutionCallStep
    | CodeExecutionResultStep
    | ToolCallStep
    | ToolResultStep,
    Field(discriminator="type"),
]
# One item of `input`: a content or a step (a list must not mix them: normalize_input).
InputItem = Annotated[
    TextContent
    | MediaContent
    | ContentStep
    | ThoughtStep
    | FunctionCallStep
    | FunctionResultStep
    | McpToolCallStep
    | McpToolResultStep
    | GoogleSearchCallStep
    | GoogleSearchResultStep
    | UrlContextCallStep
    | UrlContextResultStep
    | CodeExecutionCallStep
    | CodeExecutionResultStep
    | ToolCallStep
    | ToolResultStep,
    Field(discriminator="type"),
]


def _input_form(value: Any) -> str:
    if isinstance(value, str):
        return "[string]"
    return "[list]" if isinstance(value, list) else "[item]"


# reference §3.3: a string, one content or step, or a list of them. The tags are bracketed
# so that error messages leave them out of the field path (schema.common.errors_of).
InputShape = Annotated[
    Annotated[str, Tag("[string]")]
    | Annotated[InputItem, Tag("[item]")]
    | Annotated[list[InputItem], Tag("[list]")],
    Discriminator(_input_form),
]
