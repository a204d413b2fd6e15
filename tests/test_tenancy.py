"""Keys and tenants, per-key policy, retention, export and import: through the CLI, the SDK
and plain HTTP against the real server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors
from google.genai import types

from tests.conftest import Server, create_key, propylon_cli, start_server, stop_server, wait_for

CONFIG = """
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
"""


def _client(server: Server, key: str) -> genai.Client:
    # one attempt: a 429 must reach the test, not be retried away by the SDK
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=server.url, retry_options=types.HttpRetryOptions(attempts=1)
        ),
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tenancy")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, tuple[str, str]]:
    return {
        "a": create_key(data_dir, "--tenant", "acme", "--name", "a"),
        "b": create_key(data_dir, "--tenant", "globex"),
        "admin": create_key(data_dir, "--tenant", "ops", "--admin"),
        "limited": create_key(data_dir, "--tenant", "acme", "--rpm", "2"),
        "once": create_key(data_dir, "--tenant", "acme", "--rpm", "1"),
        "only-echo": create_key(data_dir, "--tenant", "acme", "--models", "echo"),
        "budget": create_key(
            data_dir, "--tenant", "acme", "--budget-usd", "1.5", "--budget-period", "day"
        ),
        "ceiling": create_key(data_dir, "--tenant", "acme", "--max-tokens", "3"),
        "revoked": create_key(data_dir, "--tenant", "acme"),
    }


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: dict[str, tuple[str, str]]) -> Iterator[Server]:
    running = start_server(data_dir, CONFIG)
    yield running
    stop_server(running)


def test_keys_are_stored_hashed_and_listed_without_secrets(
    data_dir: Path, keys: dict[str, tuple[str, str]], server: Server
) -> None:
    listing = propylon_cli(data_dir, "keys", "list")
    for key_id, secret in keys.values():
        assert key_id in listing and secret not in listing
    stored = "".join(str(row) for row in server.query("SELECT * FROM api_keys"))
    assert all(secret not in stored for _, secret in keys.values())


def test_another_tenant_sees_nothing(server: Server, keys: dict[str, tuple[str, str]]) -> None:
    a, b = _client(server, keys["a"][1]), _client(server, keys["b"][1])
    mine = a.interactions.create(model="echo", input="acme secret", background=True)
    wait_for(lambda: a.interactions.get(mine.id).status == "completed")
    calls: list[Callable[[], Any]] = [
        lambda: b.interactions.get(mine.id),
        lambda: list(b.interactions.get(mine.id, stream=True)),
        lambda: b.interactions.cancel(mine.id),
        lambda: b.interactions.delete(mine.id),
        lambda: b.interactions.create(model="echo", input="x", previous_interaction_id=mine.id),
    ]
    for call in calls:
        with pytest.raises(errors.NotFoundError):
            call()
    assert a.interactions.get(mine.id).output_text == "user: acme secret"  # still there
    admin = _client(server, keys["admin"][1])
    assert admin.interactions.get(mine.id).id == mine.id  # admin keys cross tenants
    hook = a.webhooks.create(
        uri="http://127.0.0.1:9/hook", subscribed_events=["interaction.completed"]
    )
    assert hook.id not in [w.id for w in b.webhooks.list().webhooks or []]
    with pytest.raises(errors.NotFoundError):
        b.webhooks.get(hook.id)


def test_idempotency_keys_are_per_tenant(server: Server, keys: dict[str, tuple[str, str]]) -> None:
    header = {"Idempotency-Key": "same-key-in-two-tenants"}
    acme, globex = _client(server, keys["a"][1]), _client(server, keys["b"][1])
    a = acme.interactions.create(model="echo", input="x", extra_headers=header)
    b = globex.interactions.create(model="echo", input="x", extra_headers=header)
    assert a.id != b.id


def test_a_revoked_key_answers_401(
    server: Server, data_dir: Path, keys: dict[str, tuple[str, str]]
) -> None:
    key_id, secret = keys["revoked"]
    client = _client(server, secret)
    assert client.interactions.create(model="echo", input="ok").status == "completed"
    propylon_cli(data_dir, "keys", "revoke", key_id)
    with pytest.raises(errors.AuthenticationError):
        client.interactions.create(model="echo", input="no more")
    response = httpx.post(f"{server.url}/v1beta/interactions", json={"model": "echo"})
    assert response.status_code == 401  # keys exist: anonymous requests are refused


def test_rate_limit_answers_429_with_retry_after_then_recovers(
    server: Server, keys: dict[str, tuple[str, str]]
) -> None:
    headers = {"x-goog-api-key": keys["limited"][1]}
    body = {"model": "echo", "input": "x"}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        assert [http.post("/v1beta/interactions", json=body).status_code for _ in range(2)] == [
            200,
            200,
        ]
        refused = http.post("/v1beta/interactions", json=body)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 2  # rate_window_seconds = 2
        time.sleep(wait + 0.1)  # the window under test
        assert http.post("/v1beta/interactions", json=body).status_code == 200


def test_a_refused_create_spends_no_request_of_the_window(
    server: Server, keys: dict[str, tuple[str, str]]
) -> None:
    headers = {"x-goog-api-key": keys["once"][1]}
    bad = {"model": "echo", "input": "x", "tools": [{"type": "google_search"}]}
    with httpx.Client(base_url=server.url, headers=headers) as http:
        refused = http.post("/v1beta/interactions", json=bad)
        assert refused.status_code == 400, refused.text
        unknown = http.post("/v1beta/interactions", json={"model": "nope", "input": "x"})
        assert unknown.status_code == 404, unknown.text
        ok = http.post("/v1beta/interactions", json={"model": "echo", "input": "x"})
        assert ok.status_code == 200, ok.text


def test_allowed_models(server: Server, keys: dict[str, tuple[str, str]]) -> None:
    client = _client(server, keys["only-echo"][1])
    assert client.interactions.create(model="echo", input="x").status == "completed"
    with pytest.raises(errors.PermissionDeniedError):
        client.interactions.create(model="priced", input="x")


def test_an_unknown_model_names_no_model_the_key_may_not_use(
    server: Server, keys: dict[str, tuple[str, str]]
) -> None:
    secret = keys["only-echo"][1]
    refusals = [
        httpx.post(
            f"{server.url}/v1beta/interactions",
            headers={"x-goog-api-key": secret},
            json={"model": "nope", "input": "x"},
        ),
        httpx.post(
            f"{server.url}/v1beta/models/nope:generateContent",
            headers={"x-goog-api-key": secret},
            json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
        ),
        httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"authorization": f"Bearer {secret}"},
            json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
        ),
    ]
    for refused in refusals:
        # 403 where the key's model list is checked first, 404 where the name is
        assert refused.status_code in (403, 404), refused.text
        assert "nope" in refused.text
        assert "priced" not in refused.text  # served, but not to this key


def test_a_spent_budget_refuses_creates(server: Server, keys: dict[str, tuple[str, str]]) -> None:
    client = _client(server, keys["budget"][1])
    first = client.interactions.create(model="priced", input="two words")
    assert first.usage.total_input_tokens == 2  # 2 USD at a million USD per million tokens
    with pytest.raises(errors.RateLimitError) as caught:
        client.interactions.create(model="priced", input="again")
    assert "budget" in caught.value.body["error"]["message"]


def test_the_token_ceiling_ends_budget_exceeded(
    server: Server, keys: dict[str, tuple[str, str]]
) -> None:
    client = _client(server, keys["ceiling"][1])
    answer = client.interactions.create(model="echo", input="one two three four")
    assert answer.status == "budget_exceeded"
    assert "ceiling of 3" in answer.errors[0].message


def test_export_then_import_reproduces_the_interactions(
    server: Server, data_dir: Path, tmp_path: Path, keys: dict[str, tuple[str, str]]
) -> None:
    client = _client(server, keys["a"][1])
    first = client.interactions.create(model="echo", input="export me", labels={"job": "x"})
    second = client.interactions.create(
        model="echo", input="and me", previous_interaction_id=first.id
    )
    dump = tmp_path / "acme.jsonl"
    propylon_cli(data_dir, "export", "--tenant", "acme", "--output", str(dump))
    exported = dump.read_text()
    assert first.id in exported and second.id in exported
    assert "globex" not in exported  # one tenant's data only
    fresh = tmp_path / "fresh"
    assert "imported" in propylon_cli(fresh, "import", str(dump))
    copy = start_server(fresh, CONFIG)
    try:
        reader = _client(copy, create_key(fresh, "--tenant", "acme")[1])
        for original in (first, second):
            assert (
                reader.interactions.get(original.id).model_dump()
                == client.interactions.get(original.id).model_dump()
            )
            assert [e.model_dump() for e in reader.interactions.get(original.id, stream=True)] == [
                e.model_dump() for e in client.interactions.get(original.id, stream=True)
            ]
        chained = reader.interactions.create(
            model="echo", input="three", previous_interaction_id=second.id
        )
        assert chained.output_text.startswith("user: export me\nmodel: user: export me")
    finally:
        stop_server(copy)


def test_the_purge_removes_expired_interactions_and_their_events(tmp_path: Path) -> None:
    data = tmp_path / "retention"
    server = start_server(
        data, "retention_days = 0.00002\npurge_interval_seconds = 0.2\n" + CONFIG
    )  # 0.00002 days: about 1.7 s
    client = server.client()
    try:
        answer = client.interactions.create(model="echo", input="soon gone")
        assert server.rows()[1] > 0

        def gone() -> bool:
            try:
                client.interactions.get(answer.id)
            except errors.NotFoundError:
                return True
            return False

        wait_for(gone, 20)
        assert server.rows() == (0, 0)
    finally:
        stop_server(server)
