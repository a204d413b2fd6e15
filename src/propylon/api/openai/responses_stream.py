"""Streaming a Response: an interaction's log translated into OpenAI's semantic events.

The translation is a fold over the log from its first event, so the same log always gives the
same events with the same `sequence_number`s (0, 1, 2, ...): resuming with `starting_after=N`
replays the log and sends only the events numbered above N. Order, as OpenAI sends them:
`response.created` (`response.queued` for a queued background run), `response.in_progress`,
then per output item `response.output_item.added`, its content or argument events and
`response.output_item.done`, and last `response.completed`, `response.incomplete` or
`response.failed` (also for a cancelled run: OpenAI has no event of its own for that).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from prometheus_client import Gauge
from starlette.responses import StreamingResponse

from propylon.api.openai.responses_view import (
    STATUSES,
    item_id,
    output_item,
    response_object,
    text_parts,
)
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
from propylon.domain.projection import Projection

__all__ = ["ResponseEvents", "numbered", "response_stream"]

logger = logging.getLogger("propylon.api")

_KEEPALIVE = b": keep-alive\n\n"
_TERMINAL = {"completed": "response.completed", "incomplete": "response.incomplete"}


class ResponseEvents:
    """Translates one interaction's events, in log order, into Response stream events
    (without `sequence_number`: `numbered` adds it). `base`: the interaction's echoed request
    fields and its `id`."""

    def __init__(self, base: dict[str, Any], *, background: bool, store: bool) -> None:
        self.base = base
        self.background = background
        self.store = store
        self.projection = Projection()
        self._outputs: dict[int, int] = {}  # step index -> output index
        self._parts: dict[int, int] = {}  # step index -> text parts announced

    @property
    def interaction_id(self) -> str:
        return str(self.base["id"])

    def snapshot(self) -> dict[str, Any]:
        """The Response as of the events folded so far."""
        state = self.projection
        interaction = {
            **self.base,
            "status": state.status,
            "created": state.created,
            "updated": state.updated,
            "steps": state.steps,
            "usage": state.usage,
            "errors": state.errors,
        }
        return response_object(interaction, background=self.background, store=self.store)

    def translate(self, event: Event) -> list[dict[str, Any]]:
        """The stream events for the next event of the log."""
        if event.type == ERROR and event.seq <= self.projection.last_seq:
            # not in the log: the stream ends without the run's end (reading.tail)
            error = event.data.get("error") or {}
            return [
                {
                    "type": "error",
                    "code": error.get("code"),
                    "message": str(error.get("message", "the stream ended")),
                    "param": None,
                }
            ]
        if event.type == STEP_DELTA:
            return self._delta(event)
        self.projection.apply(event)
        if event.type == CREATED:
            created = [{"type": "response.created", "response": self.snapshot()}]
            if self.projection.status == "queued":
                created.append({"type": "response.queued", "response": self.snapshot()})
            return created
        if event.type == STATUS_UPDATE and event.data.get("status") == "in_progress":
            return [{"type": "response.in_progress", "response": self.snapshot()}]
        if event.type == STEP_START:
            return self._start(int(event.data["index"]))
        if event.type == STEP_STOP:
            return self._stop(int(event.data["index"]))
        if event.type == COMPLETED:
            response = self.snapshot()
            kind = _TERMINAL.get(STATUSES.get(self.projection.status, ""), "response.failed")
            return [{"type": kind, "response": response}]
        return []

    def _where(self, index: int) -> dict[str, Any]:
        step = self.projection.steps[index]
        return {
            "item_id": item_id(self.interaction_id, step, index, inputs=False),
            "output_index": self._outputs[index],
        }

    def _start(self, index: int) -> list[dict[str, Any]]:
        steps = self.projection.steps
        item = output_item(self.interaction_id, steps, index, done=False)
        if item is None:
            return []
        self._outputs[index] = len(self._outputs)
        if item["type"] == "message":
            item["content"] = []
            self._parts[index] = 0
        added = {"type": "response.output_item.added", "output_index": self._outputs[index]}
        return [{**added, "item": item}]

    def _delta(self, event: Event) -> list[dict[str, Any]]:
        index = int(event.data["index"])
        delta = event.data["delta"]
        self.projection.apply(event)
        if index not in self._outputs:
            return []
        step = self.projection.steps[index]
        kind = delta.get("type")
        if kind == "arguments_delta" and step.get("type") == "function_call":
            return [
                {
                    "type": "response.function_call_arguments.delta",
                    **self._where(index),
                    "delta": delta.get("arguments") or "",
                }
            ]
        if step.get("type") != "model_output" or kind not in ("text", "text_annotation_delta"):
            return []
        events: list[dict[str, Any]] = []
        parts = text_parts(step)
        for content_index in range(self._parts[index], len(parts)):
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(
                {
                    "type": "response.content_part.added",
                    **self._where(index),
                    "content_index": content_index,
                    "part": part,
                }
            )
        self._parts[index] = len(parts)
        where = {**self._where(index), "content_index": len(parts) - 1}
        if kind == "text":
            events.append(
                {
                    "type": "response.output_text.delta",
                    **where,
                    "delta": delta.get("text", ""),
                    "logprobs": [],
                }
            )
        else:
            annotations = parts[-1]["annotations"]
            added = len(delta.get("annotations") or [])
            for number in range(len(annotations) - added, len(annotations)):
                events.append(
                    {
                        "type": "response.output_text.annotation.added",
                        **where,
                        "annotation_index": number,
                        "annotation": annotations[number],
                    }
                )
        return events

    def _stop(self, index: int) -> list[dict[str, Any]]:
        steps = self.projection.steps
        step = steps[index]
        if step.get("type") == "mcp_server_tool_result":  # completes its call's item
            call = next(
                (
                    number
                    for number, s in enumerate(steps[:index])
                    if s.get("type") == "mcp_server_tool_call"
                    and s.get("id") == step.get("call_id")
                ),
                None,
            )
            if call is None or call not in self._outputs:
                return []
            item = output_item(self.interaction_id, steps, call)
            where = self._where(call)
            return [
                {"type": "response.mcp_call.completed", **where},
                {"type": "response.output_item.done", "output_index": where["output_index"],
                 "item": item},
            ]  # fmt: skip
        if index not in self._outputs or step.get("type") == "mcp_server_tool_call":
            return []
        item = output_item(self.interaction_id, steps, index)
        assert item is not None
        where = self._where(index)
        events: list[dict[str, Any]] = []
        if item["type"] == "message":
            for content_index, part in enumerate(item["content"]):
                at = {**where, "content_index": content_index}
                events.append(
                    {"type": "response.output_text.done", **at, "text": part["text"],
                     "logprobs": []}
                )  # fmt: skip
                events.append({"type": "response.content_part.done", **at, "part": part})
        elif item["type"] == "function_call":
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        done = {"type": "response.output_item.done", "output_index": where["output_index"]}
        events.append({**done, "item": item})
        return events


async def numbered(
    events: AsyncIterator[Event | None], translator: ResponseEvents, after: int | None
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """The translated events with their `sequence_number` (from 0), those numbered above
    `after` only; None items are keep-alive ticks."""
    number = 0
    try:
        async for event in events:
            if event is None:
                yield None
                continue
            for translated in translator.translate(event):
                if after is None or number > after:
                    yield {"type": translated["type"], "sequence_number": number, **translated}
                number += 1
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:  # now, not when collected: a store=false run ends with its reader
            await close()


async def _frames(
    events: AsyncIterator[dict[str, Any] | None], open_streams: Gauge | None
) -> AsyncIterator[bytes]:
    if open_streams is not None:
        open_streams.inc()
    last = -1
    try:
        async for event in events:
            if event is None:
                yield _KEEPALIVE
                continue
            last = event["sequence_number"]
            yield b"event: %s\ndata: %s\n\n" % (event["type"].encode(), orjson.dumps(event))
    except Exception:
        logger.exception("response stream failed")
        error = {
            "type": "error",
            "sequence_number": last + 1,
            "code": "server_error",
            "message": "stream failed",
            "param": None,
        }
        yield b"event: error\ndata: %s\n\n" % orjson.dumps(error)
    finally:
        if open_streams is not None:
            open_streams.dec()


def response_stream(
    events: AsyncIterator[Event | None],
    translator: ResponseEvents,
    after: int | None = None,
    open_streams: Gauge | None = None,
) -> StreamingResponse:
    """A 200 `text/event-stream` of the Response events of `events` (after number `after`);
    `open_streams` counts it while it is open."""
    return StreamingResponse(
        _frames(numbered(events, translator, after), open_streams),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
