"""The legacy `outputs` revision of the Interactions wire format (API revisions before
2026-05-20), computed as a view of the one event log and its projection.

Shapes: google-genai 1.75 (`_interactions/types/`, the last release of that schema) and
Google's recorded legacy bodies (tests/fixtures/gemini/interactions/legacy_*).

- The request: the same, but for two `input` forms only the legacy schema has: a list of
  turns (`{role, content}`), and a list of content mixing items with function results
  (`legacy_request`).
- The resource: `steps` become a flat `outputs` list of content: each `model_output` step
  gives its content items (text, image, audio, video, document); every other step is one
  output of the same type and fields (thought, function_call, function_result and the tool
  call/result steps have one shape in both revisions); `user_input` steps are not outputs.
  `role` is `model`.
- The stream: `interaction.created` / `interaction.completed` become `interaction.start` /
  `interaction.complete`; `step.start` / `step.delta` / `step.stop` become `content.start` /
  `content.delta` / `content.stop`, indexed by output (the index into `outputs`), not by step.
  `arguments_delta` fragments become one `function_call` delta with the parsed arguments;
  `text_annotation_delta` becomes `text_annotation`; a tool step's delta gets the step's `id` /
  `call_id` (legacy deltas carry them). `interaction.status_update` and `error` are unchanged.

One log event gives 0, 1 or more legacy events (a `model_output` step starts no output until
its first content arrives). Each legacy event has an `event_id`: the log event's own id for
the last (or only) one, `<event id>.<n>` for the n-th before it, so a legacy client resumes
from any of them (`resume_point`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import orjson

from propylon.domain.events import (
    COMPLETED,
    CREATED,
    STEP_DELTA,
    STEP_START,
    STEP_STOP,
    Event,
)
from propylon.domain.ids import event_id
from propylon.errors import InvalidArgument

__all__ = [
    "STEPS_REVISION",
    "LegacyEvent",
    "LegacyStream",
    "is_legacy",
    "legacy_events",
    "legacy_interaction",
    "legacy_request",
    "outputs_of",
    "resume_point",
    "revision_date",
]

STEPS_REVISION: Final = "2026-05-20"  # the first revision with `steps`; earlier ones are legacy

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def revision_date(value: str) -> str:
    """`value` when it is an API revision: a date `YYYY-MM-DD`. Raises ValueError."""
    try:
        if _DATE.fullmatch(value):
            return date.fromisoformat(value).isoformat()
    except ValueError:
        pass
    raise ValueError(f"an API revision is a date `YYYY-MM-DD` (such as `{STEPS_REVISION}`)")


def is_legacy(revision: str | None) -> bool:
    """Whether `revision` (a date `YYYY-MM-DD`, None for the current) is the `outputs` one."""
    return revision is not None and revision < STEPS_REVISION


_CONTENT_ITEMS = frozenset({"text", "image", "audio", "video", "document"})
_RENAMED = {CREATED: "interaction.start", COMPLETED: "interaction.complete"}


def outputs_of(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The legacy `outputs` of model-generated `steps` (see the module docstring)."""
    outputs: list[dict[str, Any]] = []
    for step in steps:
        kind = step.get("type")
        if kind == "model_output":
            outputs.extend(step.get("content") or [])
        elif kind != "user_input":
            outputs.append(step)
    return outputs


def legacy_interaction(interaction: dict[str, Any], *, role: bool = True) -> dict[str, Any]:
    """The legacy form of a wire Interaction (a resource, or the partial one of a lifecycle
    event): `steps` replaced by `outputs`; with `role`, `role: "model"` as Google sent it."""
    legacy = {k: v for k, v in interaction.items() if k != "steps"}
    if "steps" in interaction:
        legacy["outputs"] = outputs_of(interaction["steps"])
    if role:
        legacy.setdefault("role", "model")
    return legacy


