"""Start-up time and create latency with `echo` (issue: foundation).

    python bench/latency.py [--requests 500] [--database-url URL --label NAME]

Measures the time from launching `propylon serve` (fresh data dir: migrations included) to its
first answered create, then N sequential non-stream creates over one keep-alive connection,
with store=true and store=false. Prints p50/p99 and writes bench/results/latency.json (with
`--label NAME`: latency-NAME.json). `--database-url`: the server's, e.g.
`sqlite:///{data_dir}/propylon.db` (SQLAlchemy on SQLite; `{data_dir}`: its fresh data dir) or
`postgresql://postgres@127.0.0.1:5432/DB`.
"""

from __future__ import annotations

import argparse
import time

import httpx
from _harness import percentiles, save, start


def run(url: str, n: int, store: bool) -> dict[str, float]:
    body = {"model": "echo", "input": "hello from the benchmark", "store": store}
    samples = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(20):  # warm-up
            http.post("/v1beta/interactions", json=body).raise_for_status()
        for _ in range(n):
            began = time.perf_counter()
            response = http.post("/v1beta/interactions", json=body)
            samples.append(time.perf_counter() - began)
            assert response.status_code == 200, response.text
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    process, url, startup = start(database_url=args.database_url)
    try:
        results = {
            "startup_to_first_answer_s": round(startup, 3),
            "create_echo_store_true": run(url, args.requests, True),
            "create_echo_store_false": run(url, args.requests, False),
        }
    finally:
        process.terminate()
        process.wait()
    save(f"latency-{args.label}" if args.label else "latency", results)


if __name__ == "__main__":
    main()
