"""No silently ignored field: every create and `generation_config` field is honoured, refused
with a 400 naming it, or handled by the documented rule (docs/interactions-fields.md), shown
through google-genai 3.4.0 against `echo`; usage in full; continuation of a cut answer."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import (
    CONFIG,
    EMBEDDED,
    EMBEDDED_CONFIG,
    Server,
    helper,
    start_server,
    stop_server,
)


def _refused(client: genai.Client, **body: Any) -> str:
    """The message of the 400 that `create(**body)` answers."""
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(**body)
    assert caught.value.status_code == 400
    return str(caught.value.body["error"]["message"])


@pytest.mark.parametrize(
    ("body", "field", "allowed"),
    [
        ({"generation_config": {"thinking_level": "huge"}}, "thinking_level", "'xhigh'"),
        ({"generation_config": {"thinking_summaries": "always"}}, "thinking_summaries", "'none'"),
        ({"generation_config": {"tool_choice": "sometimes"}}, "tool_choice", "'validated'"),
        (
            {"generation_config": {"tool_choice": {"allowed_tools": {"mode": "some"}}}},
            "tool_choice.allowed_tools.mode",
            "'any'",
        ),
        ({"response_modalities": ["smell"]}, "response_modalities.0", "'audio'"),
        ({"service_tier": "gold"}, "service_tier", "'priority'"),
        (
            {"safety_settings": [{"type": "rudeness", "threshold": "off"}]},
            "safety_settings.0.type",
            "'harassment'",
        ),
        (
            {"safety_settings": [{"type": "harassment", "threshold": "sometimes"}]},
            "safety_settings.0.threshold",
            "'block_only_high'",
        ),
        (
            {"tools": [{"type": "google_search", "search_types": ["deep"]}]},
            "tools.0.search_types.0",
            "'image_search'",
        ),
        (
            {
                "input": [
                    {
                        "type": "url_context_result",
                        "call_id": "c1",
                        "result": [{"url": "https://a", "status": "meh"}],
                    },
                    {"type": "user_input", "content": [{"type": "text", "text": "go on"}]},
                ]
            },
            "result.0.status",
            "'paywall'",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_enumerated_strings_are_validated(
    client: genai.Client, body: dict[str, Any], field: str, allowed: str
) -> None:
    message = _refused(client, **{"model": "echo", "input": "x", **body})
    assert field in message and allowed in message, message


def test_environment_is_refused_on_model_runs(server: Server, client: genai.Client) -> None:
    before = server.rows()
    assert "`environment`" in _refused(client, model="echo", input="x", environment="remote")
    assert server.rows() == before


def test_text_models_refuse_other_output_modalities(client: genai.Client) -> None:
    text = client.interactions.create(model="echo", input="x", response_modalities=["text"])
    assert text.status == "completed" and text.response_modalities == ["text"]
    media = ({"response_modalities": ["text", "image"]}, {"response_format": {"type": "audio"}})
    for body in media:
        message = _refused(client, model="echo", input="x", **body)
        assert "response_modalities" in message and "echo" in message, message


def test_safety_settings_on_a_model_without_a_filter(client: genai.Client) -> None:
    relaxed = [
        {"type": "harassment", "threshold": "block_none"},
        {"type": "hate_speech", "threshold": "off"},
    ]
    answer = client.interactions.create(model="echo", input="x", safety_settings=relaxed)
    assert answer.status == "completed"
    assert [s.threshold for s in answer.safety_settings] == ["block_none", "off"]
    strict = [{"type": "harassment", "threshold": "block_medium_and_above"}]
    message = _refused(client, model="echo", input="x", safety_settings=strict)
    assert "safety_settings.0.threshold" in message and "no content filter" in message


def test_service_tier_is_echoed_only_when_it_orders_the_queue(client: genai.Client) -> None:
    foreground = client.interactions.create(model="echo", input="x", service_tier="flex")
    assert foreground.status == "completed"
    assert foreground.service_tier is None
    assert client.interactions.get(foreground.id).service_tier is None
    background = client.interactions.create(
        model="echo", input="x", service_tier="flex", background=True
    )
    assert background.service_tier == "flex"
    assert client.interactions.get(background.id).service_tier == "flex"


def test_usage_by_modality_and_initial_input(client: genai.Client) -> None:
    answer = client.interactions.create(model="echo", input="three words here")
    usage = answer.usage
    assert [(m.modality, m.tokens) for m in usage.input_tokens_by_modality] == [
        ("text", usage.total_input_tokens)
    ]
    assert [(m.modality, m.tokens) for m in usage.output_tokens_by_modality] == [
        ("text", usage.total_output_tokens)
    ]
    assert usage.initial_input_tokens == usage.total_input_tokens == 3
    assert client.interactions.get(answer.id).usage == usage


def test_initial_input_tokens_is_the_first_model_call(client: genai.Client, mcp_url: str) -> None:
    calc = {
        "type": "mcp_server",
        "name": "calc",
        "url": mcp_url,
        "headers": {"x-test-token": "secret"},
    }
    asked = 'call add {"a": 1, "b": 2}'
    answer = client.interactions.create(model="echo", tools=[calc], input=asked)
    assert answer.status == "completed"
    usage = answer.usage
    # two model calls: the one that called the tool, then the one after its result
    assert usage.initial_input_tokens == len(asked.split()) < usage.total_input_tokens


# A server that cuts foreground answers: after 4 output tokens (echo counts words) or 0.3 s.
CEILINGS = "continuation_after_tokens = 4\ncontinuation_after_seconds = 0.3\n"


@pytest.fixture(scope="module")
def cutting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = CEILINGS + CONFIG + (EMBEDDED_CONFIG if EMBEDDED else "")
    running = start_server(tmp_path_factory.mktemp("ceilings"), config)
    yield running
    stop_server(running)


SENTENCE = "one two three four five six seven eight nine ten"
FULL = f"user: {SENTENCE}"  # echo's whole answer: 11 words


def test_a_cut_answer_is_continued_by_the_sdk(cutting: Server) -> None:
    client = cutting.client()
    answer = client.interactions.create(model="echo", input=SENTENCE)
    assert answer.status == "completed"
    assert answer.output_text == FULL
    assert len(answer.continuation_ids) == 3  # 4 + 4 + 3 words
    assert answer.usage.total_output_tokens == 11
    # each hop is an interaction of its own, chained to the one it continues
    first = client.interactions.get(answer.continuation_ids[0])
    assert first.status == "requires_continuation" and first.continuation_token
    second = client.interactions.get(answer.continuation_ids[1])
    assert second.previous_interaction_id == first.id


def test_continuing_by_hand_and_what_is_refused(cutting: Server) -> None:
    client = cutting.client()
    cut = client.interactions.create(model="echo", input=SENTENCE, automatic_continuation=False)
    assert cut.status == "requires_continuation"
    assert cut.output_text == "user: one two three"
    assert client.interactions.get(cut.id).continuation_token == cut.continuation_token
    rest = client.interactions.create(
        model="echo",
        continuation_token=cut.continuation_token,
        previous_interaction_id=cut.id,
        automatic_continuation=False,
    )
    assert rest.status == "requires_continuation"
    assert rest.output_text == " four five six seven"
    forged = _refused(
        client, model="echo", continuation_token="ct1.bm9wZQ", previous_interaction_id=cut.id
    )
    assert "`continuation_token`" in forged
    other = client.interactions.create(model="echo", input="x")
    wrong = _refused(
        client,
        model="echo",
        continuation_token=cut.continuation_token,
        previous_interaction_id=other.id,
    )
    assert cut.id in wrong


def test_a_cut_stream_is_continued(cutting: Server) -> None:
    client = cutting.client()  # kept: the SDK sends the next hops with it
    events = list(client.interactions.create(model="echo", input=SENTENCE, stream=True))
    text = "".join(e.delta.text for e in events if e.event_type == "step.delta")
    assert text == FULL
    ends = [e.interaction.status for e in events if e.event_type == "interaction.completed"]
    assert ends == ["requires_continuation", "requires_continuation", "completed"]


def test_a_cut_store_false_answer_carries_its_text_in_the_token(cutting: Server) -> None:
    client = cutting.client()
    answer = client.interactions.create(model="echo", input=SENTENCE, store=False)
    assert answer.status == "completed" and answer.output_text == FULL


def test_max_output_tokens_bounds_the_whole_continued_answer(cutting: Server) -> None:
    client = cutting.client()
    answer = client.interactions.create(
        model="echo", input=SENTENCE, generation_config={"max_output_tokens": 6}
    )
    assert answer.status == "incomplete"
    assert answer.output_text == "user: one two three four five"


def test_the_time_ceiling_cuts_a_slow_answer(cutting: Server) -> None:
    word = "x" * 240  # one long word: 31 deltas of echo-slow, 0.02 s apart
    client = cutting.client()
    answer = client.interactions.create(model="echo-slow", input=word)
    assert answer.status == "completed"
    assert answer.output_text == f"user: {word}"
    assert len(answer.continuation_ids) >= 2


@pytest.mark.skipif(not EMBEDDED, reason="the `local` extra is not installed")
def test_the_embedded_model_continues_its_own_answer(cutting: Server) -> None:
    client = cutting.client()
    config = {"max_output_tokens": 12, "temperature": 0.0, "seed": 1}
    asked = "Name the planets of the solar system."
    answer = client.interactions.create(model="gemma-3-270m", input=asked, generation_config=config)
    assert len(answer.continuation_ids) >= 2
    assert answer.usage.total_output_tokens <= 12  # the cap is the whole answer's
    assert [m.modality for m in answer.usage.output_tokens_by_modality] == ["text"]
    hops = [client.interactions.get(i) for i in answer.continuation_ids]
    assert [h.status for h in hops[:-1]] == ["requires_continuation"] * (len(hops) - 1)
    assert answer.output_text == "".join(h.output_text or "" for h in hops)


def test_background_runs_are_not_cut(cutting: Server) -> None:
    client = cutting.client()
    started = client.interactions.create(model="echo", input=SENTENCE, background=True)
    with cutting.http() as http:
        events = http.get(f"/v1beta/interactions/{started.id}", params={"stream": "true"}).text
    assert "requires_continuation" not in events
    done = client.interactions.get(started.id)
    assert done.status == "completed" and done.output_text == FULL


def test_a_store_false_token_comes_back_with_store_false(cutting: Server) -> None:
    with httpx.Client(base_url=cutting.url, headers={"x-goog-api-key": "test-key"}) as http:
        cut = http.post(
            "/v1beta/interactions", json={"model": "echo", "input": SENTENCE, "store": False}
        ).json()
    assert cut["status"] == "requires_continuation"
    # the token of a store=false answer must come back with store=false
    message = _refused(
        cutting.client(), model="echo", input=SENTENCE, continuation_token=cut["continuation_token"]
    )
    assert "store=false" in message


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server whose model `relay` is an OpenAI-compatible upstream (tests/fault_upstream.py)."""
    with helper("fault_upstream.py") as upstream:
        target = f"""
[[models]]
name = "relay"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "primary"
max_attempts = 1
"""
        running = start_server(tmp_path_factory.mktemp("relay"), CONFIG + target)
        yield running, upstream
        stop_server(running)


