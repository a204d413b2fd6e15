"""openai-agents (pinned in the `test` extra) against a real server, model `echo`: an Agent
with a function tool runs its tool loop through Propylon.

echo calls a tool when the last user message has a line `call NAME {json}` (a directive,
providers/echo.py); after the tool's result it answers with the conversation it was handed,
so the final output shows the call and the result the agent sent back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from openai import AsyncOpenAI

from tests.conftest import API_KEY, CONFIG, Server, start_server, stop_server

set_tracing_disabled(True)  # no trace export to OpenAI's servers


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("agents"), CONFIG)
    yield running
    stop_server(running)


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


_ASK = 'What is the weather?\ncall get_weather {"city": "Paris"}'
_ANSWER = (
    "system: Answer briefly.\n"
    'user: What is the weather?\\ncall get_weather {"city": "Paris"}\n'
    'function_call: get_weather {"city":"Paris"}\n'
    'function_result: get_weather "sunny in Paris"'
)


# --- Chat Completions: OpenAIChatCompletionsModel ------------------------------------------


def _chat_agent(server: Server) -> Agent:
    client = AsyncOpenAI(api_key=API_KEY, base_url=f"{server.url}/v1", max_retries=0)
    return Agent(
        name="weather",
        instructions="Answer briefly.",
        model=OpenAIChatCompletionsModel(model="echo", openai_client=client),
        tools=[get_weather],
    )


def test_agent_calls_a_function_tool_through_chat_completions(server: Server) -> None:
    result = asyncio.run(Runner.run(_chat_agent(server), _ASK))
    assert result.final_output == _ANSWER
    kinds = [item.type for item in result.new_items]
    assert kinds == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert result.context_wrapper.usage.requests == 2
    assert result.context_wrapper.usage.input_tokens > 0


def test_agent_streams_a_function_tool_through_chat_completions(server: Server) -> None:
    async def run() -> tuple[str, list[str], str]:
        streamed = Runner.run_streamed(_chat_agent(server), _ASK)
        names: list[str] = []
        text = ""
        async for event in streamed.stream_events():
            if event.type == "run_item_stream_event":
                names.append(event.name)
            elif event.type == "raw_response_event" and event.data.type == (
                "response.output_text.delta"
            ):
                text += event.data.delta
        return str(streamed.final_output), names, text

    final, names, text = asyncio.run(run())
    assert final == _ANSWER
    assert text == _ANSWER  # the answer arrived as deltas
    assert names == ["tool_called", "tool_output", "message_output_created"]
