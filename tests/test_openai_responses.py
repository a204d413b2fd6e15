"""OpenAI's Responses API, driven by the real openai SDK against the real server (model `echo`):
a Response is a view of an interaction, readable and chainable from both surfaces."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from google import genai
from httpx_sse import connect_sse
from openai.types.responses import (
    Response,
    ResponseItemList,
    ResponseStreamEvent,
    response_create_params,
)
from pydantic import BaseModel, TypeAdapter

from propylon.schema.openai.responses import CreateResponse
from tests.conftest import API_KEY, Server, helper, wait_for

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": True,
}


class Trip(BaseModel):
    city: str
    days: int


@pytest.fixture(scope="module")
def oai(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        yield client


def _raw_events(http: httpx.Client, method: str, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every event of an SSE response, each checked against the SDK's event types."""
    with connect_sse(http, method, url, **kwargs) as source:
        assert source.response.status_code == 200
        events = [json.loads(sse.data) for sse in source.iter_sse()]
    for event in events:
        EVENTS.validate_python(event)
    return events


def test_create_returns_a_full_response_object(oai: openai.OpenAI, http: httpx.Client) -> None:
    answer = oai.responses.create(model="echo", input="hello there", instructions="be brief")
    assert answer.status == "completed"
    assert answer.output_text == "system: be brief\nuser: hello there"
    raw = http.get(f"/v1/responses/{answer.id}").json()
    Response.model_validate(raw)  # the SDK's own schema, validated (not just constructed)
    for field in ("temperature", "top_p", "service_tier", "completed_at", "created_at"):
        assert raw[field] is not None, field
    assert "max_tool_calls" in raw and raw["max_tool_calls"] is None
    assert raw["usage"]["input_tokens_details"]["cached_tokens"] == 0
    assert raw["usage"]["output_tokens_details"]["reasoning_tokens"] == 0
    assert (
        raw["usage"]["total_tokens"] == raw["usage"]["input_tokens"] + raw["usage"]["output_tokens"]
    )
    [message] = raw["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["annotations"] == []
    assert raw["instructions"] == "be brief" and raw["store"] is True
    assert raw["object"] == "response" and raw["background"] is False


def test_input_items_carry_ids_newest_first_and_page(oai: openai.OpenAI) -> None:
    answer = oai.responses.create(
        model="echo",
        input=[
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "input_text", "text": "Who am I?"}]},
        ],
    )
    assert answer.output_text.splitlines() == [
        "user: My name is Ada.",
        "model: Hello Ada.",
        "user: Who am I?",
    ]
    newest = oai.responses.input_items.list(answer.id)
    assert isinstance(newest, openai.pagination.SyncCursorPage)
    texts = [item.content[0].text for item in newest.data]  # type: ignore[union-attr]
    assert texts == ["Who am I?", "Hello Ada.", "My name is Ada."]
    assert [item.role for item in newest.data] == ["user", "assistant", "user"]  # type: ignore[union-attr]
    ids = [item.id for item in newest.data]
    assert len(set(ids)) == 3 and all(ids)
    oldest = oai.responses.input_items.list(answer.id, order="asc")
    assert [item.id for item in oldest.data] == ids[::-1]
    first = oai.responses.input_items.list(answer.id, order="asc", limit=2)
    assert first.has_more and [item.id for item in first.data] == ids[::-1][:2]
    rest = oai.responses.input_items.list(answer.id, order="asc", limit=2, after=ids[1])
    assert not rest.has_more and [item.id for item in rest.data] == [ids[0]]
    walked = [item.id for item in oai.responses.input_items.list(answer.id, limit=1)]
    assert walked == ids  # the SDK's auto-pagination follows `after`
    raw = oai.responses.input_items.with_raw_response.list(answer.id).http_response.json()
    listing = ResponseItemList.model_validate(raw)
    assert listing.first_id == ids[0] and listing.last_id == ids[-1]


def test_previous_response_id_chains_without_carrying_instructions(oai: openai.OpenAI) -> None:
    first = oai.responses.create(model="echo", input="hi", instructions="speak French")
    second = oai.responses.create(
        model="echo", input="and now?", previous_response_id=first.id, instructions="be brief"
    )
    assert second.output_text.splitlines() == [
        "system: be brief",
        "user: hi",
        "model: system: speak French\\nuser: hi",
        "user: and now?",
    ]
    assert second.previous_response_id == first.id
    # input items are this response's own input, not the chain's
    assert len(oai.responses.input_items.list(second.id).data) == 1


