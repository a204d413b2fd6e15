"""What each API revision costs per event at the edge (issue 17, point 6).

    python bench/revisions.py [--rounds 30]

The legacy `outputs` revision is a view computed where the stream leaves the server
(schema/legacy.py); the current `steps` revision is the log as it is. Measured both ways:

1. edge: one 1,000-event log (created, status update, one model_output step of 995 text
   deltas, completed, as the runner writes it) rendered into SSE frames in process, each
   revision's own way: `steps` frames the events; `legacy` translates, then frames. Also the
   legacy resume from the log's last event (the view re-reads the log from its first event).
   Median of `--rounds` renderings, in µs per event.
2. http: the same kind of stream (an `echo` answer of about 1,000 events) read back from a
   running server with `GET ?stream=true` in each revision, in µs per event end to end
   (the store read, the view, the framing, the socket, the client's parse).

Prints a table; writes bench/results/revisions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpx
from _harness import save, start

from propylon.api.sse import frame
from propylon.domain.events import Event
from propylon.schema.legacy import legacy_events

EVENTS = 1000
INTERACTION = "v1_benchRevisionsXXXXXXXXXX"


def log(n: int = EVENTS) -> list[Event]:
    """A log of `n` events shaped like a text answer's."""
    interaction = {"id": INTERACTION, "object": "interaction", "status": "in_progress"}
    head = [
        Event(1, "interaction.created", {"interaction": interaction}),
        Event(
            2, "interaction.status_update", {"interaction_id": INTERACTION, "status": "in_progress"}
        ),
        Event(3, "step.start", {"index": 0, "step": {"type": "model_output", "content": []}}),
    ]
    deltas = [
        Event(seq, "step.delta", {"index": 0, "delta": {"type": "text", "text": "eight ch"}})
        for seq in range(4, n - 1)
    ]
    usage = {"total_input_tokens": 3, "total_output_tokens": n, "total_tokens": n + 3}
    done = {**interaction, "status": "completed", "usage": usage}
    tail = [
        Event(n - 1, "step.stop", {"index": 0}),
        Event(n, "interaction.completed", {"interaction": done}),
    ]
    return head + deltas + tail


async def _source(events: Iterable[Event]) -> AsyncIterator[Event | None]:
    for event in events:
        yield event


async def _steps(events: list[Event]) -> int:
    return sum(len(frame(INTERACTION, event)) for event in events)


async def _legacy(events: list[Event], after: tuple[int, int | None] | None = None) -> int:
    size = 0
    async for event in legacy_events(INTERACTION, _source(events), after):
        assert event is not None
        size += len(frame(INTERACTION, event))
    return size


def _median_us(runs: list[float], per: int) -> float:
    return round(statistics.median(runs) / per * 1e6, 3)


def edge(rounds: int) -> dict[str, Any]:
    events = log()

    def measure(render: Any, *args: Any) -> list[float]:
        times = []
        for _ in range(rounds + 3):  # 3 warm-up renderings
            began = time.perf_counter()
            asyncio.run(render(events, *args))
            times.append(time.perf_counter() - began)
        return times[3:]

    steps = measure(_steps)
    legacy = measure(_legacy)
    resume = measure(_legacy, (EVENTS, None))
    return {
        "events": len(events),
        "steps_us_per_event": _median_us(steps, len(events)),
        "legacy_us_per_event": _median_us(legacy, len(events)),
        "legacy_resume_at_end_us_per_log_event": _median_us(resume, len(events)),
    }


def http(rounds: int) -> dict[str, Any]:
    process, url, _ = start()
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            # echo answers "user: <input>" in 8-character deltas: about 1,000 events
            body = {"model": "echo", "input": "x" * (8 * (EVENTS - 5) - 6)}
            made = client.post("/v1beta/interactions", json=body).json()
            results: dict[str, Any] = {}
            for name, headers in (("steps", {}), ("legacy", {"Api-Revision": "2025-11-01"})):
                times, count = [], 0
                for _ in range(rounds + 3):
                    began = time.perf_counter()
                    count = 0
                    with client.stream(
                        "GET",
                        f"/v1beta/interactions/{made['id']}",
                        params={"stream": "true"},
                        headers=headers,
                    ) as response:
                        for line in response.iter_lines():
                            if line.startswith("data: {"):
                                count += 1
                    times.append(time.perf_counter() - began)
                results[f"{name}_events"] = count
                results[f"{name}_us_per_event"] = _median_us(times[3:], count)
            return results
    finally:
        process.terminate()
        process.wait(timeout=20)


def table(results: dict[str, Any]) -> str:
    edge_, http_ = results["edge"], results["http"]
    rows = [
        ("edge: render 1,000 events", edge_["steps_us_per_event"], edge_["legacy_us_per_event"]),
        ("http: GET ?stream=true", http_["steps_us_per_event"], http_["legacy_us_per_event"]),
    ]
    lines = [
        f"{'µs per event':<28} {'steps':>9} {'legacy':>9} {'legacy +':>9}",
        *(f"{name:<28} {a:>9.2f} {b:>9.2f} {b - a:>9.2f}" for name, a, b in rows),
        f"legacy resume at the log's end: {edge_['legacy_resume_at_end_us_per_log_event']:.2f}"
        " µs per log event re-read (the view rebuilds its indexes from the first event)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    results = {"edge": edge(rounds), "http": http(max(5, rounds // 3))}
    save("revisions", results)
    print(table(results))


if __name__ == "__main__":
    main()
