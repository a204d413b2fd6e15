"""The generateContent surface with the google-genai SDK (3.4.0, pinned) against the real server
and the echo model: generate_content, its stream, count_tokens, models, embeddings; and bad
input answered in Google's error shape with nothing stored."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from propylon.providers.echo import EMBEDDING_DIMENSIONS
from tests.conftest import Server

WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather at a place.",
    parameters_json_schema={
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
)


def test_text(client: genai.Client) -> None:
    response = client.models.generate_content(model="echo", contents="Hello there")
    assert response.text == "user: Hello there"
    assert response.candidates[0].finish_reason == types.FinishReason.STOP
    assert response.usage_metadata.prompt_token_count == 2
    assert response.usage_metadata.candidates_token_count == 3
    assert response.usage_metadata.total_token_count == 5
    assert response.model_version == "echo"
    assert response.response_id


def test_system_instruction_and_multi_turn(client: genai.Client) -> None:
    contents = [
        types.Content(role="user", parts=[types.Part(text="one")]),
        types.Content(role="model", parts=[types.Part(text="first answer")]),
        types.Content(role="user", parts=[types.Part(text="two")]),
    ]
    response = client.models.generate_content(
        model="fast",  # an alias
        contents=contents,
        config=types.GenerateContentConfig(system_instruction="be brief"),
    )
    assert response.text == "system: be brief\nuser: one\nmodel: first answer\nuser: two"


def test_function_call_then_function_response(client: genai.Client) -> None:
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[WEATHER])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    ask = types.Content(
        role="user", parts=[types.Part(text='call get_weather {"location": "Paris"}')]
    )
    first = client.models.generate_content(model="echo", contents=[ask], config=config)
    calls = first.function_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].name == "get_weather" and calls[0].args == {"location": "Paris"}
    reply = types.Part.from_function_response(name="get_weather", response={"temp_c": 21})
    reply.function_response.id = calls[0].id
    second = client.models.generate_content(
        model="echo",
        contents=[ask, first.candidates[0].content, types.Content(role="user", parts=[reply])],
        config=config,
    )
    lines = second.text.splitlines()
    assert lines[-2] == 'function_call: get_weather {"location":"Paris"}'
    assert lines[-1] == 'function_result: get_weather {"temp_c":21}'


def test_python_function_tool_runs_automatically(client: genai.Client) -> None:
    """The SDK's automatic function calling: echo calls, the SDK runs it and sends the result."""

    def get_weather(location: str) -> dict[str, Any]:
        """The weather at a place."""
        return {"location": location, "temp_c": 21}

    response = client.models.generate_content(
        model="echo",
        contents='call get_weather {"location": "Rome"}',
        config=types.GenerateContentConfig(tools=[get_weather]),
    )
    assert response.text.splitlines()[-1] == (
        'function_result: get_weather {"result":{"location":"Rome","temp_c":21}}'
    )


def test_function_calling_modes(client: genai.Client) -> None:
    def ask(mode: str, text: str = "hello") -> types.GenerateContentResponse:
        return client.models.generate_content(
            model="echo",
            contents=text,
            config=types.GenerateContentConfig(
                tools=[types.Tool(function_declarations=[WEATHER])],
                tool_config=types.ToolConfig(
                    function_calling_config=types.FunctionCallingConfig(mode=mode)
                ),
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            ),
        )

    assert ask("ANY").function_calls[0].name == "get_weather"  # forced
    assert ask("VALIDATED").text == "user: hello"  # a call or text: here text
    assert ask("NONE", 'call get_weather {"location": "x"}').function_calls is None
    with pytest.raises(errors.APIError) as refused:  # VALIDATED checks the arguments
        ask("VALIDATED", 'call get_weather {"place": 1}')
    assert "location" in refused.value.message


class City(BaseModel):
    name: str
    population: int


