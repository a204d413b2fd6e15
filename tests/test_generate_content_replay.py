"""generateContent through a `gemini` target: the recorded Gemini answers
(tests/fixtures/gemini/generate_content, see PROVENANCE.md), replayed on loopback as the
upstream, come back to the client unchanged, whole and streamed (SSE and JSON array), and the
client's request reaches the upstream with its fields intact."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.genai import errors, types
from google.genai.models import _GenerateContentResponse_from_mldev

from tests.conftest import (
    CONFIG,
    FIXTURES,
    Server,
    create_key,
    replay_model,
    start_server,
    stop_server,
)

ANSWERS = FIXTURES / "generate_content"

WHOLE = sorted(
    p.name
    for p in ANSWERS.glob("*.json")
    if not p.name.endswith(".request.json") and isinstance(json.loads(p.read_text()), dict)
)
STREAMED = [
    *sorted(p.name for p in ANSWERS.glob("*.sse")),
    "stream_json_array_thoughts_signature.json",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gc-replay")


@pytest.fixture(scope="module")
def capped_key(data_dir: Path) -> str:
    """A key whose policy caps every answer at 3 tokens."""
    return create_key(data_dir, "--tenant", "acme", "--max-tokens", "3")[1]


@pytest.fixture(scope="module")
def server(replay: str, data_dir: Path, capped_key: str) -> Iterator[Server]:
    config = CONFIG + replay_model(replay)
    running = start_server(data_dir, config)
    yield running
    stop_server(running)


def _recorded_chunks(name: str) -> list[dict[str, Any]]:
    raw = (ANSWERS / name).read_text()
    if name.endswith(".sse"):
        return [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:")]
    parsed = json.loads(raw)
    return parsed if isinstance(parsed, list) else [parsed]


def _request(name: str) -> dict[str, Any]:
    """The fixture's recorded request when there is one (less `cachedContent`: Google's name),
    with a last user text naming the fixture for the replay to answer with."""
    stem = name.rsplit(".", 1)[0].removesuffix("_stream")
    recorded = ANSWERS / f"{stem}.request.json"
    body: dict[str, Any] = json.loads(recorded.read_text()) if recorded.exists() else {}
    body.pop("cachedContent", None)
    body.pop("cached_content", None)
    contents = body.setdefault("contents", [])
    asking = {"text": f"generate_content/{name}"}
    if contents and contents[-1].get("role", "user") == "user":
        contents[-1]["parts"].insert(0, asking)  # the replay reads the first text part
    else:
        contents.append({"role": "user", "parts": [asking]})
    return body


def _forwarded(replay: str) -> dict[str, Any]:
    received: dict[str, Any] = httpx.get(f"{replay}/requests").json()[-1]
    return received


@pytest.mark.parametrize("name", WHOLE)
def test_whole_answers_come_back_unchanged(server: Server, replay: str, name: str) -> None:
    body = _request(name)
    with server.http() as http:
        answer = http.post("/v1beta/models/gemini-replay:generateContent", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == json.loads((ANSWERS / name).read_text())
    assert _forwarded(replay) == body  # every field as the client sent it


@pytest.mark.parametrize("name", STREAMED)
def test_streamed_answers_come_back_unchanged(server: Server, replay: str, name: str) -> None:
    body = _request(name)
    with server.http() as http:
        sse = http.post("/v1beta/models/gemini-replay:streamGenerateContent?alt=sse", json=body)
        array = http.post("/v1beta/models/gemini-replay:streamGenerateContent", json=body)
    assert sse.status_code == 200 and array.status_code == 200
    frames = [json.loads(line[5:]) for line in sse.text.splitlines() if line.startswith("data:")]
    assert frames == _recorded_chunks(name)
    assert json.loads(array.text) == _recorded_chunks(name)
    assert _forwarded(replay) == body


def _parsed(body: dict[str, Any]) -> types.GenerateContentResponse:
    """The recorded body as google-genai parses an answer of the Gemini API."""
    converted = _GenerateContentResponse_from_mldev(copy.deepcopy(body))
    return types.GenerateContentResponse._from_response(response=converted, kwargs={})


def _sdk_view(response: types.GenerateContentResponse) -> dict[str, Any]:
    """Every field the SDK parsed, less its own HTTP record."""
    return response.model_dump(exclude={"sdk_http_response", "automatic_function_calling_history"})


@pytest.mark.parametrize(
    "name",
    [
        "text_basic.json",
        "thoughts_included.json",
        "function_call_parallel.json",
        "function_response_followup.json",
        "finish_safety.json",
        "usage_cached_content.json",
        "finish_max_tokens_thinking_no_parts.json",
    ],
)
def test_the_sdk_reads_what_google_sent(server: Server, name: str) -> None:
    """Parts, thought signatures, usage, finish reasons and safety ratings, as google-genai
    parses them, equal the SDK's parse of the recorded body."""
    client = server.client()
    answer = client.models.generate_content(
        model="gemini-replay",
        contents=f"generate_content/{name}",
        config=types.GenerateContentConfig(
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True)
        ),
    )
    expected = _parsed(json.loads((ANSWERS / name).read_text()))
    assert _sdk_view(answer) == _sdk_view(expected)


