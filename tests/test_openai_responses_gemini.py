"""Responses over a `gemini` target: recorded Gemini bodies (tests/fixtures/gemini) replayed on
loopback, read with the openai SDK. Citations become `url_citation` annotations, and steps this
surface does not show (the upstream's own tool calls) stay on the Interactions surface."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from httpx_sse import connect_sse
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.conftest import (
    API_KEY,
    CONFIG,
    FIXTURES,
    Server,
    helper,
    replay_model,
    start_server,
    stop_server,
    url_citations,
)

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with helper("gemini_replay.py", str(FIXTURES)) as replay:
        config = CONFIG + replay_model(replay)
        running = start_server(tmp_path_factory.mktemp("responses-gemini"), config)
        yield running
        stop_server(running)


def _recorded(name: str) -> dict[str, Any]:
    chunk: dict[str, Any] = json.loads((FIXTURES / "generate_content" / name).read_text())
    return chunk


def test_a_response_from_a_gemini_target(server: Server) -> None:
    oai = openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
    answer = oai.responses.create(model="gemini-replay", input="generate_content/text_basic.json")
    recorded = _recorded("text_basic.json")
    parts = recorded["candidates"][0]["content"]["parts"]
    assert answer.output_text == "".join(p["text"] for p in parts if not p.get("thought"))
    usage = recorded["usageMetadata"]
    assert answer.usage is not None and answer.usage.input_tokens == usage["promptTokenCount"]


def test_citations_are_url_citation_annotations(server: Server) -> None:
    google = server.client()
    interaction = google.interactions.create(
        model="gemini-replay",
        input="generate_content/google_search.json",
        tools=[{"type": "google_search"}],
    )
    grounding = _recorded("google_search.json")["candidates"][0]["groundingMetadata"]
    expected = url_citations(grounding)
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        raw = http.get(f"/v1/responses/{interaction.id}").json()
        shown = Response.model_validate(raw)
        with connect_sse(
            http, "GET", f"/v1/responses/{interaction.id}", params={"stream": "true"}
        ) as source:
            events = [json.loads(sse.data) for sse in source.iter_sse()]
    # the search call and its result stay on the Interactions surface
    assert [item.type for item in shown.output if item.type != "reasoning"] == ["message"]
    [message] = [item for item in raw["output"] if item["type"] == "message"]
    assert message["content"][0]["annotations"] == expected
    for event in events:
        EVENTS.validate_python(event)
    added = [
        e["annotation"] for e in events if e["type"] == "response.output_text.annotation.added"
    ]
    assert added == expected
    assert [e["annotation_index"] for e in events if "annotation_index" in e] == list(
        range(len(expected))
    )
    assert events[-1]["response"]["output"] == raw["output"]
