"""Server-side MCP tools: Propylon calls a real MCP server and records every call and result."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import CONFIG, Server, start_server, stop_server

HEADERS = {"x-test-token": "secret"}


def _plain(value: Any) -> Any:
    """The SDK parses an object result into an open model; compare its plain form."""
    return value.model_dump() if hasattr(value, "model_dump") else value


def _calc(url: str, **extra: Any) -> dict[str, Any]:
    return {"type": "mcp_server", "name": "calc", "url": url, "headers": HEADERS, **extra}


def test_the_server_calls_mcp_tools_and_records_each_step(
    client: genai.Client, mcp_url: str
) -> None:
    answer = client.interactions.create(
        model="echo",
        tools=[_calc(mcp_url)],
        input='call add {"a": 2, "b": 3}\ncall get_weather {"location": "Bergen"}',
    )
    assert answer.status == "completed", answer.errors
    kinds = [(s.type, getattr(s, "name", None)) for s in answer.steps]
    assert kinds == [
        ("mcp_server_tool_call", "add"),
        ("mcp_server_tool_call", "get_weather"),
        ("mcp_server_tool_result", "add"),
        ("mcp_server_tool_result", "get_weather"),
        ("model_output", None),
    ]
    add_call, weather_call, add_result, weather_result = answer.steps[:4]
    assert add_call.server_name == "calc" and add_call.arguments == {"a": 2, "b": 3}
    assert add_result.call_id == add_call.id and _plain(add_result.result) == {"result": 5}
    assert weather_result.call_id == weather_call.id
    assert _plain(weather_result.result) == {"result": "sunny in Bergen"}  # structured content
    # the model saw the results: echo lists them
    assert answer.output_text.splitlines()[-2:] == [
        'mcp_server_tool_result: {"call_id":"'
        + add_result.call_id
        + '","name":"add","server_name":"calc","result":{"result":5}}',
        'mcp_server_tool_result: {"call_id":"'
        + weather_result.call_id
        + '","name":"get_weather","server_name":"calc","result":{"result":"sunny in Bergen"}}',
    ]
    stored = client.interactions.get(answer.id)
    assert [s.type for s in stored.steps][1:] == [s.type for s in answer.steps]


def test_mcp_steps_stream_in_order(client: genai.Client, mcp_url: str) -> None:
    events = list(
        client.interactions.create(
            model="echo", tools=[_calc(mcp_url)], input='call add {"a": 1, "b": 1}', stream=True
        )
    )
    starts = [e.step.type for e in events if e.event_type == "step.start"]
    assert starts == ["mcp_server_tool_call", "mcp_server_tool_result", "model_output"]
    result = next(
        e
        for e in events
        if e.event_type == "step.delta" and e.delta.type == "mcp_server_tool_result"
    )
    assert _plain(result.delta.result) == {"result": 2}
    assert events[-1].interaction.status == "completed"


def test_allowed_tools_limits_what_the_model_is_offered(client: genai.Client, mcp_url: str) -> None:
    only_weather = _calc(mcp_url, allowed_tools=[{"mode": "auto", "tools": ["get_weather"]}])
    answer = client.interactions.create(
        model="echo", tools=[only_weather], input='call add {"a": 2, "b": 3}'
    )
    assert [s.type for s in answer.steps] == ["model_output"]


def test_headers_pass_through(client: genai.Client, mcp_url: str) -> None:
    no_token = {"type": "mcp_server", "name": "calc", "url": mcp_url}
    answer = client.interactions.create(
        model="echo", tools=[no_token], input='call add {"a": 2, "b": 3}'
    )
    assert answer.status == "failed"
    assert "MCP" in answer.errors[0].message


def test_the_tool_loop_is_bounded(client: genai.Client, mcp_url: str) -> None:
    answer = client.interactions.create(
        model="echo", tools=[_calc(mcp_url)], input="go", generation_config={"tool_choice": "any"}
    )
    assert answer.status == "budget_exceeded"
    calls = [s for s in answer.steps if s.type == "mcp_server_tool_call"]
    assert len(calls) == 3  # max_tool_rounds = 2: two rounds run, the third call is refused
    assert "2 rounds" in answer.errors[0].message


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = CONFIG.replace("allow_private_network_targets = true", "")
    running = start_server(tmp_path_factory.mktemp("strict"), config)
    yield running
    stop_server(running)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/mcp",
        "http://localhost/mcp",
        "http://10.0.0.8/mcp",
        "http://[::1]/mcp",
        "http://[64:ff9b::7f00:1]:1/mcp",  # NAT64 of 127.0.0.1
        "http://[2002:a00:1::1]/mcp",  # 6to4 of 10.0.0.1
        "ftp://example.com/",
    ],
)
def test_the_outbound_policy_refuses_private_targets(strict_server: Server, url: str) -> None:
    before = strict_server.rows()
    client = strict_server.client()
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(
            model="echo", input="x", tools=[{"type": "mcp_server", "name": "s", "url": url}]
        )
    assert "MCP server `s`" in caught.value.body["error"]["message"]
    assert strict_server.rows() == before
