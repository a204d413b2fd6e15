"""The Responses API over a WebSocket (`/v1/responses`), against the real server (model `echo`):
the same events as over HTTP, and a connection that keeps its latest `store` false response."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import API_KEY, Server, create_key, propylon_cli, wait_for

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest.fixture
def socket(server: Server) -> Iterator[ClientConnection]:
    url = server.url.replace("http://", "ws://") + "/v1/responses"
    headers = {"authorization": f"Bearer {API_KEY}"}
    with connect(url, additional_headers=headers, open_timeout=10) as connection:
        yield connection


def _turn(socket: ClientConnection, **body: Any) -> list[dict[str, Any]]:
    """Send one `response.create`; every message up to its end (a terminal event or an
    error envelope)."""
    socket.send(json.dumps({"type": "response.create", **body}))
    messages = []
    while True:
        message = json.loads(socket.recv(timeout=30))
        messages.append(message)
        if message["type"] in ("response.completed", "response.failed", "error"):
            return messages


def test_a_response_streams_over_the_socket(socket: ClientConnection) -> None:
    events = _turn(socket, model="echo", input="over a socket")
    for event in events:
        EVENTS.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert events[0]["type"] == "response.created"
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "completed" and final.output_text == "user: over a socket"


def test_the_connection_continues_its_store_false_response(socket: ClientConnection) -> None:
    first = _turn(socket, model="echo", store=False, input="the word is cobalt")
    first_id = first[-1]["response"]["id"]
    second = _turn(
        socket, model="echo", store=False, previous_response_id=first_id, input="the word?"
    )
    assert Response.model_validate(second[-1]["response"]).output_text.splitlines() == [
        "user: the word is cobalt",
        "model: user: the word is cobalt",
        "user: the word?",
    ]
    # only the latest is kept: the first can no longer be continued
    stale = _turn(socket, model="echo", store=False, previous_response_id=first_id, input="x")
    assert stale == [
        {
            "type": "error",
            "status": 400,
            "error": {
                "message": f"previous response `{first_id}` not found",
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            },
        }
    ]


def test_a_stored_response_continues_from_the_store(
    server: Server, socket: ClientConnection
) -> None:
    first = _turn(socket, model="echo", input="stored")
    first_id = first[-1]["response"]["id"]
    url = server.url.replace("http://", "ws://") + "/v1/responses"
    headers = {"authorization": f"Bearer {API_KEY}"}
    with connect(url, additional_headers=headers) as another:  # a new connection holds nothing
        events = _turn(another, model="echo", previous_response_id=first_id, input="next")
    final = events[-1]["response"]
    assert final["previous_response_id"] == first_id
    assert final["output"][0]["content"][0]["text"].splitlines()[0] == "user: stored"


def test_a_failed_continuation_forgets_what_it_named(socket: ClientConnection) -> None:
    first = _turn(socket, model="echo", store=False, input="remember")
    first_id = first[-1]["response"]["id"]
    orphan = {"type": "function_call_output", "call_id": "call_none", "output": "x"}
    failed = _turn(socket, model="echo", store=False, previous_response_id=first_id, input=[orphan])
    assert failed[-1]["type"] == "error" and failed[-1]["status"] == 400
    retry = _turn(socket, model="echo", store=False, previous_response_id=first_id, input="x")
    assert retry[-1]["error"]["code"] == "previous_response_not_found"


def test_http_only_fields_and_bad_messages_are_refused(socket: ClientConnection) -> None:
    [refused] = _turn(socket, model="echo", input="x", stream=True)
    assert refused["status"] == 400 and refused["error"]["param"] == "stream"
    socket.send("not json")
    envelope = json.loads(socket.recv(timeout=30))
    assert envelope["type"] == "error" and envelope["error"]["code"] == "invalid_request_error"
    # the connection still serves the next turn
    assert _turn(socket, model="echo", input="after")[-1]["type"] == "response.completed"


def test_a_revoked_key_ends_its_open_sockets_turns(server: Server) -> None:
    """Revoking a key stops a socket it opened earlier, as it stops its HTTP requests (at
    most `auth_cache_seconds` later): each turn is authenticated again."""
    key_id, secret = create_key(server.data_dir, "--tenant", "acme")
    url = server.url.replace("http://", "ws://") + "/v1/responses"
    bearer = {"authorization": f"Bearer {secret}"}
    with connect(url, additional_headers=bearer, open_timeout=10) as socket:
        assert _turn(socket, model="echo", input="before")[-1]["type"] == "response.completed"
        propylon_cli(server.data_dir, "keys", "revoke", key_id)
        wait_for(lambda: httpx.get(f"{server.url}/v1/models", headers=bearer).status_code == 401)
        [refused] = _turn(socket, model="echo", input="after")
        assert refused["status"] == 401
        assert refused["error"]["code"] == "invalid_api_key"


def test_a_socket_without_a_key_is_refused(server: Server) -> None:
    url = server.url.replace("http://", "ws://") + "/v1/responses"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=10)
    assert refused.value.response.status_code == 403
