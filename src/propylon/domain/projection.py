"""The projection: fold an interaction's events into its status, output steps, usage and errors.

The runner folds each event as it appends it; `get` folds a running interaction's stored log.
One fold, so a streamed and a non-streamed run always agree (reference §4 and §5).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import orjson

from propylon.domain.events import (
    COMPLETED,
    CREATED,
    ERROR,
    STATUS_UPDATE,
    STEP_DELTA,
    STEP_START,
    STEP_STOP,
    Event,
)

__all__ = ["Projection"]

# Delta types whose payload is one content item appended to a model_output step.
_MEDIA_DELTAS = frozenset({"image", "audio", "video", "document"})


@dataclass
class Projection:
    """What the log says so far. `steps` are the model-generated steps, in stream index order;
    `ended` once the terminal `interaction.completed` is folded (nothing may follow it)."""

    status: str = "in_progress"
    created: str | None = None
    updated: str | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    continuation_token: str | None = None
    last_seq: int = 0
    ended: bool = False
    _arguments: dict[int, list[str]] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        """Fold one event. Events must come in `seq` order."""
        self.last_seq = event.seq
        data = event.data
        if event.type == CREATED:
            interaction = data["interaction"]
            self.status = interaction.get("status", "in_progress")
            self.created = interaction.get("created")
            self.updated = interaction.get("updated", self.created)
        elif event.type == STATUS_UPDATE:
            self.status = data["status"]
        elif event.type == STEP_START:
            self.steps.append(copy.deepcopy(data["step"]))
        elif event.type == STEP_DELTA:
            self._apply_delta(data["index"], data["delta"])
        elif event.type == STEP_STOP:
            self._finish_step(data["index"])
        elif event.type == ERROR:
            self.errors.append(data["error"])
        elif event.type == COMPLETED:
            interaction = data["interaction"]
            self.status = interaction["status"]
            self.usage = interaction.get("usage")
            self.continuation_token = interaction.get("continuation_token")
            self.updated = interaction.get("updated", self.updated)
            self.ended = True

    def _apply_delta(self, index: int, delta: dict[str, Any]) -> None:
        step = self.steps[index]
        kind = delta["type"]
        if kind == "text":
            _append_text(step.setdefault("content", []), delta["text"])
        elif kind == "text_annotation_delta":
            # Citations belong to the text item they annotate (the latest one) and accumulate.
            content = step.setdefault("content", [])
            if not content or content[-1].get("type") != "text":
                content.append({"type": "text", "text": ""})
            content[-1].setdefault("annotations", []).extend(delta.get("annotations") or [])
        elif kind in _MEDIA_DELTAS:
            step.setdefault("content", []).append(dict(delta))
        elif kind == "thought_summary":
            item = delta.get("content")
            if item is not None:
                summary = step.setdefault("summary", [])
                if item.get("type") == "text":
                    _append_text(summary, item.get("text", ""))
                else:
                    summary.append(item)
        elif kind == "thought_signature":
            step["signature"] = delta.get("signature")
        elif kind == "arguments_delta":
            self._arguments.setdefault(index, []).append(delta.get("arguments") or "")
        else:
            # Tool call and result deltas carry the step's fields themselves.
            step.update({k: v for k, v in delta.items() if k != "type"})

    def _finish_step(self, index: int) -> None:
        fragments = self._arguments.pop(index, None)
        if fragments is not None:
            text = "".join(fragments)
            self.steps[index]["arguments"] = orjson.loads(text) if text else {}


def _append_text(items: list[dict[str, Any]], text: str) -> None:
    """Extend the trailing text item, or start one: deltas of one text block join up."""
    if items and items[-1].get("type") == "text":
        items[-1]["text"] += text
    else:
        items.append({"type": "text", "text": text})
