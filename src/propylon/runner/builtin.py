"""Steps of what an upstream produced besides text, thoughts and function calls: media in the
answer, the steps of tools the upstream ran itself (Google Search, URL context, code
execution) and citations of the answer's text.

- media (`MediaDelta`): an `image` / `audio` / ... delta of the open `model_output` step (one
  is opened when none is), so the content item lands in that step (reference §5.3).
- a server-side tool step (`ServerStep`): a step of its own; `step.start` carries the whole
  step, one `step.delta` of the step's type carries its fields, then `step.stop`.
- citations (`Citations`): a `text_annotation_delta` of the latest `model_output` step; the
  projection adds them to its text item.
"""

from __future__ import annotations

from typing import Any, Protocol

from propylon.domain.events import STEP_DELTA
from propylon.providers.base import Citations, MediaDelta, ServerStep
from propylon.runner.log import EventLog

__all__ = ["emit_upstream_step"]

_MODEL_OUTPUT = {"type": "model_output", "content": []}


class _Steps(Protocol):
    index: int
    open: str | None

    def ensure(self, kind: str, skeleton: dict[str, Any]) -> int: ...

    def single(self, key: str, skeleton: dict[str, Any], delta: dict[str, Any]) -> None: ...


def emit_upstream_step(
    log: EventLog, steps: _Steps, event: MediaDelta | ServerStep | Citations
) -> None:
    """Append the events for `event` (see the module docstring)."""
    if isinstance(event, MediaDelta):
        index = steps.ensure("model_output", dict(_MODEL_OUTPUT))
        delta: dict[str, Any] = {"type": event.type}
        for name in ("data", "uri", "mime_type", "sample_rate"):
            value = getattr(event, name)
            if value is not None:
                delta[name] = value
        log.emit(STEP_DELTA, {"index": index, "delta": delta})
    elif isinstance(event, ServerStep):
        step = event.step
        key = f"{step['type']}:{step.get('id') or step.get('call_id')}"
        fields = {k: v for k, v in step.items() if k not in ("id", "call_id")}
        steps.single(key, dict(step), fields)
    else:
        latest = _latest_model_output(log, steps)
        if latest is not None and event.annotations:
            delta = {"type": "text_annotation_delta", "annotations": event.annotations}
            log.emit(STEP_DELTA, {"index": latest, "delta": delta})


def _latest_model_output(log: EventLog, steps: _Steps) -> int | None:
    """The open model_output step, or the last one of this run's steps."""
    if steps.open == "model_output":
        return steps.index
    produced = log.projection.steps
    for index in range(len(produced) - 1, -1, -1):
        if produced[index].get("type") == "model_output":
            return index
    return None
