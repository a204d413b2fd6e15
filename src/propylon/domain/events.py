"""Events of an interaction's log (reference §5.2) and their wire form.

An event is what the runner appends and what a stream sends: `seq` orders it within its
interaction; `data` is the payload without `event_type` / `event_id`, which `to_wire` adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from propylon.domain.ids import event_id

__all__ = [
    "COMPLETED",
    "CREATED",
    "ERROR",
    "STATUS_UPDATE",
    "STEP_DELTA",
    "STEP_START",
    "STEP_STOP",
    "Event",
    "is_terminal_event",
]

CREATED: Final = "interaction.created"
STATUS_UPDATE: Final = "interaction.status_update"
STEP_START: Final = "step.start"
STEP_DELTA: Final = "step.delta"
STEP_STOP: Final = "step.stop"
COMPLETED: Final = "interaction.completed"
ERROR: Final = "error"


@dataclass(slots=True, frozen=True)
class Event:
    """One entry of an interaction's append-only log.

    seq: 1-based position in the log. type: the wire `event_type`. data: the rest of the
    wire payload (for example `{"index": 0, "delta": {"type": "text", "text": "Hi"}}`).
    """

    seq: int
    type: str
    data: dict[str, Any]

    def to_wire(self, interaction_id: str) -> dict[str, Any]:
        """The JSON object a stream sends: `event_type` and `event_id` first, then `data`."""
        return {
            "event_type": self.type,
            "event_id": event_id(interaction_id, self.seq),
            **self.data,
        }


def is_terminal_event(event: Event) -> bool:
    """True for the one event that ends every run: `interaction.completed`.

    A failed run appends an `error` event with the details first, then `interaction.completed`
    with status `failed`, so every log ends the same way.
    """
    return event.type == COMPLETED
