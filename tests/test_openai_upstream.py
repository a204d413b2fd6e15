"""Propylon in front of a real, independent OpenAI-compatible server: llama-cpp-python's
`llama_cpp.server` serving the packaged Gemma 3 270M, driven through the google-genai SDK."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from google import genai

from tests.conftest import (
    CONFIG,
    EMBEDDED,
    Server,
    free_port,
    start_server,
    stop_server,
    wait_for_port,
)

pytestmark = pytest.mark.skipif(not EMBEDDED, reason="the `local` extra is not installed")

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "required": ["location"],
        "properties": {"location": {"type": "string", "maxLength": 40}},
    },
}


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    from propylon.providers.embedded import default_model_path

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(default_model_path()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--interrupt_requests",
            "False",
            "--n_threads",
            "2",
            "--chat_format",
            "alpaca",
        ],  # a base model continues alpaca prompts
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process)
    yield f"http://127.0.0.1:{port}/v1"
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def front(llama_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = (
        CONFIG
        + f"""
[[models]]
name = "local-llama"
aliases = ["llama"]
[[models.targets]]
provider = "openai"
base_url = "{llama_server}"
model = "gemma-3-270m"
timeout_seconds = 120
"""
    )
    running = start_server(tmp_path_factory.mktemp("front"), config)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def client(front: Server) -> genai.Client:
    return front.client()


def test_text(client: genai.Client) -> None:
    answer = client.interactions.create(
        model="llama",
        input="What is the capital of France?",
        generation_config={"max_output_tokens": 24, "seed": 1},
    )
    assert answer.status in ("completed", "incomplete")
    assert answer.output_text.strip()
    assert answer.model == "llama"


def test_streaming(client: genai.Client) -> None:
    events = list(
        client.interactions.create(
            model="local-llama",
            input="Count from one to twenty in words.",
            stream=True,
            generation_config={"max_output_tokens": 24, "temperature": 0.0},
        )
    )
    deltas = [e.delta.text for e in events if e.event_type == "step.delta"]
    assert len(deltas) > 3 and "".join(deltas).strip(), [e.model_dump() for e in events]
    assert events[-1].event_type == "interaction.completed"
    assert events[-1].interaction.status in ("completed", "incomplete")


def test_forced_tool_call(client: genai.Client) -> None:
    call = client.interactions.create(
        model="local-llama",
        input="What is the weather in Paris?",
        tools=[WEATHER],
        generation_config={"tool_choice": "any", "max_output_tokens": 64},
    )
    assert call.status == "requires_action"
    [step] = call.steps
    assert step.type == "function_call" and step.name == "get_weather"
    assert isinstance(step.arguments["location"], str) and step.arguments["location"]
