"""Background runs (issue: background interactions).

    python bench/background.py [--runs 2000] [--concurrency 50]

1. Throughput: `concurrency` clients each create a background `echo` interaction, then follow
   it with `GET ?stream=true` to its end; runs per second over the whole batch, and the queue
   wait (create sent -> its `interaction.status_update: in_progress` event seen), p50/p99.
2. Recovery: 100 background interactions in flight (16 workers, a slow echo), SIGKILL, restart:
   seconds until the server answers again, and until all 100 are terminal.
Writes bench/results/background.json.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
from _harness import free_port, percentiles, save, start

SLOW = """
background_workers = 16
[[models]]
name = "echo"
provider = "echo"
[[models]]
name = "echo-slow"
provider = "echo"
options = { delay = 0.05 }
"""


async def throughput(url: str, runs: int, concurrency: int) -> dict[str, object]:
    waits: list[float] = []
    done = 0
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(url, connector=connector) as http:

        async def one() -> None:
            nonlocal done
            began = time.perf_counter()
            async with http.post("/v1beta/interactions", json={
                    "model": "echo", "input": "background work", "background": True}) as r:
                interaction = await r.json()
            async with http.get(f"/v1beta/interactions/{interaction['id']}",
                                params={"stream": "true"}) as r:
                async for line in r.content:
                    if b'"status":"in_progress"' in line and b"status_update" in line:
                        waits.append(time.perf_counter() - began)
                    if b"interaction.completed" in line and line.startswith(b"data:"):
                        done += 1

        async def client(count: int) -> None:
            for _ in range(count):
                await one()

        share = [runs // concurrency + (i < runs % concurrency) for i in range(concurrency)]
        began = time.perf_counter()
        await asyncio.gather(*(client(n) for n in share))
        elapsed = time.perf_counter() - began
    return {"runs": runs, "completed": done, "concurrency": concurrency,
            "runs_per_second": round(done / elapsed, 1), "queue_wait": percentiles(waits)}


def recovery() -> dict[str, float]:
    data = Path(tempfile.mkdtemp(prefix="propylon-recovery-"))
    (data / "propylon.toml").write_text(SLOW)
    port = free_port()
    command = [sys.executable, "-m", "propylon", "serve", "--port", str(port), "--data-dir",
               str(data), "--config", str(data / "propylon.toml")]
    url = f"http://127.0.0.1:{port}"

    def wait_up() -> None:
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.01)

    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up()
    with httpx.Client(base_url=url, timeout=30) as http:
        ids = [http.post("/v1beta/interactions", json={
            "model": "echo-slow", "input": "a slow background answer " * 3,
            "background": True}).json()["id"] for _ in range(100)]
    process.send_signal(signal.SIGKILL)
    process.wait()
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_up()
    up = time.perf_counter() - began
    with httpx.Client(base_url=url, timeout=30) as http:
        pending = set(ids)
        while pending:
            for interaction_id in list(pending):
                status = http.get(f"/v1beta/interactions/{interaction_id}").json()["status"]
                if status not in ("in_progress", "queued"):
                    pending.discard(interaction_id)
            time.sleep(0.02)
    terminal = time.perf_counter() - began
    process.terminate()
    process.wait()
    return {"in_flight": 100, "seconds_until_serving": round(up, 3),
            "seconds_until_all_terminal": round(terminal, 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    process, url, _ = start("background_workers = 50\n")
    try:
        result = asyncio.run(throughput(url, args.runs, args.concurrency))
    finally:
        process.terminate()
        process.wait()
    save("background", {"throughput": result, "recovery_after_sigkill": recovery()})


if __name__ == "__main__":
    main()
