"""Run a google-adk LlmAgent with a Python function tool against Propylon, two turns in one
session, and print what happened as JSON. Runs in its own venv (.venvs/adk: google-adk pins an
older google-genai than the test extra), started by tests/test_gemini_clients.py.

    python adk_agent.py BASE_URL MODE WIRING
    MODE: generate (ADK's default generateContent path), interactions (use_interactions_api),
          sse (generateContent, streamed)
    WIRING: param (Gemini(base_url=...)) or env (GOOGLE_GEMINI_BASE_URL)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

calls: list[dict[str, Any]] = []


def get_weather(city: str) -> dict[str, Any]:
    """The weather in a city."""
    calls.append({"city": city})
    return {"city": city, "temp_c": 21}


async def main(base_url: str, mode: str, wiring: str) -> None:
    if wiring == "env":
        os.environ["GOOGLE_GEMINI_BASE_URL"] = base_url
    from google.adk.agents import LlmAgent
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.models.google_llm import Gemini
    from google.adk.runners import Runner
    from google.adk.sessions import InMemorySessionService
    from google.genai import types

    model = Gemini(
        model="echo",
        base_url=base_url if wiring == "param" else None,
        use_interactions_api=mode == "interactions",
    )
    agent = LlmAgent(
        name="weather", model=model, instruction="Answer about the weather.", tools=[get_weather]
    )
    sessions = InMemorySessionService()
    runner = Runner(app_name="propylon-test", agent=agent, session_service=sessions)
    session = await sessions.create_session(app_name="propylon-test", user_id="u")
    config = RunConfig(streaming_mode=StreamingMode.SSE if mode == "sse" else StreamingMode.NONE)
    turns = []
    for text in ('call get_weather {"city": "Paris"}', "and thanks"):
        finals = []
        async for event in runner.run_async(
            user_id="u",
            session_id=session.id,
            new_message=types.Content(role="user", parts=[types.Part(text=text)]),
            run_config=config,
        ):
            if event.is_final_response() and event.content and event.content.parts:
                finals.append("".join(p.text or "" for p in event.content.parts))
        turns.append(finals[-1] if finals else None)
    print(json.dumps({"turns": turns, "calls": calls}))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
