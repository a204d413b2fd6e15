"""Bad input gets a Google-style error with the right HTTP status and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import Server


def _assert_error(response: httpx.Response, code: int, status: str) -> str:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    message: str = body["error"]["message"]
    assert message
    return message


BAD_BODIES: list[tuple[str, bytes, int, str, str]] = [
    ("malformed-json", b'{"model": "echo", "input": ', 400, "INVALID_ARGUMENT", "malformed JSON"),
    ("not-an-object", b"[1, 2]", 400, "INVALID_ARGUMENT", "JSON object"),
    (
        "model-and-agent",
        b'{"model": "echo", "agent": "deep-research-preview-04-2026", "input": "x"}',
        400,
        "INVALID_ARGUMENT",
        "mutually exclusive",
    ),
    ("neither", b'{"input": "x"}', 400, "INVALID_ARGUMENT", "`model` or `agent`"),
    ("unknown-model", b'{"model": "gpt-nine", "input": "x"}', 404, "NOT_FOUND", "gpt-nine"),
    (
        "unknown-previous",
        b'{"model": "echo", "input": "x", "previous_interaction_id": "v1_nope"}',
        404,
        "NOT_FOUND",
        "v1_nope",
    ),
    (
        "store-false-previous",
        b'{"model": "echo", "input": "x", "store": false, "previous_interaction_id": "v1_nope"}',
        400,
        "INVALID_ARGUMENT",
        "previous_interaction_id",
    ),
    (
        "store-false-background",
        b'{"model": "echo", "input": "x", "store": false, "background": true}',
        400,
        "INVALID_ARGUMENT",
        "background",
    ),
    (
        "unknown-field",
        b'{"model": "echo", "input": "x", "colour": "red"}',
        400,
        "INVALID_ARGUMENT",
        "colour",
    ),
    ("no-input", b'{"model": "echo"}', 400, "INVALID_ARGUMENT", "input"),
    (
        "bad-step",
        b'{"model": "echo", "input": [{"type": "function_result", "name": "f"}]}',
        400,
        "INVALID_ARGUMENT",
        "call_id",
    ),
    (
        "mixed-input",
        b'{"model": "echo", "input": [{"type": "text", "text": "a"}, '
        b'{"type": "user_input", "content": []}]}',
        400,
        "INVALID_ARGUMENT",
        "mixes",
    ),
    (
        "image-without-data",
        b'{"model": "echo", "input": {"type": "image"}}',
        400,
        "INVALID_ARGUMENT",
        "data",
    ),
]


@pytest.mark.parametrize(
    ("body", "code", "status", "mentions"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_create_bodies(
    server: Server, body: bytes, code: int, status: str, mentions: str
) -> None:
    before = server.rows()
    with server.http() as http:
        response = http.post(
            "/v1beta/interactions", content=body, headers={"content-type": "application/json"}
        )
    assert mentions in _assert_error(response, code, status)
    assert server.rows() == before


def test_wrong_or_missing_api_key_is_401(server: Server) -> None:
    before = server.rows()
    for headers in ({"x-goog-api-key": "wrong"}, {}):
        response = httpx.post(
            f"{server.url}/v1beta/interactions",
            json={"model": "echo", "input": "x"},
            headers=headers,
        )
        _assert_error(response, 401, "UNAUTHENTICATED")
    assert server.rows() == before


SDK_CALLS: list[tuple[str, Callable[[genai.Client], Any], type[errors.APIStatusError], int]] = [
    (
        "unknown-model",
        lambda c: c.interactions.create(model="nope", input="x"),
        errors.NotFoundError,
        404,
    ),
    (
        "unknown-previous",
        lambda c: c.interactions.create(
            model="echo", input="x", previous_interaction_id="v1_missing"
        ),
        errors.NotFoundError,
        404,
    ),
    (
        "store-false-previous",
        lambda c: c.interactions.create(
            model="echo", input="x", store=False, previous_interaction_id="v1_missing"
        ),
        errors.BadRequestError,
        400,
    ),
    ("unknown-id", lambda c: c.interactions.get("v1_missing"), errors.NotFoundError, 404),
    ("cancel-unknown", lambda c: c.interactions.cancel("v1_missing"), errors.NotFoundError, 404),
]


@pytest.mark.parametrize(
    ("call", "exception", "code"), [c[1:] for c in SDK_CALLS], ids=[c[0] for c in SDK_CALLS]
)
def test_errors_through_the_sdk(
    server: Server,
    client: genai.Client,
    call: Callable[[genai.Client], Any],
    exception: type[errors.APIStatusError],
    code: int,
) -> None:
    before = server.rows()
    with pytest.raises(exception) as caught:
        call(client)
    assert caught.value.status_code == code
    assert caught.value.body["error"]["code"] == code
    assert server.rows() == before


def test_wrong_key_through_the_sdk(server: Server) -> None:
    from google.genai import types

    client = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=server.url))
    with pytest.raises(errors.AuthenticationError):
        client.interactions.create(model="echo", input="x")


def test_unknown_route_and_method(server: Server) -> None:
    with server.http() as http:
        _assert_error(http.get("/v1beta/nothing-here"), 404, "NOT_FOUND")
        _assert_error(http.put("/v1beta/interactions"), 400, "INVALID_ARGUMENT")
