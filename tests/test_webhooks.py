"""Webhooks: registered and per-request, signed per Standard Webhooks (verified here with the
`standardwebhooks` package), retried, disabled when they keep failing, and delivered after a
restart in the middle of retries."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors
from standardwebhooks import Webhook

from tests.conftest import CONFIG, Server, helper, start_server, stop_server, wait_for

EVENTS = ["interaction.completed", "interaction.failed", "interaction.requires_action"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    with helper("webhook_receiver.py") as url:
        yield url


def _config(**settings: Any) -> str:
    top = "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    return top + CONFIG


def _received(receiver: str, name: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = httpx.get(f"{receiver}/received/{name}").json()
    return got


def _verified(deliveries: list[dict[str, Any]], secret: str) -> dict[str, dict[str, Any]]:
    """Successful deliveries by `webhook-id` (deduplicated), each signature verified."""
    unique = {}
    for delivery in deliveries:
        if delivery["answered"] != 200:
            continue
        payload = Webhook(secret).verify(delivery["body"], delivery["headers"])
        unique[delivery["headers"]["webhook-id"]] = payload
    return unique


def _make_three(client: genai.Client, **extra: Any) -> dict[str, str]:
    """One completed, one requires_action and one failed interaction: {status: id}."""
    done = client.interactions.create(model="echo", input="hi", **extra)
    action = client.interactions.create(
        model="echo", input="call get_weather {}", tools=[WEATHER], **extra
    )
    failed = client.interactions.create(
        model="echo", input="not json", response_format={"type": "object"}, **extra
    )
    assert [done.status, action.status, failed.status] == ["completed", "requires_action", "failed"]
    return {"completed": done.id, "requires_action": action.id, "failed": failed.id}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("webhooks"),
        _config(
            webhook_retry_initial_seconds=0.2,
            webhook_max_attempts=2,
            webhook_disable_after_failures=3,
        ),
    )
    yield running
    stop_server(running)


def test_webhook_resource_through_the_sdk(server: Server, receiver: str) -> None:
    client = server.client()
    created = client.webhooks.create(
        uri=f"{receiver}/hook/crud", name="crud", subscribed_events=["interaction.completed"]
    )
    assert created.new_signing_secret.startswith("whsec_")
    assert created.state == "enabled"
    got = client.webhooks.get(created.id)
    assert got.new_signing_secret is None  # shown once, at creation
    assert got.signing_secrets[0].truncated_secret.startswith(created.new_signing_secret[:10])
    assert created.id in [w.id for w in client.webhooks.list().webhooks]
    renamed = client.webhooks.update(created.id, update_mask="name", name="renamed")
    assert renamed.name == "renamed" and renamed.uri == created.uri
    rotated = client.webhooks.rotate_signing_secret(created.id)
    assert rotated.secret != created.new_signing_secret
    secrets = client.webhooks.get(created.id).signing_secrets
    assert len(secrets) == 2 and secrets[1].expire_time is not None  # the old one has 24 h
    client.webhooks.ping(created.id)
    wait_for(lambda: bool(_received(receiver, "crud")))
    [ping] = _received(receiver, "crud")
    for secret in (rotated.secret, created.new_signing_secret):  # signed with both
        assert Webhook(secret).verify(ping["body"], ping["headers"])["type"] == "webhook.ping"
    client.webhooks.delete(created.id)
    with pytest.raises(errors.NotFoundError):
        client.webhooks.get(created.id)
    with pytest.raises(errors.BadRequestError):
        client.webhooks.create(uri="ftp://nowhere", subscribed_events=["interaction.completed"])


def test_every_read_of_a_webhook_redacts_a_credential_in_its_uri(
    server: Server, receiver: str
) -> None:
    uri = f"{receiver}/hook/redacted?token=abc123&kind=plain"
    shown = f"{receiver}/hook/redacted?token=[redacted]&kind=plain"
    with server.http() as http:
        created = http.post(
            "/v1beta/webhooks", json={"uri": uri, "subscribed_events": ["interaction.completed"]}
        )
        assert created.status_code == 200, created.text
        path = f"/v1beta/webhooks/{created.json()['id']}"
        patched = http.patch(path, params={"update_mask": "name"}, json={"name": "renamed"})
        assert patched.status_code == 200, patched.text
        listed = http.get("/v1beta/webhooks").json()["webhooks"]
        reads = [created.json(), http.get(path).json(), patched.json()]
        reads += [w for w in listed if w["id"] == created.json()["id"]]
        assert len(reads) == 4
        for read in reads:
            assert read["uri"] == shown
            assert "abc123" not in json.dumps(read)
        assert http.post(f"{path}:ping").status_code == 200
    wait_for(lambda: bool(_received(receiver, "redacted")))
    # the stored uri is the real one: the delivery carries the credential
    assert _received(receiver, "redacted")[0]["query"] == "token=abc123&kind=plain"


def test_events_reach_registered_webhooks_signed(server: Server, receiver: str) -> None:
    client = server.client()
    hook = client.webhooks.create(uri=f"{receiver}/hook/events", subscribed_events=EVENTS)
    ids = _make_three(client, webhook_config={"user_metadata": {"job": "nightly"}})
    wait_for(lambda: len(_received(receiver, "events")) == 3)
    payloads = _verified(_received(receiver, "events"), hook.new_signing_secret).values()
    by_id = {p["data"]["id"]: p for p in payloads}
    assert {by_id[i]["data"]["status"] for i in ids.values()} == set(ids)
    assert by_id[ids["completed"]]["type"] == "interaction.completed"
    assert by_id[ids["requires_action"]]["type"] == "interaction.requires_action"
    assert by_id[ids["failed"]]["type"] == "interaction.failed"
    assert all(p["data"]["user_metadata"] == {"job": "nightly"} for p in payloads)
    client.webhooks.delete(hook.id)


def test_per_request_uris_are_signed_with_the_tenants_secret(server: Server, receiver: str) -> None:
    client = server.client()
    answer = client.interactions.create(
        model="echo",
        input="x",
        webhook_config={"uris": [f"{receiver}/hook/dynamic"], "user_metadata": {"k": 1}},
    )
    wait_for(lambda: bool(_received(receiver, "dynamic")))
    with server.http() as http:  # the secret of this key's tenant (`default`)
        secret = http.get("/v1beta/webhooks:signingSecret").json()["secret"]
    [payload] = _verified(_received(receiver, "dynamic"), secret).values()
    usage = payload["data"].pop("usage")
    assert usage["total_tokens"] == answer.usage.total_tokens
    assert payload["data"] == {
        "id": answer.id,
        "object": "interaction",
        "status": "completed",
        "user_metadata": {"k": 1},
    }


def test_a_webhook_that_keeps_failing_is_disabled(server: Server, receiver: str) -> None:
    client = server.client()
    httpx.post(f"{receiver}/mode/bad", json={"fail": True})
    hook = client.webhooks.create(uri=f"{receiver}/hook/bad", subscribed_events=EVENTS)
    client.interactions.create(model="echo", input="1")
    client.interactions.create(model="echo", input="2")
    wait_for(lambda: client.webhooks.get(hook.id).state == "disabled_due_to_failed_deliveries")
    assert len(_received(receiver, "bad")) >= 3  # webhook_disable_after_failures = 3
    client.webhooks.delete(hook.id)


def test_deliveries_survive_a_restart_in_the_middle_of_retries(
    receiver: str, tmp_path: Path
) -> None:
    data = tmp_path / "restart"
    config = _config(webhook_retry_initial_seconds=0.3, webhook_max_attempts=50)
    server = start_server(data, config)
    client = server.client()
    httpx.post(f"{receiver}/mode/restart", json={"fail": True})
    hook = client.webhooks.create(uri=f"{receiver}/hook/restart", subscribed_events=EVENTS)
    ids = _make_three(client)
    wait_for(lambda: len(_received(receiver, "restart")) >= 6)  # every event failed twice
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    httpx.post(f"{receiver}/mode/restart", json={"fail": False})
    restarted = start_server(data, config)
    try:
        wait_for(
            lambda: len(_verified(_received(receiver, "restart"), hook.new_signing_secret)) == 3
        )
        payloads = _verified(_received(receiver, "restart"), hook.new_signing_secret).values()
        assert sorted(p["data"]["id"] for p in payloads) == sorted(ids.values())
    finally:
        stop_server(restarted)


def test_private_webhook_targets_are_refused_by_default(tmp_path: Path) -> None:
    strict = start_server(
        tmp_path / "strict", CONFIG.replace("allow_private_network_targets = true", "")
    )
    client = strict.client()
    try:
        with pytest.raises(errors.BadRequestError):
            client.webhooks.create(
                uri="http://127.0.0.1:9/hook", subscribed_events=["interaction.completed"]
            )
        with pytest.raises(errors.BadRequestError) as caught:
            client.interactions.create(
                model="echo", input="x", webhook_config={"uris": ["http://10.1.2.3/hook"]}
            )
        assert "webhook_config.uris" in caught.value.body["error"]["message"]
    finally:
        stop_server(strict)
