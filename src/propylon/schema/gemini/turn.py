"""A generateContent request as a provider Turn, for targets that do not speak generateContent
(echo, embedded, openai). The policy of every field is docs/gemini-api.md's table: honoured,
dropped as harmless, or refused with a 400 naming the field as the client spelled it in
camelCase (`generationConfig.candidateCount`). `gemini` targets get the body as sent instead.

Contents become steps: `user` parts a `user_input` step (text, `inlineData` / `fileData` as
media content) or `function_result` steps; `model` parts `model_output` (text, media),
`thought` (a `thought: true` part's text is its summary; a `thoughtSignature` opens a thought
step carrying it, before the part it rode on, as providers/gemini.py maps them back),
`function_call`, `code_execution_call` / `_result` steps. A call without an `id` gets
`gen_<n>`, and a `functionResponse` without one answers the oldest unanswered call of its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from propylon.errors import InvalidArgument
from propylon.providers.base import Turn
from propylon.schema.gemini.request import (
    Content,
    GenerateContentRequest,
    GenerationConfig,
    Part,
    ToolConfig,
    Wire,
)

__all__ = ["Translated", "google_schema", "translate"]

_MODES = {"MODE_UNSPECIFIED": "auto", "AUTO": "auto", "ANY": "any", "NONE": "none"}
_NO_BLOCKING = {"BLOCK_NONE": "block_none", "OFF": "off"}
# Google's Schema keywords (either spelling) -> JSON Schema's
_SCHEMA_KEYS = {
    "any_of": "anyOf",
    "max_items": "maxItems",
    "min_items": "minItems",
    "max_length": "maxLength",
    "min_length": "minLength",
    "max_properties": "maxProperties",
    "min_properties": "minProperties",
    "property_ordering": "propertyOrdering",
}
_BUILT_IN = ("google_search", "code_execution", "url_context")


@dataclass(slots=True)
class Translated:
    """The Turn for non-gemini targets and what the surface itself does: `validated`: check
    the answer's function calls against their declarations (`VALIDATED` mode)."""

    turn: Turn
    validated: bool = False


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def _refuse_unknown(wire: Wire, where: str) -> None:
    for key in wire.unknown():
        raise InvalidArgument(
            f"`{where}{_camel(key)}` is passed only to `gemini` targets; this model has "
            "a target of another provider"
        )


def translate(request: GenerateContentRequest) -> Translated:
    """The Turn of `request` for targets that are not `gemini`. Raises InvalidArgument naming
    the field for what such targets cannot honour. `cachedContent` is not read here: the
    cached content's fields come merged into the request (service/caches.py)."""
    _refuse_unknown(request, "")
    history = _history(request.contents)
    turn = Turn(history=history, system_instruction=_system(request.system_instruction))
    turn.tools = _tools(request)
    validated = _tool_choice(request.tool_config, turn)
    if request.generation_config is not None:
        _generation(request.generation_config, turn)
    for index, setting in enumerate(request.safety_settings or []):
        _refuse_unknown(setting, f"safetySettings.{index}.")
        if setting.threshold not in _NO_BLOCKING:
            raise InvalidArgument(
                f"`safetySettings.{index}.threshold`: this model has a target with no content "
                f"filter, so `{setting.threshold}` would not be enforced; only `BLOCK_NONE` "
                "and `OFF` are accepted"
            )
    return Translated(turn, validated)


def _system(content: Content | None) -> str | None:
    if content is None:
        return None
    texts = []
    for index, part in enumerate(content.parts):
        if part.text is None or _kinds(part) != ["text"]:
            raise InvalidArgument(f"`systemInstruction.parts.{index}`: only text parts are taken")
        texts.append(part.text)
    return "\n".join(texts) or None


def _kinds(part: Part) -> list[str]:
    names = (
        "text",
        "inline_data",
        "file_data",
        "function_call",
        "function_response",
        "executable_code",
        "code_execution_result",
    )
    return [name for name in names if getattr(part, name) is not None]


def _media(part: Part, where: str) -> dict[str, Any]:
    if part.inline_data is not None:
        mime = part.inline_data.mime_type
        return {"type": _media_kind(mime), "mime_type": mime, "data": part.inline_data.data}
    assert part.file_data is not None
    uri = part.file_data.file_uri
    if not uri.startswith(("http://", "https://")) or "/files/" in uri:
        raise InvalidArgument(
            f"`{where}.fileData.fileUri`: Propylon cannot resolve `{uri}` for this model's "
            "targets (it is no file of this server's Files API); upload it "
            "(`POST /upload/{v}/files`), send the bytes as `inlineData`, or an http(s) URL"
        )
    mime = part.file_data.mime_type or ""
    item = {"type": _media_kind(mime), "uri": uri}
    if mime:
        item["mime_type"] = mime
    return item