def _user(text: str) -> dict[str, Any]:
    return {"type": "user_input", "content": [{"type": "text", "text": text}]}


def test_replayed_tool_steps_reach_a_model_that_cannot_take_them_as_text(
    relay: tuple[Server, str],
) -> None:
    server, upstream = relay
    search = {"type": "google_search_call", "id": "s1", "arguments": {"queries": ["otters"]}}
    found = {"type": "google_search_result", "call_id": "s1", "result": [{}]}
    code = {"type": "code_execution_call", "id": "c1", "arguments": {"code": "print(1)"}}
    ran = {"type": "code_execution_result", "call_id": "c1", "result": "1\n"}
    history = [_user("find otters"), search, found, code, ran, _user("id=replay1 primary=ok")]
    client = server.client()
    answer = client.interactions.create(model="relay", input=history)
    assert answer.status == "completed" and answer.output_text == "hello from primary"
    messages = httpx.get(f"{upstream}/requests").json()[-1]["messages"]
    assert [(m["role"], m["content"].split(" ")[0]) for m in messages] == [
        ("user", "find"),
        ("assistant", "[google_search_call]"),
        ("assistant", "[google_search_result]"),
        ("assistant", "[code_execution_call]"),
        ("assistant", "[code_execution_result]"),
        ("user", "id=replay1"),
    ]
    assert '"queries":["otters"]' in messages[1]["content"]


def test_a_model_that_cannot_continue_refuses_a_continuation_token(
    relay: tuple[Server, str],
) -> None:
    server, _ = relay
    # a store=false token carries its partial answer: `{"t": "part", "o": 1}`
    token = "ct1." + base64.urlsafe_b64encode(b'{"t":"part","o":1}').decode().rstrip("=")
    message = _refused(
        server.client(), model="relay", input="x", store=False, continuation_token=token
    )
    assert "`continuation_token`" in message and "relay" in message
