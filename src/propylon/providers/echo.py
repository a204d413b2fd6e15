"""`echo`: a deterministic diagnostic model that answers with the conversation it was handed.

Its answer has one line per step of the history the server assembled, in order, for example

    system: be brief
    user: hi
    model: user: hi
    user: and now?

so a client can see exactly what Propylon sent to a model. Newlines inside a step are written
as `\\n` to keep one line per step. Tokens are counted as whitespace-separated words. The
answer streams a few characters per delta; the model option `delay` (seconds) paces the deltas,
for testing clients against a slow model.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from propylon.domain.usage import Usage
from propylon.providers.base import Finish, ProviderEvent, TextDelta, Turn, UsageReport, step_text

__all__ = ["EchoProvider", "render_history"]

_CHUNK = 8  # characters per delta


def render_history(turn: Turn) -> str:
    """The echo answer for `turn`: one line per step."""
    lines = []
    if turn.system_instruction:
        lines.append(f"system: {turn.system_instruction}")
    for step in turn.history:
        lines.append(_line(step).replace("\n", "\\n"))
    return "\n".join(lines)


def _line(step: dict[str, Any]) -> str:
    kind = step.get("type")
    if kind == "user_input":
        return f"user: {step_text(step)}"
    if kind == "model_output":
        return f"model: {step_text(step)}"
    if kind == "thought":
        return f"thought: {step_text(step)}"
    if kind == "function_call":
        return f"function_call: {step['name']} {orjson.dumps(step.get('arguments', {})).decode()}"
    if kind == "function_result":
        return f"function_result: {step.get('name') or step['call_id']} " + (
            orjson.dumps(step.get("result")).decode()
        )
    return f"{kind}: {orjson.dumps({k: v for k, v in step.items() if k != 'type'}).decode()}"


class EchoProvider:
    """The echo model. `delay`: seconds to wait before each delta (default 0)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def check(self, turn: Turn) -> None:
        """echo accepts every turn."""

    async def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        text = render_history(turn)
        limit = turn.generation_config.get("max_output_tokens")
        finish = Finish("stop")
        if limit is not None and len(text.split()) > limit:
            text = " ".join(text.split()[:limit])
            finish = Finish("max_tokens")
        for start in range(0, len(text), _CHUNK):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield TextDelta(text[start : start + _CHUNK])
        words_in = sum(len(step_text(s).split()) for s in turn.history)
        words_in += len((turn.system_instruction or "").split())
        yield UsageReport(Usage(input_tokens=words_in, output_tokens=len(text.split())))
        yield finish

    async def close(self) -> None:
        pass
