"""API revisions: `Api-Revision` before 2026-05-20 answers the legacy `outputs` schema and its
event names, a view of the same log; a key's default and the server's `api_revision` apply to
requests without the header (header > key > server). Clients: google-genai 3.4.0 (which keeps
the legacy fields it does not know), plain httpx, and google-genai 1.75 (the last release of
the legacy schema, in `.venvs/genai-legacy`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.genai import _interactions as errors
from httpx_sse import connect_sse

from tests.conftest import (
    API_KEY,
    CONFIG,
    FIXTURES,
    Server,
    new_key,
    replay_model,
    start_server,
    stop_server,
    wait_for,
)

LEGACY = {"Api-Revision": "2025-11-01"}
CURRENT = {"Api-Revision": "2026-05-20"}
LEGACY_NAMES = {
    "interaction.start",
    "interaction.status_update",
    "content.start",
    "content.delta",
    "content.stop",
    "interaction.complete",
    "error",
}
AGENT = "deep-research-preview-04-2026"
TOOL = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
CALL = 'call get_weather {"location": "Tokyo", "unit": "celsius", "days": 3}'
LONG = "the quick brown fox jumps over the lazy dog " * 3
LEGACY_PYTHON = Path(__file__).parent.parent / ".venvs" / "genai-legacy" / "bin" / "python"


def _keys(data_dir: Path) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "plain": new_key(data_dir),
        "legacy": new_key(data_dir, "--api-revision", "2025-11-01"),
        "current": new_key(data_dir, "--api-revision", "2026-05-20"),
    }


def _agents(replay: str) -> str:
    """A Google-hosted agent and a `gemini` model, both answered by the replay."""
    return f"""
[[agents]]
name = "{AGENT}"
base_url = "{replay}"
""" + replay_model(replay)


def _serving(
    factory: pytest.TempPathFactory, replay: str, settings: str = ""
) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with `settings` before the test config, and three stored keys."""
    data_dir = factory.mktemp("revisions")
    keys = _keys(data_dir)
    running = start_server(data_dir, settings + CONFIG + _agents(replay))
    yield running, keys
    stop_server(running)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, replay: str
) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server answering the current revision by default."""
    yield from _serving(tmp_path_factory, replay)


@pytest.fixture(scope="module")
def legacy_server(
    tmp_path_factory: pytest.TempPathFactory, replay: str
) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server whose `api_revision` setting is a legacy date."""
    yield from _serving(tmp_path_factory, replay, 'api_revision = "2025-11-01"\n')


def _events(
    http: httpx.Client, method: str, url: str, headers: dict[str, str], **kwargs: Any
) -> list[dict[str, Any]]:
    """The payloads of an SSE answer; each frame's `event:` and `id:` lines must match them."""
    payloads = []
    with connect_sse(http, method, url, headers=headers, **kwargs) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            if not sse.data:
                continue  # a keep-alive comment
            if sse.data == "[DONE]":
                break
            payload = json.loads(sse.data)
            assert (sse.event, sse.id) == (payload["event_type"], payload["event_id"])
            payloads.append(payload)
    return payloads


