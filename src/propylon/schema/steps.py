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
ToolCallType = Literal[
    "code_execution_call",
    "google_search_call",
    "url_context_call",
    "google_maps_call",
    "file_search_call",
    "retrieval_call",
    "tool_search_call",
    "processing_call",
]
ToolResultType = Literal[
    "code_execution_result",
    "google_search_result",
    "url_context_result",
    "google_maps_result",
    "file_search_result",
    "retrieval_result",
    "tool_search_result",
    "processing_result",
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


class ToolCallStep(BaseModel):
    """A server-side tool's call (code execution, search, ...), replayed by a client."""

    model_config = _open
    type: ToolCallType
    id: str
    arguments: dict[str, Any] | None = None
    signature: str | None = None


class ToolResultStep(BaseModel):
    """A server-side tool's result, replayed by a client."""

    model_config = _open
    type: ToolResultType
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
    | ToolCallStep
    | ToolResultStep,
    Field(discriminator="type"),
]


def _input_form(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "item"


# reference §3.3: a string, one content or step, or a list of them.
InputShape = Annotated[
    Annotated[str, Tag("string")]
    | Annotated[InputItem, Tag("item")]
    | Annotated[list[InputItem], Tag("list")],
    Discriminator(_input_form),
]
