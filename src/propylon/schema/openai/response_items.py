"""Pydantic models of the items of a Response's `input` (OpenAI's wire names), and their
translation into Interactions steps (`input_steps`): the only place that knows their JSON field
names. Items a client sends back as it got them (with `id`, `status`, `annotations`...) are open
models: the fields Propylon does not read are ignored, as OpenAI does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from propylon.errors import InvalidArgument
from propylon.schema.common import Url

__all__ = ["Input", "compaction_token", "input_steps"]

_open = ConfigDict(extra="allow")


class InputText(BaseModel):
    model_config = _open
    type: Literal["input_text"]
    text: str


class OutputText(BaseModel):
    model_config = _open
    type: Literal["output_text"]
    text: str


class Refusal(BaseModel):
    model_config = _open
    type: Literal["refusal"]
    refusal: str


class InputImage(BaseModel):
    """An image by URL: `data:` URLs are sent inline, others by reference."""

    model_config = _open
    type: Literal["input_image"]
    image_url: Url | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto", "original"] | None = None

    @model_validator(mode="after")
    def _url(self) -> InputImage:
        if self.file_id is not None:
            raise ValueError("`file_id` is not supported: send the image as `image_url`")
        if not self.image_url:
            raise ValueError("`image_url` is required")
        return self


class InputFile(BaseModel):
    """A file, inline (`file_data`, base64 or a `data:` URL) or by `file_url`."""

    model_config = _open
    type: Literal["input_file"]
    file_data: str | None = None
    file_url: Url | None = None
    file_id: str | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _data_or_url(self) -> InputFile:
        if self.file_id is not None:
            raise ValueError("`file_id` is not supported: send `file_data` or `file_url`")
        if not self.file_data and not self.file_url:
            raise ValueError("`file_data` or `file_url` is required")
        return self


def _part_type(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"[{kind}]" if kind in _PART_TYPES else None


_PART_TYPES = ("input_text", "output_text", "refusal", "input_image", "input_file")
Part = Annotated[
    Annotated[InputText, Tag("[input_text]")]
    | Annotated[OutputText, Tag("[output_text]")]
    | Annotated[Refusal, Tag("[refusal]")]
    | Annotated[InputImage, Tag("[input_image]")]
    | Annotated[InputFile, Tag("[input_file]")],
    Discriminator(
        _part_type,
        custom_error_type="part_type",
        custom_error_message="unknown content `type`; it is one of "
        + ", ".join(f"'{t}'" for t in _PART_TYPES),
    ),
]


def _string_or_list(value: Any) -> str | None:
    """The branch of a string-or-list union `value` takes (`content`, `input`); None for
    anything else, which the union's own error names."""
    if isinstance(value, str):
        return "[string]"
    return "[list]" if isinstance(value, list) else None


Content = Annotated[
    Annotated[str, Tag("[string]")] | Annotated[list[Part], Tag("[list]")],
    Discriminator(
        _string_or_list,
        custom_error_type="content_shape",
        custom_error_message="`content` is a string or a list of content parts",
    ),
]


class Message(BaseModel):
    """A message; `type` may be left out (OpenAI's easy input message)."""

    model_config = _open
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: Content


class FunctionCall(BaseModel):
    """A call the model made, sent back: `arguments` is a JSON object as a string."""

    model_config = _open
    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str

    @model_validator(mode="after")
    def _json_object(self) -> FunctionCall:
        try:
            value = orjson.loads(self.arguments) if self.arguments.strip() else {}
        except orjson.JSONDecodeError:
            raise ValueError("`arguments` must be a JSON object as a string") from None
        if not isinstance(value, dict):
            raise ValueError("`arguments` must be a JSON object as a string")
        return self


class FunctionCallOutput(BaseModel):
    model_config = _open
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: Content


class SummaryText(BaseModel):
    model_config = _open
    type: Literal["summary_text"]
    text: str


class Reasoning(BaseModel):
    """A reasoning item the model produced, sent back."""

    model_config = _open
    type: Literal["reasoning"]
    summary: list[SummaryText] = Field(default_factory=list)
    encrypted_content: str | None = None


class McpCall(BaseModel):
    """A call of a tool on an MCP server (Propylon ran it), sent back."""

    model_config = _open
    type: Literal["mcp_call"]
    id: str
    name: str
    server_label: str
    arguments: str
    output: str | None = None
    error: Any = None


class Compaction(BaseModel):
    """A `compaction` item from `/v1/responses/compact`: the conversation it carries."""

    model_config = _open
    type: Literal["compaction"]
    encrypted_content: str = Field(min_length=1)

    @model_validator(mode="after")
    def _ours(self) -> Compaction:
        self.steps()
        return self

    def steps(self) -> list[dict[str, Any]]:
        """The steps the item carries. Raises ValueError for an item Propylon did not make."""
        raw = self.encrypted_content.removeprefix(_COMPACTION)
        try:
            if not self.encrypted_content.startswith(_COMPACTION):
                raise ValueError
            steps = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        except (ValueError, binascii.Error):
            raise ValueError("`encrypted_content` is not a compaction Propylon made") from None
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise ValueError("`encrypted_content` is not a compaction Propylon made")
        return steps


_COMPACTION = "pc1."