@pytest.mark.parametrize(
    "name",
    ["text_stream.sse", "thoughts_included_stream.sse", "function_call_stream_signature.sse"],
)
def test_the_sdk_reads_streamed_chunks_as_sent(server: Server, name: str) -> None:
    client = server.client()
    chunks = list(
        client.models.generate_content_stream(
            model="gemini-replay", contents=f"generate_content/{name}"
        )
    )
    expected = [_parsed(c) for c in _recorded_chunks(name)]
    assert [_sdk_view(c) for c in chunks] == [_sdk_view(c) for c in expected]


def test_upstream_errors_reach_the_client_in_googles_shape(server: Server) -> None:
    recorded = json.loads((FIXTURES / "errors" / "invalid_api_key_400.json").read_text())
    client = server.client()
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model="gemini-replay", contents="errors/invalid_api_key_400.json"
        )
    assert refused.value.code == 400
    assert refused.value.status == "INVALID_ARGUMENT"
    assert recorded["error"]["message"] in refused.value.message


def test_labels_are_propylons_and_not_forwarded(server: Server, replay: str) -> None:
    body = _request("text_basic.json") | {"labels": {"team": "search"}}
    with server.http() as http:
        answer = http.post("/v1beta/models/gemini-replay:generateContent", json=body)
    assert answer.status_code == 200
    assert "labels" not in _forwarded(replay)


def test_an_unknown_cached_content_is_not_found_for_gemini_targets_too(
    server: Server, replay: str
) -> None:
    forwarded = len(httpx.get(f"{replay}/requests").json())
    body = _request("text_basic.json") | {"cachedContent": "cachedContents/abc"}
    with server.http() as http:
        answer = http.post("/v1beta/models/gemini-replay:generateContent", json=body)
    assert answer.status_code == 404
    assert "cachedContents/abc" in answer.json()["error"]["message"]
    assert len(httpx.get(f"{replay}/requests").json()) == forwarded  # nothing went upstream


def test_count_tokens_is_googles(server: Server, replay: str) -> None:
    """countTokens of a `gemini` target is forwarded to the upstream's `:countTokens`."""
    with server.http() as http:
        answer = http.post(
            "/v1beta/models/gemini-replay:countTokens",
            json={"contents": [{"parts": [{"text": "one two three"}]}]},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"totalTokens": 6}  # the replay's count, not echo's words
    assert _forwarded(replay) == {"contents": [{"parts": [{"text": "one two three"}]}]}


def test_a_keys_token_ceiling_caps_the_forwarded_answer(
    server: Server, replay: str, capped_key: str
) -> None:
    body = _request("text_basic.json") | {"generationConfig": {"maxOutputTokens": 100}}
    answer = httpx.post(
        f"{server.url}/v1beta/models/gemini-replay:generateContent",
        json=body,
        headers={"x-goog-api-key": capped_key},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert _forwarded(replay)["generationConfig"] == {"maxOutputTokens": 3}
