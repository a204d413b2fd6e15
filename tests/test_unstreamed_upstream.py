"""A create nobody reads as it comes (no `stream`, foreground, no time or token ceiling) asks
its upstream for the whole answer in one JSON body (`stream: false`, Gemini's
`:generateContent`); every other one streams it. Either way the client gets the same answer:
the same steps, usage and status. Against the fault-injecting OpenAI-compatible upstream and
the replayed Gemini recordings, both on loopback, which record what they received."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from google import genai

from tests.conftest import (
    API_KEY,
    CONFIG,
    Server,
    replay_model,
    start_server,
    stop_server,
    wait_for,
)


def _config(upstream: str, replay: str) -> str:
    return (
        CONFIG
        + replay_model(replay)
        + f"""
[[models]]
name = "relay"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "primary"
max_attempts = 2
"""
    )


@pytest.fixture(scope="module")
def server(
    upstream: str, replay: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("unstreamed"), _config(upstream, replay))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def ceiling_server(
    upstream: str, replay: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The same models, with a per-turn time ceiling: a foreground Gemini answer may be cut."""
    config = _config(upstream, replay).replace(
        "max_tool_rounds = 2", "max_tool_rounds = 2\ncontinuation_after_seconds = 60"
    )
    running = start_server(tmp_path_factory.mktemp("ceiling"), config)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(server: Server) -> genai.Client:
    return server.client()


def _sent(upstream: str, run: str) -> list[dict[str, Any]]:
    """The bodies the fault upstream received for `run`, in order."""
    return [r for r in httpx.get(f"{upstream}/requests").json() if f"id={run}" in str(r)]


def _seen(replay: str, since: int) -> list[str]:
    """The paths (with query) the Gemini replay received after its first `since` requests."""
    paths: list[str] = httpx.get(f"{replay}/paths").json()
    return paths[since:]


def _comparable(resource: dict[str, Any], ids: bool = True) -> dict[str, Any]:
    """What the client sees of an interaction, less what differs between two runs of the same
    answer (ids, times); a call's id too when the upstream sent none (`ids` False)."""
    steps = [
        {k: v for k, v in step.items() if ids or k not in ("id", "call_id")}
        for step in resource.get("steps") or []
        if step["type"] != "user_input"  # a stored one, read back, shows its input too
    ]
    return {
        "status": resource["status"],
        "usage": resource.get("usage"),
        "steps": steps,
        "errors": resource.get("errors"),
    }