def test_json_schema_output(client: genai.Client) -> None:
    response = client.models.generate_content(
        model="echo",
        contents='{"name": "Paris", "population": 2100000}',
        config=types.GenerateContentConfig(
            response_mime_type="application/json", response_schema=City
        ),
    )
    assert response.parsed == City(name="Paris", population=2100000)


def test_stream_joins_to_the_whole_answer(client: genai.Client) -> None:
    contents = "a longer question, streamed in pieces"
    chunks = list(client.models.generate_content_stream(model="echo", contents=contents))
    whole = client.models.generate_content(model="echo", contents=contents)
    texts = [chunk.text for chunk in chunks if chunk.text]
    assert len(texts) > 1
    assert "".join(texts) == whole.text
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.total_token_count == whole.usage_metadata.total_token_count


def test_stream_without_alt_sse_is_one_json_array(server: Server) -> None:
    with server.http() as http:
        answer = http.post(
            "/v1beta/models/echo:streamGenerateContent",
            json={"contents": [{"parts": [{"text": "pieces of text"}]}]},
        )
    assert answer.status_code == 200
    chunks = json.loads(answer.text)
    assert (
        "".join(
            part["text"] for c in chunks for part in c["candidates"][0]["content"].get("parts", [])
        )
        == "user: pieces of text"
    )
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_count_tokens(client: genai.Client) -> None:
    counted = client.models.count_tokens(model="echo", contents="one two three")
    assert counted.total_tokens == 3
    answered = client.models.generate_content(model="echo", contents="one two three")
    assert answered.usage_metadata.prompt_token_count == counted.total_tokens


def test_models_list_and_get(client: genai.Client) -> None:
    listed = list(client.models.list(config=types.ListModelsConfig(page_size=2)))
    names = [model.name for model in listed]
    assert names[:2] == ["models/echo", "models/fast"]  # the alias is listed too
    assert "models/echo-slow" in names  # the pager followed nextPageToken
    model = client.models.get(model="fast")
    assert model.name == "models/fast"
    assert model.input_token_limit == 1_048_576 and model.output_token_limit == 65_536
    assert {"generateContent", "countTokens", "embedContent"} <= set(model.supported_actions)
    with pytest.raises(errors.ClientError) as missing:
        client.models.get(model="nope")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"


