"""The incremental projection (domain/projection.py): folded once and kept, read at any point,
it equals a fold of the same log from its first event. On recorded Gemini Interactions logs
(thought, function call, Google Search with split citations) and on logs of real runs of the
server (text, function calls), and on the committed fold `get` shows of a running interaction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from propylon.domain.events import Event
from propylon.domain.projection import Projection
from tests.conftest import Server, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "gemini" / "interactions"
RECORDED = sorted(FIXTURES.glob("*_stream*.jsonl"))


def _events(wire: list[dict[str, Any]]) -> list[Event]:
    """Log events of wire events (`event_type` / `event_id` dropped), numbered from 1."""
    return [
        Event(
            seq,
            e["event_type"],
            {k: v for k, v in e.items() if k not in ("event_type", "event_id")},
        )
        for seq, e in enumerate(wire, start=1)
    ]


def _state(projection: Projection) -> bytes:
    """Everything a reader sees of a projection, as JSON."""
    return orjson.dumps(
        {
            "status": projection.status,
            "steps": projection.steps,
            "usage": projection.usage,
            "errors": projection.errors,
            "token": projection.continuation_token,
            "last_seq": projection.last_seq,
            "ended": projection.ended,
        }
    )


def _full_fold(events: list[Event]) -> Projection:
    projection = Projection()
    for event in events:
        projection.apply(event)
    return projection


def assert_incremental_equals_full(events: list[Event]) -> None:
    """Read after every event (joining text each time), a kept projection equals a fresh fold
    of the same prefix; and a copy taken part way folds on to the same end."""
    kept = Projection()
    copy: Projection | None = None
    for n, event in enumerate(events, start=1):
        kept.apply(event)
        assert _state(kept) == _state(_full_fold(events[:n])), f"after event {n}"
        if n == len(events) // 2:
            copy = kept.copy()
        elif copy is not None:
            copy.apply(event)
    assert copy is not None
    assert _state(copy) == _state(kept)


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
def test_recorded_logs_fold_incrementally(path: Path) -> None:
    wire = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    events = _events(wire)
    kinds = {(e.data.get("step") or {}).get("type") for e in events if e.type == "step.start"}
    assert kinds & {"thought", "function_call", "google_search_call", "model_output"}
    assert_incremental_equals_full(events)
    text = "".join(
        e.data["delta"]["text"]
        for e in events
        if e.type == "step.delta" and e.data["delta"].get("type") == "text"
    )
    folded = "".join(
        item["text"]
        for step in _full_fold(events).steps
        for item in step.get("content", [])
        if item.get("type") == "text"
    )
    assert folded == text


def test_a_long_answer_folds_in_linear_time() -> None:
    """20,000 text deltas of 100 characters fold and read in well under two seconds (a string
    grown by `+=` on each delta copies 20 GB here)."""
    import time

    events = [
        Event(1, "step.start", {"index": 0, "step": {"type": "model_output"}}),
        *(
            Event(seq, "step.delta", {"index": 0, "delta": {"type": "text", "text": "x" * 100}})
            for seq in range(2, 20_002)
        ),
    ]
    began = time.perf_counter()
    projection = Projection()
    for i, event in enumerate(events):
        projection.apply(event)
        if i % 5_000 == 0:
            assert projection.steps  # reads join what came so far
    assert len(projection.steps[0]["content"][0]["text"]) == 100 * 20_000
    assert time.perf_counter() - began < 2


def _log(http: httpx.Client, interaction_id: str) -> list[dict[str, Any]]:
    """The whole stored log of an ended interaction, as its stream replays it."""
    events = []
    with http.stream(
        "GET", f"/v1beta/interactions/{interaction_id}", params={"stream": "true"}
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                events.append(json.loads(line[6:]))
    return events


def test_logs_of_real_runs_fold_incrementally(server: Server) -> None:
    weather = {
        "type": "function",
        "name": "get_weather",
        "description": "the weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    }
    with server.http() as http:
        answered = http.post(
            "/v1beta/interactions",
            json={"model": "echo", "input": "a fairly long answer " * 20},
        ).json()
        called = http.post(
            "/v1beta/interactions",
            json={
                "model": "echo",
                "input": 'call get_weather {"location": "Paris"}',
                "tools": [weather],
            },
        ).json()
        assert called["status"] == "requires_action"
        for resource in (answered, called):
            events = _events(_log(http, resource["id"]))
            assert events[-1].type == "interaction.completed"
            assert_incremental_equals_full(events)
            assert _full_fold(events).steps == resource["steps"]


def test_get_of_a_running_interaction_is_a_fold_of_its_committed_log(server: Server) -> None:
    """Each `get` while the run goes on shows the fold of a prefix of the log it ends with,
    never less than an earlier `get` showed."""
    with server.http() as http:
        created = http.post(
            "/v1beta/interactions",
            json={"model": "echo-slow", "input": "word " * 200, "background": True},
        ).json()
        seen: list[dict[str, Any]] = []

        def poll() -> bool:
            got = http.get(f"/v1beta/interactions/{created['id']}").json()
            if got["status"] == "in_progress":
                seen.append(got)
            return got["status"] != "in_progress" and len(seen) >= 3

        wait_for(poll, 60)
        events = _events(_log(http, created["id"]))
        folds = [orjson.dumps(_full_fold(events[:n]).steps) for n in range(len(events) + 1)]
        at = 0
        for got in seen:
            steps = orjson.dumps(got["steps"][1:])  # after its user_input step
            assert steps in folds[at:], "a get showed what no prefix of the log folds to"
            at = folds.index(steps, at)
        assert at > 0
