"""Added latency, paired: the bare pass-through (the floor) and Propylon measured request by
request, interleaved, so both see the same machine (issue: the hot path). One command:

    python bench/paired.py [--requests 2000] [--rows nf,nt,chat,sf,st,chats] [--src PATH ...]

A shared machine drifts by tens of percent from one minute to the next: gateways.py measures
one target after the other, so a slow minute lands on one of them. Here each round sends one
request to the mock upstream directly, one to the floor (bench/passthrough.py) and one to each
Propylon, in an order that alternates, one at a time (concurrency 1) from one client on CPU 0
(the mock too); the servers run on CPU 1. Non-streamed rows time the whole answer; streamed
rows (100 chunks) the first token. "added" is a target's p50 less the direct call's; the
floor's row is its Chat Completions with the same shape (streamed or not).

Rows: `nf` Interactions create store=false, `nt` store=true, `chat` Chat Completions; `sf`,
`st`, `chats` the same streamed. `--src` (repeatable) runs a Propylon per source tree
(`PYTHONPATH`), for before/after: the default is the installed one. Writes
bench/results/paired.json and paired.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import free_port, save

HERE = Path(__file__).parent
PINNED = bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1
CHAT = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}
STREAMED_CHAT = {**CHAT, "model": "bench-stream", "stream": True}
# row: (path, body, the first-token marker of a streamed answer or None)
ROWS: dict[str, tuple[str, dict[str, Any], bytes | None]] = {
    "nf": ("/v1beta/interactions", {"model": "bench", "input": "hello", "store": False}, None),
    "nt": ("/v1beta/interactions", {"model": "bench", "input": "hello"}, None),
    "chat": ("/v1/chat/completions", CHAT, None),
    "sf": (
        "/v1beta/interactions",
        {"model": "bench-stream", "input": "hello", "store": False, "stream": True},
        b"step.delta",
    ),
    "st": (
        "/v1beta/interactions",
        {"model": "bench-stream", "input": "hello", "stream": True},
        b"step.delta",
    ),
    "chats": ("/v1/chat/completions", STREAMED_CHAT, b'"content"'),
}
CONFIG = "".join(
    f'\n[[models]]\nname = "{m}"\n[[models.targets]]\nprovider = "openai"\n'
    f'base_url = "{{upstream}}/v1"\nmodel = "{m}"\nmax_attempts = 1\n'
    for m in ("bench", "bench-stream")
)


def _pin(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if PINNED else command


def _serve(command: list[str], port: int, env: dict[str, str], cpu: int = 1
           ) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        _pin(cpu, command), env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} did not start") from None
            time.sleep(0.1)


def _timed(conn: http.client.HTTPConnection, path: str, body: bytes, marker: bytes | None
           ) -> float:
    """Seconds to the whole answer (`marker` None) or to the first read holding `marker`."""
    began = time.perf_counter()
    conn.request("POST", path, body=body, headers={"content-type": "application/json"})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}: {response.read()[:200]!r}")
    if marker is None:
        response.read()
        return time.perf_counter() - began
    seen, head = None, b""
    while chunk := response.read1(65536):
        if seen is None:
            head += chunk
            if marker in head:
                seen = time.perf_counter() - began
    if seen is None:
        raise RuntimeError(f"{path}: no {marker!r} in the answer")
    return seen


def _row(name: str, conns: dict[str, http.client.HTTPConnection], requests: int
         ) -> dict[str, Any]:
    """One row: `requests` rounds (and 50 to warm up) over every target, order alternating."""
    path, body, marker = ROWS[name]
    streamed = marker is not None
    chat = json.dumps(STREAMED_CHAT if streamed else CHAT).encode()
    chat_marker = b'"content"' if streamed else None
    shapes = {"direct": ("/v1/chat/completions", chat, chat_marker),
              "floor": ("/v1/chat/completions", chat, chat_marker)}
    for target in conns:
        shapes.setdefault(target, (path, json.dumps(body).encode(), marker))
    samples: dict[str, list[float]] = {target: [] for target in conns}
    order = list(conns)
    for i in range(requests + 50):
        for target in order if i % 2 else reversed(order):
            took = _timed(conns[target], *shapes[target])
            if i >= 50:
                samples[target].append(took)
    direct = statistics.median(samples["direct"])
    floor = statistics.median(samples["floor"]) - direct
    result: dict[str, Any] = {}
    for target, taken in samples.items():
        p50 = statistics.median(taken)
        added = p50 - direct
        result[target] = {
            "p50_ms": round(p50 * 1000, 3),
            "added_ms": round(added * 1000, 3),
            "x_floor": round(added / floor, 2) if floor > 0 else None,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rows", default="nf,nt,chat,sf,st,chats")
    parser.add_argument("--src", action="append", default=[])
    args = parser.parse_args()
    if PINNED:
        os.sched_setaffinity(0, {0})
    work = Path(tempfile.mkdtemp(prefix="propylon-paired-"))
    ports = {"mock": free_port(), "floor": free_port()}
    upstream = f"http://127.0.0.1:{ports['mock']}"
    (work / "propylon.toml").write_text(CONFIG.replace("{upstream}", upstream))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_serve(
            [sys.executable, str(HERE / "mock_upstream.py"), str(ports["mock"])],
            ports["mock"], {}, cpu=0,
        ))
        processes.append(_serve(
            [sys.executable, str(HERE / "passthrough.py"), str(ports["floor"]), upstream],
            ports["floor"], {},
        ))
        sources = args.src or [""]
        names = ["propylon"] if len(sources) == 1 else [f"propylon {s}" for s in sources]
        for name, source in zip(names, sources, strict=True):
            ports[name] = free_port()
            env = {"PROPYLON_LOG_LEVEL": "warning"} | ({"PYTHONPATH": source} if source else {})
            processes.append(_serve(
                [sys.executable, "-m", "propylon", "serve", "--port", str(ports[name]),
                 "--data-dir", str(work / f"data-{len(processes)}"),
                 "--config", str(work / "propylon.toml")],
                ports[name], env,
            ))
        conns = {"direct": http.client.HTTPConnection("127.0.0.1", ports["mock"])}
        conns |= {name: http.client.HTTPConnection("127.0.0.1", ports[name])
                  for name in ["floor", *names]}
        rows = {}
        for row in args.rows.split(","):
            rows[row] = _row(row, conns, args.requests)
            print(row, json.dumps(rows[row]), flush=True)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)
    results = {"rows": rows, "requests": args.requests, "sources": sources,
               "command": " ".join(["python", *sys.argv])}
    save("paired", results)
    (HERE / "results" / "paired.md").write_text(_markdown(results))


def _markdown(results: dict[str, Any]) -> str:
    lines = ["| row | target | p50 ms | added p50 ms | added / floor's |", "|---|---|---|---|---|"]
    for row, targets in results["rows"].items():
        for target, figures in targets.items():
            lines.append(f"| {row} | {target} | {figures['p50_ms']} | {figures['added_ms']} | "
                         f"{figures['x_floor']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
