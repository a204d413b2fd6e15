"""Streaming figures (issue: streaming).

    python bench/streaming.py [--requests 300]

1. Time to first event and to first text delta of a streamed create with `echo`, whose own first
   token is immediate: everything measured is what Propylon adds (HTTP, validation, the log
   write before send, SSE framing). store=true and store=false.
2. Resume latency: `GET ?stream=true&last_event_id=` at event 10 and at event 10,000 of one
   interaction with a 12,000-event log: time to the first resumed event. It must not grow with
   the log's length (an index range read).
Writes bench/results/streaming.json.
"""

from __future__ import annotations

import argparse
import time

import httpx
from _harness import percentiles, save, start


def first_events(url: str, n: int, store: bool) -> dict[str, dict[str, float]]:
    body = {"model": "echo", "input": "a short question", "stream": True, "store": store}
    to_first, to_delta, total = [], [], []
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(n + 20):
            began = time.perf_counter()
            first = delta = None
            with http.stream("POST", "/v1beta/interactions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data: ") and first is None:
                        first = time.perf_counter() - began
                    if line.startswith('data: {"event_type":"step.delta"') and delta is None:
                        delta = time.perf_counter() - began
            if i >= 20 and first is not None and delta is not None:  # 20 warm-up streams
                to_first.append(first)
                to_delta.append(delta)
                total.append(time.perf_counter() - began)
    return {
        "first_event": percentiles(to_first),
        "first_text_delta": percentiles(to_delta),
        "whole_stream": percentiles(total),
    }


def resume(url: str, n: int) -> dict[str, dict[str, float]]:
    # 8 characters per echo delta: 96,000 characters make about 12,000 events.
    body = {"model": "echo", "input": "x" * 96_000}
    with httpx.Client(base_url=url, timeout=120) as http:
        interaction = http.post("/v1beta/interactions", json=body).json()
        interaction_id = interaction["id"]
        results = {}
        for at in (10, 10_000):
            samples = []
            for i in range(n + 10):
                began = time.perf_counter()
                params = {"stream": "true", "last_event_id": f"{interaction_id}.{at}"}
                with http.stream(
                    "GET", f"/v1beta/interactions/{interaction_id}", params=params
                ) as response:
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            assert f'"event_id":"{interaction_id}.{at + 1}"' in line
                            break
                if i >= 10:
                    samples.append(time.perf_counter() - began)
            results[f"resume_at_event_{at}"] = percentiles(samples)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    process, url, _ = start()
    try:
        results = {
            "stream_create_store_true": first_events(url, args.requests, True),
            "stream_create_store_false": first_events(url, args.requests, False),
            **resume(url, args.requests),
        }
    finally:
        process.terminate()
        process.wait()
    save("streaming", results)


if __name__ == "__main__":
    main()
