"""The Response object (OpenAI's wire shape) as a view of an Interaction resource.

One id on both surfaces: a Response's `id` is its interaction's id. Items get ids derived from
it and the step's position (`msg_<interaction id>_<index>` for output step `index`,
`..._in<index>` for input step `index`), so they are stable across reads and resumes.
`requires_action` is shown `completed` with its `function_call` items (OpenAI has no such
status). Every field OpenAI's schema requires is present, with its value when Propylon does
not vary it (docs/openai-responses.md).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

__all__ = [
    "STATUSES",
    "input_items",
    "item_id",
    "output_item",
    "output_items",
    "response_object",
    "text_parts",
    "timestamp",
]

# Interaction status -> Response status.
STATUSES = {
    "in_progress": "in_progress",
    "queued": "queued",
    "completed": "completed",
    "requires_action": "completed",
    "failed": "failed",
    "budget_exceeded": "failed",
    "cancelled": "cancelled",
    "incomplete": "incomplete",
    "requires_continuation": "incomplete",
}
_PREFIX = {
    "model_output": "msg",
    "user_input": "msg",
    "thought": "rs",
    "function_call": "fc",
    "function_result": "fco",
    "mcp_server_tool_call": "mcp",
}
_TIERS = {"standard": "default", "flex": "flex", "priority": "priority"}


def timestamp(value: str | None) -> int | None:
    """Unix seconds of a wire timestamp (`2026-12-05T22:55:33Z`)."""
    if not value:
        return None
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())


def item_id(interaction_id: str, step: dict[str, Any], index: int, *, inputs: bool) -> str:
    """The id of the item that shows step `index` (of the input, or of the output)."""
    prefix = _PREFIX.get(str(step.get("type")), "item")
    return f"{prefix}_{interaction_id}_{'in' if inputs else ''}{index}"


def _arguments(value: Any) -> str:
    return orjson.dumps(value if value is not None else {}).decode()


def _annotations(item: dict[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for note in item.get("annotations") or []:
        if note.get("type") == "url_citation" and note.get("url"):
            shown.append(
                {
                    "type": "url_citation",
                    "url": note["url"],
                    "title": note.get("title") or note["url"],
                    "start_index": int(note.get("start_index") or 0),
                    "end_index": int(note.get("end_index") or 0),
                }
            )
    return shown


def text_parts(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The `output_text` parts of a model_output step (media is not shown on this surface)."""
    return [
        {
            "type": "output_text",
            "text": item.get("text", ""),
            "annotations": _annotations(item),
            "logprobs": [],
        }
        for item in step.get("content") or []
        if item.get("type") == "text"
    ]


def output_item(
    interaction_id: str,
    steps: list[dict[str, Any]],
    index: int,
    *,
    done: bool = True,
) -> dict[str, Any] | None:
    """The output item of step `index` (None for steps this surface does not show, and for
    MCP results, which complete their call's item)."""
    step = steps[index]
    kind = step.get("type")
    status = "completed" if done else "in_progress"
    ident = item_id(interaction_id, step, index, inputs=False)
    if kind == "model_output":
        return {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": text_parts(step),
        }
    if kind == "thought":
        item: dict[str, Any] = {
            "id": ident,
            "type": "reasoning",
            "summary": [
                {"type": "summary_text", "text": part.get("text", "")}
                for part in step.get("summary") or []
                if part.get("type") == "text"
            ],
        }
        if step.get("signature"):
            item["encrypted_content"] = step["signature"]
        return item
    if kind == "function_call":
        return {
            "id": ident,
            "type": "function_call",
            "call_id": step.get("id", ""),
            "name": step.get("name", ""),
            "arguments": _arguments(step.get("arguments")) if done else "",
            "status": status,
        }
    if kind == "mcp_server_tool_call":
        result = next(
            (
                s
                for s in steps[index + 1 :]
                if s.get("type") == "mcp_server_tool_result" and s.get("call_id") == step.get("id")
            ),
            None,
        )
        output = None if result is None else result.get("result")
        return {
            "id": step.get("id", ident),
            "type": "mcp_call",
            "server_label": step.get("server_name", ""),
            "name": step.get("name", ""),
            "arguments": _arguments(step.get("arguments")),
            "output": output if isinstance(output, str) or output is None else _arguments(output),
            "error": None,
            "status": "completed" if result is not None else "in_progress",
        }
    return None


