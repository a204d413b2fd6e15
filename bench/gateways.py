"""Propylon side by side with LiteLLM, Portkey and a bare aiohttp pass-through, one machine,
one mock upstream, one run (issue: benchmarks). The method is in docs/benchmarks.md.

    python bench/gateways.py [--seconds 8] [--skip litellm,portkey] [--chat-only]

Installs what it needs on first use: LiteLLM's proxy into bench/.venvs/litellm, the Portkey
gateway (1.15.2, @hono/node-server pinned to 1.13.5: its issue #1389) into bench/.venvs/portkey,
wrk from Debian's packages when missing. Each gateway runs pinned to CPU 1; the mock upstream and
the load generators to CPU 0 (where `taskset` allows).

(a) non-streaming, wrk closed loop at concurrency 1, 16, 64: p50/p99 latency, requests/s,
    errors; "added" is over calling the mock directly in the same run. Propylon is loaded
    through its Interactions API (store=false, store=true) and through its Chat Completions
    (`propylon chat`: the same surface, body and mock as LiteLLM and Portkey, like for like);
    `--chat-only` runs only the Chat Completions rows (direct, pass-through, the gateways).
(b) streaming, 100 chunks, concurrency 1: time to first token and total time, added over direct.
(c) Propylon alone: memory per idle open stream (1,000 streams); store=true vs store=false rows
    in (a); resume and background figures come from bench/streaming.py and bench/background.py.
A py-spy profile of Propylon under load (store=false, concurrency 16) names the hottest frames.
Writes bench/results/gateways.json and bench/results/gateways.md (with `--chat-only`:
bench/results/gateways-chat.json and .md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from _harness import RESULTS, free_port, percentiles

HERE = Path(__file__).parent
VENVS = HERE / ".venvs"
PY = sys.executable
CPUS = os.cpu_count() or 1


def pin(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") and CPUS > 1 else \
        command


def wait_port(port: int, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    import socket

    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{process.args} did not start") from None
            time.sleep(0.1)


def ensure_tools(skip: set[str]) -> None:
    if not shutil.which("wrk"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    if "litellm" not in skip and not (VENVS / "litellm" / "bin" / "litellm").exists():
        subprocess.run([PY, "-m", "venv", str(VENVS / "litellm")], check=True)
        subprocess.run([str(VENVS / "litellm" / "bin" / "pip"), "install", "-q",
                        "litellm[proxy]"], check=True)
    portkey = VENVS / "portkey"
    if "portkey" not in skip and not (portkey / "node_modules" / ".bin" / "gateway").exists():
        portkey.mkdir(parents=True, exist_ok=True)
        (portkey / "package.json").write_text(json.dumps({
            "name": "portkey-bench", "private": True,
            "dependencies": {"@portkey-ai/gateway": "1.15.2"},
            "overrides": {"@hono/node-server": "1.13.5"}}))
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=portkey,
                       check=True)


class Target:
    """A thing to load: how to start it and how to ask it."""

    def __init__(self, name: str, url: str, body: dict[str, Any], headers: dict[str, str],
                 command: list[str] | None = None, env: dict[str, str] | None = None,
                 stream_body: dict[str, Any] | None = None, first_token: bytes = b'"t0 '
                 ) -> None:
        self.name, self.url, self.body, self.headers = name, url, body, headers
        self.command, self.env = command, env
        self.stream_body = stream_body or {**body, "stream": True, "model": "bench-stream"}
        self.first_token = first_token
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        if self.command is None:
            return
        self.process = subprocess.Popen(pin(1, self.command), env={**os.environ,
                                        **(self.env or {})}, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(port, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)

    def rss_mib(self) -> float:
        if self.process is None:
            return 0.0
        total = 0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(match.group(1)) if match else 0
        return round(total / 1024, 1)


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    kids = [int(p) for p in out.split()]
    return kids + [g for k in kids for g in _children(k)]


def wrk(target: Target, concurrency: int, seconds: float) -> dict[str, Any]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in
                      {"content-type": "application/json", **target.headers}.items())
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(target.body))}\n'
                      + headers)
    base = ["wrk", "-t1", f"-c{concurrency}", "--latency", "-s", str(script), target.url]
    subprocess.run(pin(0, [*base[:3], "-d2s", *base[3:]]), capture_output=True)  # warm-up
    out = subprocess.run(pin(0, [*base[:3], f"-d{round(seconds)}s", *base[3:]]),
                         capture_output=True, text=True).stdout
    script.unlink()

    def ms(label: str) -> float:
        match = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)\b", out)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|"
                                            r"Socket errors:.*?timeout) (\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    if socket_errors:
        errors = sum(int(n) for n in socket_errors.groups()) + int(
            (re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    else:
        errors = int((re.search(r"Non-2xx or 3xx responses: (\d+)", out) or [0, 0])[1])
    return {"p50_ms": round(ms("50"), 3), "p99_ms": round(ms("99"), 3),
            "rps": round(float(rps.group(1)) if rps else 0.0, 1), "errors": errors}


async def streaming(target: Target, count: int) -> dict[str, Any]:
    first, total = [], []
    errors = 0
    async with aiohttp.ClientSession() as http:
        for i in range(count + 20):
            began = time.perf_counter()
            seen = None
            try:
                async with http.post(target.url, json=target.stream_body,
                                     headers=target.headers) as response:
                    if response.status != 200:
                        errors += 1
                        await response.read()
                        continue
                    async for chunk in response.content.iter_any():
                        if seen is None and target.first_token in chunk:
                            seen = time.perf_counter() - began
            except aiohttp.ClientError:
                errors += 1
                continue
            if i >= 20 and seen is not None:
                first.append(seen)
                total.append(time.perf_counter() - began)
    return {"ttft": percentiles(first), "total": percentiles(total), "errors": errors}


async def idle_streams(url: str, count: int) -> None:
    """Open `count` SSE streams on one idle running interaction; hold them until cancelled."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        created = await (await http.post(f"{url}/v1beta/interactions", json={
            "model": "echo-idle", "input": "zz", "background": True})).json()

        async def hold() -> None:
            async with http.get(f"{url}/v1beta/interactions/{created['id']}",
                                params={"stream": "true"}) as response:
                async for _ in response.content.iter_any():
                    pass

        await asyncio.gather(*(hold() for _ in range(count)))


