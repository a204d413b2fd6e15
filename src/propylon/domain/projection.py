"""The projection: fold an interaction's events into its status, output steps, usage and errors.

The runner folds each event as it appends it; a stored log keeps a second fold of what it has
committed, which `get` of a running interaction reads (service/interactions.py). One fold, so a
streamed and a non-streamed run always agree (reference §4 and §5).

Incremental: folding one more event costs the same at the log's 10th event as at its 10,000th.
Text deltas are kept as fragments and joined only when `steps` is read (a string grown by `+=`
is copied whole on every delta: quadratic in a long answer).
"""

from __future__ import annotations

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

__all__ = ["Projection", "copy_json"]

# Delta types whose payload is one content item appended to a model_output step.
_MEDIA_DELTAS = frozenset({"image", "audio", "video", "document"})


@dataclass(eq=False)
class Projection:
    """What the log says so far. `steps` are the model-generated steps, in stream index order;
    `ended` once the terminal `interaction.completed` is folded (nothing may follow it)."""

    status: str = "in_progress"
    created: str | None = None
    updated: str | None = None
    usage: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    continuation_token: str | None = None
    last_seq: int = 0
    ended: bool = False
    _steps: list[dict[str, Any]] = field(default_factory=list)
    _arguments: dict[int, list[str]] = field(default_factory=dict)
    # text items with deltas not joined yet: id(item) -> (item, fragments after item["text"])
    _fragments: dict[int, tuple[dict[str, Any], list[str]]] = field(default_factory=dict)

    @property
    def steps(self) -> list[dict[str, Any]]:
        """The steps, their text joined up to the last folded event. The list and its items
        are this projection's own: later folds change them in place."""
        if self._fragments:
            for item, fragments in self._fragments.values():
                fragments.insert(0, item["text"])
                item["text"] = "".join(fragments)
            self._fragments.clear()
        return self._steps

    def copy(self) -> Projection:
        """A projection of its own with the same state (folds into either leave the other
        as it was)."""
        return Projection(
            status=self.status,
            created=self.created,
            updated=self.updated,
            usage=copy_json(self.usage),
            errors=copy_json(self.errors),
            continuation_token=self.continuation_token,
            last_seq=self.last_seq,
            ended=self.ended,
            _steps=copy_json(self.steps),
            _arguments={index: list(parts) for index, parts in self._arguments.items()},
        )

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
            self._steps.append(copy_json(data["step"]))
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
        step = self._steps[index]
        kind = delta["type"]
        if kind == "text":
            self._append_text(step.setdefault("content", []), delta["text"])
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
                    self._append_text(summary, item.get("text", ""))
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
            self._steps[index]["arguments"] = orjson.loads(text) if text else {}

    def _append_text(self, items: list[dict[str, Any]], text: str) -> None:
        """Extend the trailing text item, or start one: deltas of one text block join up
        (as fragments until `steps` is read)."""
        if items and items[-1].get("type") == "text":
            item = items[-1]
            pending = self._fragments.get(id(item))
            if pending is None:
                self._fragments[id(item)] = (item, [text])
            else:
                pending[1].append(text)
        else:
            items.append({"type": "text", "text": text})


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (dicts, lists, strings, numbers, booleans, None): an event's
    data, which the fold must not share with the event."""
    if isinstance(value, dict):
        return {key: copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_json(item) for item in value]
    return value