def _media_kind(mime: str) -> str:
    kind = mime.split("/")[0].lower()
    return kind if kind in ("image", "audio", "video") else "document"


class _Builder:
    """Appends steps, merging consecutive content of one role into one step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None
        self.unanswered: list[tuple[str, str]] = []  # (name, id) of calls not yet answered
        self.generated = 0

    def content(self, kind: str, item: dict[str, Any]) -> None:
        if self.open is None or self.open["type"] != kind:
            self.open = {"type": kind, "content": []}
            self.steps.append(self.open)
        self.open["content"].append(item)

    def step(self, step: dict[str, Any]) -> None:
        self.open = None
        self.steps.append(step)

    def new_id(self) -> str:
        self.generated += 1
        return f"gen_{self.generated}"


def _history(contents: list[Content]) -> list[dict[str, Any]]:
    built = _Builder()
    for i, content in enumerate(contents):
        _refuse_unknown(content, f"contents.{i}.")
        built.open = None  # a new content is a new step
        role = content.role or "user"
        for j, part in enumerate(content.parts):
            where = f"contents.{i}.parts.{j}"
            _refuse_unknown(part, where + ".")
            for name in ("video_metadata", "media_resolution"):
                if getattr(part, name) is not None:
                    raise InvalidArgument(
                        f"`{where}.{_camel(name)}` is passed only to `gemini` targets"
                    )
            kinds = _kinds(part)
            if len(kinds) != 1:
                found = ", ".join(f"`{_camel(k)}`" for k in kinds) or "none"
                raise InvalidArgument(
                    f"`{where}`: a part holds exactly one of `text`, `inlineData`, `fileData`, "
                    f"`functionCall`, `functionResponse`, `executableCode`, "
                    f"`codeExecutionResult` (found {found})"
                )
            if role in ("user", "function"):
                _user_part(built, part, kinds[0], where)
            else:
                _model_part(built, part, kinds[0], where)
    return built.steps


def _user_part(built: _Builder, part: Part, kind: str, where: str) -> None:
    if part.thought or part.thought_signature:
        raise InvalidArgument(f"`{where}`: thoughts belong to `model` contents")
    if kind == "text":
        built.content("user_input", {"type": "text", "text": part.text})
    elif kind in ("inline_data", "file_data"):
        built.content("user_input", _media(part, where))
    elif kind == "function_response":
        assert part.function_response is not None
        reply = part.function_response
        call_id = reply.id
        match = next(
            (
                c
                for c in built.unanswered
                if c[0] == reply.name and (call_id is None or c[1] == call_id)
            ),
            None,
        )
        if match is not None:
            built.unanswered.remove(match)
            call_id = call_id or match[1]
        result: dict[str, Any] = {
            "type": "function_result",
            "call_id": call_id or built.new_id(),
            "name": reply.name,
            "result": reply.response,
        }
        if set(reply.response) == {"error"}:
            result["is_error"] = True
        built.step(result)
    else:
        raise InvalidArgument(f"`{where}.{_camel(kind)}` belongs to `model` contents")


def _model_part(built: _Builder, part: Part, kind: str, where: str) -> None:
    if part.thought_signature:
        built.step({"type": "thought", "signature": part.thought_signature})
    if kind == "text" and part.thought:
        summary = [{"type": "text", "text": part.text}]
        previous = built.steps[-1] if built.steps else {}
        if previous.get("type") == "thought" and "summary" not in previous:
            previous["summary"] = summary  # the signature and summary of one thought
        else:
            built.step({"type": "thought", "summary": summary})
    elif kind == "text":
        if part.text:
            built.content("model_output", {"type": "text", "text": part.text})
    elif kind in ("inline_data", "file_data"):
        built.content("model_output", _media(part, where))
    elif kind == "function_call":
        assert part.function_call is not None
        call = part.function_call
        call_id = call.id or built.new_id()
        built.unanswered.append((call.name, call_id))
        built.step(
            {
                "type": "function_call",
                "id": call_id,
                "name": call.name,
                "arguments": call.args or {},
            }
        )
    elif kind == "executable_code":
        code = part.executable_code or {}
        arguments = {
            "code": code.get("code") or "",
            "language": str(code.get("language") or "PYTHON").lower(),
        }
        built.step(
            {
                "type": "code_execution_call",
                "id": code.get("id") or built.new_id(),
                "arguments": arguments,
            }
        )
    elif kind == "code_execution_result":
        outcome = part.code_execution_result or {}
        built.step(
            {
                "type": "code_execution_result",
                "call_id": outcome.get("id") or built.new_id(),
                "result": outcome.get("output") or "",
                "is_error": outcome.get("outcome") != "OUTCOME_OK",
            }
        )
    else:
        raise InvalidArgument(f"`{where}.functionResponse` belongs to `user` contents")


def _tools(request: GenerateContentRequest) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(request.tools or []):
        _refuse_unknown(tool, f"tools.{i}.")
        for name in _BUILT_IN:
            if getattr(tool, name) is not None:
                raise InvalidArgument(
                    f"`tools.{i}.{_camel(name)}` runs only on `gemini` targets; this model has "
                    "a target of another provider"
                )
        for j, declaration in enumerate(tool.function_declarations or []):
            where = f"tools.{i}.functionDeclarations.{j}."
            _refuse_unknown(declaration, where)
            if declaration.parameters_json_schema is not None:
                parameters = declaration.parameters_json_schema
            elif declaration.parameters is not None:
                parameters = google_schema(declaration.parameters)
            else:
                parameters = None
            if parameters is not None and not isinstance(parameters, dict):
                raise InvalidArgument(f"`{where}parametersJsonSchema` must be an object")
            entry: dict[str, Any] = {"type": "function", "name": declaration.name}
            if declaration.description:
                entry["description"] = declaration.description
            if parameters:
                entry["parameters"] = parameters
            tools.append(entry)
    return tools


def _tool_choice(config: ToolConfig | None, turn: Turn) -> bool:
    """Sets the turn's `tool_choice`; True for `VALIDATED` (a call or text, calls checked)."""
    if config is None:
        return False
    _refuse_unknown(config, "toolConfig.")
    calling = config.function_calling_config
    if calling is None:
        return False
    _refuse_unknown(calling, "toolConfig.functionCallingConfig.")
    mode = calling.mode or "AUTO"
    if mode == "ANY" and not turn.tools:
        raise InvalidArgument(
            "`toolConfig.functionCallingConfig.mode`: `ANY` forces a function call, but no "
            "function is declared (`tools[].functionDeclarations`)"
        )
    choice: Any = _MODES.get(mode, "auto")  # VALIDATED: the model may call or answer
    if calling.allowed_function_names is not None:
        declared = {tool["name"] for tool in turn.tools}
        for name in calling.allowed_function_names:
            if name not in declared:
                raise InvalidArgument(
                    "`toolConfig.functionCallingConfig.allowedFunctionNames`: "
                    f"`{name}` is not a declared function"
                )
        choice = {"allowed_tools": {"mode": choice, "tools": calling.allowed_function_names}}
    turn.generation_config["tool_choice"] = choice
    return mode == "VALIDATED"


