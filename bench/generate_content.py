"""Added latency of generateContent through Propylon over calling the mock Gemini upstream
directly, beside the Interactions figures on the same upstream (issue 14).

    python bench/generate_content.py [--seconds 8]

One mock upstream (bench/mock_upstream.py, Gemini routes) pinned to CPU 0 with wrk; Propylon
pinned to CPU 1 with one model `bench-gemini` whose target is the mock. Rows: the mock
directly (`:generateContent`, and `:streamGenerateContent?alt=sse`, which is what an
interaction calls), generateContent through Propylon (pass-through to the gemini target, and
on `echo`: Propylon alone), and an interaction (`store=false` and `store=true`) through
Propylon. wrk closed loop at concurrency 1 (p50/p99) and 16 (requests/s). Writes
bench/results/generate_content.json.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _harness import free_port, save
from gateways import PY, Target, ensure_tools, pin, wait_port, wrk

HERE = Path(__file__).parent
ASK = {"contents": [{"role": "user", "parts": [{"text": "Hello from the benchmark"}]}]}
KEY = {"x-goog-api-key": "bench"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    args = parser.parse_args()
    ensure_tools({"litellm", "portkey"})
    mock_port, port = free_port(), free_port()
    mock = subprocess.Popen(pin(0, [PY, str(HERE / "mock_upstream.py"), str(mock_port)]))
    wait_port(mock_port, mock)
    upstream = f"http://127.0.0.1:{mock_port}"
    data_dir = Path(tempfile.mkdtemp(prefix="propylon-bench-gc-"))
    config = data_dir / "propylon.toml"
    config.write_text(
        f"""
[[models]]
name = "echo"
provider = "echo"

[[models]]
name = "bench-gemini"
[[models.targets]]
provider = "gemini"
base_url = "{upstream}"
model = "bench"
"""
    )
    command = [PY, "-m", "propylon", "serve", "--port", str(port), "--data-dir", str(data_dir),
               "--config", str(config)]
    server = subprocess.Popen(pin(1, command), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_port(port, server)
    propylon = f"http://127.0.0.1:{port}"
    targets = {
        "direct :generateContent": Target(
            "direct", f"{upstream}/v1beta/models/bench:generateContent", ASK, KEY),
        "direct :streamGenerateContent": Target(
            "direct-stream", f"{upstream}/v1beta/models/bench:streamGenerateContent?alt=sse",
            ASK, KEY),
        "propylon generateContent (gemini target)": Target(
            "gc", f"{propylon}/v1beta/models/bench-gemini:generateContent", ASK, KEY),
        "propylon generateContent (echo)": Target(
            "gc-echo", f"{propylon}/v1beta/models/echo:generateContent", ASK, KEY),
        "propylon interaction store=false (gemini target)": Target(
            "ia", f"{propylon}/v1beta/interactions",
            {"model": "bench-gemini", "input": "Hello from the benchmark", "store": False}, KEY),
        "propylon interaction store=true (gemini target)": Target(
            "ia-stored", f"{propylon}/v1beta/interactions",
            {"model": "bench-gemini", "input": "Hello from the benchmark", "store": True}, KEY),
    }
    results: dict[str, Any] = {"seconds": args.seconds}
    try:
        for name, target in targets.items():
            results[name] = {f"c{c}": wrk(target, c, args.seconds) for c in (1, 16)}
            print(name, results[name], file=sys.stderr)
    finally:
        server.terminate()
        mock.terminate()
        server.wait()
        mock.wait()
    direct, stream = results["direct :generateContent"], results["direct :streamGenerateContent"]
    results["added_p50_ms"] = {
        "generateContent": round(
            results["propylon generateContent (gemini target)"]["c1"]["p50_ms"]
            - direct["c1"]["p50_ms"], 3),
        "interaction store=false": round(
            results["propylon interaction store=false (gemini target)"]["c1"]["p50_ms"]
            - stream["c1"]["p50_ms"], 3),
    }
    save("generate_content", results)


if __name__ == "__main__":
    main()
