"""Bad input answers 4xx in Google's error shape and changes nothing: bodies over the size
limit, JSON nested past the nesting limit, and shapes the validation layer must refuse (each
of them once answered 500)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import CONFIG, Server, helper, start_server, stop_server

MiB = 1024 * 1024
LIMIT = 32 * MiB  # the default `max_request_bytes`


def _error(response: httpx.Response, code: int) -> str:
    """The message of an Interactions error body with HTTP status `code`."""
    assert response.status_code == code, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    expected = {400: {"invalid_request", "failed_precondition"}, 404: {"not_found"}}
    assert body["error"]["code"] in expected.get(code, {"invalid_request"})  # 413 too
    message: str = body["error"]["message"]
    assert message
    return message


def _create(server: Server, body: dict[str, Any]) -> httpx.Response:
    with server.http() as http:
        return http.post("/v1beta/interactions", json=body)


class _Upload:
    """A body streamed from a generator in 1 MiB chunks (the test never holds it whole).
    After `pause_after` chunks it waits until `resume` is set; `sent` counts what it gave."""

    def __init__(self, total: int, pause_after: int | None = None) -> None:
        self.total = total
        self.pause_after = pause_after
        self.paused = threading.Event()
        self.resume = threading.Event()
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * MiB
        while self.sent < self.total:
            if self.pause_after is not None and self.sent == self.pause_after * MiB:
                self.paused.set()
                assert self.resume.wait(60), "the test never resumed the upload"
            self.sent += len(chunk)
            yield chunk


def _post_upload(
    server: Server, upload: _Upload, headers: dict[str, str], answer: list[httpx.Response]
) -> None:
    with server.http() as http:
        answer.append(http.post("/v1beta/interactions", content=upload, headers=headers))


def test_a_200_mb_body_gets_413_quickly_while_other_requests_are_served(server: Server) -> None:
    before = server.rows()
    upload = _Upload(200 * MiB, pause_after=8)
    answer: list[httpx.Response] = []
    started = time.monotonic()
    thread = threading.Thread(
        target=_post_upload,
        args=(server, upload, {"content-type": "application/json"}, answer),  # chunked: no length
    )
    thread.start()
    assert upload.paused.wait(30)
    # Mid-upload, the server answers others: liveness and a normal create.
    with server.http() as http:
        assert http.get("/healthz").status_code == 200
        normal = http.post("/v1beta/interactions", json={"model": "echo", "input": "hi"})
        assert normal.status_code == 200
        assert normal.json()["status"] == "completed"
    upload.resume.set()
    thread.join(60)
    assert not thread.is_alive()
    assert "limit" in _error(answer[0], 413)
    assert time.monotonic() - started < 30
    # Refused when the limit was crossed, not after reading the whole body.
    assert LIMIT <= upload.sent < 100 * MiB
    interactions, _ = server.rows()
    assert interactions == before[0] + 1  # the normal create only


def test_a_content_length_over_the_limit_is_refused_before_the_body_is_read(
    server: Server,
) -> None:
    before = server.rows()
    upload = _Upload(200 * MiB)
    answer: list[httpx.Response] = []
    headers = {"content-type": "application/json", "content-length": str(200 * MiB)}
    _post_upload(server, upload, headers, answer)
    assert "limit" in _error(answer[0], 413)
    assert upload.sent < LIMIT  # refused on the header, before the limit was read
    assert server.rows() == before


def _nested(depth: int) -> Any:
    value: Any = {"leaf": 1}
    for index in range(depth - 1):
        value = {"k": value} if index % 2 else [value]
    return value


DEEP = _nested(300)
DEEP_BODIES = {
    "user_metadata": {
        "model": "echo",
        "input": "hi",
        "webhook_config": {"user_metadata": {"deep": DEEP}},
    },
    "function-parameters": {
        "model": "echo",
        "input": "hi",
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "x": DEEP}}],
    },
    "function-result": {
        "model": "echo",
        "input": [
            {"type": "user_input", "content": [{"type": "text", "text": "hi"}]},
            {"type": "function_call", "id": "c1", "name": "f", "arguments": {}},
            {"type": "function_result", "call_id": "c1", "name": "f", "result": DEEP},
        ],
        "tools": [{"type": "function", "name": "f"}],
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["create", "stream-create"])
@pytest.mark.parametrize("body", list(DEEP_BODIES.values()), ids=list(DEEP_BODIES))
def test_json_nested_past_the_limit_is_400(
    server: Server, body: dict[str, Any], stream: bool
) -> None:
    before = server.rows()
    with (
        server.http() as http,
        http.stream("POST", "/v1beta/interactions", json={**body, "stream": stream}) as response,
    ):
        # Status first: a stream that started (200) would never end here.
        assert response.status_code == 400
        response.read()
    assert "nested" in _error(response, 400)
    assert "64" in response.json()["error"]["message"]
    assert server.rows() == before


def test_webhook_bodies_are_held_to_the_nesting_limit(server: Server) -> None:
    with server.http() as http:
        response = http.post(
            "/v1beta/webhooks",
            json={"uri": "http://127.0.0.1:9/h", "subscribed_events": [DEEP], "name": "x"},
        )
    assert "nested" in _error(response, 400)


def test_json_nested_within_the_limit_is_accepted(server: Server) -> None:
    metadata = {"deep": _nested(40)}
    body = {"model": "echo", "input": "hi", "webhook_config": {"user_metadata": metadata}}
    response = _create(server, body)
    assert response.status_code == 200, response.text
    assert response.json()["webhook_config"]["user_metadata"] == metadata


# Shapes each of which answered 500 once; the validation layer refuses them now.
BAD_SHAPES: dict[str, tuple[dict[str, Any], str]] = {
    "allowed_tools-a-string": (
        {"generation_config": {"tool_choice": {"allowed_tools": "x"}}},
        "allowed_tools",
    ),
    "allowed_tools-tools-a-string": (
        {"generation_config": {"tool_choice": {"allowed_tools": {"tools": "f"}}}},
        "tools",
    ),
    "allowed_tools-names-an-undeclared-function": (
        {
            "tools": [{"type": "function", "name": "f"}],
            "generation_config": {"tool_choice": {"allowed_tools": {"tools": ["g"]}}},
        },
        "`g`",
    ),
    "tool_choice-unknown-mode": (
        {"generation_config": {"tool_choice": "sometimes"}},
        "tool_choice",
    ),
    "unhashable-input-type": ({"input": [{"type": ["text"], "text": "x"}]}, "input"),
    "webhook-uri-not-a-url": ({"webhook_config": {"uris": ["http://[::1"]}}, "uris"),
    "webhook-uri-bad-port": ({"webhook_config": {"uris": ["http://h:99999/"]}}, "uris"),
    "mcp-url-not-a-url": (
        {"tools": [{"type": "mcp_server", "name": "s", "url": "http://[::1"}]},
        "url",
    ),
    "response-schema-not-a-schema": (
        {"response_format": {"type": "text", "schema": {"type": 5}}},
        "response_format",
    ),
    "parameters-not-a-schema": (
        {"tools": [{"type": "function", "name": "f", "parameters": {"type": "nothing"}}]},
        "parameters",
    ),
}


@pytest.mark.parametrize(("extra", "mentions"), list(BAD_SHAPES.values()), ids=list(BAD_SHAPES))
def test_bad_shapes_are_400(server: Server, extra: dict[str, Any], mentions: str) -> None:
    before = server.rows()
    response = _create(server, {"model": "echo", "input": "hi", **extra})
    assert mentions in _error(response, 400)
    assert server.rows() == before


@pytest.mark.parametrize(
    "body",
    [
        {"uri": "http://[::1", "subscribed_events": ["interaction.completed"]},
        {"uri": "http://h:99999/", "subscribed_events": ["interaction.completed"]},
        {"uri": "http://127.0.0.1:9/h", "subscribed_events": 5},
        {"uri": "http://127.0.0.1:9/h", "subscribed_events": [["interaction.completed"]]},
        {"uri": "http://127.0.0.1:9/h", "subscribed_events": ["interaction.completed"], "name": 5},
    ],
    ids=["uri-not-a-url", "uri-bad-port", "events-a-number", "events-nested", "name-a-number"],
)
def test_bad_webhook_bodies_are_400(server: Server, body: dict[str, Any]) -> None:
    with server.http() as http:
        before = http.get("/v1beta/webhooks").json()
        _error(http.post("/v1beta/webhooks", json=body), 400)
        assert http.get("/v1beta/webhooks").json() == before


def test_bad_webhook_updates_are_400(server: Server) -> None:
    with server.http() as http:
        created = http.post(
            "/v1beta/webhooks",
            json={"uri": "http://127.0.0.1:9/h", "subscribed_events": ["interaction.completed"]},
        ).json()
        path = f"/v1beta/webhooks/{created['id']}"
        for change in ({"uri": "http://[::1"}, {"state": []}, {"subscribed_events": [{}]}):
            _error(http.patch(path, json=change), 400)
        after = http.get(path).json()
        assert after["uri"] == "http://127.0.0.1:9/h"
        assert after["state"] == "enabled"
        http.delete(path)


# --- steps an OpenAI-compatible upstream is handed -----------------------------------------


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with helper("fault_upstream.py") as upstream:
        config = CONFIG + (
            '\n[[models]]\nname = "upstream"\n'
            f'targets = [{{ provider = "openai", base_url = "{upstream}/v1", '
            'model = "primary", max_attempts = 1 }]\n'
        )
        running = start_server(tmp_path_factory.mktemp("openai-steps"), config)
        yield running
        stop_server(running)


USER = {"type": "user_input", "content": [{"type": "text", "text": "hi"}]}
MCP_CALL = {
    "type": "mcp_server_tool_call",
    "id": "m1",
    "name": "lookup",
    "server_name": "srv",
    "arguments": {"q": "x"},
}
MCP_RESULT = {
    "type": "mcp_server_tool_result",
    "call_id": "m1",
    "name": "lookup",
    "server_name": "srv",
    "result": "id=mcp-steps primary=ok",  # the fault upstream's script, in the last message
}


def _without(step: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in step.items() if k != field}


@pytest.mark.parametrize(
    ("steps", "mentions"),
    [
        ([USER, _without(MCP_CALL, "id"), MCP_RESULT], "id"),
        ([USER, _without(MCP_CALL, "name"), MCP_RESULT], "name"),
        ([USER, MCP_CALL, _without(MCP_RESULT, "call_id")], "call_id"),
        ([USER, {**MCP_CALL, "arguments": "x"}, MCP_RESULT], "arguments"),
    ],
    ids=["call-without-id", "call-without-name", "result-without-call_id", "arguments-a-string"],
)
def test_incomplete_mcp_steps_for_an_openai_model_are_400(
    openai_server: Server, steps: list[dict[str, Any]], mentions: str
) -> None:
    before = openai_server.rows()
    response = _create(openai_server, {"model": "upstream", "input": steps})
    assert mentions in _error(response, 400)
    assert openai_server.rows() == before


def test_mcp_steps_replayed_to_an_openai_model_are_translated(openai_server: Server) -> None:
    response = _create(openai_server, {"model": "upstream", "input": [USER, MCP_CALL, MCP_RESULT]})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    text = response.json()["steps"][-1]["content"][0]["text"]
    assert text == "hello from primary"
