"""Token usage (reference §4.5): totals per step and per interaction, in tokens.

Besides the totals, the wire `Usage` has per-modality lists (`input_tokens_by_modality` ...,
entries `{modality, tokens}`), `initial_input_tokens` (the input of the first model call of
the turn) and `grounding_tool_count` (entries `{type, count}`: grounding tool uses). Here the
lists are dicts (modality or tool type -> count), summed by key like the SDK merges hops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODALITIES", "Usage"]

# The modalities of the SDK's `ModalityTokens` (types/interactions/modalitytokens.py).
MODALITIES = ("text", "image", "audio", "video", "document")

# wire list name -> (Usage attribute, key field, count field)
_LISTS = {
    "input_tokens_by_modality": ("input_by_modality", "modality", "tokens"),
    "output_tokens_by_modality": ("output_by_modality", "modality", "tokens"),
    "cached_tokens_by_modality": ("cached_by_modality", "modality", "tokens"),
    "tool_use_tokens_by_modality": ("tool_use_by_modality", "modality", "tokens"),
    "grounding_tool_count": ("grounding_tools", "type", "count"),
}


@dataclass(slots=True)
class Usage:
    """Token counts. `total_tokens` is derived: input + output + thought + tool-use.

    `*_by_modality`: tokens per modality (`text`, `image`, ...), empty when unknown.
    `grounding_tools`: grounding tool uses per tool type (`google_search`, ...).
    `initial_input_tokens`: the first model call's input (None: not known yet).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0
    cached_tokens: int = 0
    tool_use_tokens: int = 0
    input_by_modality: dict[str, int] = field(default_factory=dict)
    output_by_modality: dict[str, int] = field(default_factory=dict)
    cached_by_modality: dict[str, int] = field(default_factory=dict)
    tool_use_by_modality: dict[str, int] = field(default_factory=dict)
    grounding_tools: dict[str, int] = field(default_factory=dict)
    initial_input_tokens: int | None = None

    @classmethod
    def text(cls, input_tokens: int, output_tokens: int) -> Usage:
        """Usage of a text-only model call: every token is a `text` token."""
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            input_by_modality={"text": input_tokens} if input_tokens else {},
            output_by_modality={"text": output_tokens} if output_tokens else {},
        )

    def add(self, other: Usage) -> None:
        """Add `other`'s counts to this one's; the first call's input stays the initial one."""
        if self.initial_input_tokens is None:
            self.initial_input_tokens = (
                other.initial_input_tokens
                if other.initial_input_tokens is not None
                else other.input_tokens
            )
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.thought_tokens += other.thought_tokens
        self.cached_tokens += other.cached_tokens
        self.tool_use_tokens += other.tool_use_tokens
        for attribute, _, _ in _LISTS.values():
            mine: dict[str, int] = getattr(self, attribute)
            for key, count in getattr(other, attribute).items():
                mine[key] = mine.get(key, 0) + count

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.thought_tokens + self.tool_use_tokens

    def to_wire(self) -> dict[str, Any]:
        """The wire `Usage` object: the `total_*` counts, then the lists that are known."""
        wire: dict[str, Any] = {
            "total_input_tokens": self.input_tokens,
            "total_output_tokens": self.output_tokens,
            "total_thought_tokens": self.thought_tokens,
            "total_cached_tokens": self.cached_tokens,
            "total_tool_use_tokens": self.tool_use_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.initial_input_tokens is not None:
            wire["initial_input_tokens"] = self.initial_input_tokens
        for name, (attribute, key, count) in _LISTS.items():
            values: dict[str, int] = getattr(self, attribute)
            if values:
                wire[name] = [{key: k, count: v} for k, v in values.items()]
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any] | None) -> Usage:
        """Parse a wire `Usage` object; missing counts are 0, missing lists empty."""
        data = data or {}
        usage = cls(
            input_tokens=int(data.get("total_input_tokens") or 0),
            output_tokens=int(data.get("total_output_tokens") or 0),
            thought_tokens=int(data.get("total_thought_tokens") or 0),
            cached_tokens=int(data.get("total_cached_tokens") or 0),
            tool_use_tokens=int(data.get("total_tool_use_tokens") or 0),
        )
        if data.get("initial_input_tokens") is not None:
            usage.initial_input_tokens = int(data["initial_input_tokens"])
        for name, (attribute, key, count) in _LISTS.items():
            values: dict[str, int] = getattr(usage, attribute)
            for entry in data.get(name) or []:
                if entry.get(key) is not None:
                    values[entry[key]] = values.get(entry[key], 0) + int(entry.get(count) or 0)
        return usage
