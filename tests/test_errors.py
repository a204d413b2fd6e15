"""Bad input gets the surface's own error body with the right HTTP status and changes nothing:
the Interactions API's `{"error": {"code": "<string>", "message"}}` on its paths, Google's
generateContent body `{"error": {"code": <int>, "message", "status"}}` elsewhere."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import Server


def _assert_error(response: httpx.Response, http_status: int, code: str) -> str:
    """The Interactions body: a string `code` naming the error type and a `message`."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert message
    return message


def _assert_google_error(response: httpx.Response, http_status: int, status: str) -> None:
    """Google's generateContent body: the HTTP status as an integer `code`, and `status`."""
    assert response.status_code == http_status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == http_status
    assert body["error"]["status"] == status
    assert body["error"]["message"]


BAD_BODIES: list[tuple[str, bytes, int, str, str]] = [
    ("malformed-json", b'{"model": "echo", "input": ', 400, "invalid_request", "malformed JSON"),
    ("not-an-object", b"[1, 2]", 400, "invalid_request", "JSON object"),
    (
        "model-and-agent",
        b'{"model": "echo", "agent": "deep-research-preview-04-2026", "input": "x"}',
        400,
        "invalid_request",
        "mutually exclusive",
    ),
    ("neither", b'{"input": "x"}', 400, "invalid_request", "`model` or `agent`"),
    ("unknown-model", b'{"model": "gpt-nine", "input": "x"}', 404, "not_found", "gpt-nine"),
    (
        "unknown-previous",
        b'{"model": "echo", "input": "x", "previous_interaction_id": "v1_nope"}',
        404,
        "not_found",
        "v1_nope",
    ),
    (
        "store-false-previous",
        b'{"model": "echo", "input": "x", "store": false, "previous_interaction_id": "v1_nope"}',
        400,
        "invalid_request",
        "previous_interaction_id",
    ),
    (
        "store-false-background",
        b'{"model": "echo", "input": "x", "store": false, "background": true}',
        400,
        "invalid_request",
        "background",
    ),
    (
        "unknown-field",
        b'{"model": "echo", "input": "x", "colour": "red"}',
        400,
        "invalid_request",
        "colour",
    ),
    ("no-input", b'{"model": "echo"}', 400, "invalid_request", "input"),
    (
        "bad-step",
        b'{"model": "echo", "input": [{"type": "function_result", "name": "f"}]}',
        400,
        "invalid_request",
        "call_id",
    ),
    (
        "mixed-input",
        b'{"model": "echo", "input": [{"type": "text", "text": "a"}, '
        b'{"type": "user_input", "content": []}]}',
        400,
        "invalid_request",
        "mixes",
    ),
    (
        "image-without-data",
        b'{"model": "echo", "input": {"type": "image"}}',
        400,
        "invalid_request",
        "data",
    ),
    (  # a forced call with nothing to call (generateContent, Chat and Responses refuse it too)
        "forced-call-without-tools",
        b'{"model": "echo", "input": "x", "generation_config": {"tool_choice": "any"}}',
        400,
        "invalid_request",
        "tool_choice",
    ),
    (
        "forced-allowed-call-without-tools",
        b'{"model": "echo", "input": "x", "generation_config": '
        b'{"tool_choice": {"allowed_tools": {"mode": "any", "tools": ["f"]}}}}',
        400,
        "invalid_request",
        "tool_choice",
    ),
]


@pytest.mark.parametrize(
    ("body", "http_status", "code", "mentions"),
    [case[1:] for case in BAD_BODIES],
    ids=[case[0] for case in BAD_BODIES],
)
def test_bad_create_bodies(
    server: Server, body: bytes, http_status: int, code: str, mentions: str
) -> None:
    before = server.rows()
    with server.http() as http:
        response = http.post(
            "/v1beta/interactions", content=body, headers={"content-type": "application/json"}
        )
    assert mentions in _assert_error(response, http_status, code)
    assert server.rows() == before


def test_wrong_or_missing_api_key_is_401(server: Server) -> None:
    before = server.rows()
    for headers in ({"x-goog-api-key": "wrong"}, {}):
        response = httpx.post(
            f"{server.url}/v1beta/interactions",
            json={"model": "echo", "input": "x"},
            headers=headers,
        )
        _assert_error(response, 401, "authentication")
    assert server.rows() == before


