"""Takes the console screenshots in this folder (1440x900, headless Debian Chromium):

    PYTHONPATH=src python docs/console/screenshots.py

A fresh server gets 3,000 seeded interactions over two weeks (bench/seed_console.py's
seeding) and a few real ones made with the google-genai SDK: a chain, a function-call round
trip, a slow background run; a stored key and a webhook whose deliveries fail.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
from google import genai
from google.genai import types
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "bench"))
from seed_console import ADMIN_KEY, CONFIG, seed, serve, stop_server  # noqa: E402

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}
SCREENSHOT_CONFIG = (
    "allow_private_network_targets = true\n"
    + CONFIG
    + """
[[models]]
name = "echo-idle"
provider = "echo"
options = { delay = 0.4 }
"""
)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        seed(data_dir / "propylon.db", 3000, days=14)
        server = serve(data_dir, SCREENSHOT_CONFIG)
        try:
            shoot(server.url)
        finally:
            stop_server(server)


def shoot(url: str) -> None:
    client = genai.Client(api_key=ADMIN_KEY, http_options=types.HttpOptions(base_url=url))
    api = httpx.Client(base_url=url, headers={"x-goog-api-key": ADMIN_KEY})
    api.post(
        "/v1beta/webhooks",
        json={
            "uri": "http://127.0.0.1:9/hooks/propylon",
            "name": "billing",
            "subscribed_events": ["interaction.completed", "interaction.failed"],
        },
    )
    first = client.interactions.create(
        model="echo", input="What is the capital of Italy?", labels={"team": "search"}
    )
    client.interactions.create(
        model="echo",
        input="And of Spain?",
        previous_interaction_id=first.id,
        labels={"team": "search"},
    )
    call = client.interactions.create(
        model="echo",
        tools=[WEATHER],
        input='call get_weather {"location": "Paris"}',
        system_instruction="Answer with the weather.",
        labels={"team": "ads"},
    )
    done = client.interactions.create(
        model="echo",
        tools=[WEATHER],
        previous_interaction_id=call.id,
        labels={"team": "ads"},
        input=[
            {
                "type": "function_result",
                "call_id": call.steps[0].id,
                "name": "get_weather",
                "result": {"temp_c": 21, "sky": "clear"},
            }
        ],
    )
    slow = client.interactions.create(
        model="echo-idle",
        input="Tell me a long story. " * 12,
        background=True,
        labels={"team": "mail"},
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.goto(f"{url}/console/sign-in")
        page.screenshot(path=HERE / "sign-in.png")
        page.get_by_label("API key").fill(ADMIN_KEY)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/console/interactions")
        page.screenshot(path=HERE / "interactions.png")
        page.goto(f"{url}/console/interactions/{done.id}")
        page.screenshot(path=HERE / "interaction.png")
        page.goto(f"{url}/console/interactions/{slow.id}")
        page.wait_for_function(
            "() => document.getElementById('live-steps').textContent.length > 60"
        )
        page.screenshot(path=HERE / "interaction-live.png")
        page.goto(f"{url}/console/usage?days=14&group=model")
        page.screenshot(path=HERE / "usage.png")
        page.goto(f"{url}/console/keys")
        page.get_by_text("Create a key").click()
        page.get_by_label("Tenant", exact=True).fill("acme")
        page.get_by_label("Name").first.fill("ci")
        page.get_by_label("Requests per minute").fill("60")
        page.get_by_label("Budget (USD)").fill("50")
        page.get_by_role("button", name="Create key").click()
        time.sleep(0.2)
        page.screenshot(path=HERE / "keys.png")
        browser.close()


if __name__ == "__main__":
    main()
