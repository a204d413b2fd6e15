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
    size = 0
    async for event in _source(events):  # as the stream reads the log: an async iterator
        assert event is not None
        size += len(frame(INTERACTION, event))
    return size


async def _legacy(events: list[Event], after: tuple[int, int | None] | None = None) -> int:
    size = 0
    async for event in legacy_events(INTERACTION, _source(events), after):
        assert event is not None
        size += len(frame(INTERACTION, event))
    return size


def _us(runs: list[float], per: int) -> dict[str, float]:
    """Median and fastest of `runs` (seconds), in µs per one of `per` events."""
    return {
        "median": round(statistics.median(runs) / per * 1e6, 3),
        "min": round(min(runs) / per * 1e6, 3),
    }


def edge(rounds: int) -> dict[str, Any]:
    events = log()
    renders = {
        "steps": lambda: _steps(events),
        "legacy": lambda: _legacy(events),
        "legacy_resume_at_end": lambda: _legacy(events, (EVENTS, None)),
    }
    times: dict[str, list[float]] = {name: [] for name in renders}
    for round_ in range(rounds + 3):  # 3 warm-up rounds; the ways interleaved, so that
        for name, render in renders.items():  # the machine's noise hits each alike
            began = time.perf_counter()
            asyncio.run(render())
            if round_ >= 3:
                times[name].append(time.perf_counter() - began)
    return {"events": len(events), **{name: _us(t, len(events)) for name, t in times.items()}}


def http(rounds: int) -> dict[str, Any]:
    process, url, _ = start()
    revisions = {"steps": {}, "legacy": {"Api-Revision": "2025-11-01"}}
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            # echo answers "user: <input>" in 8-character deltas: 1,000 events in all
            body = {"model": "echo", "input": "x" * (8 * (EVENTS - 5) - 6)}
            made = client.post("/v1beta/interactions", json=body).json()
            times: dict[str, list[float]] = {name: [] for name in revisions}
            counts: dict[str, int] = {}
            for round_ in range(rounds + 3):
                for name, headers in revisions.items():
                    began = time.perf_counter()
                    count = 0
                    with client.stream(
                        "GET",
                        f"/v1beta/interactions/{made['id']}",
                        params={"stream": "true"},
                        headers=headers,
                    ) as response:
                        for line in response.iter_lines():
                            count += line.startswith("data: {")
                    if round_ >= 3:
                        times[name].append(time.perf_counter() - began)
                    counts[name] = count
            return {"events": counts, **{name: _us(times[name], counts[name]) for name in times}}
    finally:
        process.terminate()
        process.wait(timeout=20)


def table(results: dict[str, Any]) -> str:
    edge_, http_ = results["edge"], results["http"]
    rows = [
        ("edge: render 1,000 events", edge_["steps"], edge_["legacy"]),
        ("http: GET ?stream=true", http_["steps"], http_["legacy"]),
    ]
    resume = edge_["legacy_resume_at_end"]

    def cell(median: float, fastest: float) -> str:
        return f"{median:>7.2f} /{fastest:>6.2f}"

    lines = [
        f"{'µs per event (median / min)':<28} {'steps':>15} {'legacy':>15} {'legacy adds':>15}",
        *(
            f"{name:<28} {cell(a['median'], a['min'])} {cell(b['median'], b['min'])}"
            f" {cell(b['median'] - a['median'], b['min'] - a['min'])}"
            for name, a, b in rows
        ),
        f"legacy resume after the log's last event: {resume['median']:.2f} / {resume['min']:.2f}"
        " µs per log event re-read (the view rebuilds its output indexes from the first event)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    rounds = parser.parse_args().rounds
    results = {"edge": edge(rounds), "http": http(rounds)}
    save("revisions", results)
    print(table(results))


if __name__ == "__main__":
    main()
