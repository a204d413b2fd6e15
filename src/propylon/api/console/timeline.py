"""An interaction's steps as the console shows them: one entry per step, in order, each with
a title and blocks of text (content, thought summaries, function and MCP calls with their
arguments and results), and the same rule for its live events.

With `console_content` off, prompts and outputs become a note of their size: the console
shows what happened (types, tool names, usage), not what was said.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from propylon.domain.events import STEP_DELTA, STEP_START, Event

__all__ = ["Block", "Entry", "entries", "shown_event"]

_CALLS = frozenset({"function_call", "mcp_server_tool_call"})
_RESULTS = frozenset({"function_result", "mcp_server_tool_result"})


@dataclass(frozen=True, slots=True)
class Block:
    """One piece of a step: `label` (`text`, `arguments`, `result`, `image/png`...) and
    its `text`; `code`: show it monospaced (JSON)."""

    label: str
    text: str
    code: bool = False


@dataclass(slots=True)
class Entry:
    """One step: its position, type, a title (`function_call get_weather`), whether the
    caller sent it (`input`) or the model made it, and its blocks."""

    number: int
    kind: str
    title: str
    input: bool
    blocks: list[Block] = field(default_factory=list)


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()


def _hidden(text: str) -> str:
    return f"[{len(text)} characters hidden: console_content is off]"


def _content_blocks(items: list[Any], show: bool) -> list[Block]:
    blocks = []
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("type", "content"))
        if kind == "text":
            text = str(item.get("text", ""))
            blocks.append(Block("text", text if show else _hidden(text)))
        else:  # media: its kind and where it is, never its bytes
            where = item.get("uri") or f"{len(str(item.get('data', '')))} base64 characters"
            blocks.append(Block(str(item.get("mime_type") or kind), str(where)))
    return blocks


def _step_entry(number: int, step: dict[str, Any], is_input: bool, show: bool) -> Entry:
    kind = str(step.get("type", "step"))
    entry = Entry(number, kind, kind, is_input)
    if kind in _CALLS or kind in _RESULTS:
        name = step.get("name") or ""
        server = step.get("server_name")
        entry.title = f"{kind} {name}" + (f" on {server}" if server else "")
        ident = step.get("id") or step.get("call_id")
        if ident:
            entry.blocks.append(Block("call id", str(ident)))
        part = "arguments" if kind in _CALLS else "result"
        value = step.get(part)
        text = value if isinstance(value, str) else _json(value)
        entry.blocks.append(Block(part, text if show else _hidden(text), code=True))
        if step.get("is_error"):
            entry.blocks.append(Block("is_error", "true"))
    elif "content" in step or "summary" in step:
        entry.blocks += _content_blocks(step.get("content") or [], show)
        entry.blocks += [
            Block("summary", b.text) if b.label == "text" else b
            for b in _content_blocks(step.get("summary") or [], show)
        ]
    else:  # a step type of its own (search, code execution...): its fields as they are
        rest = {k: v for k, v in step.items() if k != "type"}
        if rest:
            text = _json(rest)
            entry.blocks.append(Block("fields", text if show else _hidden(text), code=True))
    return entry


def entries(resource: dict[str, Any], input_count: int, show: bool) -> list[Entry]:
    """The steps of a wire Interaction (`get`'s, input steps first: the first `input_count`
    are the caller's), numbered from 1 in order."""
    return [
        _step_entry(n, step, n <= input_count, show)
        for n, step in enumerate(resource.get("steps") or [], start=1)
        if isinstance(step, dict)
    ]


def shown_event(event: Event, show: bool) -> Event:
    """`event` as the console's live tail sends it: content-carrying parts dropped when
    `show` is off (the step's type and the event's order stay). Every delta carries content
    (text, thoughts, arguments, results, media bytes, citations, search results...): each is
    replaced by its type alone."""
    if show:
        return event
    if event.type == STEP_START:
        step = event.data.get("step") or {}
        kept = {k: step[k] for k in ("type", "name", "server_name") if k in step}
        return Event(event.seq, event.type, {**event.data, "step": kept})
    if event.type == STEP_DELTA:
        delta = event.data.get("delta") or {}
        hidden = {"type": delta.get("type"), "hidden": True}
        return Event(event.seq, event.type, {**event.data, "delta": hidden})
    return event
