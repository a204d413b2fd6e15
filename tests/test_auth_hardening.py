"""Authentication, tenancy and credential redaction against hostile tenants: one test per defect
of issue 12's tenancy slice, each against the real server, its CLI and real peers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import (
    Server,
    create_key,
    helper,
    propylon_cli,
    start_server,
    stop_server,
    wait_for,
)

CONFIG = """
auth_cache_seconds = 0
allow_private_network_targets = true
stream_keepalive_seconds = 0.1

[[models]]
name = "echo"
provider = "echo"
"""
MCP_TOKEN = "mcp-token-8d1f"  # what the test MCP server is told to require


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("auth")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    """Secrets of a key of tenant `acme`, one of `globex`, and an admin key."""
    return {
        "a": create_key(data_dir, "--tenant", "acme")[1],
        "b": create_key(data_dir, "--tenant", "globex")[1],
        "admin": create_key(data_dir, "--tenant", "ops", "--admin")[1],
    }


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: dict[str, str]) -> Iterator[Server]:
    running = start_server(data_dir, CONFIG, log=data_dir / "server.log")
    yield running
    stop_server(running)


def _http(server: Server, key: str | None) -> httpx.Client:
    headers = {"x-goog-api-key": key} if key else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


def test_another_tenant_cannot_patch_a_webhook(server: Server, keys: dict[str, str]) -> None:
    with _http(server, keys["a"]) as a, _http(server, keys["b"]) as b:
        created = a.post(
            "/v1beta/webhooks",
            json={
                "name": "acme hook",
                "uri": "http://127.0.0.1:9/acme",
                "subscribed_events": ["interaction.completed"],
            },
        ).json()
        before = a.get(f"/v1beta/webhooks/{created['id']}").json()
        hijack = b.patch(
            f"/v1beta/webhooks/{created['id']}",
            json={"name": "owned", "uri": "http://127.0.0.1:9/globex"},
        )
        assert hijack.status_code == 404
        assert hijack.json()["error"]["code"] == "not_found"
        assert a.get(f"/v1beta/webhooks/{created['id']}").json() == before
        # the owner still can
        renamed = a.patch(f"/v1beta/webhooks/{created['id']}", json={"name": "renamed"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "renamed"


def test_every_route_but_healthz_needs_a_key(server: Server, keys: dict[str, str]) -> None:
    with _http(server, None) as anonymous, _http(server, keys["a"]) as a:
        assert anonymous.get("/healthz").status_code == 200
        for path, code in (
            ("/metrics", 401),  # Google's generateContent body off the Interactions surface
            ("/readyz", 401),
            ("/v1beta/webhooks", "authentication"),  # the Interactions API's own body
            ("/v1beta/interactions/x", "authentication"),
        ):
            refused = anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["error"]["code"] == code, path
        bad_key = anonymous.get("/metrics", headers={"x-goog-api-key": "not-a-key"})
        assert bad_key.status_code == 401
        metrics = a.get("/metrics")
        assert metrics.status_code == 200 and "propylon_http_requests" in metrics.text
        assert a.get("/readyz").json() == {"status": "ready"}


def test_metrics_public_opens_metrics_and_readyz_only(tmp_path: Path) -> None:
    data = tmp_path / "public"
    create_key(data, "--tenant", "acme")
    public = start_server(data, "metrics_public = true\n" + CONFIG)
    try:
        with _http(public, None) as anonymous:
            assert anonymous.get("/metrics").status_code == 200
            assert anonymous.get("/readyz").status_code == 200
            assert anonymous.get("/v1beta/webhooks").status_code == 401
    finally:
        stop_server(public)


def test_revoking_the_last_key_leaves_requests_refused(tmp_path: Path) -> None:
    data = tmp_path / "revoke"
    key_id, secret = create_key(data, "--tenant", "acme")
    exposed = start_server(data, 'host = "0.0.0.0"\n' + CONFIG)  # talked to on 127.0.0.1
    body = {"model": "echo", "input": "hi"}
    try:
        with _http(exposed, secret) as keyed, _http(exposed, None) as anonymous:
            assert keyed.post("/v1beta/interactions", json=body).status_code == 200
            assert anonymous.post("/v1beta/interactions", json=body).status_code == 401
            propylon_cli(data, "keys", "revoke", key_id)
            for client in (anonymous, keyed):  # auth_cache_seconds = 0: at once
                assert client.post("/v1beta/interactions", json=body).status_code == 401
                assert client.get("/v1beta/webhooks").status_code == 401
            fresh = create_key(data, "--tenant", "acme")[1]
            answered = anonymous.post(
                "/v1beta/interactions", json=body, headers={"x-goog-api-key": fresh}
            )
            assert answered.status_code == 200
        stop_server(exposed)
        # a restart with only revoked keys in the store neither refuses to start nor opens up
        propylon_cli(data, "keys", "revoke", _cli_key_id(data, fresh))
        exposed = start_server(data, 'host = "0.0.0.0"\n' + CONFIG)
        with _http(exposed, None) as anonymous:
            assert anonymous.post("/v1beta/interactions", json=body).status_code == 401
    finally:
        stop_server(exposed)


def _cli_key_id(data: Path, secret: str) -> str:
    """The id of the stored key whose secret is `secret` (by its SHA-256, as the store has)."""
    import hashlib
    import sqlite3

    with sqlite3.connect(data / "propylon.db") as conn:
        row = conn.execute(
            "SELECT id FROM api_keys WHERE key_hash = ?",
            (hashlib.sha256(secret.encode()).hexdigest(),),
        ).fetchone()
    return str(row[0])


@pytest.fixture(scope="module")
def mcp_url() -> Iterator[str]:
    with helper("mcp_server.py", MCP_TOKEN) as url:
        yield f"{url}/mcp"


def _no_credentials(text: str) -> None:
    assert MCP_TOKEN not in text and "sk-live-7f3a" not in text, text[:2000]


def test_mcp_headers_and_credentials_are_absent_from_every_read(
    server: Server, data_dir: Path, keys: dict[str, str], mcp_url: str, tmp_path: Path
) -> None:
    tools = [
        {
            "type": "mcp_server",
            "name": "calc",
            "url": f"{mcp_url}?api_key=sk-live-7f3a",  # a credential in the URL, too
            "headers": {"x-test-token": MCP_TOKEN},
        }
    ]
    body = {
        "model": "echo",
        "input": 'call add {"a": 2, "b": 3}',
        "tools": tools,
        "webhook_config": {"user_metadata": {"api_key": "sk-live-7f3a", "job": "nightly"}},
        "labels": {"deploy_token": "sk-live-7f3a", "team": "ml"},  # logged per upstream call
    }
    with _http(server, keys["a"]) as a:
        created = a.post("/v1beta/interactions", json=body)
        assert created.status_code == 200
        answer = created.json()
        assert answer["status"] == "completed", answer  # the run still sent the headers
        assert [s["type"] for s in answer["steps"]][:2] == [
            "mcp_server_tool_call",
            "mcp_server_tool_result",
        ]
        _no_credentials(created.text)
        assert answer["tools"][0]["headers"] == {"x-test-token": "[redacted]"}
        assert answer["tools"][0]["url"] == f"{mcp_url}?api_key=[redacted]"
        assert answer["webhook_config"]["user_metadata"] == {
            "api_key": "[redacted]",
            "job": "nightly",
        }
        reads = [
            a.get(f"/v1beta/interactions/{answer['id']}"),
            a.get(f"/v1beta/interactions/{answer['id']}", params={"include_input": "true"}),
            a.get(f"/v1beta/interactions/{answer['id']}", params={"stream": "true"}),
            a.post("/v1beta/interactions", json={**body, "stream": True}),
        ]
        background = a.post("/v1beta/interactions", json={**body, "background": True}).json()
        _no_credentials(json.dumps(background))
        wait_for(
            lambda: (
                a.get(f"/v1beta/interactions/{background['id']}").json()["status"]
                not in ("queued", "in_progress")
            )
        )
        done = a.get(f"/v1beta/interactions/{background['id']}", params={"include_input": "true"})
        assert done.json()["status"] == "completed", done.text  # re-planned from the store
        reads.append(done)
        for read in reads:
            assert read.status_code == 200
            _no_credentials(read.text)
    dump = tmp_path / "acme.jsonl"
    propylon_cli(data_dir, "export", "--tenant", "acme", "--output", str(dump))
    exported = dump.read_text()
    assert answer["id"] in exported and background["id"] in exported
    _no_credentials(exported)
    log = (data_dir / "server.log").read_text()
    _no_credentials(log)
    assert '"deploy_token": "[redacted]"' in log  # the upstream call's log line, redacted


def _signing_secret(client: httpx.Client) -> str:
    answer = client.get("/v1beta/webhooks:signingSecret")
    assert answer.status_code == 200, answer.text
    secret: str = answer.json()["secret"]
    return secret


def test_per_request_deliveries_are_signed_with_the_tenants_own_secret(
    server: Server, keys: dict[str, str]
) -> None:
    with _http(server, keys["admin"]) as admin:  # an operator may fetch it for a tenant
        for_acme = admin.get("/v1beta/webhooks:signingSecret", params={"tenant": "acme"})
    with helper("webhook_receiver.py") as receiver:
        with _http(server, keys["a"]) as a, _http(server, keys["b"]) as b:
            secrets = {"acme": _signing_secret(a), "globex": _signing_secret(b)}
            assert secrets["acme"] != secrets["globex"]
            assert for_acme.json() == {"secret": secrets["acme"]}
            assert _signing_secret(a) == secrets["acme"]  # stable
            assert b.get("/v1beta/webhooks:signingSecret?tenant=acme").status_code == 403
            for name, client in (("acme", a), ("globex", b)):
                created = client.post(
                    "/v1beta/interactions",
                    json={
                        "model": "echo",
                        "input": "x",
                        "webhook_config": {"uris": [f"{receiver}/hook/{name}"]},
                    },
                )
                assert created.status_code == 200

        def received(name: str) -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = httpx.get(f"{receiver}/received/{name}").json()
            return got

        wait_for(lambda: bool(received("acme")) and bool(received("globex")))
        master = (server.data_dir / "webhook_secret").read_text().strip()
        for name, other in (("acme", "globex"), ("globex", "acme")):
            [delivery] = received(name)
            payload = Webhook(secrets[name]).verify(delivery["body"], delivery["headers"])
            assert payload["type"] == "interaction.completed"
            for wrong in (secrets[other], master):  # no tenant can sign for another
                with pytest.raises(WebhookVerificationError):
                    Webhook(wrong).verify(delivery["body"], delivery["headers"])


def test_the_redaction_rule() -> None:
    """The rule of propylon.domain.redaction, on names, requests and free text."""
    from propylon.domain.redaction import (
        RedactingFilter,
        is_credential_name,
        redact_request,
        redact_text,
    )

    credentials = ["Authorization", "x-api-key", "api_key", "x-test-token", "access_token"]
    credentials += ["client_secret", "db_password", "AWS_ACCESS_KEY_ID", "cookie", "token"]
    assert all(is_credential_name(name) for name in credentials)
    plain = ["max_output_tokens", "total_tokens", "tokens", "name", "keyword", "author"]
    assert not any(is_credential_name(name) for name in plain)
    schema = {"type": "object", "properties": {"password": {"type": "string"}}}
    request = {
        "tools": [{"type": "function", "name": "login", "parameters": schema}],
        "response_format": schema,
        "system_instruction": "the password is not a field here",
        "generation_config": {"max_output_tokens": 5},
    }
    assert redact_request(request) == request  # schemas and content are left whole
    line = 'GET https://u:pw@h/mcp?token=t1&x=1 {"Authorization": "Bearer t2"} '
    line += "key pk-abcdefghijklmnopq"
    record = logging.LogRecord("t", logging.WARNING, "", 0, "auth %s", ("Bearer t3",), None)
    record.labels = {"api_key": "t4", "team": "ml"}  # a structured line's `extra`
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "auth Bearer [redacted]"
    assert record.labels == {"api_key": "[redacted]", "team": "ml"}
    assert redact_text(line) == (
        'GET https://u:[redacted]@h/mcp?token=[redacted]&x=1 {"Authorization": "[redacted]"} '
        "key [redacted]"
    )