def legacy_request(body: Any) -> Any:
    """A legacy create body in the current form. Only `input` differs: a list of turns
    (`[{"role": "user" | "model", "content": str | [content]}]`) or a list of content that
    mixes content items with other types (function results, calls, thoughts) becomes a list
    of steps; everything else is the same in both revisions (and validated as usual).
    Raises InvalidArgument for a turn whose role is neither `user` nor `model`."""
    if not isinstance(body, dict) or not isinstance(body.get("input"), list):
        return body
    items: list[Any] = body["input"]
    if items and all(isinstance(i, dict) and "role" in i and "type" not in i for i in items):
        steps: list[Any] = []
        for index, turn in enumerate(items):
            content = turn.get("content")
            if isinstance(content, str):
                content = [{"type": "text", "text": content}]
            if turn.get("role") not in ("user", "model"):
                raise InvalidArgument(
                    f"invalid request: input.{index}.role: a turn's role is `user` or `model`, "
                    f"not `{turn.get('role')}`"
                )
            holder = "user_input" if turn["role"] == "user" else "model_output"
            steps += _steps(content if isinstance(content, list) else [content], holder)
        return {**body, "input": steps}
    kinds = {i.get("type") for i in items if isinstance(i, dict)}
    if kinds & _CONTENT_ITEMS and kinds - _CONTENT_ITEMS:
        return {**body, "input": _steps(items, "user_input")}
    return body


def _steps(items: list[Any], holder: str) -> list[Any]:
    """Content items in `holder` steps (`user_input` / `model_output`); other outputs (a
    function result, a call, a thought) are steps of their own type already."""
    steps: list[Any] = []
    for item in items:
        if not (isinstance(item, dict) and item.get("type") in _CONTENT_ITEMS):
            steps.append(item)
        elif steps and isinstance(steps[-1], dict) and steps[-1].get("type") == holder:
            steps[-1]["content"].append(item)
        else:
            steps.append({"type": holder, "content": [item]})
    return steps


@dataclass(slots=True, frozen=True)
class LegacyEvent:
    """One legacy stream event: `type` is its `event_type`, `data` the rest of its payload."""

    type: str
    event_id: str
    data: dict[str, Any]

    def to_wire(self, interaction_id: str) -> dict[str, Any]:
        """The JSON object a stream sends: `event_type` and `event_id` first, then `data`."""
        return {"event_type": self.type, "event_id": self.event_id, **self.data}


@dataclass(slots=True)
class _Step:
    """What the view remembers of one step of the log."""

    step: dict[str, Any]
    kind: str  # the step's type
    outputs: list[int] = field(default_factory=list)  # legacy indexes of its outputs
    open_type: str | None = None  # type of its open output (None: none open)
    last_type: str | None = None  # type of its latest output
    arguments: list[str] = field(default_factory=list)  # a function call's JSON fragments
    called: bool = False  # its function_call delta was sent
    stopped: bool = False  # its step.stop was translated


_Out = list[tuple[str, dict[str, Any]]]


