"""The console on 100,000 interactions: seed them straight into a fresh store (SQL, seconds),
start `propylon serve` on it, sign in, and time the interactions page and the usage page.

    python bench/seed_console.py [--count 100000] [--repeat 20] [--browser]

Prints p50, p99 and mean of each page's server time (the whole HTML answer,
over HTTP on loopback) and, with `--browser` (Debian's /usr/bin/chromium), the time to the
page's `load` event in headless Chromium (the charts drawn), each page opened `--repeat`
times. Figures go to bench/results/console.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from _harness import percentiles, save

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from propylon.store import migrate
from tests.conftest import Server, start_server, stop_server

ADMIN_KEY = "bench-console-key"
MODELS = ("echo", "gemma-3-270m", "fast", "gemini-3.5-flash")
TENANTS = ("default", "acme", "globex", "initech")
STATUSES = ("completed",) * 90 + ("failed",) * 5 + ("requires_action",) * 3 + ("cancelled",) * 2
CONFIG = f"""
api_keys = ["sha256:{hashlib.sha256(ADMIN_KEY.encode()).hexdigest()}"]

[[models]]
name = "echo"
provider = "echo"
aliases = ["fast"]
"""


def _usage(words_in: int, words_out: int) -> dict[str, Any]:
    return {
        "total_input_tokens": words_in,
        "total_output_tokens": words_out,
        "total_thought_tokens": 0,
        "total_cached_tokens": 0,
        "total_tool_use_tokens": 0,
        "total_tokens": words_in + words_out,
        "input_tokens_by_modality": [{"modality": "text", "tokens": words_in}],
        "output_tokens_by_modality": [{"modality": "text", "tokens": words_out}],
    }


def seed(database: Path, count: int, days: int = 30) -> None:
    """`count` finished interactions spread over the last `days` days, in one transaction."""
    migrate.upgrade(f"sqlite:///{database}")
    rng = random.Random(16)
    start = datetime.now(UTC) - timedelta(days=days)
    span = days * 86400
    rows = []
    for n in range(count):
        created = (start + timedelta(seconds=span * n / count)).strftime("%Y-%m-%dT%H:%M:%SZ")
        words_in, words_out = rng.randint(5, 400), rng.randint(5, 800)
        prompt = " ".join(["lorem"] * min(words_in, 60))
        request = {
            "model": rng.choice(MODELS),
            "labels": {"team": rng.choice(("search", "ads", "mail")), "env": "prod"},
        }
        steps = [{"type": "model_output", "content": [{"type": "text", "text": prompt}]}]
        rows.append(
            (
                f"v1_seed{n:020d}",
                rng.choice(STATUSES),
                created,
                created,
                json.dumps(request),
                json.dumps(prompt),
                json.dumps([{"type": "user_input", "content": [{"type": "text", "text": prompt}]}]),
                json.dumps(steps),
                json.dumps(_usage(words_in, words_out)),
                round((words_in * 0.3 + words_out * 2.5) / 1e6, 8),
                rng.choice(TENANTS),
            )
        )
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO interactions (id, status, created, updated, request, input, "
            "input_steps, steps, usage, cost_usd, tenant, last_seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            rows,
        )
        conn.execute("ANALYZE")


def serve(data_dir: Path, config: str = CONFIG) -> Server:
    """`propylon serve` on the seeded data dir with `config` (TOML), once it answers."""
    return start_server(data_dir, config, log=data_dir / "server.log")


def _server_times(url: str, pages: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    with httpx.Client(base_url=url, timeout=60) as http:
        signed_in = http.post(
            "/console/sign-in", data={"api_key": ADMIN_KEY}, headers={"origin": url}
        )
        assert signed_in.status_code == 303, signed_in.text
        found = {}
        for name, path in pages.items():
            samples = []
            for _ in range(repeat):
                began = time.perf_counter()
                answer = http.get(path)
                samples.append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text[:200]
            found[name] = percentiles(samples)
    return found


def _browser_times(url: str, pages: dict[str, str], repeat: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    found = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{url}/console/sign-in")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/interactions")
        for name, path in pages.items():
            samples = []
            for _ in range(repeat):
                began = time.perf_counter()
                page.goto(url + path, wait_until="load")
                samples.append(time.perf_counter() - began)
            found[name] = percentiles(samples)
        browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--browser", action="store_true", help="also time headless Chromium")
    args = parser.parse_args()
    pages = {
        "interactions": "/console/interactions",
        "interactions, filtered (status=failed, label team:ads)": (
            "/console/interactions?status=failed&label=team:ads"
        ),
        "usage (30 days by model)": "/console/usage?days=30&group=model",
        "usage (30 days by label team)": "/console/usage?days=30&group=label&label_key=team",
    }
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        began = time.perf_counter()
        seed(data_dir / "propylon.db", args.count)
        seeded = time.perf_counter() - began
        print(f"seeded {args.count} interactions in {seeded:.1f} s")
        server = serve(data_dir)
        url = server.url
        try:
            results: dict[str, Any] = {
                "interactions": args.count,
                "seed_seconds": round(seeded, 1),
                "server": _server_times(url, pages, args.repeat),
            }
            if args.browser:
                results["browser"] = _browser_times(url, pages, args.repeat)
        finally:
            stop_server(server)
    save("console", results)


if __name__ == "__main__":
    main()
