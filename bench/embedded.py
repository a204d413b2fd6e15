"""The embedded model through the server: start-up to the first answer, time to first token,
tokens per second, and what the server adds per token over llama.cpp called directly.

    python bench/embedded.py [--runs 8] [--tokens 64]

Same prompt and settings everywhere (temperature 0, seed 1, `--tokens` output tokens, stop
sequences off so every run generates the full count). Writes bench/results/embedded.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _harness import free_port, save

PROMPT = "Tell me a long story about the sea, the wind and a small boat."


def start_embedded() -> tuple[Any, str, float]:
    """Serve the default models; return (process, url, seconds to the first embedded answer)."""
    import subprocess
    import tempfile

    data_dir = Path(tempfile.mkdtemp(prefix="propylon-bench-"))
    port = free_port()
    began = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "propylon",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    body = {"model": "gemma-3-270m", "input": "Hi", "generation_config": {"max_output_tokens": 4}}
    while True:
        try:
            response = httpx.post(f"{url}/v1beta/interactions", json=body, timeout=120)
            if response.status_code == 200:
                return process, url, time.perf_counter() - began
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError("server exited")
        time.sleep(0.01)


def through_server(url: str, runs: int, tokens: int) -> dict[str, float]:
    """Streamed creates: time to the first text delta, and decode tokens/s after it."""
    from httpx_sse import connect_sse

    body = {
        "model": "gemma-3-270m",
        "input": PROMPT,
        "stream": True,
        "generation_config": {
            "max_output_tokens": tokens,
            "temperature": 0.0,
            "seed": 1,
            "stop_sequences": ["@@@@"],
        },
    }
    ttft, rates = [], []
    with httpx.Client(base_url=url, timeout=120) as http:
        for _ in range(runs + 1):  # the first run warms up
            began = time.perf_counter()
            first = last = 0.0
            deltas = 0
            output_tokens = 0
            with connect_sse(http, "POST", "/v1beta/interactions", json=body) as source:
                for sse in source.iter_sse():
                    if sse.data == "[DONE]":
                        break
                    event = sse.json()
                    if event.get("event_type") == "step.delta":
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        deltas += 1
                    elif event.get("event_type") == "interaction.completed":
                        output_tokens = event["interaction"]["usage"]["total_output_tokens"]
            ttft.append(first - began)
            if output_tokens > 1 and last > first:
                rates.append((output_tokens - 1) / (last - first))
    return {
        "ttft_p50_ms": round(statistics.median(ttft[1:]) * 1000, 1),
        "tokens_per_s": round(statistics.median(rates[1:]), 1),
        "ms_per_token": round(1000 / statistics.median(rates[1:]), 3),
    }


def direct(runs: int, tokens: int, extra_bufts: bool) -> dict[str, float]:
    """llama.cpp in this process, no server: the floor. `extra_bufts`: llama.cpp's default
    weight repacking (as before the AMX fix), or plain buffers as the model process loads."""
    import os

    from llama_cpp import Llama

    from propylon.providers import embedded
    from propylon.providers.base import Turn
    from propylon.providers.embedded_worker import load_model

    path, threads = str(embedded.default_model_path()), os.cpu_count() or 1
    if extra_bufts:
        llama = Llama(model_path=path, n_threads=threads, n_ctx=4096, verbose=False)
    else:
        llama = load_model(path, threads, 4096)
    prompt = embedded.build_prompt(
        Turn(history=[{"type": "user_input", "content": [{"type": "text", "text": PROMPT}]}])
    )
    ttft, rates = [], []
    for _ in range(runs + 1):
        began = time.perf_counter()
        first = last = 0.0
        count = 0
        for _chunk in llama.create_completion(
            prompt, stream=True, max_tokens=tokens, temperature=0.0, seed=1, stop=["@@@@"]
        ):
            now = time.perf_counter()
            first = first or now
            last = now
            count += 1
        ttft.append(first - began)
        rates.append((count - 1) / (last - first))
    llama.close()
    return {
        "ttft_p50_ms": round(statistics.median(ttft[1:]) * 1000, 1),
        "tokens_per_s": round(statistics.median(rates[1:]), 1),
        "ms_per_token": round(1000 / statistics.median(rates[1:]), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--name", default="embedded", help="result file name")
    args = parser.parse_args()
    process, url, startup = start_embedded()
    try:
        served = through_server(url, args.runs, args.tokens)
    finally:
        process.terminate()
        process.wait(timeout=30)
    print("startup", round(startup, 2), "through the server", served, flush=True)
    floor = direct(args.runs, args.tokens, extra_bufts=False)
    save(
        args.name,
        {
            "serve_to_first_embedded_answer_s": round(startup, 2),
            "through_server": served,
            "llama_cpp_direct": floor,
            "llama_cpp_direct_with_repacking": direct(args.runs, args.tokens, extra_bufts=True),
            "added_ms_per_token": round(served["ms_per_token"] - floor["ms_per_token"], 3),
        },
    )


if __name__ == "__main__":
    main()
