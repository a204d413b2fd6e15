"""The Gemini mapping on real recorded Gemini responses (tests/fixtures/gemini, see its
PROVENANCE.md), replayed on loopback through Propylon's Gemini provider and read back with the
google-genai SDK; and the requests we build, validated against the SDK's own request types."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types

from tests.conftest import (
    CONFIG,
    FIXTURES,
    Server,
    replay_model,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def client(replay: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[genai.Client]:
    config = CONFIG + replay_model(replay)
    server: Server = start_server(tmp_path_factory.mktemp("gemini"), config)
    yield server.client()
    stop_server(server)


def _chunks(name: str) -> list[dict[str, Any]]:
    """The response chunks of a fixture, read independently of the provider."""
    raw = (FIXTURES / "generate_content" / name).read_text()
    if name.endswith(".sse"):
        return [
            json.loads(line[len("data:") :])
            for line in raw.splitlines()
            if line.startswith("data:")
        ]
    parsed = json.loads(raw)
    return parsed if isinstance(parsed, list) else [parsed]


def _parts(name: str) -> list[dict[str, Any]]:
    return [
        part
        for chunk in _chunks(name)
        for candidate in chunk.get("candidates", [])
        for part in candidate.get("content", {}).get("parts", [])
    ]


def _ask(client: genai.Client, name: str, **kwargs: Any) -> Any:
    return client.interactions.create(
        model="gemini-replay", input=f"generate_content/{name}", **kwargs
    )


TEXT_FIXTURES = [
    "text_basic.json",
    "text_stream.sse",
    "thoughts_included.json",
    "thoughts_included_stream.sse",
    "stream_json_array_thoughts_signature.json",
    "usage_cached_content.json",
]


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_text_thoughts_and_usage(client: genai.Client, name: str) -> None:
    answer = _ask(client, name)
    parts = _parts(name)
    text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
    summary = "".join(p["text"] for p in parts if p.get("thought"))
    signatures = [p["thoughtSignature"] for p in parts if "thoughtSignature" in p]
    assert answer.status == "completed"
    assert answer.output_text == text
    thoughts = [s for s in answer.steps if s.type == "thought"]
    if summary:
        assert "".join(i.text for s in thoughts for i in s.summary or []) == summary
    assert [s.signature for s in thoughts if s.signature] == signatures
    usage = _chunks(name)[-1]["usageMetadata"]
    assert answer.usage.total_input_tokens == usage["promptTokenCount"]
    assert answer.usage.total_output_tokens == usage.get("candidatesTokenCount", 0)
    assert answer.usage.total_thought_tokens == usage.get("thoughtsTokenCount", 0)
    assert answer.usage.total_cached_tokens == usage.get("cachedContentTokenCount", 0)


def test_streamed_deltas_follow_the_chunks(client: genai.Client) -> None:
    events = list(_ask(client, "text_stream.sse", stream=True))
    deltas = [e.delta.text for e in events if e.event_type == "step.delta"]
    assert deltas == [p["text"] for p in _parts("text_stream.sse")]  # "...13\n1" / "4\n15..."
    final = _chunks("text_stream.sse")[-1]["usageMetadata"]
    assert events[-1].interaction.usage.total_output_tokens == final["candidatesTokenCount"]
    assert events[-1].interaction.status == "completed"


@pytest.mark.parametrize(
    "name",
    [
        "function_call_single.json",
        "function_call_parallel.json",
        "function_call_parallel_stream.sse",
        "function_call_stream_signature.sse",
    ],
)
def test_function_calls(client: genai.Client, name: str) -> None:
    answer = _ask(client, name)
    assert answer.status == "requires_action"
    expected = [p["functionCall"] for p in _parts(name) if "functionCall" in p]
    calls = [s for s in answer.steps if s.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [
        (e["name"], e.get("args", {})) for e in expected
    ]
    assert len({c.id for c in calls}) == len(calls)
    # a signature opens a thought step just before the part that carried it
    first_signed = next(p for p in _parts(name) if "thoughtSignature" in p)
    index = [s.type for s in answer.steps].index("thought")
    assert answer.steps[index].signature == first_signed["thoughtSignature"]
    assert answer.steps[index + 1].type == "function_call"


@pytest.mark.parametrize(
    ("name", "status", "mentions"),
    [
        ("finish_max_tokens.json", "incomplete", None),
        ("finish_max_tokens_stream.sse", "incomplete", None),
        ("finish_max_tokens_thinking_no_parts.json", "incomplete", None),
        ("finish_safety.json", "failed", "SAFETY"),
        ("prompt_blocked_safety.json", "failed", "blocked the prompt: SAFETY"),
    ],
)
def test_finish_reasons(client: genai.Client, name: str, status: str, mentions: str | None) -> None:
    answer = _ask(client, name)
    assert answer.status == status
    if mentions:
        assert mentions in answer.errors[0].message
    else:
        text = "".join(p.get("text", "") for p in _parts(name) if not p.get("thought"))
        assert (answer.output_text or "") == text


def test_an_upstream_error_body_fails_the_interaction_naming_the_status(
    client: genai.Client,
) -> None:
    answer = client.interactions.create(
        model="gemini-replay", input="errors/invalid_api_key_400.json"
    )
    assert answer.status == "failed"
    assert "HTTP 400" in answer.errors[0].message
    assert "API key not valid" in answer.errors[0].message


def test_requests_validate_against_the_sdk_types(client: genai.Client, replay: str) -> None:
    weather = {
        "type": "function",
        "name": "get_capital",
        "description": "capital of a country",
        "parameters": {"type": "object", "properties": {"country": {"type": "string"}}},
    }
    call = _ask(
        client,
        "function_call_single.json",
        tools=[weather],
        system_instruction="be brief",
        generation_config={
            "temperature": 0.2,
            "top_p": 0.9,
            "seed": 3,
            "max_output_tokens": 99,
            "stop_sequences": ["END"],
            "thinking_level": "low",
            "thinking_summaries": "auto",
            "tool_choice": {"allowed_tools": {"mode": "any", "tools": ["get_capital"]}},
        },
    )
    step = next(s for s in call.steps if s.type == "function_call")
    client.interactions.create(
        model="gemini-replay",
        previous_interaction_id=call.id,
        tools=[weather],
        input=[
            {
                "type": "function_result",
                "call_id": step.id,
                "name": "get_capital",
                "result": {"capital": "Paris"},
            }
        ],
    )
    client.interactions.create(
        model="gemini-replay",
        response_format={"type": "object"},
        input=[
            {"type": "text", "text": "generate_content/text_basic.json"},
            {"type": "image", "mime_type": "image/png", "data": "aGk="},
            {"type": "document", "mime_type": "application/pdf", "uri": "gs://b/doc.pdf"},
        ],
    )
    bodies = httpx.get(f"{replay}/requests").json()[-3:]
    for body in bodies:
        for content in body["contents"]:
            types.Content.model_validate(content)
        for tool in body.get("tools", []):
            types.Tool.model_validate(tool)
        if "toolConfig" in body:
            types.ToolConfig.model_validate(body["toolConfig"])
        if "generationConfig" in body:
            types.GenerationConfig.model_validate(body["generationConfig"])
        if "systemInstruction" in body:
            types.Content.model_validate(body["systemInstruction"])
        assert set(body) <= {
            "contents",
            "tools",
            "toolConfig",
            "generationConfig",
            "systemInstruction",
        }
    first, followup, media = bodies
    assert first["toolConfig"]["functionCallingConfig"] == {
        "mode": "ANY",
        "allowedFunctionNames": ["get_capital"],
    }
    assert first["generationConfig"]["thinkingConfig"] == {
        "thinkingLevel": "LOW",
        "includeThoughts": True,
    }
    # the follow-up replays the model's call with its signature, then our result
    model_turn, result_turn = followup["contents"][-2:]
    assert model_turn["role"] == "model"
    signed = _parts("function_call_single.json")[0]
    assert model_turn["parts"][0]["thoughtSignature"] == signed["thoughtSignature"]
    assert model_turn["parts"][0]["functionCall"]["name"] == "get_capital"
    assert result_turn["parts"][0]["functionResponse"] == {
        "name": "get_capital",
        "response": {"capital": "Paris"},
    }
    assert media["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert media["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "image/png", "data": "aGk="}
    }
