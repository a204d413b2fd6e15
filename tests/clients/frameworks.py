"""pydantic-ai's GoogleModel and langchain-google-genai's ChatGoogleGenerativeAI against
Propylon (model `echo`): a plain call, a tool round trip and streaming each; prints the
results as JSON. Runs in its own venv (.venvs/frameworks: both pin an older google-genai than
the test extra), started by tests/test_gemini_clients.py.

    python frameworks.py BASE_URL API_KEY pydantic-ai|langchain
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

ASK_TOOL = 'call get_weather {"city": "Paris"}'


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    return {"city": city, "temp_c": 21}


async def pydantic_ai(base_url: str, key: str) -> dict[str, Any]:
    from pydantic_ai import Agent
    from pydantic_ai.models.google import GoogleModel
    from pydantic_ai.providers.google import GoogleProvider

    model = GoogleModel("echo", provider=GoogleProvider(api_key=key, base_url=base_url))
    plain = await Agent(model, instructions="be brief").run("Hello there")
    tooled = await Agent(model, tools=[get_weather]).run(ASK_TOOL)
    chunks = []
    async with Agent(model).run_stream("a longer question, streamed in pieces") as run:
        async for delta in run.stream_text(delta=True, debounce_by=None):
            chunks.append(delta)
    return {"plain": plain.output, "tool": tooled.output, "chunks": chunks}


async def langchain(base_url: str, key: str) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_google_genai import ChatGoogleGenerativeAI

    llm = ChatGoogleGenerativeAI(model="echo", google_api_key=key, base_url=base_url)
    plain = await llm.ainvoke([SystemMessage("be brief"), HumanMessage("Hello there")])
    weather = tool(get_weather)
    bound = llm.bind_tools([weather])
    history: list[Any] = [HumanMessage(ASK_TOOL)]
    called = await bound.ainvoke(history)
    history.append(called)
    for call in called.tool_calls:
        history.append(
            ToolMessage(json.dumps(weather.invoke(call["args"])), tool_call_id=call["id"])
        )
    answered = await bound.ainvoke(history)
    chunks = [c.text async for c in llm.astream("a longer question, streamed in pieces")]
    return {
        "plain": plain.text,
        "tool_calls": [{"name": c["name"], "args": c["args"]} for c in called.tool_calls],
        "tool": answered.text,
        "chunks": [c for c in chunks if c],
    }


if __name__ == "__main__":
    url, api_key, which = sys.argv[1:4]
    run = pydantic_ai if which == "pydantic-ai" else langchain
    print(json.dumps(asyncio.run(run(url, api_key))))
