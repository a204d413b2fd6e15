"""The README quickstart against the real embedded model (runs when the `local` extra is in)."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import _interactions as errors

from tests.conftest import EMBEDDED

pytestmark = pytest.mark.skipif(not EMBEDDED, reason="the `local` extra is not installed")


def test_quickstart_on_gemma_generates_text_and_counts_tokens(client: genai.Client) -> None:
    first = client.interactions.create(
        model="gemma-3-270m",
        input="What is the capital of Italy?",
        generation_config={"max_output_tokens": 32, "temperature": 0.0, "seed": 1},
    )
    assert first.status in ("completed", "incomplete")
    assert first.output_text.strip()
    assert first.usage.total_input_tokens > 0
    assert first.usage.total_output_tokens > 0
    second = client.interactions.create(
        model="gemma-3-270m",
        input="And of Spain?",
        previous_interaction_id=first.id,
        generation_config={"max_output_tokens": 32, "temperature": 0.0},
    )
    assert second.output_text.strip()
    # the second turn's prompt holds the first turn, so it is longer
    assert second.usage.total_input_tokens > first.usage.total_input_tokens
    got = client.interactions.get(second.id)
    assert [s.type for s in got.steps] == ["user_input", "model_output"]
    client.interactions.delete(second.id)
    with pytest.raises(errors.NotFoundError):
        client.interactions.get(second.id)


def test_gemma_streams_token_by_token(client: genai.Client) -> None:
    events = list(
        client.interactions.create(
            model="gemma-3-270m",
            input="Tell me about the sea.",
            stream=True,
            generation_config={"max_output_tokens": 24, "temperature": 0.0},
        )
    )
    deltas = [e for e in events if e.event_type == "step.delta"]
    assert len(deltas) > 3
    assert events[-1].event_type == "interaction.completed"


def test_gemma_refuses_what_it_cannot_honour(client: genai.Client) -> None:
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(
            model="gemma-3-270m",
            input=[
                {"type": "image", "uri": "https://example.com/cat.png", "mime_type": "image/png"}
            ],
        )
    assert "text input only" in caught.value.body["error"]["message"]
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(
            model="gemma-3-270m", input="x", generation_config={"thinking_level": "high"}
        )
    assert "generation_config.thinking_level" in caught.value.body["error"]["message"]