def output_items(interaction_id: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `output` array for an interaction's model-generated `steps`."""
    items = (output_item(interaction_id, steps, index) for index in range(len(steps)))
    return [item for item in items if item is not None]


def _input_content(step: dict[str, Any], role: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for item in step.get("content") or []:
        kind = item.get("type")
        if kind == "text" and role == "assistant":
            parts.append({"type": "output_text", "text": item.get("text", ""), "annotations": []})
        elif kind == "text":
            parts.append({"type": "input_text", "text": item.get("text", "")})
        elif kind == "image":
            url = (
                item.get("uri") or f"data:{item.get('mime_type', '')};base64,{item.get('data', '')}"
            )
            parts.append({"type": "input_image", "image_url": url, "detail": "auto"})
        elif kind in ("document", "audio", "video"):
            if item.get("uri"):
                parts.append({"type": "input_file", "file_url": item["uri"]})
            else:
                mime = item.get("mime_type") or "application/octet-stream"
                data = f"data:{mime};base64,{item.get('data', '')}"
                parts.append({"type": "input_file", "file_data": data})
    return parts


def input_items(interaction_id: str, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's input steps as input items (each with its id), in input order."""
    items: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        kind = step.get("type")
        ident = item_id(interaction_id, step, index, inputs=True)
        if kind in ("user_input", "model_output"):
            role = "user" if kind == "user_input" else "assistant"
            items.append(
                {
                    "id": ident,
                    "type": "message",
                    "role": role,
                    "status": "completed",
                    "content": _input_content(step, role),
                }
            )
        elif kind == "function_call":
            items.append(
                {
                    "id": ident,
                    "type": "function_call",
                    "call_id": step.get("id", ""),
                    "name": step.get("name", ""),
                    "arguments": _arguments(step.get("arguments")),
                    "status": "completed",
                }
            )
        elif kind == "function_result":
            result = step.get("result")
            items.append(
                {
                    "id": ident,
                    "type": "function_call_output",
                    "call_id": step.get("call_id", ""),
                    "output": result if isinstance(result, str) else _arguments(result),
                    "status": "completed",
                }
            )
        else:
            shown = output_item(interaction_id, steps, index)
            if shown is not None:
                shown["id"] = ident if shown["type"] != "mcp_call" else shown["id"]
                items.append(shown)
    return items


def _usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    thought = int(usage.get("total_thought_tokens") or 0)
    tool_use = int(usage.get("total_tool_use_tokens") or 0)
    input_tokens = int(usage.get("total_input_tokens") or 0) + tool_use
    output_tokens = int(usage.get("total_output_tokens") or 0) + thought
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {
            "cached_tokens": int(usage.get("total_cached_tokens") or 0),
            "cache_write_tokens": 0,
        },
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": thought},
        "total_tokens": input_tokens + output_tokens,
    }


def _tool(tool: dict[str, Any]) -> dict[str, Any] | None:
    kind = tool.get("type")
    if kind == "function":
        shown = {"type": "function", "name": tool.get("name"), "strict": tool.get("strict", False)}
        shown["parameters"] = tool.get("parameters") or {}
        if tool.get("description") is not None:
            shown["description"] = tool["description"]
        return shown
    if kind == "mcp_server":
        shown = {
            "type": "mcp",
            "server_label": tool.get("name"),
            "server_url": tool.get("url"),
            "require_approval": "never",
        }
        if tool.get("headers"):
            shown["headers"] = tool["headers"]
        allowed = tool.get("allowed_tools")
        if allowed:
            shown["allowed_tools"] = [n for entry in allowed for n in entry.get("tools") or []]
        return shown
    return None


def _tool_choice(value: Any) -> Any:
    """`generation_config.tool_choice` as OpenAI's: must-call modes are `required`."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        return "required" if value in ("any", "validated") else value
    allowed = value.get("allowed_tools") or {}
    names = list(allowed.get("tools") or [])
    forced = allowed.get("mode") in ("any", "validated")
    if forced and len(names) == 1:
        return {"type": "function", "name": names[0]}
    return {
        "type": "allowed_tools",
        "mode": "required" if forced else "auto",
        "tools": [{"type": "function", "name": name} for name in names],
    }


def _text(interaction: dict[str, Any]) -> dict[str, Any]:
    value = interaction.get("response_format")
    entries = value if isinstance(value, list) else [value] if value is not None else []
    for entry in entries:
        kind = entry.get("type")
        schema = entry.get("schema") if kind == "text" else entry
        if kind in ("audio", "image", "video") or (kind == "text" and schema is None):
            continue
        form = {"type": "json_schema", "name": entry.get("name", "response"), "schema": schema}
        form["strict"] = bool(entry.get("strict", False))
        if entry.get("description") is not None:
            form["description"] = entry["description"]
        return {"format": form, "verbosity": "medium"}
    json_mime = interaction.get("response_mime_type") == "application/json" or any(
        e.get("mime_type") == "application/json" for e in entries
    )
    return {"format": {"type": "json_object" if json_mime else "text"}, "verbosity": "medium"}


def _error(status: str, errors: list[dict[str, Any]]) -> dict[str, Any] | None:
    if STATUSES.get(status) != "failed":
        return None
    first = errors[0] if errors else {}
    message = str(first.get("message") or f"the run ended `{status}`")
    return {"code": "server_error", "message": message}


def response_object(
    interaction: dict[str, Any], *, background: bool, store: bool
) -> dict[str, Any]:
    """The Response for `interaction` (an Interaction resource whose `steps` are its output
    steps only). `background` and `store`: how it was created."""
    status = str(interaction.get("status", "in_progress"))
    shown = STATUSES.get(status, status)
    config = interaction.get("generation_config") or {}
    tools = (_tool(tool) for tool in interaction.get("tools") or [])
    steps = interaction.get("steps") or []
    incomplete = {"reason": "max_output_tokens"} if shown == "incomplete" else None
    effort = config.get("thinking_level")
    return {
        "id": interaction["id"],
        "object": "response",
        "created_at": timestamp(interaction.get("created")) or 0,
        "status": shown,
        "background": background,
        "completed_at": timestamp(interaction.get("updated")) if shown == "completed" else None,
        "error": _error(status, interaction.get("errors") or []),
        "incomplete_details": incomplete,
        "instructions": interaction.get("system_instruction"),
        "max_output_tokens": config.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": interaction.get("model") or interaction.get("agent") or "",
        "output": output_items(interaction["id"], steps),
        "parallel_tool_calls": True,
        "previous_response_id": interaction.get("previous_interaction_id"),
        "reasoning": {
            "effort": effort,
            "summary": "auto" if config.get("thinking_summaries") == "auto" else None,
        },
        "service_tier": _TIERS.get(str(interaction.get("service_tier")), "default"),
        "store": store,
        "temperature": config.get("temperature", 1.0),
        "text": _text(interaction),
        "tool_choice": _tool_choice(config.get("tool_choice")),
        "tools": [tool for tool in tools if tool is not None],
        "top_logprobs": 0,
        "top_p": config.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": _usage(interaction.get("usage")),
        "user": None,
        "metadata": interaction.get("labels") or {},
        "safety_identifier": None,
        "prompt_cache_key": None,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
    }