def _generation(config: GenerationConfig, turn: Turn) -> None:
    _refuse_unknown(config, "generationConfig.")
    where = "generationConfig."
    for name in ("temperature", "top_p", "seed", "stop_sequences", "max_output_tokens"):
        value = getattr(config, name)
        if value is not None:
            turn.generation_config[name] = value
    # top_k: a sampling hint like temperature, dropped for targets without it (documented)
    if config.candidate_count not in (None, 1):
        raise InvalidArgument(f"`{where}candidateCount`: only 1 candidate is generated")
    mime = config.response_mime_type
    schema: Any = None
    if config.response_json_schema is not None:
        schema = config.response_json_schema
    elif config.response_schema is not None:
        schema = google_schema(config.response_schema)
    if mime == "application/json":
        turn.json_schema = schema if isinstance(schema, dict) else {}
    elif mime not in (None, "", "text/plain"):
        raise InvalidArgument(
            f"`{where}responseMimeType`: `{mime}` is produced only by `gemini` targets; "
            "`text/plain` and `application/json` are produced by every target"
        )
    elif schema is not None:
        raise InvalidArgument(
            f"`{where}responseSchema` needs `responseMimeType` `application/json`"
        )
    for modality in config.response_modalities or []:
        if modality.upper() != "TEXT":
            turn.response_modalities.append(modality.lower())
    thinking = config.thinking_config
    if thinking is not None:
        _refuse_unknown(thinking, where + "thinkingConfig.")
        # thinking_budget: a ceiling, which a model that does not think stays under
        if thinking.include_thoughts:
            turn.generation_config["thinking_summaries"] = "auto"
        if thinking.thinking_level not in (None, "THINKING_LEVEL_UNSPECIFIED"):
            turn.generation_config["thinking_level"] = str(thinking.thinking_level).lower()


def google_schema(schema: Any) -> Any:
    """Google's `Schema` (an OpenAPI 3.0 subset: `type: OBJECT`, `nullable`) as JSON Schema."""
    if isinstance(schema, list):
        return [google_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted: dict[str, Any] = {}
    for raw, value in schema.items():
        key = _SCHEMA_KEYS.get(str(raw), str(raw))
        if key == "type" and isinstance(value, str):
            converted["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            converted["properties"] = {k: google_schema(v) for k, v in value.items()}
        elif key in ("items", "anyOf"):
            converted[key] = google_schema(value)
        elif key in ("nullable", "propertyOrdering"):
            continue
        else:
            converted[key] = value
    if schema.get("nullable") and isinstance(converted.get("type"), str):
        converted["type"] = [converted["type"], "null"]
    return converted
