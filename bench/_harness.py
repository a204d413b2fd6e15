"""Shared bench helpers: start `propylon serve` on a free port, percentiles, result files."""

from __future__ import annotations

import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

RESULTS = Path(__file__).parent / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    config: str = "", cpu: int | None = None, database_url: str | None = None
) -> tuple[subprocess.Popen[bytes], str, float]:
    """Start the server; return (process, base url, seconds until its first answered create).
    `database_url`: `--database-url` (`{data_dir}` in it: the server's fresh data dir)."""
    data_dir = Path(tempfile.mkdtemp(prefix="propylon-bench-"))
    (data_dir / "propylon.toml").write_text(config)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "propylon",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--config",
        str(data_dir / "propylon.toml"),
    ]
    if database_url is not None:
        command += ["--database-url", database_url.replace("{data_dir}", str(data_dir))]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            response = httpx.post(
                f"{url}/v1beta/interactions", json={"model": "echo", "input": "ping"}, timeout=1
            )
            if response.status_code == 200:
                return process, url, time.perf_counter() - began
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError("server exited")
        time.sleep(0.005)


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / mean in milliseconds of samples in seconds."""
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def save(name: str, results: dict[str, Any]) -> Path:
    """Write results with machine details to bench/results/<name>.json and print them."""
    RESULTS.mkdir(exist_ok=True)
    results = {
        "machine": {
            "python": platform.python_version(),
            "cpus": _cpus(),
            "platform": platform.platform(),
        },
        "command": " ".join(["python", *sys.argv]),
        **results,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return path


def _cpus() -> int:
    import os

    return os.cpu_count() or 0
