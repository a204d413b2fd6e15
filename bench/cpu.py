"""Gateway CPU per request: the figure least moved by other load on the machine (issue: the hot
path). One command:

    python bench/cpu.py [--seconds 6] [--rounds 2] [--streams 200]

The mock upstream (bench/mock_upstream.py) and wrk run on CPU 0, the gateway on CPU 1; the
gateway's CPU time (user + system, every thread: /proc/PID/stat) over a wrk run, divided by the
requests it answered, in ms. Rows: the bare aiohttp pass-through (bench/passthrough.py, the
floor) and Propylon's Interactions create with store=false and store=true, its Chat
Completions, each at concurrency 1 and 16; then streamed answers of 100 chunks (sequential),
CPU ms per stream. `--rounds` repeats every row (the table shows each round). Writes
bench/results/cpu.json. `PYTHONPATH=<other src>` measures another checkout with this script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from _harness import free_port, save

HERE = Path(__file__).parent
PINNED = bool(shutil.which("taskset")) and (os.cpu_count() or 1) > 1
CHAT = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "passthrough": ("/v1/chat/completions", CHAT),
    "store=false": ("/v1beta/interactions", {"model": "bench", "input": "hello", "store": False}),
    "store=true": ("/v1beta/interactions", {"model": "bench", "input": "hello"}),
    "chat": ("/v1/chat/completions", CHAT),
}


def _pin(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if PINNED else command


def _wait(port: int, process: subprocess.Popen[bytes]) -> None:
    import socket

    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.args} did not start") from None
            time.sleep(0.1)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wrk(
    url: str, body: dict[str, Any], concurrency: int, seconds: int, pid: int
) -> dict[str, Any]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
        'wrk.headers["content-type"] = "application/json"\n'
    )
    base = ["wrk", "-t1", f"-c{concurrency}", "-s", str(script)]
    subprocess.run(_pin(0, [*base, "-d2s", url]), capture_output=True)  # warm-up
    before = _cpu_seconds(pid)
    out = subprocess.run(
        _pin(0, [*base, f"-d{seconds}s", url]), capture_output=True, text=True
    ).stdout
    spent = _cpu_seconds(pid) - before
    script.unlink()
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": requests,
        "rps": round(requests / seconds, 1),
        "cpu_ms_per_request": round(1000 * spent / max(1, requests), 3),
        "errors": int(failed.group(1)) if failed else 0,
    }


async def _streams(url: str, store: bool, count: int, pid: int) -> dict[str, Any]:
    body = {"model": "bench-stream", "input": "hello", "store": store, "stream": True}
    async with aiohttp.ClientSession() as http:

        async def one() -> None:
            async with http.post(f"{url}/v1beta/interactions", json=body) as response:
                assert response.status == 200, response.status
                async for _ in response.content.iter_any():
                    pass

        for _ in range(20):
            await one()
        before = _cpu_seconds(pid)
        for _ in range(count):
            await one()
        spent = _cpu_seconds(pid) - before
    return {"streams": count, "cpu_ms_per_stream": round(1000 * spent / count, 3)}


def _start(command: list[str], port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        _pin(1, command),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait(port, process)
    return process


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="propylon-cpu-"))
    mock_port, floor_port, port = free_port(), free_port(), free_port()
    mock = subprocess.Popen(
        _pin(0, [sys.executable, str(HERE / "mock_upstream.py"), str(mock_port)]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(mock_port, mock)
    (work / "propylon.toml").write_text(
        "".join(
            f'[[models]]\nname = "{m}"\n[[models.targets]]\nprovider = "openai"\n'
            f'base_url = "http://127.0.0.1:{mock_port}/v1"\nmodel = "{m}"\nmax_attempts = 1\n'
            for m in ("bench", "bench-stream")
        )
    )
    upstream = f"http://127.0.0.1:{mock_port}"
    floor = [sys.executable, str(HERE / "passthrough.py"), str(floor_port), upstream]
    serve = [sys.executable, "-m", "propylon", "serve", "--port", str(port), "--data-dir",
             str(work / "data"), "--config", str(work / "propylon.toml")]  # fmt: skip
    rows: dict[str, list[dict[str, Any]]] = {}
    try:
        for _ in range(args.rounds):
            process = _start(floor, floor_port, {})
            for concurrency in (1, 16):
                path, body = BODIES["passthrough"]
                row = _wrk(f"http://127.0.0.1:{floor_port}{path}", body, concurrency,
                           args.seconds, process.pid)  # fmt: skip
                rows.setdefault(f"passthrough c={concurrency}", []).append(row)
            _stop(process)
            process = _start(serve, port, {"PROPYLON_LOG_LEVEL": "warning"})
            for name in ("store=false", "store=true", "chat"):
                path, body = BODIES[name]
                for concurrency in (1, 16):
                    row = _wrk(f"http://127.0.0.1:{port}{path}", body, concurrency,
                               args.seconds, process.pid)  # fmt: skip
                    rows.setdefault(f"{name} c={concurrency}", []).append(row)
            for store in (False, True):
                row = asyncio.run(
                    _streams(f"http://127.0.0.1:{port}", store, args.streams, process.pid)
                )
                rows.setdefault(f"stream store={str(store).lower()}", []).append(row)
            _stop(process)
            for name, runs in rows.items():
                print(name, runs[-1], flush=True)
    finally:
        mock.terminate()
    save("cpu", {"rows": rows, "command": " ".join(["python", *sys.argv])})


if __name__ == "__main__":
    main()
