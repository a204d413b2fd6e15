"""Costs that must not grow with the work (issue: the hot path). One command:

    python bench/scaling.py [--gets 300] [--runs 200] [--chunks 100] [--pace-ms 10]

(a) `get` of a running interaction whose log is at about event 10, 1,000 and 10,000 (the mock
    upstream sends that many chunks, then holds the answer open): p50/p99 of sequential gets
    over one keep-alive connection, and the answer's size. Flat: the fold is kept, not redone.
(b) `--runs` concurrent streaming runs with store=true, their upstream sending `--chunks`
    chunks `--pace-ms` apart (a model's token rate): group commits per second and events (and
    logs) per commit, read from Propylon's own counters (`propylon_log_commits` & co.), and
    the inter-token delay the clients see, against the same run alone (concurrency 1); what
    is over the pace is what Propylon added.

Propylon runs pinned to CPU 1, the mock upstream and the clients to CPU 0 (where `taskset`
allows). Writes bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from _harness import free_port, percentiles, save, start
from prometheus_client.parser import text_string_to_metric_families

HERE = Path(__file__).parent
PINNED = bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1
HOLDS = (10, 1_000, 10_000)


def _mock(port: int, chunks: int, pace_ms: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(HERE / "mock_upstream.py"), str(port), "--chunks",
               str(chunks), "--pace-ms", str(pace_ms)]
    if PINNED:
        command = ["taskset", "-c", "0", *command]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _config(upstream: str) -> str:
    models = ["bench-paced", *(f"bench-hold-{n}" for n in HOLDS)]
    return '[[models]]\nname = "echo"\nprovider = "echo"\n' + "".join(
        f'\n[[models]]\nname = "{m}"\n[[models.targets]]\nprovider = "openai"\n'
        f'base_url = "{upstream}/v1"\nmodel = "{m}"\nmax_attempts = 1\n'
        for m in models
    )


def gets(url: str, count: int) -> dict[str, Any]:
    """(a): per log length, the cost of a `get` of the running interaction."""
    results: dict[str, Any] = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for hold in HOLDS:
            created = http.post("/v1beta/interactions", json={
                "model": f"bench-hold-{hold}", "input": "hi", "background": True}).json()
            path = f"/v1beta/interactions/{created['id']}"
            deadline = time.monotonic() + 120
            while True:  # until the log holds every chunk the upstream sent
                got = http.get(path).json()
                text = "".join(item.get("text", "") for step in got.get("steps", [])
                               if step.get("type") == "model_output"
                               for item in step.get("content", []))
                if text.count("t") >= hold:
                    break
                assert time.monotonic() < deadline, f"the log of {hold} did not fill"
                time.sleep(0.05)
            assert got["status"] == "in_progress", got["status"]
            samples = []
            size = 0
            for _ in range(count):
                began = time.perf_counter()
                response = http.get(path)
                samples.append(time.perf_counter() - began)
                size = len(response.content)
            results[f"event_{hold}"] = {**percentiles(samples), "bytes": size,
                                        "events": hold + 4}
            http.post(f"{path}/cancel")
    return results


def _commits(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("propylon_log_commit")}


async def _stream(http: aiohttp.ClientSession, url: str, gaps: list[float]) -> int:
    """One store=true streaming run; the gaps between its text deltas go to `gaps`."""
    body = {"model": "bench-paced", "input": "hello", "stream": True}
    last = None
    deltas = 0
    async with http.post(f"{url}/v1beta/interactions", json=body) as response:
        assert response.status == 200, await response.text()
        async for line in response.content:
            if line.startswith(b"data: ") and b'"step.delta"' in line:
                arrived = time.perf_counter()
                if last is not None:
                    gaps.append(arrived - last)
                last = arrived
                deltas += 1
    return deltas


async def _load(url: str, runs: int) -> tuple[list[float], float, int]:
    gaps: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=600)) as http:
        began = time.perf_counter()
        deltas = await asyncio.gather(*(_stream(http, url, gaps) for _ in range(runs)))
        return gaps, time.perf_counter() - began, sum(deltas)


def concurrent(url: str, runs: int, pace_ms: float) -> dict[str, Any]:
    """(b): `runs` store=true streams at once, against one alone."""
    alone, _, _ = asyncio.run(_load(url, 1))
    before = _commits(url)
    gaps, seconds, deltas = asyncio.run(_load(url, runs))
    after = _commits(url)

    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    commits = delta("propylon_log_commits_total")
    pace = pace_ms / 1000
    loaded, single = percentiles(gaps), percentiles(alone)
    return {
        "runs": runs,
        "seconds": round(seconds, 2),
        "text_deltas_received": deltas,
        "commits_per_second": round(commits / seconds, 1) if commits else None,
        "events_per_commit": round(delta("propylon_log_committed_events_total") / commits, 1)
        if commits else None,
        "logs_per_commit": round(delta("propylon_log_committed_logs_total") / commits, 1)
        if commits else None,
        "inter_token_ms_alone": single,
        "inter_token_ms_loaded": loaded,
        "added_p50_ms_loaded": round(loaded["p50_ms"] - pace_ms, 3),
        "added_p99_ms_loaded": round(loaded["p99_ms"] - pace_ms, 3),
        "added_p99_ms_alone": round(single["p99_ms"] - pace * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gets", type=int, default=300)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--pace-ms", type=float, default=10.0)
    args = parser.parse_args()
    if PINNED:  # the clients run in this process: on CPU 0, beside the mock
        os.sched_setaffinity(0, {0})
    mock_port = free_port()
    mock = _mock(mock_port, args.chunks, args.pace_ms)
    process, url, _ = start(_config(f"http://127.0.0.1:{mock_port}"), cpu=1 if PINNED else None)
    try:
        results = {"get_running": gets(url, args.gets),
                   "concurrent_streams": concurrent(url, args.runs, args.pace_ms),
                   "load_average": os.getloadavg()}
    finally:
        process.terminate()
        process.wait()
        mock.terminate()
    save("scaling", results)


if __name__ == "__main__":
    main()