def test_embed_content_single_and_batch(client: genai.Client) -> None:
    one = client.models.embed_content(model="echo", contents="hello world")
    assert len(one.embeddings) == 1 and len(one.embeddings[0].values) == EMBEDDING_DIMENSIONS
    batch = client.models.embed_content(
        model="echo", contents=["hello world", "another text", "hello world"]
    )
    vectors = [e.values for e in batch.embeddings]
    assert len(vectors) == 3 and vectors[0] == vectors[2] == one.embeddings[0].values
    assert vectors[1] != vectors[0]
    shorter = client.models.embed_content(
        model="echo",
        contents="hello world",
        config=types.EmbedContentConfig(output_dimensionality=8),
    )
    assert len(shorter.embeddings[0].values) == 8


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/echo:generateContent",
        "/v1beta/models/echo:generateContent",
        "/gemini/v1beta/models/echo:generateContent",  # the configured path_prefix
        "/v1beta1/projects/p/locations/us-central1/publishers/google/models/echo:generateContent",
    ],
)
def test_every_version_prefix_and_vertex_path(server: Server, path: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with server.http() as http:
        answer = http.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"][0]["content"]["parts"] == [{"text": "user: hi"}]


def test_snake_case_keys_and_harmless_defaults(server: Server) -> None:
    body = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "system_instruction": {"parts": [{"text": "sys"}]},
        "generation_config": {
            "candidate_count": 1,
            "response_modalities": ["TEXT"],
            "top_k": 40,
            "thinking_config": {"thinking_budget": 0},
            "max_output_tokens": 100,
        },
        "safety_settings": [],
        "labels": {"team": "search"},
    }
    with server.http() as http:
        answer = http.post("/v1beta/models/echo:generateContent", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"][0]["content"]["parts"][0]["text"] == "system: sys\nuser: hi"


def test_media_and_function_parts_in_snake_case(server: Server) -> None:
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "look"},
                    {"inline_data": {"mime_type": "image/png", "data": "iVBORw0KGgo="}},
                    {
                        "file_data": {
                            "file_uri": "https://example.com/a.pdf",
                            "mime_type": "application/pdf",
                        }
                    },
                ],
            },
            {"role": "model", "parts": [{"function_call": {"name": "f", "args": {"a": 1}}}]},
            {
                "role": "function",
                "parts": [{"function_response": {"name": "f", "response": {"ok": True}}}],
            },
        ]
    }
    with server.http() as http:
        answer = http.post("/v1beta/models/echo:generateContent", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["candidates"][0]["content"]["parts"][0]["text"] == (
        f"user: look [image image/png 8 bytes sha256:{_digest('iVBORw0KGgo=')}] "
        "[document application/pdf]\n"
        'function_call: f {"a":1}\n'
        'function_result: f {"ok":true}'
    )


def test_max_output_tokens_and_stop_sequences(client: genai.Client) -> None:
    cut = client.models.generate_content(
        model="echo",
        contents="one two three four",
        config=types.GenerateContentConfig(max_output_tokens=2),
    )
    assert cut.text == "user: one" and cut.candidates[0].finish_reason == "MAX_TOKENS"
    stopped = client.models.generate_content(
        model="echo",
        contents="one two three four",
        config=types.GenerateContentConfig(stop_sequences=["three"]),
    )
    assert stopped.text == "user: one two "


BAD = [
    (b"{not json", 400, "malformed JSON"),
    (b"[]", 400, "JSON object"),
    ({}, 400, "contents"),
    ({"contents": []}, 400, "contents"),
    ({"contents": [{"parts": [{"text": 5}]}]}, 400, "contents.0.parts.0.text"),
    ({"contents": [{"role": "robot", "parts": [{"text": "x"}]}]}, 400, "contents.0.role"),
    (
        {
            "contents": [
                {"parts": [{"text": "x", "inlineData": {"mimeType": "image/png", "data": ""}}]}
            ]
        },
        400,
        "contents.0.parts.0",
    ),
    ({"contents": [{"parts": [{"functionCall": {"name": "f"}}]}]}, 400, "functionCall"),
    ({"contents": [{"parts": [{"whatever": 1}]}]}, 400, "contents.0.parts.0.whatever"),
    (
        {
            "contents": [
                {
                    "parts": [
                        {
                            "fileData": {
                                "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                                "mimeType": "image/png",
                            }
                        }
                    ]
                }
            ]
        },
        400,
        "contents.0.parts.0.fileData.fileUri",
    ),
    (
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}},
        400,
        "generationConfig.candidateCount",
    ),
    (
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "generationConfig": {"responseModalities": ["IMAGE"]},
        },
        400,
        "response_modalities",
    ),
    (
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"presencePenalty": 1}},
        400,
        "generationConfig.presencePenalty",
    ),
    (
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "safetySettings": [
                {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_LOW_AND_ABOVE"}
            ],
        },
        400,
        "safetySettings.0.threshold",
    ),
    (
        {"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]},
        400,
        "tools.0.googleSearch",
    ),
    (
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}},
        },
        400,
        "toolConfig.functionCallingConfig.mode",
    ),
    (  # a forced call with nothing to call (Google refuses it too)
        {
            "contents": [{"parts": [{"text": "x"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
        },
        400,
        "toolConfig.functionCallingConfig.mode",
    ),
]


@pytest.mark.parametrize(("body", "status", "named"), BAD)
def test_bad_input_answers_in_googles_shape_and_stores_nothing(
    server: Server, body: Any, status: int, named: str
) -> None:
    before = server.rows()
    with server.http() as http:
        for method in ("generateContent", "streamGenerateContent?alt=sse"):
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            answer = http.post(
                f"/v1beta/models/echo:{method}",
                content=content,
                headers={"content-type": "application/json"},
            )
            assert answer.status_code == status, answer.text
            error = answer.json()["error"]
            assert error["code"] == status and error["status"] == "INVALID_ARGUMENT"
            assert named in error["message"]
    assert server.rows() == before


def test_unknown_model_and_method(server: Server) -> None:
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    with server.http() as http:
        for path in (
            "/v1beta/models/nope:generateContent",
            "/v1beta/models/nope:streamGenerateContent?alt=sse",
            "/v1beta/models/nope:countTokens",
            "/v1/models/nope:generateContent",
            "/v1beta/models/echo:dance",
        ):
            answer = http.post(path, json=body)
            assert answer.status_code == 404, path
            error = answer.json()["error"]
            assert error == {"code": 404, "message": error["message"], "status": "NOT_FOUND"}


def test_sdk_sees_errors_as_api_errors(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(
            model="echo",
            contents="x",
            config=types.GenerateContentConfig(candidate_count=3),
        )
    assert refused.value.code == 400 and "candidateCount" in refused.value.message


def test_embedding_input_is_checked(server: Server) -> None:
    with server.http() as http:
        answer = http.post(
            "/v1beta/models/echo:batchEmbedContents",
            json={"requests": [{"model": "models/fast", "content": {"parts": [{"text": "x"}]}}]},
        )
        assert answer.status_code == 400 and "requests.0.model" in answer.json()["error"]["message"]
        image = {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}
        answer = http.post("/v1beta/models/echo:embedContent", json={"content": {"parts": [image]}})
        assert answer.status_code == 400 and "content.parts.0" in answer.json()["error"]["message"]
        # Google's own bound: at most 100 requests in one batch (an unbounded batch is
        # megabytes of vectors made on the server's loop)
        one = {"content": {"parts": [{"text": "x"}]}}
        answer = http.post("/v1beta/models/echo:batchEmbedContents", json={"requests": [one] * 101})
        assert answer.status_code == 400
        assert answer.json()["error"]["status"] == "INVALID_ARGUMENT"
        assert "requests" in answer.json()["error"]["message"]
        answer = http.post("/v1beta/models/echo:batchEmbedContents", json={"requests": [one] * 100})
        assert answer.status_code == 200 and len(answer.json()["embeddings"]) == 100
        # nothing to embed, or a task type Google does not have: named, not dropped
        for body, field in (
            ({"content": {"parts": []}}, "content.parts"),
            ({**one, "taskType": "RETRIEVAL_QUERYY"}, "taskType"),
        ):
            answer = http.post("/v1beta/models/echo:embedContent", json=body)
            assert answer.status_code == 400, answer.text
            assert field in answer.json()["error"]["message"]
        answer = http.post(
            "/v1beta/models/echo:embedContent", json={**one, "taskType": "RETRIEVAL_QUERY"}
        )
        assert answer.status_code == 200


def test_no_interaction_is_stored(server: Server, client: genai.Client) -> None:
    before = server.rows()
    client.models.generate_content(model="echo", contents="stateless")
    list(client.models.generate_content_stream(model="echo", contents="stateless"))
    assert server.rows() == before
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_v1_models_is_googles_for_google_callers_and_openais_for_others(server: Server) -> None:
    google = server.client(api_version="v1")
    assert [m.name for m in google.models.list()][:2] == ["models/echo", "models/fast"]
    assert google.models.get(model="echo").output_token_limit == 65_536
    bearer = {"authorization": "Bearer test-key"}
    openai = httpx.get(f"{server.url}/v1/models", headers=bearer, timeout=30).json()
    assert openai["object"] == "list" and openai["data"][0]["id"] == "echo"
    one = httpx.get(f"{server.url}/v1/models/fast", headers=bearer, timeout=30).json()
    assert one == {"id": "fast", "object": "model", "created": 0, "owned_by": "propylon"}


def _digest(data: str) -> str:
    """How echo names base64 `data`: the first 16 hex digits of its bytes' SHA-256."""
    return hashlib.sha256(base64.b64decode(data)).hexdigest()[:16]
