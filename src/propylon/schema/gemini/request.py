"""Pydantic models of the generateContent family's request bodies (Gemini API reference:
`GenerateContentRequest`, `Content`, `Part`, `Tool`, `ToolConfig`, `GenerationConfig`,
`SafetySetting`, `CountTokensRequest`, `EmbedContentRequest`): the only place that knows their
JSON field names.

Google accepts both spellings of every field, `systemInstruction` and `system_instruction`,
and so do these models (camelCase aliases, snake_case names). Values the rest of Propylon
reads as JSON (function arguments and responses, schemas) are kept as sent. A field these
models do not know is kept too (`model_extra`): a `gemini` target receives the body as sent,
and the translation for other targets (schema/gemini/turn.py) refuses it naming the field.
Validation failures become InvalidArgument (HTTP 400) naming the field.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from propylon.errors import InvalidArgument
from propylon.schema.common import describe

__all__ = [
    "BatchEmbedContentsRequest",
    "Blob",
    "Content",
    "CountTokensRequest",
    "EmbedContentRequest",
    "FileData",
    "FunctionCall",
    "FunctionCallingConfig",
    "FunctionDeclaration",
    "FunctionResponse",
    "GenerateContentRequest",
    "GenerationConfig",
    "Part",
    "SafetySetting",
    "ThinkingConfig",
    "Tool",
    "ToolConfig",
    "Wire",
    "parse",
]

M = TypeVar("M", bound="Wire")
Role = Literal["user", "model", "function"]  # `function`: older clients' function results
CallingMode = Literal["MODE_UNSPECIFIED", "AUTO", "ANY", "NONE", "VALIDATED"]


class Wire(BaseModel):
    """A Gemini wire object: camelCase or snake_case keys; unknown keys kept in
    `model_extra` (see the module's docstring)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="allow",
    )

    def unknown(self) -> list[str]:
        """The keys of this object that no field of the model knows, as sent."""
        return list(self.model_extra or {})


class Blob(Wire):
    mime_type: str = Field(min_length=1)
    data: str  # base64


class FileData(Wire):
    file_uri: str = Field(min_length=1)
    mime_type: str | None = None


class FunctionCall(Wire):
    name: str = Field(min_length=1)
    id: str | None = None
    args: dict[str, Any] | None = None


class FunctionResponse(Wire):
    name: str = Field(min_length=1)
    id: str | None = None
    response: dict[str, Any] = Field(default_factory=dict)


class Part(Wire):
    """One part: exactly one of text, inline_data, file_data, function_call,
    function_response, executable_code, code_execution_result (checked in turn.py)."""

    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: dict[str, Any] | None = None
    code_execution_result: dict[str, Any] | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    video_metadata: dict[str, Any] | None = None
    media_resolution: dict[str, Any] | None = None


class Content(Wire):
    parts: list[Part] = Field(default_factory=list)
    role: Role | None = None


class FunctionDeclaration(Wire):
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None  # Google's Schema (OpenAPI subset)
    parameters_json_schema: Any = None  # a JSON Schema
    response: dict[str, Any] | None = None
    response_json_schema: Any = None
    behavior: str | None = None


class Tool(Wire):
    function_declarations: list[FunctionDeclaration] | None = None
    google_search: dict[str, Any] | None = None
    code_execution: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None


class FunctionCallingConfig(Wire):
    mode: CallingMode | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(Wire):
    function_calling_config: FunctionCallingConfig | None = None


class ThinkingConfig(Wire):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: (
        Literal["THINKING_LEVEL_UNSPECIFIED", "MINIMAL", "LOW", "MEDIUM", "HIGH"] | None
    ) = None


class GenerationConfig(Wire):
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = Field(default=None, gt=0, le=2**31 - 1)
    stop_sequences: list[str] | None = None
    seed: int | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: Any = None
    response_modalities: list[str] | None = None
    thinking_config: ThinkingConfig | None = None


class SafetySetting(Wire):
    category: str
    threshold: str
    method: str | None = None


class GenerateContentRequest(Wire):
    """`POST /{v}/models/{m}:generateContent` and `:streamGenerateContent`."""

    contents: list[Content] = Field(min_length=1)
    model: str | None = None  # inside countTokens' generateContentRequest
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: list[SafetySetting] | None = None
    cached_content: str | None = None
    labels: dict[str, str] | None = None


class CountTokensRequest(Wire):
    """`POST /{v}/models/{m}:countTokens`: `contents`, or a whole `generateContentRequest`."""

    contents: list[Content] | None = None
    generate_content_request: GenerateContentRequest | None = None


# The Gemini API's `TaskType` enum (the SDK types it as a plain string).
TaskType = Literal[
    "TASK_TYPE_UNSPECIFIED",
    "RETRIEVAL_QUERY",
    "RETRIEVAL_DOCUMENT",
    "SEMANTIC_SIMILARITY",
    "CLASSIFICATION",
    "CLUSTERING",
    "QUESTION_ANSWERING",
    "FACT_VERIFICATION",
    "CODE_RETRIEVAL_QUERY",
]


class EmbedContentRequest(Wire):
    """`POST /{v}/models/{m}:embedContent`, and each of `:batchEmbedContents`' requests."""

    content: Content
    model: str | None = None
    task_type: TaskType | None = None
    title: str | None = None
    output_dimensionality: int | None = Field(default=None, gt=0, le=65536)


class BatchEmbedContentsRequest(Wire):
    # Google's bound ("at most 100 requests can be in one batch"), which clients batch by
    requests: list[EmbedContentRequest] = Field(min_length=1, max_length=100)


def parse(model: type[M], body: Any) -> M:
    """`body` validated as `model`. Raises InvalidArgument naming the field."""
    if not isinstance(body, dict):
        raise InvalidArgument("invalid request: the body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidArgument(describe(exc)) from None
