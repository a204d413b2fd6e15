"""generateContent goes through the same front door as interactions: the key's allowed models,
rpm and spend budget; the gateway's fallback; one log line per upstream call; embeddings from
an OpenAI-compatible upstream."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import (
    Server,
    create_key,
    free_port,
    start_server,
    stop_server,
    wait_for,
)

ASK = {"contents": [{"role": "user", "parts": [{"text": "two words"}]}]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gc-gateway")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    """Secrets of keys made with `propylon keys create`."""
    return {
        "any": create_key(data_dir, "--tenant", "acme")[1],
        "only-echo": create_key(data_dir, "--tenant", "acme", "--models", "echo")[1],
        "limited": create_key(data_dir, "--tenant", "acme", "--rpm", "2")[1],
        "budget": create_key(
            data_dir, "--tenant", "acme", "--budget-usd", "1.5", "--budget-period", "day"
        )[1],
        "cut": create_key(
            data_dir, "--tenant", "cut", "--budget-usd", "0.5", "--budget-period", "day"
        )[1],
    }


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: dict[str, str], upstream: str) -> Iterator[Server]:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = f"""
auth_cache_seconds = 0
allow_private_network_targets = true
rate_window_seconds = 2

[[models]]
name = "echo"
provider = "echo"

[[models]]
name = "priced"
[[models.targets]]
provider = "echo"
price_input_per_million = 1000000.0

[[models]]
name = "priced-slow"
[[models.targets]]
provider = "echo"
options = {{ delay = 1.0 }}
price_input_per_million = 1000000.0

[[models]]
name = "mixed"
[[models.targets]]
provider = "gemini"
base_url = "{dead}"
model = "gemini-2.5-flash"
max_attempts = 1
[[models.targets]]
provider = "echo"

[[models]]
name = "vectors"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "primary"
"""
    running = start_server(data_dir, config, log=data_dir / "server.log")
    yield running
    stop_server(running)


def _post(server: Server, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers={"x-goog-api-key": key}, timeout=30)


def _log_lines(server: Server) -> list[dict[str, Any]]:
    lines = (server.data_dir / "server.log").read_text().splitlines()
    return [json.loads(line) for line in lines if '"upstream_call"' in line]


def test_a_key_uses_only_its_models(server: Server, keys: dict[str, str]) -> None:
    allowed = _post(server, keys["only-echo"], "/v1beta/models/echo:generateContent", ASK)
    assert allowed.status_code == 200
    refused = _post(server, keys["only-echo"], "/v1beta/models/priced:generateContent", ASK)
    assert refused.status_code == 403
    assert refused.json()["error"]["status"] == "PERMISSION_DENIED"
    for path in ("/v1beta/models/priced:countTokens", "/v1beta/models/priced:embedContent"):
        body = ASK if "count" in path else {"content": ASK["contents"][0]}
        assert _post(server, keys["only-echo"], path, body).status_code == 403


def test_requests_per_minute(server: Server, keys: dict[str, str]) -> None:
    statuses = [
        _post(server, keys["limited"], "/v1beta/models/echo:generateContent", ASK) for _ in range(3)
    ]
    assert [s.status_code for s in statuses] == [200, 200, 429]
    assert statuses[2].json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert int(statuses[2].headers["retry-after"]) >= 1


def test_a_spent_budget_refuses_calls(server: Server, keys: dict[str, str]) -> None:
    first = _post(server, keys["budget"], "/v1beta/models/priced:generateContent", ASK)
    assert first.status_code == 200  # 2 input tokens at 1 USD each: over the 1.5 USD budget
    again = _post(server, keys["budget"], "/v1beta/models/priced:generateContent", ASK)
    assert again.status_code == 429 and "budget" in again.json()["error"]["message"]


def test_fallback_and_one_log_line_per_upstream_call(server: Server, keys: dict[str, str]) -> None:
    answer = _post(server, keys["any"], "/v1beta/models/mixed:generateContent", ASK)
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"][0]["content"]["parts"] == [{"text": "user: two words"}]
    response_id = answer.json()["responseId"]
    wait_for(lambda: any(line["interaction_id"] == response_id for line in _log_lines(server)))
    lines = [line for line in _log_lines(server) if line["interaction_id"] == response_id]
    assert len(lines) == 1
    assert lines[0]["target"] == "echo:mixed" and lines[0]["attempts"] == 2
    assert lines[0]["usage"]["total_tokens"] == 5


def test_stream_falls_back_too(server: Server, keys: dict[str, str]) -> None:
    answer = _post(server, keys["any"], "/v1beta/models/mixed:streamGenerateContent?alt=sse", ASK)
    assert answer.status_code == 200
    frames = [json.loads(line[5:]) for line in answer.text.splitlines() if line.startswith("data:")]
    text = "".join(
        p.get("text", "") for f in frames for p in f["candidates"][0]["content"].get("parts", [])
    )
    assert text == "user: two words"


def test_embeddings_from_an_openai_compatible_upstream(
    server: Server, keys: dict[str, str]
) -> None:
    requests = [{"content": {"parts": [{"text": t}]}} for t in ("abc", "hello")]
    answer = _post(
        server, keys["any"], "/v1beta/models/vectors:batchEmbedContents", {"requests": requests}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"embeddings": [{"values": [3, 0.5]}, {"values": [5, 0.5]}]}


def test_a_model_that_does_not_embed_or_count(server: Server, keys: dict[str, str]) -> None:
    embedded = _post(
        server, keys["any"], "/v1beta/models/mixed:countTokens", ASK
    )  # its first target is gemini, and unreachable: Google's count cannot be had
    assert embedded.status_code == 503
    counted = _post(server, keys["any"], "/v1beta/models/vectors:countTokens", ASK)
    assert counted.status_code == 400 and "countTokens" in counted.json()["error"]["message"]


def test_the_listing_shows_a_key_its_models_only(server: Server, keys: dict[str, str]) -> None:
    headers = {"x-goog-api-key": keys["only-echo"]}
    listed = httpx.get(f"{server.url}/v1beta/models", headers=headers, timeout=30).json()
    assert [m["name"] for m in listed["models"]] == ["models/echo"]
    hidden = httpx.get(f"{server.url}/v1beta/models/priced", headers=headers, timeout=30)
    assert hidden.status_code == 404 and hidden.json()["error"]["status"] == "NOT_FOUND"


@pytest.mark.parametrize("alt", ["?alt=sse", ""])
def test_a_stream_cut_before_its_first_chunk_is_settled(
    server: Server, keys: dict[str, str], alt: str
) -> None:
    """A client that gives up before the first chunk never reads the stream: the call is
    still settled in the ledger, so its reservation does not hold the key's budget."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.url}/v1beta/models/priced-slow:streamGenerateContent{alt}",
            json=ASK,
            headers={"x-goog-api-key": keys["cut"]},
            timeout=0.2,
        )

    def settled() -> bool:
        with sqlite3.connect(server.database) as conn:
            rows = conn.execute("SELECT settled FROM ledger WHERE tenant = 'cut'").fetchall()
        return bool(rows) and all(row[0] is not None for row in rows)

    wait_for(settled)
    answered = _post(server, keys["cut"], "/v1beta/models/echo:generateContent", ASK)
    assert answered.status_code == 200, answered.text
