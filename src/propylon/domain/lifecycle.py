"""Interaction statuses (reference §4.2 and §8) and which of them end a run."""

from __future__ import annotations

from typing import Final

__all__ = ["CONTINUABLE", "RUNNING", "TERMINAL", "is_terminal"]

RUNNING: Final = frozenset({"in_progress", "queued"})
# A run ends in exactly one of these.
TERMINAL: Final = frozenset(
    {
        "completed",
        "requires_action",
        "failed",
        "cancelled",
        "incomplete",
        "budget_exceeded",
        "requires_continuation",  # a foreground answer cut short: the next hop goes on
    }
)
# A finished interaction that a next turn may name as `previous_interaction_id`.
CONTINUABLE: Final = TERMINAL


def is_terminal(status: str) -> bool:
    """True when `status` ends a run."""
    return status in TERMINAL
