"""Streams are tails of a durable event log: resumable with last_event_id, shared by readers."""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors
from httpx_sse import connect_sse

from tests.conftest import API_KEY, Server

LONG = "the quick brown fox jumps over the lazy dog " * 4
CANONICAL_START = ["interaction.created", "interaction.status_update", "step.start"]


def _ids(events: list[Any]) -> list[int]:
    return [int(e.event_id.rpartition(".")[2]) for e in events]


def _text(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events if e.event_type == "step.delta")


def test_streamed_create_rebuilds_the_non_stream_text(client: genai.Client) -> None:
    plain = client.interactions.create(model="echo", input=LONG)
    events = list(client.interactions.create(model="echo", input=LONG, stream=True))
    assert _text(events) == plain.output_text
    assert sum(e.event_type == "step.delta" for e in events) > 3  # a few characters per delta
    types_ = [e.event_type for e in events]
    assert types_[:3] == CANONICAL_START
    assert types_[-2:] == ["step.stop", "interaction.completed"]
    assert set(types_[3:-2]) == {"step.delta"}
    assert _ids(events) == list(range(1, len(events) + 1))
    final = events[-1].interaction
    assert final.status == "completed"
    assert final.usage.total_tokens == plain.usage.total_tokens
    assert events[-2].usage.total_output_tokens == plain.usage.total_output_tokens


@pytest.mark.parametrize("k", [0, 1, 3, 7, "last"])
def test_resume_after_k_events_yields_exactly_the_rest(client: genai.Client, k: int | str) -> None:
    stream = client.interactions.create(model="echo-slow", input=LONG, stream=True)
    seen = [next(stream)]  # the first event names the interaction
    while k == "last" or len(seen) < k:
        try:
            seen.append(next(stream))
        except StopIteration:
            break
    stream.close()
    interaction_id = seen[0].interaction.id
    seen = seen[:k] if k != "last" else seen
    resume_from = {"last_event_id": seen[-1].event_id} if seen else {}
    rest = list(client.interactions.get(interaction_id, stream=True, **resume_from))
    full = list(client.interactions.get(interaction_id, stream=True))
    assert _ids(seen) + _ids(rest) == list(range(1, len(full) + 1))
    assert [e.event_type for e in seen + rest] == [e.event_type for e in full]
    assert full[-1].event_type == "interaction.completed"
    assert _text(seen + rest) == _text(full)


def test_resume_from_zero_replays_the_whole_log(client: genai.Client) -> None:
    created = client.interactions.create(model="echo", input=LONG)
    full = list(client.interactions.get(created.id, stream=True))
    assert _ids(full) == list(range(1, len(full) + 1))
    assert full[0].event_type == "interaction.created"
    assert _text(full) == created.output_text
    after_last = list(
        client.interactions.get(created.id, stream=True, last_event_id=full[-1].event_id)
    )
    assert after_last == []


def test_two_concurrent_readers_see_identical_sequences(
    server: Server, client: genai.Client
) -> None:
    creator = client.interactions.create(model="echo-slow", input=LONG, stream=True)
    first = next(creator)
    interaction_id = first.interaction.id
    other: list[Any] = []
    second_client = server.client()  # held here: a dropped client closes its connections
    reader = threading.Thread(
        target=lambda: other.extend(second_client.interactions.get(interaction_id, stream=True))
    )
    reader.start()
    mine = [first, *creator]
    reader.join(timeout=60)
    assert client.interactions.get(interaction_id).status == "completed"
    assert [e.model_dump() for e in mine] == [e.model_dump() for e in other]
    assert mine[-1].event_type == "interaction.completed"


def test_a_disconnected_stored_stream_still_completes(client: genai.Client) -> None:
    stream = client.interactions.create(model="echo-slow", input=LONG, stream=True)
    seen = [next(stream), next(stream), next(stream)]
    stream.close()
    rest = list(
        client.interactions.get(
            seen[0].interaction.id, stream=True, last_event_id=seen[-1].event_id
        )
    )
    assert rest[-1].event_type == "interaction.completed"
    assert rest[-1].interaction.status == "completed"
    got = client.interactions.get(seen[0].interaction.id)
    assert got.status == "completed"
    assert got.output_text == f"user: {LONG}".replace("\n", "\\n")


def test_store_false_streams_and_keeps_nothing(server: Server, client: genai.Client) -> None:
    before = server.rows()
    events = list(client.interactions.create(model="echo", input="hush", store=False, stream=True))
    assert _text(events) == "user: hush"
    assert events[-1].interaction.status == "completed"
    assert server.rows() == before


def test_get_stream_of_a_running_interaction_follows_it_live(client: genai.Client) -> None:
    creator = client.interactions.create(model="echo-slow", input=LONG, stream=True)
    first = next(creator)
    follower = list(client.interactions.get(first.interaction.id, stream=True))
    assert follower[-1].event_type == "interaction.completed"
    assert _text(follower) == f"user: {LONG}"
    creator.close()


def test_foreign_or_malformed_last_event_id_is_400(client: genai.Client) -> None:
    a = client.interactions.create(model="echo", input="a")
    b = client.interactions.create(model="echo", input="b")
    b_events = list(client.interactions.get(b.id, stream=True))
    for bad in (b_events[1].event_id, "garbage", f"{a.id}.99999"):
        with pytest.raises(errors.BadRequestError) as caught:
            list(client.interactions.get(a.id, stream=True, last_event_id=bad))
        assert caught.value.body["error"]["code"] == "invalid_request"


def test_an_independent_sse_client_parses_the_stream(server: Server) -> None:
    with (
        httpx.Client(base_url=server.url, headers={"x-goog-api-key": API_KEY}) as http,
        connect_sse(
            http,
            "POST",
            "/v1beta/interactions",
            json={"model": "echo", "input": "sse", "stream": True},
        ) as source,
    ):
        assert source.response.headers["content-type"].startswith("text/event-stream")
        frames = list(source.iter_sse())
    assert frames[-1].data == "[DONE]"
    payloads = [json.loads(f.data) for f in frames[:-1]]
    for sse, payload in zip(frames, payloads, strict=False):
        assert sse.event == payload["event_type"]
        assert sse.id == payload["event_id"]
    assert payloads[-1]["interaction"]["status"] == "completed"
    assert (
        "".join(p["delta"]["text"] for p in payloads if p["event_type"] == "step.delta")
        == "user: sse"
    )


def test_curl_reads_the_stream(server: Server) -> None:
    output = subprocess.run(
        [
            "curl",
            "-sN",
            "-X",
            "POST",
            f"{server.url}/v1beta/interactions",
            "-H",
            f"x-goog-api-key: {API_KEY}",
            "-H",
            "content-type: application/json",
            "-d",
            '{"model": "echo", "input": "curl", "stream": true}',
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    frames = [f for f in output.split("\n\n") if f.strip()]
    assert frames[0].startswith("event: interaction.created\nid: ")
    assert frames[-1] == "data: [DONE]"
    data = [json.loads(f.split("data: ", 1)[1]) for f in frames[:-1]]
    assert [d["event_type"] for d in data][-1] == "interaction.completed"


def test_idle_streams_get_keepalive_comments(server: Server) -> None:
    with (
        httpx.Client(base_url=server.url, headers={"x-goog-api-key": API_KEY}, timeout=30) as http,
        http.stream(
            "POST",
            "/v1beta/interactions",
            json={"model": "echo-idle", "input": "zz", "stream": True},
        ) as response,
    ):
        body = "".join(response.iter_text())
    assert ": keep-alive\n\n" in body
    assert body.endswith("data: [DONE]\n\n")