def memory_per_stream(target: Target, url: str, count: int) -> dict[str, float]:
    before = target.rss_mib()
    holder = subprocess.Popen(pin(0, [PY, "-c", (
        "import asyncio, sys; sys.path.insert(0, %r); import resource; "
        "resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096)); "
        "from gateways import idle_streams; asyncio.run(idle_streams(%r, %d))"
    ) % (str(HERE), url, count)]))
    time.sleep(8)  # let all streams connect and settle (a measurement, not synchronisation)
    during = target.rss_mib()
    holder.kill()
    holder.wait()
    return {"streams": count, "rss_before_mib": before, "rss_with_streams_mib": during,
            "kib_per_stream": round((during - before) * 1024 / count, 1)}


def profile(target: Target, seconds: float) -> list[tuple[str, float]]:
    """py-spy's hottest frames (self time share) under wrk load."""
    if target.process is None or not shutil.which("py-spy"):
        return []
    raw = Path(tempfile.mkstemp(suffix=".txt")[1])
    spy = subprocess.Popen(pin(0, ["py-spy", "record", "--gil", "--format", "raw", "-o", str(raw), "-d",
                                   str(int(seconds)), "-r", "200", "-p",
                                   str(_python_pid(target))]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wrk(target, 16, seconds)
    spy.wait()
    self_time: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.split(";")[-1]
        self_time[re.sub(r" \(.*?:\d+\)", lambda m: m.group(0).split(":")[0] + ")", leaf)] += \
            int(count)
        total += int(count)
    raw.unlink()
    return [(frame, round(100 * n / total, 1)) for frame, n in self_time.most_common(15)]


def _python_pid(target: Target) -> int:
    assert target.process is not None
    pids = [target.process.pid, *_children(target.process.pid)]
    for pid in pids:
        if "python" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return pid
    return target.process.pid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--skip", default="")
    parser.add_argument("--chat-only", action="store_true")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    if shutil.which("taskset") and CPUS > 1:  # as `pin`: this process is the streaming
        os.sched_setaffinity(0, {0})  # client (b), a load generator: on CPU 0 with the others
    ensure_tools(skip)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))

    work = Path(tempfile.mkdtemp(prefix="propylon-gateways-"))
    mock_port = free_port()
    mock = subprocess.Popen(pin(0, [PY, str(HERE / "mock_upstream.py"), str(mock_port)]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(mock_port, mock)
    upstream = f"http://127.0.0.1:{mock_port}"
    chat = {"model": "bench", "messages": [{"role": "user", "content": "hello"}]}

    ports = {name: free_port() for name in ("passthrough", "propylon", "litellm", "portkey")}
    (work / "propylon.toml").write_text(f"""
[[models]]
name = "echo-idle"
provider = "echo"
options = {{ delay = 3600 }}
""" + "".join(f"""
[[models]]
name = "{model}"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "{model}"
max_attempts = 1
""" for model in ("bench", "bench-stream")))
    (work / "litellm.yaml").write_text("model_list:\n" + "".join(
        f"  - model_name: {m}\n    litellm_params:\n      model: openai/{m}\n"
        f"      api_base: {upstream}/v1\n      api_key: dummy\n" for m in ("bench", "bench-stream")
    ) + "general_settings:\n  master_key: sk-bench\n")
    propylon_url = f"http://127.0.0.1:{ports['propylon']}/v1beta/interactions"
    propylon_cmd = [PY, "-m", "propylon", "serve", "--port", str(ports["propylon"]),
                    "--data-dir", str(work / "data"), "--config", str(work / "propylon.toml")]
    # One Propylon process serves every `propylon ...` row.
    propylon = Target("propylon", propylon_url, {}, {}, propylon_cmd,
                      {"PROPYLON_LOG_LEVEL": "warning"})
    interaction = {"model": "bench", "input": "hello"}
    targets = [
        Target("direct", f"{upstream}/v1/chat/completions", chat, {}),
        Target("py-aiohttp", f"http://127.0.0.1:{ports['passthrough']}/v1/chat/completions",
               chat, {}, [PY, str(HERE / "passthrough.py"), str(ports["passthrough"]), upstream]),
        Target("propylon store=false", propylon_url, {**interaction, "store": False}, {},
               stream_body={"model": "bench-stream", "input": "hello", "store": False,
                            "stream": True}, first_token=b"step.delta"),
        Target("propylon store=true", propylon_url, interaction, {}, None,
               stream_body={"model": "bench-stream", "input": "hello", "stream": True},
               first_token=b"step.delta"),
        Target("propylon chat", f"http://127.0.0.1:{ports['propylon']}/v1/chat/completions",
               chat, {}),
        Target("litellm", f"http://127.0.0.1:{ports['litellm']}/v1/chat/completions", chat,
               {"authorization": "Bearer sk-bench"},
               [str(VENVS / "litellm" / "bin" / "litellm"), "--config", str(work / "litellm.yaml"),
                "--port", str(ports["litellm"]), "--host", "127.0.0.1"]),
        Target("portkey", f"http://127.0.0.1:{ports['portkey']}/v1/chat/completions", chat,
               {"x-portkey-provider": "openai", "x-portkey-custom-host": f"{upstream}/v1",
                "authorization": "Bearer dummy"},
               [str(VENVS / "portkey" / "node_modules" / ".bin" / "gateway"),
                f"--port={ports['portkey']}", "--headless"], {"NODE_ENV": "production"}),
    ]
    targets = [t for t in targets if t.name.split()[0] not in skip]
    if args.chat_only:
        targets = [t for t in targets if not t.name.startswith("propylon store")]
    results: dict[str, Any] = {"nonstream": {}, "stream": {}, "processes": {}}
    try:
        for target in targets:
            if target.name.startswith("propylon"):
                if propylon.process is None:
                    propylon.start(ports["propylon"])
                target.process = propylon.process
            else:
                target.start(int(target.url.split(":")[2].split("/")[0]))
            idle = target.rss_mib()
            print(f"== {target.name}", flush=True)
            for concurrency in (1, 16, 64):
                row = wrk(target, concurrency, args.seconds)
                results["nonstream"][f"{target.name}|{concurrency}"] = row
                print(f"  c={concurrency}: {row}", flush=True)
            row = asyncio.run(streaming(target, args.streams))
            results["stream"][target.name] = row
            print(f"  stream: {row}", flush=True)
            results["processes"][target.name] = {"rss_idle_mib": idle,
                                                 "rss_after_mib": target.rss_mib()}
            if target.name == "propylon store=true":
                # the store=false body (the bare `propylon` target has none: a 400 per request)
                unstored = next(t for t in targets if t.name == "propylon store=false")
                results["profile_store_false_c16"] = profile(unstored, 6)
                results["idle_streams"] = memory_per_stream(
                    propylon, f"http://127.0.0.1:{ports['propylon']}", 1000)
            if not target.name.startswith("propylon"):
                target.stop()
        propylon.stop()
    finally:
        for target in [*targets, propylon]:
            if target.process is not None and target.process.poll() is None:
                target.stop()
        mock.terminate()
    results["machine"] = {"cpus": CPUS, "python": platform.python_version(),
                          "platform": platform.platform(), "seconds_per_scenario": args.seconds}
    results["command"] = " ".join(["python", *sys.argv])
    RESULTS.mkdir(exist_ok=True)
    name = "gateways-chat" if args.chat_only else "gateways"  # a partial run keeps the full one
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (RESULTS / f"{name}.md").write_text(table)
    print(table)


def markdown(results: dict[str, Any]) -> str:
    lines = ["### Non-streaming (wrk, closed loop, keep-alive)", "",
             "| target | conc | p50 ms | p99 ms | RPS | errors | added p50 ms | added p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    rows = results["nonstream"]
    for key, row in rows.items():
        name, concurrency = key.split("|")
        direct = rows.get(f"direct|{concurrency}", row)
        lines.append(f"| {name} | {concurrency} | {row['p50_ms']} | {row['p99_ms']} | "
                     f"{row['rps']} | {row['errors']} | "
                     f"{round(row['p50_ms'] - direct['p50_ms'], 3)} | "
                     f"{round(row['p99_ms'] - direct['p99_ms'], 3)} |")
    lines += ["", "### Streaming, 100 chunks, concurrency 1", "",
              "| target | TTFT p50 ms | TTFT p99 ms | total p50 ms | total p99 ms | "
              "added TTFT p50 ms | added total p50 ms | errors |", "|---|---|---|---|---|---|---|---|"]
    stream = results["stream"]
    direct = stream.get("direct")
    for name, row in stream.items():
        base = direct or row
        lines.append(f"| {name} | {row['ttft']['p50_ms']} | {row['ttft']['p99_ms']} | "
                     f"{row['total']['p50_ms']} | {row['total']['p99_ms']} | "
                     f"{round(row['ttft']['p50_ms'] - base['ttft']['p50_ms'], 3)} | "
                     f"{round(row['total']['p50_ms'] - base['total']['p50_ms'], 3)} | "
                     f"{row['errors']} |")
    lines += ["", "### Processes", "", "| target | RSS idle MiB | RSS after MiB |", "|---|---|---|"]
    lines += [f"| {n} | {p['rss_idle_mib']} | {p['rss_after_mib']} |"
              for n, p in results["processes"].items()]
    if "idle_streams" in results:
        s = results["idle_streams"]
        lines += ["", f"Propylon with {s['streams']} idle open streams: RSS {s['rss_before_mib']} "
                  f"-> {s['rss_with_streams_mib']} MiB, {s['kib_per_stream']} KiB per stream."]
    if results.get("profile_store_false_c16"):
        lines += ["", "### Hottest frames (py-spy, Propylon store=false, c=16, self time)", ""]
        lines += [f"- {share}% {frame}" for frame, share in results["profile_store_false_c16"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