def _create(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    """The interaction a create makes, as the client sees it in the end: the answer of a
    foreground create; for a stream (read to its end) or a background run, as stored."""
    with server.http() as http:
        if body.get("stream"):
            with http.stream("POST", "/v1beta/interactions", json=body) as sent:
                assert sent.status_code == 200
                lines = [line for line in sent.iter_lines() if '"interaction_id"' in line]
            run_id = lines[0].split('"interaction_id":"', 1)[1].split('"', 1)[0]
            answer: dict[str, Any] = http.get(f"/v1beta/interactions/{run_id}").json()
            return answer
        answer = http.post("/v1beta/interactions", json=body).json()
        if body.get("background"):
            path = f"/v1beta/interactions/{answer['id']}"
            wait_for(lambda: http.get(path).json()["status"] != "in_progress")
            answer = http.get(path).json()
        return answer


@pytest.mark.parametrize("script", ["ok", "think", "calls", "call", "length"])
def test_an_unstreamed_create_asks_for_the_whole_answer_and_answers_the_same(
    server: Server, upstream: str, script: str
) -> None:
    answers = []
    for store, stream in [(True, False), (False, False), (True, True)]:
        run = uuid.uuid4().hex[:12]
        body = {
            "model": "relay",
            "input": f"id={run} primary={script}",
            "store": store,
            "stream": stream,
        }
        answers.append(_comparable(_create(server, body), ids=script != "call"))
        [sent] = _sent(upstream, run)
        assert sent["stream"] is stream
        assert ("stream_options" in sent) is stream  # usage comes with a whole answer anyway
    assert answers[0] == answers[1] == answers[2]
    status = {"calls": "requires_action", "call": "requires_action", "length": "incomplete"}
    assert answers[0]["status"] == status.get(script, "completed")
    assert answers[0]["usage"]["total_input_tokens"] == (0 if script == "call" else 7)
    if script == "calls":
        calls = [s for s in answers[0]["steps"] if s["type"] == "function_call"]
        assert [(c["id"], c["name"], c["arguments"]) for c in calls] == [
            ("call_w", "get_weather", {"location": "Oslo"}),
            ("call_t", "get_time", {}),
        ]
    if script == "think":
        assert answers[0]["steps"][0]["type"] == "thought"
        assert answers[0]["usage"]["total_thought_tokens"] == 2


def test_a_background_run_streams(server: Server, upstream: str) -> None:
    run = uuid.uuid4().hex[:12]
    body = {"model": "relay", "input": f"id={run} primary=ok", "background": True}
    answer = _create(server, body)
    assert answer["status"] == "completed"
    assert [s["stream"] for s in _sent(upstream, run)] == [True]


def test_an_unstreamed_answer_cut_before_its_end_is_retried(
    client: genai.Client, upstream: str
) -> None:
    run = uuid.uuid4().hex[:12]
    answer: Any = client.interactions.create(model="relay", input=f"id={run} primary=cut,ok")
    assert answer.status == "completed" and answer.output_text == "hello from primary"
    assert [s["stream"] for s in _sent(upstream, run)] == [False, False]  # nothing was seen


def test_an_unstreamed_answer_that_is_not_json_fails_as_the_upstreams_error(
    client: genai.Client, upstream: str
) -> None:
    run = uuid.uuid4().hex[:12]
    answer: Any = client.interactions.create(model="relay", input=f"id={run} primary=notjson")
    assert answer.status == "failed"
    [error] = answer.errors
    assert error.code == "upstream_error" and "not JSON" in error.message


@pytest.mark.parametrize(
    "name",
    [
        "text_stream.sse",
        "thoughts_included_stream.sse",
        "function_call_parallel_stream.sse",
        "finish_max_tokens_stream.sse",
        "google_search_stream.sse",
        "url_context_stream.sse",
        "stream_json_array_thoughts_signature.json",
        "continuation_part1.json",
    ],
)
def test_gemini_unstreamed_answers_as_streamed(server: Server, replay: str, name: str) -> None:
    since = len(httpx.get(f"{replay}/paths").json())
    base = {"model": "gemini-replay", "input": f"generate_content/{name}"}
    whole = _comparable(_create(server, base), ids=False)
    assert _seen(replay, since) == ["/v1beta/models/gemini-2.5-flash:generateContent"]
    since += 1
    streamed = _comparable(_create(server, {**base, "stream": True}), ids=False)
    assert _seen(replay, since) == ["/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"]
    assert whole == streamed


def test_a_time_ceiling_keeps_the_upstream_streamed(ceiling_server: Server, replay: str) -> None:
    since = len(httpx.get(f"{replay}/paths").json())
    body = {"model": "gemini-replay", "input": "generate_content/text_basic.json"}
    answer = _create(ceiling_server, body)
    assert answer["status"] == "completed"
    assert _seen(replay, since) == ["/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"]


def _chat(server: Server) -> openai.OpenAI:
    return openai.OpenAI(api_key=API_KEY, base_url=f"{server.url}/v1", max_retries=0)


@pytest.mark.parametrize("script", ["ok", "think", "calls", "length"])
def test_chat_pass_through_unstreamed_keeps_the_body_and_answers_the_same(
    server: Server, upstream: str, script: str
) -> None:
    chat = _chat(server)
    run = uuid.uuid4().hex[:12]
    messages: Any = [{"role": "user", "content": f"id={run} primary={script}", "name": "ann"}]
    fields: Any = {"temperature": 0.5, "logit_bias": {"50256": -100}, "user": "u-1"}
    whole = chat.chat.completions.create(model="relay", messages=messages, **fields)
    streamed = chat.chat.completions.create(
        model="relay",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        **fields,
    )
    chunks = list(streamed)
    first, second = _sent(upstream, run)
    assert first == {"model": "primary", "messages": messages, **fields, "stream": False}
    assert second == {
        "model": "primary",
        "messages": messages,
        **fields,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    choice = whole.choices[0]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (choice.message.content or "") == text
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert [choice.finish_reason] == finish
    assert whole.usage == chunks[-1].usage
    calls = [
        (call.id, call.function.name, call.function.arguments)
        for call in choice.message.tool_calls or []
    ]
    streamed_calls: dict[int, list[str]] = {}
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            entry = streamed_calls.setdefault(call.index, ["", "", ""])
            entry[0] = call.id or entry[0]
            entry[1] = (call.function and call.function.name) or entry[1]
            entry[2] += (call.function and call.function.arguments) or ""
    assert calls == [tuple(c) for _, c in sorted(streamed_calls.items())]
    if script == "calls":
        assert [c[:2] for c in calls] == [("call_w", "get_weather"), ("call_t", "get_time")]
    if script == "length":
        assert choice.finish_reason == "length"


def test_generate_content_on_an_openai_target_asks_for_the_whole_answer(
    server: Server, upstream: str
) -> None:
    run = uuid.uuid4().hex[:12]
    body = {"contents": [{"role": "user", "parts": [{"text": f"id={run} primary=ok"}]}]}
    with server.http() as http:
        whole = http.post("/v1beta/models/relay:generateContent", json=body).json()
        streamed = http.post("/v1beta/models/relay:streamGenerateContent", json=body)
    assert whole["candidates"][0]["content"]["parts"] == [{"text": "hello from primary"}]
    assert whole["usageMetadata"]["promptTokenCount"] == 7
    assert streamed.status_code == 200
    assert [s["stream"] for s in _sent(upstream, run)] == [False, True]


def test_chat_on_a_gemini_target_asks_for_the_whole_answer(server: Server, replay: str) -> None:
    chat = _chat(server)
    since = len(httpx.get(f"{replay}/paths").json())
    messages: Any = [{"role": "user", "content": "generate_content/text_stream.sse"}]
    whole = chat.chat.completions.create(model="gemini-replay", messages=messages)
    chunks = list(
        chat.chat.completions.create(
            model="gemini-replay",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert _seen(replay, since) == [
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
    ]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert whole.choices[0].message.content == text and text
    assert whole.usage == chunks[-1].usage
