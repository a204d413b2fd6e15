"""openai-agents through `OpenAIResponsesModel` against the real server (model `echo`): an
Agent whose function tool echo calls, then answers with the history it was sent back."""

from __future__ import annotations

import asyncio
import json

import pytest
from agents import (
    Agent,
    OpenAIResponsesModel,
    Runner,
    RunResultStreaming,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from tests.conftest import API_KEY, Server

set_tracing_disabled(True)  # traces would go to OpenAI's servers


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


def _agent(server: Server) -> Agent:
    client = AsyncOpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)
    return Agent(
        name="forecaster",
        instructions="answer with the weather",
        model=OpenAIResponsesModel(model="echo", openai_client=client),
        tools=[get_weather],
    )


QUESTION = 'call get_weather {"city": "Paris"}'


def _check(final_output: object) -> None:
    """echo's last answer lists the conversation the agent sent back: the call and its
    result, after the instructions (each turn's own)."""
    lines = str(final_output).splitlines()
    assert lines[0] == "system: answer with the weather"
    assert lines[-2] == 'function_call: get_weather {"city":"Paris"}'
    call_id, result = lines[-1].removeprefix("function_result: ").split(" ", 1)
    assert call_id and json.loads(result) == "sunny in Paris"


def test_an_agent_runs_a_function_tool(server: Server) -> None:
    result = asyncio.run(Runner.run(_agent(server), QUESTION))
    _check(result.final_output)
    assert [type(item).__name__ for item in result.new_items] == [
        "ToolCallItem",
        "ToolCallOutputItem",
        "MessageOutputItem",
    ]
    assert len(result.raw_responses) == 2


def test_an_agent_streams_a_function_tool_run(server: Server) -> None:
    async def run() -> tuple[RunResultStreaming, list[str]]:
        result = Runner.run_streamed(_agent(server), QUESTION)
        kinds = [event.type async for event in result.stream_events()]
        return result, kinds

    result, kinds = asyncio.run(run())
    _check(result.final_output)
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
    assert [r.output[0].type for r in result.raw_responses] == ["function_call", "message"]


@pytest.mark.parametrize("streamed", [False, True])
def test_an_agent_chains_by_previous_response_id(server: Server, streamed: bool) -> None:
    """With `previous_response_id`, the agent sends only what is new; the server rebuilds the
    rest from the stored chain."""

    async def run() -> object:
        agent = _agent(server)
        if not streamed:
            result = await Runner.run(agent, QUESTION, auto_previous_response_id=True)
            return result.final_output
        streaming = Runner.run_streamed(agent, QUESTION, auto_previous_response_id=True)
        async for _ in streaming.stream_events():
            pass
        return streaming.final_output

    _check(asyncio.run(run()))
