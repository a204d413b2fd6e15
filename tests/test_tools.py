"""Function calling with requires_action, tool_choice, generation settings and structured output."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import EMBEDDED, Server

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
TIME = {
    "type": "function",
    "name": "get_time",
    "description": "The time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _result(call: Any, result: Any) -> dict[str, Any]:
    return {"type": "function_result", "call_id": call.id, "name": call.name, "result": result}


def test_a_full_client_tool_loop(client: genai.Client) -> None:
    first = client.interactions.create(
        model="echo", input='call get_weather {"location": "Paris"}', tools=[WEATHER]
    )
    assert first.status == "requires_action"
    [call] = first.steps
    assert call.type == "function_call"
    assert (call.name, call.arguments) == ("get_weather", {"location": "Paris"})
    assert call.id
    second = client.interactions.create(
        model="echo",
        previous_interaction_id=first.id,
        tools=[WEATHER],
        input=[_result(call, {"temp_c": 21})],
    )
    assert second.status == "completed"
    assert second.output_text.split("\n")[-2:] == [
        'function_call: get_weather {"location":"Paris"}',
        'function_result: get_weather {"temp_c":21}',
    ]
    stored = client.interactions.get(second.id)
    assert [s.type for s in stored.steps] == ["function_result", "model_output"]


def test_two_calls_in_one_turn(client: genai.Client) -> None:
    first = client.interactions.create(
        model="echo",
        tools=[WEATHER, TIME],
        input='call get_weather {"location": "Oslo"}\ncall get_time {"city": "Oslo"}',
    )
    assert first.status == "requires_action"
    calls = first.steps
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    assert calls[0].id != calls[1].id
    with pytest.raises(errors.BadRequestError) as caught:  # one answer is missing
        client.interactions.create(
            model="echo", previous_interaction_id=first.id, input=[_result(calls[0], "cold")]
        )
    assert calls[1].id in caught.value.body["error"]["message"]
    done = client.interactions.create(
        model="echo",
        previous_interaction_id=first.id,
        input=[_result(calls[1], "noon"), _result(calls[0], "cold")],
    )
    assert done.status == "completed"
    assert done.output_text.endswith(
        'function_result: get_time "noon"\nfunction_result: get_weather "cold"'
    )


@pytest.mark.parametrize("case", ["unknown", "duplicate", "text-instead"])
def test_a_bad_call_id_is_400_and_changes_nothing(
    server: Server, client: genai.Client, case: str
) -> None:
    first = client.interactions.create(
        model="echo", input='call get_weather {"location": "Rome"}', tools=[WEATHER]
    )
    call = first.steps[0]
    inputs: dict[str, Any] = {
        "unknown": [{"type": "function_result", "call_id": "call_nope", "result": "x"}],
        "duplicate": [_result(call, "1"), _result(call, "2")],
        "text-instead": "never mind",
    }
    before = server.rows()
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(
            model="echo", previous_interaction_id=first.id, input=inputs[case]
        )
    assert caught.value.body["error"]["code"] == "invalid_request"
    assert server.rows() == before
    assert client.interactions.get(first.id).status == "requires_action"


def test_streamed_arguments_reassemble_to_the_non_stream_call(client: genai.Client) -> None:
    arguments = {"location": "Llanfairpwllgwyngyll", "units": "metric", "days": [1, 2, 3]}
    directive = f"call get_weather {json.dumps(arguments)}"
    plain = client.interactions.create(model="echo", input=directive, tools=[WEATHER])
    events = list(
        client.interactions.create(model="echo", input=directive, tools=[WEATHER], stream=True)
    )
    start = next(e for e in events if e.event_type == "step.start")
    assert (start.step.type, start.step.name) == ("function_call", "get_weather")
    fragments = [
        e.delta.arguments
        for e in events
        if e.event_type == "step.delta" and e.delta.type == "arguments_delta"
    ]
    assert len(fragments) > 1
    assert json.loads("".join(fragments)) == plain.steps[0].arguments == arguments
    assert events[-1].interaction.status == "requires_action"


def test_stateless_tool_loop_with_the_whole_history(server: Server, client: genai.Client) -> None:
    before = server.rows()
    history: list[dict[str, Any]] = [
        {"type": "user_input", "content": [{"type": "text", "text": "weather?"}]},
        {"type": "function_call", "id": "c1", "name": "get_weather", "arguments": {}},
        {"type": "function_result", "call_id": "c1", "name": "get_weather", "result": "sunny"},
    ]
    answer = client.interactions.create(model="echo", input=history, tools=[WEATHER], store=False)
    assert answer.output_text.endswith('function_result: get_weather "sunny"')
    assert server.rows() == before


def test_tool_choice(client: genai.Client) -> None:
    directive = 'call get_weather {"location": "Lima"}'
    none = client.interactions.create(
        model="echo", input=directive, tools=[WEATHER], generation_config={"tool_choice": "none"}
    )
    assert none.status == "completed" and none.output_text == f"user: {directive}"
    forced = client.interactions.create(
        model="echo",
        input="anything",
        tools=[WEATHER, TIME],
        generation_config={"tool_choice": "any"},
    )
    assert forced.status == "requires_action" and forced.steps[0].name == "get_weather"
    allowed = client.interactions.create(
        model="echo",
        input="anything",
        tools=[WEATHER, TIME],
        generation_config={
            "tool_choice": {"allowed_tools": {"mode": "any", "tools": ["get_time"]}}
        },
    )
    assert [s.name for s in allowed.steps] == ["get_time"]


def test_generation_settings(client: genai.Client) -> None:
    capped = client.interactions.create(
        model="echo", input="one two three four", generation_config={"max_output_tokens": 3}
    )
    assert capped.status == "incomplete"
    assert capped.output_text == "user: one two"
    stopped = client.interactions.create(
        model="echo", input="alpha STOP beta", generation_config={"stop_sequences": ["STOP"]}
    )
    assert stopped.output_text == "user: alpha "
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(
            model="echo", input="x", generation_config={"thinking_level": "high"}
        )
    assert "generation_config.thinking_level" in caught.value.body["error"]["message"]
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(model="echo", input="x", tools=[{"type": "google_search"}])
    assert "google_search" in caught.value.body["error"]["message"]


SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


def test_response_format_is_validated_before_completed(client: genai.Client) -> None:
    good = client.interactions.create(
        model="echo",
        input='{"city": "Oslo", "population": 700000}',
        response_format={"type": "text", "mime_type": "application/json", "schema": SCHEMA},
    )
    assert good.status == "completed"
    assert json.loads(good.output_text)["city"] == "Oslo"
    raw_schema = client.interactions.create(
        model="echo", input='{"city": "Oslo"}', response_format=SCHEMA
    )
    assert raw_schema.status == "failed"
    assert "population" in raw_schema.errors[0].message
    not_json = client.interactions.create(
        model="echo",
        input="plain words",
        response_format={"type": "text", "mime_type": "application/json", "schema": SCHEMA},
    )
    assert not_json.status == "failed"
    assert "not valid JSON" in not_json.errors[0].message


@pytest.mark.skipif(not EMBEDDED, reason="the `local` extra is not installed")
def test_embedded_json_schema_output_validates_ten_times_of_ten(client: genai.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "hobbies": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "age", "hobbies"],
    }
    for seed in range(10):
        answer = client.interactions.create(
            model="gemma-3-270m",
            input="Describe a person.",
            generation_config={"seed": seed, "max_output_tokens": 400},
            response_format={"type": "text", "mime_type": "application/json", "schema": schema},
        )
        assert answer.status == "completed", answer.errors
        jsonschema.validate(json.loads(answer.output_text), schema)


@pytest.mark.skipif(not EMBEDDED, reason="the `local` extra is not installed")
def test_embedded_forced_tool_call(client: genai.Client) -> None:
    call = client.interactions.create(
        model="gemma-3-270m",
        input="What is the weather in Paris?",
        tools=[WEATHER],
        generation_config={"tool_choice": "any", "max_output_tokens": 100},
    )
    assert call.status == "requires_action"
    step = call.steps[0]
    assert step.type == "function_call" and step.name == "get_weather"
    jsonschema.validate(step.arguments, WEATHER["parameters"])
    answer = client.interactions.create(
        model="gemma-3-270m",
        previous_interaction_id=call.id,
        tools=[WEATHER],
        input=[_result(step, {"temp_c": 12})],
        generation_config={"max_output_tokens": 40},
    )
    assert answer.status in ("completed", "incomplete")
    assert answer.output_text.strip()


def test_validated_tool_choice_checks_arguments_against_the_schema(client: genai.Client) -> None:
    config = {"tool_choice": "validated"}
    good = client.interactions.create(
        model="echo",
        input='call get_weather {"location": "Nice"}',
        tools=[WEATHER],
        generation_config=config,
    )
    assert good.status == "requires_action"
    bad = client.interactions.create(
        model="echo",
        input='call get_weather {"city": "Nice"}',
        tools=[WEATHER],
        generation_config=config,
    )
    assert bad.status == "failed"
    assert "'location' is a required property" in bad.errors[0].message
