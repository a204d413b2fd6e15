"""Token usage (reference §4.5): totals per step and per interaction, in tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Usage"]


@dataclass(slots=True)
class Usage:
    """Token counts. `total_tokens` is derived: input + output + thought + tool-use."""

    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0
    cached_tokens: int = 0
    tool_use_tokens: int = 0

    def add(self, other: Usage) -> None:
        """Add `other`'s counts to this one's."""
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.thought_tokens += other.thought_tokens
        self.cached_tokens += other.cached_tokens
        self.tool_use_tokens += other.tool_use_tokens

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.thought_tokens + self.tool_use_tokens

    def to_wire(self) -> dict[str, Any]:
        """The wire `Usage` object with `total_*` field names."""
        return {
            "total_input_tokens": self.input_tokens,
            "total_output_tokens": self.output_tokens,
            "total_thought_tokens": self.thought_tokens,
            "total_cached_tokens": self.cached_tokens,
            "total_tool_use_tokens": self.tool_use_tokens,
            "total_tokens": self.total_tokens,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any] | None) -> Usage:
        """Parse a wire `Usage` object; missing counts are 0."""
        data = data or {}
        return cls(
            input_tokens=int(data.get("total_input_tokens", 0)),
            output_tokens=int(data.get("total_output_tokens", 0)),
            thought_tokens=int(data.get("total_thought_tokens", 0)),
            cached_tokens=int(data.get("total_cached_tokens", 0)),
            tool_use_tokens=int(data.get("total_tool_use_tokens", 0)),
        )
