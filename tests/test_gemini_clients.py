"""Agent frameworks pointed at Propylon with nothing changed but the base URL: google-adk's
LlmAgent (generateContent, streamed or not, and `use_interactions_api`; `Gemini(base_url=...)`
and `GOOGLE_GEMINI_BASE_URL`), pydantic-ai's GoogleModel and langchain-google-genai's
ChatGoogleGenerativeAI, each with the echo model. They pin an older google-genai than the test
extra, so each runs in a venv of its own (`.venvs/adk`, `.venvs/frameworks`, made by .ci/run
from tests/clients/requirements-*.txt) as a child process (tests/clients/*.py)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import API_KEY, CONFIG, Server, start_server, stop_server

ROOT = Path(__file__).parent.parent
CLIENTS = Path(__file__).parent / "clients"
RESULT = 'function_result: get_weather {"city":"Paris","temp_c":21}'
STREAMED = "user: a longer question, streamed in pieces"


def _python(venv: str) -> Path:
    """The venv's interpreter; fails (never skips) with how to make it when it is missing."""
    python = ROOT / ".venvs" / venv / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"{python} is missing: make it with `python3 -m venv .venvs/{venv} && "
            f".venvs/{venv}/bin/pip install -r tests/clients/requirements-{venv}.txt` "
            "(.ci/run does)"
        )
    return python


def _run(venv: str, script: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GOOGLE_GEMINI_BASE_URL")}
    env["GOOGLE_API_KEY"] = API_KEY
    done = subprocess.run(
        [str(_python(venv)), str(CLIENTS / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("clients"), CONFIG)
    yield running
    stop_server(running)


@pytest.mark.parametrize(
    ("mode", "wiring"),
    [
        ("generate", "param"),
        ("generate", "env"),
        ("sse", "param"),
        ("interactions", "param"),
        ("interactions", "env"),
    ],
)
def test_adk_agent_with_a_function_tool(server: Server, mode: str, wiring: str) -> None:
    before, _ = server.rows()
    result = _run("adk", "adk_agent.py", server.url, mode, wiring)
    first, second = result["turns"]
    assert result["calls"] == [{"city": "Paris"}]  # the tool ran once, with echo's arguments
    assert first.startswith("system: Answer about the weather.")
    assert first.endswith(
        'user: call get_weather {"city": "Paris"}\n'
        'function_call: get_weather {"city":"Paris"}\n' + RESULT
    )
    # The second turn of the session carries the first one's history.
    assert RESULT in second and second.endswith("user: and thanks")
    stored, _ = server.rows()
    if mode == "interactions":
        assert stored > before  # the Interactions API stores interactions
    else:
        assert stored == before  # generateContent is stateless


def test_pydantic_ai_google_model(server: Server) -> None:
    result = _run("frameworks", "frameworks.py", server.url, API_KEY, "pydantic-ai")
    assert result["plain"] == "system: be brief\nuser: Hello there"
    assert result["tool"].endswith(RESULT)
    assert len(result["chunks"]) > 1 and "".join(result["chunks"]) == STREAMED


def test_langchain_chat_google_generative_ai(server: Server) -> None:
    result = _run("frameworks", "frameworks.py", server.url, API_KEY, "langchain")
    assert result["plain"] == "system: be brief\nuser: Hello there"
    assert result["tool_calls"] == [{"name": "get_weather", "args": {"city": "Paris"}}]
    assert result["tool"].endswith(RESULT)
    assert len(result["chunks"]) > 1 and "".join(result["chunks"]) == STREAMED
