"""Several processes on PostgreSQL + Redis (issue 13: distributed mode).

    python bench/distributed.py [--requests 800] [--runs 400]

Needs the local PostgreSQL (127.0.0.1:5432, user postgres, trust auth; a fresh database is
made and dropped) and Redis (127.0.0.1:6379, database 13).
1. Create latency p50/p99 and requests/s of `echo` creates (store=true, foreground) from 16
   concurrent clients, with 1 and then 2 `propylon serve` processes (round-robin).
2. Background runs per second with 2 `propylon worker` processes: `runs` background `echo`
   creates, until the last one has ended.
3. Recovery: 40 slow background runs on 2 workers, SIGKILL of one: seconds until the last of
   them has ended (with heartbeat_seconds=1, stale_after_seconds=5, reconcile_seconds=2).
Writes bench/results/distributed.json.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import psycopg
from _harness import free_port, percentiles, save

ADMIN = "postgresql://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/13"
CONFIG = """
heartbeat_seconds = 1
stale_after_seconds = 5
reconcile_seconds = 2
worker_concurrency = 32
webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
[[models]]
name = "echo"
provider = "echo"
[[models]]
name = "echo-slow"
provider = "echo"
options = { delay = 0.2 }
"""


class Deployment:
    """Processes on one database; stopped together."""

    def __init__(self, database_url: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="propylon-bench-dist-"))
        (self.root / "propylon.toml").write_text(CONFIG)
        self.args = [
            "--config", str(self.root / "propylon.toml"), "--data-dir", str(self.root),
            "--database-url", database_url, "--redis-url", REDIS,
        ]  # fmt: skip
        self.processes: list[subprocess.Popen[bytes]] = []
        self.database_url = database_url

    def serve(self) -> str:
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "propylon", "serve", "--port", str(port), *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError("serve exited")
            time.sleep(0.05)

    def worker(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "propylon", "worker", *self.args],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / f"worker{len(self.processes)}.log").open("ab"),
        )
        self.processes.append(process)
        return process

    def unfinished(self, ids: list[str]) -> int:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM interactions WHERE id = ANY(%s) "
                "AND status IN ('queued', 'in_progress')",
                (ids,),
            ).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def creates(urls: list[str], requests: int, concurrency: int = 16) -> dict[str, object]:
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:

        async def client(n: int) -> None:
            for i in range(n, requests, concurrency):
                began = time.perf_counter()
                async with http.post(
                    f"{urls[i % len(urls)]}/v1beta/interactions",
                    json={"model": "echo", "input": "latency", "store": True},
                ) as response:
                    assert response.status == 200, await response.text()
                    await response.read()
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {**percentiles(latencies), "requests_per_s": round(requests / elapsed, 1)}


async def background(
    urls: list[str], runs: int, model: str = "echo", text: str = "bg"
) -> list[str]:
    ids: list[str] = []
    async with aiohttp.ClientSession() as http:

        async def client(n: int) -> None:
            for i in range(n, runs, 16):
                async with http.post(
                    f"{urls[i % len(urls)]}/v1beta/interactions",
                    json={"model": model, "input": text, "background": True},
                ) as response:
                    ids.append((await response.json())["id"])

        await asyncio.gather(*(client(n) for n in range(16)))
    return ids


def wait_all(deployment: Deployment, ids: list[str], seconds: float) -> float:
    began = time.perf_counter()
    while deployment.unfinished(ids):
        if time.perf_counter() - began > seconds:
            raise RuntimeError("runs did not end in time")
        time.sleep(0.05)
    return time.perf_counter()


def run(requests: int, runs: int) -> dict[str, object]:
    name = f"propylon_bench_{secrets.token_hex(4)}"
    with psycopg.connect(f"{ADMIN}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    deployment = Deployment(f"{ADMIN}/{name}")
    results: dict[str, object] = {}
    try:
        urls = [deployment.serve()]
        asyncio.run(creates(urls, 64))  # warm up
        results["create_1_serve"] = asyncio.run(creates(urls, requests))
        urls.append(deployment.serve())
        asyncio.run(creates(urls, 64))
        results["create_2_serve"] = asyncio.run(creates(urls, requests))
        workers = [deployment.worker(), deployment.worker()]
        asyncio.run(background(urls, 16))  # warm up
        began = time.perf_counter()
        ids = asyncio.run(background(urls, runs))
        ended = wait_all(deployment, ids, 300)
        results["background_2_workers"] = {
            "runs": runs,
            "runs_per_s": round(runs / (ended - began), 1),
        }
        ids = asyncio.run(background(urls, 40, "echo-slow", "slow " * 60))
        logs = [deployment.root / f"worker{n}.log" for n in (2, 3)]
        while not all(log.read_text().count("Starting job propylon.run") >= 5 for log in logs):
            time.sleep(0.05)
        killed = time.perf_counter()
        workers[0].kill()
        ended = wait_all(deployment, ids, 120)
        results["sigkill_to_last_run_ended_s"] = round(ended - killed, 2)
    finally:
        deployment.stop()
        with psycopg.connect(f"{ADMIN}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=800)
    parser.add_argument("--runs", type=int, default=400)
    args = parser.parse_args()
    save("distributed", run(args.requests, args.runs))


if __name__ == "__main__":
    main()
