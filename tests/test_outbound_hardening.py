"""Webhook deliveries under the SSRF policy, and their delivery state: a disabled webhook
receives nothing, and a delivery does not follow a redirect to a refused address."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from google.genai import _interactions as errors

from tests.conftest import CONFIG, Server, helper, start_server, stop_server, wait_for

COMPLETED = ["interaction.completed"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    """The receiver on 127.0.0.1 (it answers on 127.0.0.2 too)."""
    with helper("webhook_receiver.py") as url:
        yield url


def _on(url: str, address: str) -> str:
    return url.replace("127.0.0.1", address)


def _received(receiver: str, name: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = httpx.get(f"{receiver}/received/{name}").json()
    return got


def _pending(server: Server) -> int:
    with sqlite3.connect(server.database) as conn:
        [(count,)] = conn.execute("SELECT count(*) FROM deliveries WHERE state = 'pending'")
    return int(count)


def _settings(**values: Any) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Retries wide apart (0.5-1 s, then doubling), disabled after two failed attempts."""
    config = (
        _settings(
            webhook_retry_initial_seconds=1.0,
            webhook_max_attempts=4,
            webhook_disable_after_failures=2,
        )
        + CONFIG
    )
    running = start_server(tmp_path_factory.mktemp("hooks"), config)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Private targets refused, except the one loopback address 127.0.0.2."""
    config = _settings(
        allowed_target_networks=["127.0.0.2/32"], webhook_max_attempts=1
    ) + CONFIG.replace("allow_private_network_targets = true", "")
    running = start_server(tmp_path_factory.mktemp("strict"), config)
    yield running
    stop_server(running)


def _two_hooks(server: Server, receiver: str, name: str) -> tuple[str, str]:
    """A failing webhook `name` and a healthy control webhook: their ids."""
    client = server.client()
    httpx.post(f"{receiver}/mode/{name}", json={"fail": True})
    bad = client.webhooks.create(uri=f"{receiver}/hook/{name}", subscribed_events=COMPLETED)
    control = client.webhooks.create(
        uri=f"{receiver}/hook/{name}-control", subscribed_events=COMPLETED
    )
    return bad.id, control.id


def _then_nothing_more(server: Server, receiver: str, name: str, ids: tuple[str, str]) -> None:
    """The receiver recovers and a new interaction ends: the control webhook gets it, every
    delivery settles, and the disabled webhook got no delivery after its failed ones."""
    client = server.client()
    httpx.post(f"{receiver}/mode/{name}", json={"fail": False})
    client.interactions.create(model="echo", input="after")
    wait_for(lambda: len(_received(receiver, f"{name}-control")) == 2)
    wait_for(lambda: _pending(server) == 0)
    assert all(d["answered"] == 500 for d in _received(receiver, name))
    for webhook_id in ids:
        client.webhooks.delete(webhook_id)


def test_a_webhook_disabled_after_failures_receives_nothing(hooks: Server, receiver: str) -> None:
    name = "auto-" + uuid.uuid4().hex[:8]
    ids = _two_hooks(hooks, receiver, name)
    client = hooks.client()
    client.interactions.create(model="echo", input="before")  # fails twice: disabled
    wait_for(lambda: client.webhooks.get(ids[0]).state == "disabled_due_to_failed_deliveries")
    assert len(_received(receiver, name)) == 2
    _then_nothing_more(hooks, receiver, name, ids)


def test_a_webhook_disabled_by_patch_receives_nothing(hooks: Server, receiver: str) -> None:
    name = "patched-" + uuid.uuid4().hex[:8]
    ids = _two_hooks(hooks, receiver, name)
    client = hooks.client()
    client.interactions.create(model="echo", input="before")
    wait_for(lambda: len(_received(receiver, name)) == 1)  # its retry is 0.5-1 s away
    assert client.webhooks.update(ids[0], update_mask="state", state="disabled").state == (
        "disabled"
    )
    _then_nothing_more(hooks, receiver, name, ids)


@pytest.mark.parametrize("landing", ["127.0.0.1", "localhost"])
def test_a_delivery_does_not_follow_a_redirect_to_a_refused_address(
    strict: Server, receiver: str, landing: str
) -> None:
    name = "redirect-" + uuid.uuid4().hex[:8]
    target = f"http://{landing}:{urlsplit(receiver).port}/hook/{name}-landed"
    client = strict.client()
    hook = client.webhooks.create(
        uri=f"{_on(receiver, '127.0.0.2')}/redirect/{name}?to={quote(target)}",
        subscribed_events=COMPLETED,
    )
    client.webhooks.ping(hook.id)
    wait_for(lambda: _pending(strict) == 0 and bool(_received(receiver, name)))
    assert [d["answered"] for d in _received(receiver, name)] == [302]
    assert _received(receiver, f"{name}-landed") == []
    with sqlite3.connect(strict.database) as conn:
        [(state, error)] = conn.execute(
            "SELECT state, last_error FROM deliveries WHERE webhook_id = ?", (hook.id,)
        )
    assert state == "failed" and "302" in error
    client.webhooks.delete(hook.id)


def test_the_allowed_network_is_reachable_and_no_other_private_address(
    strict: Server, receiver: str
) -> None:
    client = strict.client()
    hook = client.webhooks.create(
        uri=f"{_on(receiver, '127.0.0.2')}/hook/allowed", subscribed_events=COMPLETED
    )
    client.webhooks.ping(hook.id)
    wait_for(lambda: bool(_received(receiver, "allowed")))
    client.webhooks.delete(hook.id)
    for refused in (receiver, _on(receiver, "localhost")):
        with pytest.raises(errors.BadRequestError) as caught:
            client.webhooks.create(uri=f"{refused}/hook/refused", subscribed_events=COMPLETED)
        assert "outbound policy" in caught.value.body["error"]["message"]