class LegacyStream:
    """Translates one interaction's log into legacy events. Feed it every event from the
    log's first, in order: output indexes depend on all earlier steps."""

    def __init__(self, interaction_id: str) -> None:
        self.interaction_id = interaction_id
        self._steps: dict[int, _Step] = {}
        self._next = 0  # the next output index

    def translate(self, event: Event) -> list[LegacyEvent]:
        """The legacy events for `event` (none, one or several), with their event ids."""
        out = self._translate(event)
        own = event_id(self.interaction_id, event.seq)
        last = len(out) - 1
        return [
            LegacyEvent(kind, own if n == last else f"{own}.{n}", data)
            for n, (kind, data) in enumerate(out)
        ]

    def _translate(self, event: Event) -> _Out:
        data = event.data
        if event.type in _RENAMED:
            interaction = legacy_interaction(data["interaction"], role=event.type == COMPLETED)
            return [(_RENAMED[event.type], {**data, "interaction": interaction})]
        if event.type == STEP_START:
            return self._start(data["index"], data["step"])
        if event.type == STEP_DELTA:
            step = self._steps.get(data["index"])
            return [] if step is None else self._delta(step, data["delta"])
        if event.type == STEP_STOP:
            step = self._steps.get(data["index"])
            return [] if step is None else self._stop(step)
        return [(event.type, data)]  # status updates and errors: the same in both

    def _open(self, step: _Step, content: dict[str, Any]) -> _Out:
        index = self._next
        self._next += 1
        step.outputs.append(index)
        step.open_type = step.last_type = str(content.get("type"))
        return [("content.start", {"index": index, "content": content})]

    def _close(self, step: _Step) -> _Out:
        if step.open_type is None:
            return []
        step.open_type = None
        return [("content.stop", {"index": step.outputs[-1]})]

    def _start(self, index: int, skeleton: dict[str, Any]) -> _Out:
        step = self._steps[index] = _Step(dict(skeleton), str(skeleton.get("type")))
        if step.kind == "user_input":
            return []
        if step.kind != "model_output":
            return self._open(step, skeleton)
        out: _Out = []
        for item in skeleton.get("content") or []:  # content sent whole at the start
            out += self._content(step, dict(item))
        return out

    def _delta(self, step: _Step, delta: dict[str, Any]) -> _Out:
        kind = delta.get("type")
        if step.kind == "user_input":
            return []
        if step.kind == "model_output":
            out = self._content(step, delta)
            # a citation after the step's end (of its text) opens no output for good
            return out + self._close(step) if step.stopped else out
        if kind == "arguments_delta":
            return self._arguments(step, delta.get("arguments") or "")
        if step.kind not in ("thought", "function_call"):
            # A tool step's delta names its call, as the legacy delta types do.
            ids: dict[str, Any] = {k: step.step[k] for k in ("id", "call_id") if k in step.step}
            delta = {**ids, **delta}
        return [("content.delta", {"index": step.outputs[-1], "delta": delta})]

    def _content(self, step: _Step, delta: dict[str, Any]) -> _Out:
        """A content delta of a model_output step; as the projection does, text extends an
        open text output, each media delta is an output of its own."""
        kind = delta.get("type")
        out: _Out = []
        if kind == "text_annotation_delta":
            # Citations belong to the latest output when it is text (a closed one too).
            annotation = {"type": "text_annotation", "annotations": delta.get("annotations")}
            if step.last_type != "text":
                out += self._close(step) + self._open(step, {"type": "text"})
            return [*out, ("content.delta", {"index": step.outputs[-1], "delta": annotation})]
        if kind in _CONTENT_ITEMS and not (kind == "text" and step.open_type == "text"):
            out += self._close(step) + self._open(step, {"type": kind})
        if not step.outputs:
            return out  # an unknown delta before any content: nothing to attach it to
        return [*out, ("content.delta", {"index": step.outputs[-1], "delta": delta})]

    def _arguments(self, step: _Step, fragment: str) -> _Out:
        step.arguments.append(fragment)
        if step.called or not fragment.rstrip().endswith("}"):
            return []
        try:
            arguments = orjson.loads("".join(step.arguments))
        except orjson.JSONDecodeError:
            return []  # not whole yet
        return self._call(step, arguments)

    def _call(self, step: _Step, arguments: Any) -> _Out:
        step.called = True
        call = {k: v for k, v in step.step.items() if k != "arguments"}
        delta = {**call, "type": "function_call", "arguments": arguments}
        return [("content.delta", {"index": step.outputs[-1], "delta": delta})]

    def _stop(self, step: _Step) -> _Out:
        out: _Out = []
        if step.kind == "function_call" and not step.called and step.outputs:
            try:
                arguments = orjson.loads("".join(step.arguments) or "{}")
            except orjson.JSONDecodeError:
                arguments = step.step.get("arguments") or {}
            out += self._call(step, arguments)
        step.stopped = True
        return out + self._close(step)


def resume_point(interaction_id: str, last_event_id: str) -> tuple[str, int | None]:
    """(the log event id, n) for a legacy `last_event_id`: n is None for a log event's own
    id, else the position of the legacy event among those that log event gave."""
    own, _, n = last_event_id.rpartition(".")
    if n.isdigit() and own.startswith(interaction_id + ".") and own.count(".") == 1:
        return own, int(n)
    return last_event_id, None


async def legacy_events(
    interaction_id: str,
    events: AsyncIterator[Event | None],
    after: tuple[int, int | None] | None = None,
) -> AsyncIterator[LegacyEvent | None]:
    """The legacy view of `events` (a log from its first event; None items are keep-alive
    ticks, passed on). `after` (seq, n): send only what follows the n-th legacy event of log
    event seq (n None: all of seq's), for a resumed stream."""
    view = LegacyStream(interaction_id)
    try:
        async for event in events:
            if event is None:
                yield None
                continue
            legacy = view.translate(event)
            if after is not None and event.seq <= after[0]:
                if event.seq < after[0] or after[1] is None:
                    continue
                legacy = legacy[after[1] + 1 :]
            for item in legacy:
                yield item
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()  # a reader that leaves closes the tail now (a store=false run ends)