def test_store_false_is_not_kept(oai: openai.OpenAI, http: httpx.Client) -> None:
    answer = oai.responses.create(model="echo", input="forget me", store=False)
    assert answer.status == "completed" and answer.store is False
    with pytest.raises(openai.NotFoundError) as caught:
        oai.responses.retrieve(answer.id)
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"
    assert set(http.get(f"/v1/responses/{answer.id}").json()["error"]) == {
        "message",
        "type",
        "param",
        "code",
    }


def test_stream_events_come_in_openai_order(http: httpx.Client) -> None:
    events = _raw_events(
        http, "POST", "/v1/responses", json={"model": "echo", "input": "stream me", "stream": True}
    )
    kinds = [event["type"] for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 2
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "user: stream me"
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == text and final.status == "completed"
    assert (
        events[0]["response"]["status"] == "in_progress" and events[0]["response"]["output"] == []
    )


def test_sdk_stream_helper_assembles_the_response(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="echo", input="via the helper") as stream:
        numbers = [event.sequence_number for event in stream]
        final = stream.get_final_response()
    assert final.output_text == "user: via the helper"
    assert numbers == sorted(set(numbers))


def test_a_stream_resumes_after_a_sequence_number(oai: openai.OpenAI, http: httpx.Client) -> None:
    seen = []
    stream = oai.responses.create(model="echo-slow", input="resume " * 12, stream=True)
    for event in stream:
        seen.append(event.model_dump(mode="json"))
        if len(seen) == 5:
            break
    stream.close()  # a stored run goes on without its reader
    response_id = seen[0]["response"]["id"]
    rest = oai.responses.retrieve(response_id, stream=True, starting_after=4)
    resumed = [event.model_dump(mode="json") for event in rest]
    assert resumed[0]["sequence_number"] == 5
    whole = _raw_events(http, "GET", f"/v1/responses/{response_id}", params={"stream": "true"})
    assert [e["sequence_number"] for e in seen + resumed] == list(range(len(whole)))
    assert [e["type"] for e in seen + resumed] == [e["type"] for e in whole]
    assert resumed[-1]["type"] == "response.completed"
    late = _raw_events(
        http,
        "GET",
        f"/v1/responses/{response_id}",
        params={"stream": "true", "starting_after": str(len(whole) - 2)},
    )
    assert [e["type"] for e in late] == ["response.completed"]


def test_background_then_retrieve(oai: openai.OpenAI) -> None:
    started = oai.responses.create(model="echo-slow", input="later", background=True)
    assert started.background is True and started.status in ("queued", "in_progress")
    wait_for(lambda: oai.responses.retrieve(started.id).status == "completed")
    done = oai.responses.retrieve(started.id)
    assert done.output_text == "user: later" and done.completed_at is not None


def test_a_background_response_streams_from_its_first_event(http: httpx.Client) -> None:
    body = {"model": "echo-slow", "input": "queued", "background": True, "stream": True}
    events = _raw_events(http, "POST", "/v1/responses", json=body)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "response.in_progress" in kinds and events[0]["response"]["background"] is True
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_a_failed_run_streams_response_failed(http: httpx.Client) -> None:
    schema = Trip.model_json_schema()
    body = {
        "model": "echo",
        "input": "not json",
        "stream": True,
        "text": {"format": {"type": "json_schema", "name": "trip", "schema": schema}},
    }
    events = _raw_events(http, "POST", "/v1/responses", json=body)
    assert events[-1]["type"] == "response.failed"
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.code == "server_error" and "not valid JSON" in failed.error.message


def test_cancel_a_background_response(
    oai: openai.OpenAI, http: httpx.Client, client: genai.Client
) -> None:
    started = oai.responses.create(model="echo-idle", input="slow " * 40, background=True)
    wait_for(lambda: oai.responses.retrieve(started.id).status == "in_progress")
    cancelled = oai.responses.cancel(started.id)
    assert cancelled.status == "cancelled" and cancelled.completed_at is None
    again = oai.responses.cancel(started.id)  # a finished one comes back unchanged
    assert again.status == "cancelled"
    assert oai.responses.retrieve(started.id).status == "cancelled"
    events = _raw_events(http, "GET", f"/v1/responses/{started.id}", params={"stream": "true"})
    ends = [e for e in events if e["type"] in ("response.completed", "response.failed")]
    assert len(ends) == 1 and ends[0]["response"]["status"] == "cancelled"
    # exactly one terminal event in the log, as the Interactions surface shows it
    log = list(client.interactions.get(started.id, stream=True))
    assert [e.event_type for e in log].count("interaction.completed") == 1


def test_cancel_a_finished_background_response_returns_it(oai: openai.OpenAI) -> None:
    started = oai.responses.create(model="echo", input="quick", background=True)
    wait_for(lambda: oai.responses.retrieve(started.id).status == "completed")
    assert oai.responses.cancel(started.id).status == "completed"


def test_cancel_a_foreground_response_is_400(oai: openai.OpenAI) -> None:
    answer = oai.responses.create(model="echo", input="now")
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.cancel(answer.id)
    assert "background" in caught.value.message
    assert oai.responses.retrieve(answer.id).status == "completed"


def test_function_call_round_trip_with_previous_response_id(oai: openai.OpenAI) -> None:
    asked = oai.responses.create(
        model="echo", input='call get_weather {"city": "Paris"}', tools=[WEATHER]
    )
    assert asked.status == "completed"  # the interaction underneath is requires_action
    [call] = asked.output
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"} and call.call_id
    answered = oai.responses.create(
        model="echo",
        previous_response_id=asked.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )
    assert answered.output_text.splitlines()[-2:] == [
        'function_call: get_weather {"city":"Paris"}',
        f'function_result: {call.call_id} "sunny"',
    ]
    [item] = oai.responses.input_items.list(answered.id).data
    assert item.type == "function_call_output" and item.output == "sunny"  # type: ignore[union-attr]


def test_an_output_for_no_call_is_400_in_the_responses_words(oai: openai.OpenAI) -> None:
    asked = oai.responses.create(
        model="echo", input='call get_weather {"city": "Paris"}', tools=[WEATHER]
    )
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(
            model="echo",
            previous_response_id=asked.id,
            tools=[WEATHER],
            input=[{"type": "function_call_output", "call_id": "call_nope", "output": "x"}],
        )
    assert "call_nope" in caught.value.message
    assert "function_result" not in caught.value.message  # the Interactions API's word


def test_function_call_round_trip_stateless(oai: openai.OpenAI) -> None:
    question = {"role": "user", "content": 'call get_weather {"city": "Oslo"}'}
    asked = oai.responses.create(model="echo", input=[question], tools=[WEATHER], store=False)
    [call] = asked.output
    assert call.type == "function_call"
    history = [
        question,
        call.model_dump(exclude_none=True),  # sent back as it came
        {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
    ]
    answered = oai.responses.create(model="echo", input=history, tools=[WEATHER], store=False)
    assert answered.output_text.splitlines()[-2:] == [
        'function_call: get_weather {"city":"Oslo"}',
        f'function_result: {call.call_id} "rain"',
    ]


def test_function_call_streams_its_arguments(http: httpx.Client) -> None:
    body = {
        "model": "echo",
        "input": 'call get_weather {"city": "A long city name, to span several deltas"}',
        "tools": [WEATHER],
        "stream": True,
    }
    events = _raw_events(http, "POST", "/v1/responses", json=body)
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.function_call_arguments.delta")
    assert deltas >= 2
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * deltas,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    pieces = "".join(e["delta"] for e in events if e["type"].endswith("arguments.delta"))
    done = next(e for e in events if e["type"].endswith("arguments.done"))
    assert pieces == done["arguments"] == events[-2]["item"]["arguments"]
    assert events[-1]["response"]["status"] == "completed"


def test_text_format_json_schema_and_parse(oai: openai.OpenAI) -> None:
    parsed = oai.responses.parse(
        model="echo", input='{"city": "Rome", "days": 3}', text_format=Trip
    )
    assert parsed.output_parsed == Trip(city="Rome", days=3)
    shown = oai.responses.retrieve(parsed.id)
    assert shown.text is not None and shown.text.format.type == "json_schema"
    assert shown.text.format.name == "Trip"  # type: ignore[union-attr]
    # an answer that does not match the schema fails the response
    refused = oai.responses.create(
        model="echo",
        input="not json",
        text={
            "format": {"type": "json_schema", "name": "trip", "schema": Trip.model_json_schema()}
        },
    )
    assert refused.status == "failed" and refused.error is not None


def test_sampling_fields_metadata_and_limits(oai: openai.OpenAI) -> None:
    answer = oai.responses.create(
        model="fast",  # an alias
        input="one two three four five",
        temperature=0.2,
        top_p=0.5,
        max_output_tokens=3,
        metadata={"team": "search"},
        tools=[WEATHER],
        tool_choice="none",
    )
    assert answer.status == "incomplete" and answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "max_output_tokens"
    assert answer.output_text == "user: one two"
    assert (answer.temperature, answer.top_p, answer.max_output_tokens) == (0.2, 0.5, 3)
    assert answer.metadata == {"team": "search"} and answer.tool_choice == "none"
    assert answer.tools[0].name == "get_weather" and answer.tools[0].strict is True  # type: ignore[union-attr]
    forced = oai.responses.create(
        model="echo",
        input="whatever",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
    )
    assert forced.output[0].type == "function_call"
    assert forced.tool_choice.type == "function"  # type: ignore[union-attr]


def test_mcp_tools_run_on_the_server(oai: openai.OpenAI, mcp_url: str) -> None:
    calc = {
        "type": "mcp",
        "server_label": "calc",
        "server_url": mcp_url,
        "headers": {"x-test-token": "secret"},
        "require_approval": "never",
    }
    answer = oai.responses.create(
        model="echo",
        input='call add {"a": 2, "b": 3}',
        tools=[calc],  # type: ignore[list-item]
    )
    assert answer.status == "completed"
    call, message = answer.output
    assert call.type == "mcp_call" and call.server_label == "calc" and call.name == "add"
    assert json.loads(call.arguments) == {"a": 2, "b": 3}
    assert json.loads(call.output or "") == {"result": 5}
    assert message.type == "message"
    assert answer.tools[0].type == "mcp" and answer.tools[0].headers == {  # type: ignore[union-attr]
        "x-test-token": "[redacted]"
    }


def test_delete_then_404(oai: openai.OpenAI) -> None:
    answer = oai.responses.create(model="echo", input="bye")
    oai.responses.delete(answer.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(answer.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.delete(answer.id)


def test_chains_cross_surfaces_both_ways(oai: openai.OpenAI, client: genai.Client) -> None:
    interaction = client.interactions.create(model="echo", input="from gemini")
    response = oai.responses.create(
        model="echo", input="from openai", previous_response_id=interaction.id
    )
    assert response.output_text.splitlines() == [
        "user: from gemini",
        "model: user: from gemini",
        "user: from openai",
    ]
    back = client.interactions.create(
        model="echo", input="gemini again", previous_interaction_id=response.id
    )
    assert back.steps[-1].content[0].text.splitlines()[-2:] == [  # type: ignore[union-attr]
        "model: user: from gemini\\nmodel: user: from gemini\\nuser: from openai",
        "user: gemini again",
    ]
    # one id, readable on both surfaces
    assert oai.responses.retrieve(interaction.id).output_text == "user: from gemini"
    assert client.interactions.get(response.id).status == "completed"


def test_a_response_reaches_registered_webhooks(oai: openai.OpenAI, client: genai.Client) -> None:
    with helper("webhook_receiver.py") as receiver:
        hook = client.webhooks.create(
            uri=f"{receiver}/hook/responses",
            subscribed_events=["interaction.requires_action", "interaction.completed"],
        )
        try:
            asked = oai.responses.create(
                model="echo", input='call get_weather {"city": "Rome"}', tools=[WEATHER]
            )

            def delivered() -> list[dict[str, Any]]:
                got = httpx.get(f"{receiver}/received/responses").json()
                unique = {  # a retried delivery keeps its webhook-id
                    d["headers"]["webhook-id"]: json.loads(d["body"])
                    for d in got
                    if d["answered"] == 200
                }
                return [b for b in unique.values() if b["data"]["id"] == asked.id]

            wait_for(delivered)
            [payload] = delivered()
            assert payload["type"] == "interaction.requires_action"  # shown `completed` here
        finally:
            client.webhooks.delete(hook.id)


def test_a_compaction_moves_a_conversation_into_a_new_chain(
    oai: openai.OpenAI, http: httpx.Client
) -> None:
    first = oai.responses.create(model="echo", input="remember: cobalt")
    raw = http.post(
        "/v1/responses/compact", json={"model": "echo", "previous_response_id": first.id}
    ).json()
    assert raw["object"] == "response.compaction"
    [item] = raw["output"]
    assert item["type"] == "compaction"
    fresh = oai.responses.create(
        model="echo", input=[item, {"role": "user", "content": "the word?"}], store=False
    )
    assert fresh.output_text.splitlines() == [
        "user: remember: cobalt",
        "model: user: remember: cobalt",
        "user: the word?",
    ]
    missing = http.post("/v1/responses/compact", json={"input": "x"})
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "model"


def test_the_same_idempotency_key_returns_the_first_response(http: httpx.Client) -> None:
    body = {"model": "echo", "input": "once"}
    headers = {"idempotency-key": "resp-once-1"}
    first = http.post("/v1/responses", json=body, headers=headers).json()
    second = http.post("/v1/responses", json=body, headers=headers).json()
    assert first["id"] == second["id"] and second["status"] == "completed"


def test_routes_are_served_under_the_path_prefix(http: httpx.Client) -> None:
    made = http.post("/gemini/v1/responses", json={"model": "echo", "input": "prefixed"})
    assert made.status_code == 200 and made.json()["output"][0]["type"] == "message"
    assert http.get(f"/gemini/v1/responses/{made.json()['id']}/input_items").status_code == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "echo", "input": "x", "bogus": 1}, "bogus"),
        ({"input": "x"}, "model"),
        ({"model": "echo", "input": "x", "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"model": "echo", "input": "x", "truncation": "auto"}, "truncation"),
        ({"model": "echo", "input": "x", "tools": [{"type": "web_search"}]}, "tools.0"),
        ({"model": "echo", "input": [{"type": "item_reference", "id": "x"}]}, "input.0"),
        ({"model": "echo", "input": "x", "store": False, "background": True}, "background"),
        ({"model": "echo", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "echo", "input": "x", "tool_choice": "required"}, "tool_choice"),
        (  # a forced call of a function nobody declared (as Chat Completions refuses it)
            {"model": "echo", "input": "x", "tool_choice": {"type": "function", "name": "f"}},
            "tool_choice",
        ),
        (
            {
                "model": "echo",
                "input": "x",
                "tools": [{"type": "function", "name": "g"}],
                "tool_choice": {
                    "type": "allowed_tools",
                    "mode": "required",
                    "tools": [{"type": "function", "name": "f"}],
                },
            },
            "tool_choice",
        ),
    ],
)
def test_bad_input_is_400_in_openai_shape(
    http: httpx.Client, server: Server, body: dict[str, Any], param: str | None
) -> None:
    before = server.rows()
    answer = http.post("/v1/responses", json=body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert server.rows() == before  # nothing was stored


def test_errors_of_the_other_kinds(http: httpx.Client, server: Server) -> None:
    broken = http.post(
        "/v1/responses", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"
    unknown = http.post("/v1/responses", json={"model": "nope", "input": "x"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "model_not_found"
    assert unknown.json()["error"]["param"] == "model"
    anonymous = httpx.post(f"{server.url}/v1/responses", json={"model": "echo", "input": "x"})
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    orphan = http.post(
        "/v1/responses", json={"model": "echo", "input": "x", "previous_response_id": "v1_none"}
    )
    assert orphan.status_code == 400
    assert orphan.json()["error"]["param"] == "previous_response_id"
    running = http.post(
        "/v1/responses", json={"model": "echo-idle", "input": "slow " * 40, "background": True}
    ).json()
    early = http.post(
        "/v1/responses",
        json={"model": "echo", "input": "x", "previous_response_id": running["id"]},
    )
    assert early.status_code == 400
    assert early.json()["error"]["param"] == "previous_response_id"
    assert "previous response" in early.json()["error"]["message"]
    http.post(f"/v1/responses/{running['id']}/cancel")
    missing = http.get("/v1/responses/v1_nothing_here")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    for method, path in (  # in this API's words
        ("GET", "/v1/responses/v1_nothing_here"),
        ("GET", "/v1/responses/v1_nothing_here/input_items"),
        ("POST", "/v1/responses/v1_nothing_here/cancel"),
        ("DELETE", "/v1/responses/v1_nothing_here"),
    ):
        answer = http.request(method, path)
        assert answer.status_code == 404
        assert answer.json()["error"]["message"] == "response `v1_nothing_here` not found"
    bad_order = http.get("/v1/responses/v1_nothing_here/input_items", params={"order": "up"})
    assert bad_order.status_code == 400 and bad_order.json()["error"]["param"] == "order"
    made = http.post("/v1/responses", json={"model": "echo", "input": "x"}).json()
    logprobs = {"include[]": "message.output_text.logprobs"}
    refused = http.get(f"/v1/responses/{made['id']}", params=logprobs)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "include"
    harmless = {"include[]": "reasoning.encrypted_content", "include_obfuscation": "false"}
    assert http.get(f"/v1/responses/{made['id']}", params=harmless).status_code == 200


def test_every_field_of_the_pinned_sdk_is_in_the_table() -> None:
    """docs/openai-responses.md says what each CreateResponse field of the pinned SDK does; a
    field a newer SDK adds fails here until it has a row. Those Propylon does not take are
    refused (400): none is silently dropped."""
    table = (Path(__file__).parent.parent / "docs" / "openai-responses.md").read_text()
    fields = typing.get_type_hints(response_create_params.ResponseCreateParamsStreaming)
    assert len(fields) > 30
    assert [name for name in fields if f"`{name}`" not in table] == []
    refused = {"conversation", "prompt", "context_management", "prompt_cache_options"}
    refused |= {"background_options", "moderation", "image", "access_programs"}
    assert set(fields) - set(CreateResponse.model_fields) == refused