def compaction_token(steps: list[dict[str, Any]]) -> str:
    """The `encrypted_content` of a compaction item carrying `steps` (base64url JSON: Propylon
    compacts losslessly; the item moves a conversation into a new chain)."""
    return _COMPACTION + base64.urlsafe_b64encode(orjson.dumps(steps)).decode().rstrip("=")


def _item_type(value: Any) -> str | None:
    kind = value.get("type", "message") if isinstance(value, dict) else None
    return f"[{kind}]" if kind in _ITEM_TYPES else None


_ITEM_TYPES = (
    "message",
    "function_call",
    "function_call_output",
    "reasoning",
    "mcp_call",
    "compaction",
)
Item = Annotated[
    Annotated[Message, Tag("[message]")]
    | Annotated[Compaction, Tag("[compaction]")]
    | Annotated[FunctionCall, Tag("[function_call]")]
    | Annotated[FunctionCallOutput, Tag("[function_call_output]")]
    | Annotated[Reasoning, Tag("[reasoning]")]
    | Annotated[McpCall, Tag("[mcp_call]")],
    Discriminator(
        _item_type,
        custom_error_type="item_type",
        custom_error_message="unsupported item `type`; Propylon takes "
        + ", ".join(f"'{t}'" for t in _ITEM_TYPES),
    ),
]


# `input`: a string (one user message) or a list of items; the tags stay out of error paths
Input = Annotated[
    Annotated[str, Tag("[string]")] | Annotated[list[Item], Tag("[list]")],
    Discriminator(
        _string_or_list,
        custom_error_type="input_shape",
        custom_error_message="`input` is a string or a list of items",
    ),
]


def input_steps(value: str | list[Any] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """`input` (validated) as steps, and the texts of its system and developer messages
    (which join the system instruction: a step has no such role). Raises InvalidArgument for
    a system message with other than text, or an `mcp_call` whose arguments are not JSON."""
    if value is None:
        return [], []
    if isinstance(value, str):
        return [{"type": "user_input", "content": [{"type": "text", "text": value}]}], []
    steps: list[dict[str, Any]] = []
    system: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, Message):
            if item.role in ("system", "developer"):
                system.append(_text_of(item.content, f"input.{index}.content"))
            else:
                kind = "user_input" if item.role == "user" else "model_output"
                steps.append({"type": kind, "content": _contents(item.content)})
        elif isinstance(item, FunctionCall):
            arguments = orjson.loads(item.arguments) if item.arguments.strip() else {}
            steps.append(
                {"type": "function_call", "id": item.call_id, "name": item.name,
                 "arguments": arguments}
            )  # fmt: skip
        elif isinstance(item, FunctionCallOutput):
            output = item.output
            result = output if isinstance(output, str) else _contents(output)
            steps.append({"type": "function_result", "call_id": item.call_id, "result": result})
        elif isinstance(item, Compaction):
            steps.extend(item.steps())
        elif isinstance(item, Reasoning):
            thought: dict[str, Any] = {"type": "thought"}
            if item.summary:
                thought["summary"] = [{"type": "text", "text": s.text} for s in item.summary]
            if item.encrypted_content:
                thought["signature"] = item.encrypted_content
            steps.append(thought)
        else:
            steps.extend(_mcp_steps(item))
    return steps, system


def _mcp_steps(item: McpCall) -> list[dict[str, Any]]:
    try:
        arguments = orjson.loads(item.arguments) if item.arguments.strip() else {}
    except orjson.JSONDecodeError:
        raise InvalidArgument(f"`mcp_call` `{item.id}`: `arguments` is not JSON") from None
    call = {
        "type": "mcp_server_tool_call",
        "id": item.id,
        "name": item.name,
        "server_name": item.server_label,
        "arguments": arguments if isinstance(arguments, dict) else {},
    }
    result: dict[str, Any] = {
        "type": "mcp_server_tool_result",
        "call_id": item.id,
        "name": item.name,
        "server_name": item.server_label,
        "result": item.output if item.error is None else item.error,
    }
    return [call, result]


def _text_of(content: str | list[Any], where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for part in content:
        if not isinstance(part, InputText | OutputText):
            raise InvalidArgument(
                f"`{where}`: a system or developer message holds text only", param=where
            )
        texts.append(part.text)
    return "".join(texts)


def _contents(content: str | list[Any]) -> list[dict[str, Any]]:
    """Message content as Interactions content items."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    items: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, InputText | OutputText):
            items.append({"type": "text", "text": part.text})
        elif isinstance(part, Refusal):
            items.append({"type": "text", "text": part.refusal})
        elif isinstance(part, InputImage):
            items.append(_media("image", part.image_url or ""))
        else:
            items.append(_file(part))
    return items


def _media(kind: str, url: str, mime_type: str | None = None) -> dict[str, Any]:
    """A `data:` URL inline, any other URL by reference."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media = header.removeprefix("data:").removesuffix(";base64")
        item = {"type": kind, "data": data, "mime_type": media or mime_type}
        return {k: v for k, v in item.items() if v}
    item = {"type": kind, "uri": url, "mime_type": mime_type}
    return {k: v for k, v in item.items() if v}


def _file(part: InputFile) -> dict[str, Any]:
    mime = "application/pdf" if (part.filename or "").lower().endswith(".pdf") else None
    if part.file_url:
        return _media("document", part.file_url, mime)
    data = part.file_data or ""
    if data.startswith("data:"):
        return _media("document", data, mime)
    return {k: v for k, v in {"type": "document", "data": data, "mime_type": mime}.items() if v}
