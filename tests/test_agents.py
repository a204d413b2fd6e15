"""Google-hosted agents by pass-through: the create goes to Google's Interactions API (a
replay of recorded streams on loopback here), and its events are mirrored into Propylon's log,
so clients read, stream and resume the interaction from Propylon."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai

from tests.conftest import CONFIG, FIXTURES, Server, start_server, stop_server

AGENT = "deep-research-preview-04-2026"


@pytest.fixture(scope="module")
def agent_server(replay: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    agents = f'\n[[agents]]\nname = "{AGENT}"\nbase_url = "{replay}"\n'
    config = CONFIG + agents  # tables after the top-level keys
    server = start_server(tmp_path_factory.mktemp("agents"), config)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def client(agent_server: Server) -> genai.Client:
    return agent_server.client()


def _recorded(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines()]


def test_an_agent_interaction_is_mirrored(client: genai.Client, replay: str) -> None:
    recorded = _recorded("interactions/steps_text_stream.jsonl")
    answer = client.interactions.create(
        agent=AGENT, input="interactions/steps_text_stream.jsonl", background=True
    )
    deadline = time.monotonic() + 20
    while client.interactions.get(answer.id).status not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    got = client.interactions.get(answer.id)
    assert got.status == "completed" and got.agent == AGENT
    assert got.id == answer.id and not got.id.startswith("v1_ChdU")  # Propylon's own id
    text = next(
        e["delta"]["text"]
        for e in recorded
        if e["event_type"] == "step.delta" and e["delta"].get("type") == "text"
    )
    assert got.output_text == text
    assert [s.type for s in got.steps] == ["user_input", "thought", "model_output"]
    assert got.usage.total_tokens == recorded[-1]["interaction"]["usage"]["total_tokens"]
    # the mirrored log streams and resumes from Propylon, with Propylon's ids
    events = list(client.interactions.get(answer.id, stream=True))
    assert [e.event_type for e in events][1:] == [e["event_type"] for e in recorded][1:]
    assert all(e.event_id.startswith(answer.id) for e in events)
    rest = list(client.interactions.get(answer.id, stream=True, last_event_id=events[3].event_id))
    assert [e.event_id for e in rest] == [e.event_id for e in events[4:]]
    forwarded = httpx.get(f"{replay}/requests").json()[-1]
    assert forwarded["agent"] == AGENT and forwarded["stream"] is True


def test_cancel_is_forwarded_upstream(client: genai.Client, replay: str) -> None:
    running = client.interactions.create(agent=AGENT, input="hang", background=True)
    stream = client.interactions.get(running.id, stream=True)
    # the mirrored status update comes after the upstream's id is known
    assert [next(stream).event_type, next(stream).event_type] == [
        "interaction.created",
        "interaction.status_update",
    ]
    stream.close()
    assert client.interactions.cancel(running.id).status == "cancelled"
    assert "v1_upstream_hanging" in httpx.get(f"{replay}/cancelled").json()


def test_unknown_agents_are_404(client: genai.Client) -> None:
    from google.genai import _interactions as errors

    with pytest.raises(errors.NotFoundError):
        client.interactions.create(agent="no-such-agent", input="x", background=True)


def _mirrored(client: genai.Client, name: str) -> Any:
    answer = client.interactions.create(agent=AGENT, input=name, background=True)
    deadline = time.monotonic() + 20
    while client.interactions.get(answer.id).status not in ("completed", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return client.interactions.get(answer.id)


@pytest.mark.parametrize(
    "name",
    [
        "interactions/steps_google_search_stream.jsonl",
        "interactions/steps_google_search_stream_split_annotations.jsonl",
    ],
)
def test_citations_land_on_their_text_item_and_accumulate(client: genai.Client, name: str) -> None:
    recorded = _recorded(name)
    cited = [
        note
        for e in recorded
        if e["event_type"] == "step.delta" and e["delta"]["type"] == "text_annotation_delta"
        for note in e["delta"]["annotations"]
    ]
    got = _mirrored(client, name)
    output = next(s for s in got.steps if s.type == "model_output")
    assert [a.model_dump(exclude_none=True) for a in output.content[0].annotations] == cited
    assert [s.type for s in got.steps][-2:] == ["google_search_call", "google_search_result"]


def test_the_mirror_passes_googles_usage_unchanged(
    client: genai.Client, agent_server: Server
) -> None:
    name = "interactions/steps_google_search_stream.jsonl"
    usage = _recorded(name)[-1]["interaction"]["usage"]
    got = _mirrored(client, name)
    assert got.usage.model_dump(exclude_none=True) == usage
    with agent_server.http() as http:
        assert http.get(f"/v1beta/interactions/{got.id}").json()["usage"] == usage