def _fold(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The outputs a legacy client rebuilds from the content events, by index."""
    outputs: dict[int, dict[str, Any]] = {}
    for event in events:
        if event["event_type"] == "content.start":
            outputs[event["index"]] = dict(event["content"])
        elif event["event_type"] == "content.delta":
            item, delta = outputs[event["index"]], event["delta"]
            if delta["type"] == "text":
                item["text"] = item.get("text", "") + delta["text"]
            elif delta["type"] == "thought_signature":
                item["signature"] = delta["signature"]
            elif delta["type"] == "thought_summary":  # text joins up, as in the resource
                summary, content = item.setdefault("summary", []), dict(delta["content"])
                if content["type"] == "text" and summary and summary[-1]["type"] == "text":
                    summary[-1] = {**summary[-1], "text": summary[-1]["text"] + content["text"]}
                else:
                    summary.append(content)
            elif delta["type"] == "text_annotation":
                item.setdefault("annotations", []).extend(delta["annotations"])
            else:
                item.update({k: v for k, v in delta.items() if k != "type"})
    return [outputs[index] for index in sorted(outputs)]


def _text(events: list[dict[str, Any]]) -> str:
    return "".join(
        e["delta"]["text"]
        for e in events
        if e["event_type"] == "content.delta" and e["delta"]["type"] == "text"
    )


def _legacy_client(
    server: Server, key: str, *args: str, revision: str | None = None
) -> dict[str, Any]:
    """What google-genai 1.75 parsed (tests/legacy_client.py); with `revision`, it sends
    that `Api-Revision` header."""
    if not LEGACY_PYTHON.exists():
        pytest.fail(
            f"{LEGACY_PYTHON} is missing (.ci/run makes it): python3 -m venv "
            ".venvs/genai-legacy && .venvs/genai-legacy/bin/pip install google-genai==1.75.0"
        )
    script = Path(__file__).with_name("legacy_client.py")
    result = subprocess.run(
        [str(LEGACY_PYTHON), str(script), server.url, key, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("GOOGLE")}
        | ({"API_REVISION": revision} if revision else {}),
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


# --- the resource --------------------------------------------------------------------------


def test_a_legacy_create_and_get_answer_outputs_and_no_steps(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    client = running.client()
    made = client.interactions.create(model="echo", input="hello legacy", extra_headers=LEGACY)
    answer = [{"type": "text", "text": "user: hello legacy"}]
    assert made.steps is None and made.model_extra is not None
    assert made.model_extra["outputs"] == answer and made.model_extra["role"] == "model"
    got = client.interactions.get(made.id, extra_headers=LEGACY)
    assert got.steps is None and got.model_extra is not None
    assert got.model_extra["outputs"] == answer  # the model's outputs only: no user input
    with running.http() as http:
        body = http.get(f"/v1beta/interactions/{made.id}", headers=LEGACY).json()
        assert "steps" not in body and body["outputs"] == answer and body["status"] == "completed"
        # the same interaction in the current revision
        current = http.get(f"/v1beta/interactions/{made.id}").json()
    assert "outputs" not in current
    assert [s["type"] for s in current["steps"]] == ["user_input", "model_output"]
    assert current["steps"][1]["content"] == answer


def test_a_legacy_function_call_round_trip(server: tuple[Server, dict[str, str]]) -> None:
    running, _ = server
    with running.http() as http:
        body = {"model": "echo", "input": CALL, "tools": TOOL}
        called = http.post("/v1beta/interactions", json=body, headers=LEGACY).json()
        assert called["status"] == "requires_action" and "steps" not in called
        [call] = called["outputs"]
        arguments = {"location": "Tokyo", "unit": "celsius", "days": 3}
        assert call == {"type": "function_call", "id": call["id"], "name": "get_weather"} | {
            "arguments": arguments
        }
        result = {"type": "function_result", "call_id": call["id"], "name": "get_weather"}
        # legacy content may mix a function result and text in one list
        answer = {
            "model": "echo",
            "previous_interaction_id": called["id"],
            "input": [{**result, "result": "sunny"}, {"type": "text", "text": "and tomorrow?"}],
        }
        answered = http.post("/v1beta/interactions", json=answer, headers=LEGACY).json()
        refused = http.post("/v1beta/interactions", json=answer)  # not in the current revision
    [text] = answered["outputs"]
    assert text["type"] == "text" and "function_result: get_weather" in text["text"]
    assert "sunny" in text["text"] and text["text"].endswith("user: and tomorrow?")
    assert refused.status_code == 400


# --- the stream ----------------------------------------------------------------------------


def test_a_legacy_stream_sends_only_legacy_events_whose_text_joins_to_the_answer(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    body = {"model": "echo", "input": LONG, "stream": True}
    with running.http() as http:
        events = _events(http, "POST", "/v1beta/interactions", LEGACY, json=body)
        interaction_id = events[0]["interaction"]["id"]
        got = http.get(f"/v1beta/interactions/{interaction_id}", headers=LEGACY).json()
    names = [e["event_type"] for e in events]
    assert set(names) <= LEGACY_NAMES
    assert names[:3] == ["interaction.start", "interaction.status_update", "content.start"]
    assert names[-2:] == ["content.stop", "interaction.complete"]
    assert names.count("content.delta") > 3
    assert _text(events) == f"user: {LONG}" == got["outputs"][0]["text"]
    assert _fold(events) == got["outputs"]
    assert events[-1]["interaction"]["status"] == "completed"
    assert "steps" not in events[-1]["interaction"]
    assert len({e["event_id"] for e in events}) == len(events)  # every event resumable
    # google-genai 3.4.0 reads the same stream (as events of types it does not know)
    client = running.client()
    seen = list(
        client.interactions.create(model="echo", input=LONG, stream=True, extra_headers=LEGACY)
    )
    # the status update is a type it knows; the others it keeps whole as `raw`
    assert [e.raw["event_type"] if e.event_type == "UNKNOWN" else e.event_type for e in seen] == (
        names
    )


def test_a_legacy_function_call_streams_its_whole_arguments(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    body = {"model": "echo", "input": CALL, "tools": TOOL, "stream": True}
    with running.http() as http:
        events = _events(http, "POST", "/v1beta/interactions", LEGACY, json=body)
        got = http.get(f"/v1beta/interactions/{events[0]['interaction']['id']}", headers=LEGACY)
    start = next(e for e in events if e["event_type"] == "content.start")
    assert start["content"]["type"] == "function_call" and start["index"] == 0
    [delta] = [e["delta"] for e in events if e["event_type"] == "content.delta"]
    assert delta["type"] == "function_call"
    assert delta["arguments"] == {"location": "Tokyo", "unit": "celsius", "days": 3}
    assert _fold(events) == got.json()["outputs"]
    assert events[-1]["interaction"]["status"] == "requires_action"


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("image_output.json", {"response_modalities": ["text", "image"]}),
        ("thoughts_included_stream.sse", {}),
        ("function_call_parallel_stream.sse", {}),
        ("code_execution_stream.sse", {"tools": [{"type": "code_execution"}]}),
        ("google_search_stream.sse", {"tools": [{"type": "google_search"}]}),
        ("url_context_stream.sse", {"tools": [{"type": "url_context"}]}),
    ],
)
def test_each_step_of_a_gemini_answer_maps_to_legacy_outputs(
    server: tuple[Server, dict[str, str]], name: str, options: dict[str, Any]
) -> None:
    """Recorded Gemini answers (media, thoughts with summaries, parallel calls, built-in tool
    steps, citations): the legacy stream rebuilds the legacy resource's `outputs`, which are
    the current resource's steps, flattened."""
    running, _ = server
    body = {"model": "gemini-replay", "input": f"generate_content/{name}", **options}
    with running.http() as http:
        events = _events(
            http, "POST", "/v1beta/interactions", LEGACY, json={**body, "stream": True}
        )
        url = f"/v1beta/interactions/{events[0]['interaction']['id']}"
        legacy, current = http.get(url, headers=LEGACY).json(), http.get(url).json()
    assert {e["event_type"] for e in events} <= LEGACY_NAMES
    assert "steps" not in legacy and legacy["status"] == current["status"]
    flat = [
        item
        for step in current["steps"]
        if step["type"] != "user_input"
        for item in (step["content"] if step["type"] == "model_output" else [step])
    ]
    assert legacy["outputs"] == flat and len(flat) >= 2
    assert _fold(events) == legacy["outputs"]


def test_resuming_from_any_legacy_event_returns_exactly_the_rest(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    with running.http() as http:
        for body in (
            {"model": "echo", "input": LONG, "stream": True},
            {"model": "echo", "input": CALL, "tools": TOOL, "stream": True},
        ):
            events = _events(http, "POST", "/v1beta/interactions", LEGACY, json=body)
            url = f"/v1beta/interactions/{events[0]['interaction']['id']}"
            assert _events(http, "GET", url, LEGACY, params={"stream": "true"}) == events
            for k, event in enumerate(events):
                params = {"stream": "true", "last_event_id": event["event_id"]}
                assert _events(http, "GET", url, LEGACY, params=params) == events[k + 1 :]
            interaction_id = events[0]["interaction"]["id"]
            for wrong in (f"{interaction_id}.999.0", "v1_other.3.0", "3"):
                params = {"stream": "true", "last_event_id": wrong}
                answer = http.get(url, params=params, headers=LEGACY)
                assert answer.status_code == 400 and "last_event_id" in answer.text


def test_resuming_a_running_legacy_stream_has_no_gap_and_no_duplicate(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    body = {"model": "echo-slow", "input": LONG, "stream": True}
    with running.http() as http:
        first: list[dict[str, Any]] = []
        with connect_sse(http, "POST", "/v1beta/interactions", json=body, headers=LEGACY) as src:
            for sse in src.iter_sse():
                if not sse.data:
                    continue  # a keep-alive comment
                first.append(json.loads(sse.data))
                if len(first) == 6:  # in the middle of the text: the run goes on
                    break
        url = f"/v1beta/interactions/{first[0]['interaction']['id']}"
        params = {"stream": "true", "last_event_id": first[-1]["event_id"]}
        rest = _events(http, "GET", url, LEGACY, params=params)
        whole = _events(http, "GET", url, LEGACY, params={"stream": "true"})
    assert rest[0]["event_type"] == "content.delta"  # resumed mid-text
    assert first + rest == whole
    assert _text(whole) == f"user: {LONG}"


def test_a_bad_revision_is_refused_naming_the_header_and_changes_nothing(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    with running.http() as http:
        made = http.post("/v1beta/interactions", json={"model": "echo", "input": "x"}).json()
        before = running.rows()
        for value in ("yesterday", "2025-13-01", "20251101", ""):
            headers = {"Api-Revision": value}
            for method, url in (
                ("POST", "/v1beta/interactions"),
                ("GET", f"/v1beta/interactions/{made['id']}"),
                ("GET", f"/v1beta/interactions/{made['id']}?stream=true"),
            ):
                body = {"model": "echo", "input": "x"} if method == "POST" else None
                answer = http.request(method, url, json=body, headers=headers)
                assert answer.status_code == 400, (value, url)
                assert "Api-Revision" in answer.text
    assert running.rows() == before
    client = running.client()
    with pytest.raises(errors.BadRequestError, match="Api-Revision"):
        client.interactions.create(model="echo", input="x", extra_headers={"Api-Revision": "soon"})


def test_a_legacy_turn_of_another_role_is_refused_naming_it(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    before = running.rows()
    with running.http() as http:
        for role in ("system", "assistant", None):
            turns = [{"role": "user", "content": "hi"}, {"role": role, "content": "x"}]
            answer = http.post(
                "/v1beta/interactions", json={"model": "echo", "input": turns}, headers=LEGACY
            )
            assert answer.status_code == 400, role
            assert answer.json()["error"]["code"] == "invalid_request"
            assert "input.1.role" in answer.json()["error"]["message"]
    assert running.rows() == before


def test_the_current_revision_is_the_steps_schema(server: tuple[Server, dict[str, str]]) -> None:
    running, _ = server
    with running.http() as http:
        for headers in ({}, CURRENT, {"Api-Revision": "2027-01-01"}):
            body = {"model": "echo", "input": "now", "stream": True}
            events = _events(http, "POST", "/v1beta/interactions", headers, json=body)
            assert {e["event_type"] for e in events} == {
                "interaction.created",
                "interaction.status_update",
                "step.start",
                "step.delta",
                "step.stop",
                "interaction.completed",
            }
            url = f"/v1beta/interactions/{events[0]['interaction']['id']}"
            got = http.get(url, headers=headers).json()
            assert "outputs" not in got and got["steps"][-1]["type"] == "model_output"


# --- defaults: per key, per server; the header wins ---------------------------------------


def _shape(server: Server, key: str, headers: dict[str, str]) -> str:
    """`outputs` or `steps`: the schema a create answers."""
    with server.http(key) as http:
        answer = http.post(
            "/v1beta/interactions", json={"model": "echo", "input": "which"}, headers=headers
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert ("outputs" in body) != ("steps" in body)
    return "outputs" if "outputs" in body else "steps"


def test_a_keys_default_revision_and_the_header_over_it(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, keys = server
    assert _shape(running, keys["plain"], {}) == "steps"  # the server's default: current
    assert _shape(running, keys["legacy"], {}) == "outputs"  # the key's default
    assert _shape(running, keys["legacy"], CURRENT) == "steps"  # the header wins
    assert _shape(running, keys["plain"], LEGACY) == "outputs"


def test_the_servers_default_revision_under_the_keys_and_the_header(
    legacy_server: tuple[Server, dict[str, str]],
) -> None:
    running, keys = legacy_server
    assert _shape(running, API_KEY, {}) == "outputs"  # `api_revision` of the settings
    assert _shape(running, keys["plain"], {}) == "outputs"
    assert _shape(running, keys["current"], {}) == "steps"  # a key's default wins
    assert _shape(running, keys["current"], LEGACY) == "outputs"  # and the header over it
    assert _shape(running, API_KEY, CURRENT) == "steps"


def test_keys_create_checks_the_revision_and_keys_list_shows_it(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "propylon", "keys"]
    where = ["--data-dir", str(tmp_path)]
    bad = subprocess.run(
        [*command, "create", "--tenant", "acme", "--api-revision", "May 2026", *where],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "--api-revision" in bad.stderr
    new_key(tmp_path, "--api-revision", "2025-11-01")
    listed = subprocess.run([*command, "list", *where], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and "2025-11-01" in listed.stdout


# --- a real legacy client: google-genai 1.75 ------------------------------------------------


@pytest.mark.parametrize("which", ["key", "server"])
def test_google_genai_1_75_reads_outputs_and_legacy_events(
    server: tuple[Server, dict[str, str]],
    legacy_server: tuple[Server, dict[str, str]],
    which: str,
) -> None:
    # google-genai 1.75 sends no `Api-Revision`: a key's default or the server's serves it
    running, key = (
        (server[0], server[1]["legacy"]) if which == "key" else (legacy_server[0], API_KEY)
    )
    made = _legacy_client(running, key, "create", "hello old client")
    assert made["type"] == "Interaction"
    assert made["interaction"]["outputs"] == [{"type": "text", "text": "user: hello old client"}]
    got = _legacy_client(running, key, "get", made["interaction"]["id"])["interaction"]
    assert got["outputs"] == made["interaction"]["outputs"] and got["status"] == "completed"
    events = _legacy_client(running, key, "stream", LONG)["events"]
    assert [e["class"] for e in events[:3]] == [
        "InteractionStartEvent",
        "InteractionStatusUpdate",
        "ContentStart",
    ]
    assert [e["class"] for e in events[-2:]] == ["ContentStop", "InteractionCompleteEvent"]
    assert {e["class"] for e in events[3:-2]} == {"ContentDelta"}
    assert _text(events) == f"user: {LONG}"
    interaction_id = events[0]["interaction"]["id"]
    rest = _legacy_client(running, key, "resume", interaction_id, events[4]["event_id"])
    assert rest["events"] == events[5:]
    called = _legacy_client(running, key, "create", CALL, "get_weather")["interaction"]
    [call] = called["outputs"]
    assert called["status"] == "requires_action" and call["type"] == "function_call"
    assert call["arguments"] == {"location": "Tokyo", "unit": "celsius", "days": 3}
    answered = _legacy_client(running, key, "answer", called["id"], call["id"], "get_weather", "ok")
    assert "function_result: get_weather" in answered["interaction"]["outputs"][0]["text"]
    # the legacy input form of a stateless history: turns of `role` and `content`
    turns = _legacy_client(running, key, "turns", "hi", "hello", "again")["interaction"]
    assert turns["outputs"] == [{"type": "text", "text": "user: hi\nmodel: hello\nuser: again"}]


# --- the gemini agent mirror: a recorded legacy interaction, end to end ---------------------


def _recorded_sse(name: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in (FIXTURES / name).read_text().splitlines()
        if line.startswith("data: {")
    ]


def _mirrored(running: Server, name: str) -> str:
    """The id of an agent interaction mirroring the recording `name`, once it has ended."""
    client = running.client()
    made = client.interactions.create(agent=AGENT, input=name, background=True)
    wait_for(lambda: client.interactions.get(made.id).status not in ("in_progress", "queued"))
    return made.id


def _client_view(event: dict[str, Any]) -> dict[str, Any]:
    """What a client reads of an event: all but the ids (Propylon's own, not Google's)."""
    kept = {k: v for k, v in event.items() if k not in ("event_id", "interaction_id")}
    if "interaction" in kept:
        kept["interaction"] = {
            k: v
            for k, v in kept["interaction"].items()
            if k in ("status", "usage", "role", "outputs")
        }
    return kept


def test_a_recorded_legacy_stream_through_the_mirror_reaches_a_legacy_client_unchanged(
    server: tuple[Server, dict[str, str]], replay: str
) -> None:
    running, _ = server
    name = "interactions/legacy_outputs_text_stream.sse"
    recorded = _recorded_sse(name)
    interaction_id = _mirrored(running, name)
    # the mirror asked Google for the steps revision: the log holds steps events
    assert httpx.get(f"{replay}/revisions").json()[-1] == "2026-05-20"
    with running.http() as http:
        url = f"/v1beta/interactions/{interaction_id}"
        events = _events(http, "GET", url, LEGACY, params={"stream": "true"})
        got = http.get(url, headers=LEGACY).json()
        steps = _events(http, "GET", url, {}, params={"stream": "true"})
    assert {e["event_type"] for e in steps} >= {"step.start", "step.delta", "step.stop"}
    # after Propylon's own `interaction.start`, exactly what Google sent, in its order
    assert [_client_view(e) for e in events[1:]] == [_client_view(e) for e in recorded[1:]]
    assert events[0]["event_type"] == "interaction.start"
    assert _text(events) == "1, 2, 3, 4, 5" == _text(recorded)
    assert got["outputs"] == _fold(recorded) == _fold(events)
    assert got["usage"] == recorded[-1]["interaction"]["usage"] and got["role"] == "model"
    # google-genai 1.75 reads it too, resuming included
    legacy = _legacy_client(
        running, API_KEY, "resume", interaction_id, events[0]["event_id"], revision="2025-11-01"
    )
    assert [_client_view(e) | {"class": ""} for e in legacy["events"]] == [
        _client_view(e) | {"class": ""} for e in events[1:]
    ]


def test_a_recorded_legacy_function_call_through_the_mirror_reaches_a_legacy_client_unchanged(
    server: tuple[Server, dict[str, str]], replay: str
) -> None:
    running, _ = server
    name = "interactions/legacy_outputs_function_call.json"
    recorded = json.loads((FIXTURES / name).read_text())
    interaction_id = _mirrored(running, name)
    assert httpx.get(f"{replay}/revisions").json()[-1] == "2026-05-20"
    with running.http() as http:
        url = f"/v1beta/interactions/{interaction_id}"
        got = http.get(url, headers=LEGACY).json()
        events = _events(http, "GET", url, LEGACY, params={"stream": "true"})
    for field in ("status", "outputs", "usage", "role"):
        assert got[field] == recorded[field], field
    assert "steps" not in got
    assert _fold(events) == recorded["outputs"]
    parsed = _legacy_client(running, API_KEY, "get", interaction_id, revision="2025-11-01")
    parsed = parsed["interaction"]
    assert parsed["outputs"] == recorded["outputs"] and parsed["status"] == "requires_action"


def test_a_mirrored_google_search_agrees_in_both_revisions(
    server: tuple[Server, dict[str, str]],
) -> None:
    running, _ = server
    interaction_id = _mirrored(running, "interactions/steps_google_search_stream.jsonl")
    with running.http() as http:
        url = f"/v1beta/interactions/{interaction_id}"
        legacy = http.get(url, headers=LEGACY).json()
        current = http.get(url).json()
        events = _events(http, "GET", url, LEGACY, params={"stream": "true"})
    steps = [s for s in current["steps"] if s["type"] != "user_input"]
    flat = [
        item
        for step in steps
        for item in (step["content"] if step["type"] == "model_output" else [step])
    ]
    assert legacy["outputs"] == flat
    assert _fold(events) == legacy["outputs"]
    types = [o["type"] for o in legacy["outputs"]]
    assert {"google_search_call", "google_search_result", "text"} <= set(types)
    text = next(o for o in legacy["outputs"] if o["type"] == "text")
    assert text["annotations"]  # the citations reach the legacy text output


def test_cancel_answers_in_the_requests_revision(server: tuple[Server, dict[str, str]]) -> None:
    running, _ = server
    client = running.client()
    made = client.interactions.create(agent=AGENT, input="hang", background=True)
    with running.http() as http:
        cancelled = http.post(f"/v1beta/interactions/{made.id}/cancel", headers=LEGACY)
    assert cancelled.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled" and "steps" not in body and body["outputs"] == []