SdkCall = tuple[str, Callable[[genai.Client], Any], type[errors.APIStatusError], int, str]
SDK_CALLS: list[SdkCall] = [
    (
        "unknown-model",
        lambda c: c.interactions.create(model="nope", input="x"),
        errors.NotFoundError,
        404,
        "not_found",
    ),
    (
        "unknown-previous",
        lambda c: c.interactions.create(
            model="echo", input="x", previous_interaction_id="v1_missing"
        ),
        errors.NotFoundError,
        404,
        "not_found",
    ),
    (
        "store-false-previous",
        lambda c: c.interactions.create(
            model="echo", input="x", store=False, previous_interaction_id="v1_missing"
        ),
        errors.BadRequestError,
        400,
        "invalid_request",
    ),
    (
        "cancel-foreground",
        lambda c: c.interactions.cancel(c.interactions.create(model="echo", input="x").id),
        errors.BadRequestError,
        400,
        "failed_precondition",
    ),
    (
        "unknown-id",
        lambda c: c.interactions.get("v1_missing"),
        errors.NotFoundError,
        404,
        "not_found",
    ),
    (
        "cancel-unknown",
        lambda c: c.interactions.cancel("v1_missing"),
        errors.NotFoundError,
        404,
        "not_found",
    ),
    ("unknown-agent", lambda c: c.agents.get("missing"), errors.NotFoundError, 404, "not_found"),
    (
        "unknown-webhook",
        lambda c: c.webhooks.get("missing"),
        errors.NotFoundError,
        404,
        "not_found",
    ),
]


def typed_error(exc: BaseException) -> Any:
    """The SDK's typed parse of the error body (`_gaos/types/interactions/error.py`) behind
    `exc`, or None where the SDK has no type for the operation's errors (agents, webhooks).
    Fails when the chain holds a parse failure: the body did not match the SDK's type (an
    integer `code` does not), so the SDK fell back on its generic path."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    names = [type(e).__name__ for e in chain]
    assert not {"ResponseValidationError", "ValidationError"} & set(names), names
    assert not any("did not match expected schema" in str(e) for e in chain), names
    typed = [e for e in chain if hasattr(e, "data")]
    return typed[0].data.error if typed else None


# The SDK types the errors of interactions' operations only (not of agents' or webhooks').
UNTYPED = {"unknown-agent", "unknown-webhook"}


@pytest.mark.parametrize("case", SDK_CALLS, ids=[c[0] for c in SDK_CALLS])
def test_errors_through_the_sdk(client: genai.Client, case: SdkCall) -> None:
    name, call, exception, http_status, code = case
    with pytest.raises(exception) as caught:
        call(client)
    assert caught.value.status_code == http_status
    message = caught.value.body["error"]["message"]
    assert caught.value.body["error"] == {"code": code, "message": message}
    assert message in caught.value.message
    parsed = typed_error(caught.value)  # google-genai 3.4.0 parsed the body as its own type
    if name not in UNTYPED:
        assert (parsed.code, parsed.message) == (code, message)


def test_sdk_errors_change_nothing(server: Server, client: genai.Client) -> None:
    before = server.rows()
    for name, call, exception, _, _ in SDK_CALLS:
        if name != "cancel-foreground":  # that one creates an interaction first
            with pytest.raises(exception):
                call(client)
    assert server.rows() == before


def test_wrong_key_through_the_sdk(server: Server) -> None:
    from google.genai import types

    client = genai.Client(api_key="wrong", http_options=types.HttpOptions(base_url=server.url))
    with pytest.raises(errors.AuthenticationError) as caught:
        client.interactions.create(model="echo", input="x")
    assert typed_error(caught.value).code == "authentication"


def test_the_interactions_body_on_every_interactions_path(server: Server) -> None:
    """Every form of the surface's paths: versions, Vertex's, `path_prefix`, agents, webhooks;
    before routing too (auth) and for a method the path does not have."""
    with server.http() as http:
        for path in (
            "/v1beta/interactions/v1_missing",
            "/v1/interactions/v1_missing",
            "/v1beta1/projects/p/locations/l/interactions/v1_missing",
            "/gemini/v1beta/interactions/v1_missing",
            "/v1beta/agents/missing",
            "/v1beta/webhooks/missing",
        ):
            assert "missing" in _assert_error(http.get(path), 404, "not_found"), path
        _assert_error(http.put("/v1beta/interactions"), 400, "invalid_request")
        _assert_error(http.delete("/v1beta/agents"), 400, "invalid_request")
    _assert_error(httpx.get(f"{server.url}/v1beta/webhooks"), 401, "authentication")


def test_other_paths_keep_googles_body(server: Server) -> None:
    with server.http() as http:
        _assert_google_error(http.get("/v1beta/nothing-here"), 404, "NOT_FOUND")
        _assert_google_error(http.get("/v1beta/models/echo:generateContent"), 404, "NOT_FOUND")
        _assert_google_error(http.put("/healthz"), 400, "INVALID_ARGUMENT")
    _assert_google_error(httpx.get(f"{server.url}/readyz"), 401, "UNAUTHENTICATED")
