"""`echo`: a deterministic diagnostic model that answers with the conversation it was handed.

Its answer has one line per step of the history the server assembled, in order, for example

    system: be brief
    user: hi
    model: user: hi
    user: and now?

so a client can see exactly what Propylon sent to a model. Media sent inline is shown by its
type, mime type, size and the start of its SHA-256, `[image image/png 3 bytes sha256:1f2e...]`
(16 hex digits), so a client can check which bytes arrived (an uploaded file a request names
arrives inline); media by URI by its type and mime type (else its URI). Newlines inside a
step are written as `\\n` to keep one line per step. Tokens are counted as
whitespace-separated words. The answer streams a few characters per delta; the model option
`delay` (seconds) paces the deltas, for testing clients against a slow model.

Directives, for testing tool loops deterministically: when the last step is a `user_input`
whose text has lines `call NAME {json arguments}` and NAME is a declared, allowed tool, echo
calls it (one call per line, several calls in one turn). After a `function_result` it echoes
the history again, results included. With `tool_choice` `any`/`validated` and no directive it
calls the first allowed tool with `{}`, after tool results too (so a forced tool loop runs
until its round limit). With a JSON `response_format`, echo answers the last
input text as is, so a JSON input passes the schema check and anything else fails it.
Generation settings: `max_output_tokens` (words) and `stop_sequences` are honoured;
`temperature`, `top_p` and `seed` are accepted and change nothing (echo is deterministic).
Usage counts are text tokens (`*_by_modality`: `text`); the words of a cached content's
part of the turn (`Turn.cached_steps`) count as cached input tokens. A continued answer
(`Turn.continuation`, after `requires_continuation`) is the rest of the same answer: echo's
answer is a function of the history, so it sends what follows the part already given. Every
step type is shown as it came (echo takes them all natively).

Embeddings (`embed`): a unit vector of `EMBEDDING_DIMENSIONS` floats (or the `dimensions`
asked for, up to `MAX_EMBEDDING_DIMENSIONS`) derived from the text's SHAKE-256 digest, each
value exact in float32: the same text always gives the same vector, different texts
different ones. Input tokens are counted as words, like the chat answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import orjson

from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument
from propylon.providers.base import (
    Embeddings,
    Finish,
    FunctionCall,
    ProviderEvent,
    TextDelta,
    Turn,
    UsageReport,
    step_text,
)
from propylon.providers.capabilities import Capabilities

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "MAX_EMBEDDING_DIMENSIONS",
    "EchoProvider",
    "echo_embedding",
    "input_words",
    "render_history",
]

EMBEDDING_DIMENSIONS = 64
MAX_EMBEDDING_DIMENSIONS = 4096

_CHUNK = 8  # characters per delta
_DIRECTIVE = re.compile(r"^call\s+([A-Za-z_][\w.-]*)\s*(\{.*\})?\s*$")
_CONFIG = frozenset(
    {"temperature", "top_p", "seed", "stop_sequences", "max_output_tokens", "tool_choice"}
)


def render_history(turn: Turn) -> str:
    """The echo answer for `turn`: one line per step."""
    lines = []
    if turn.system_instruction:
        lines.append(f"system: {turn.system_instruction}")
    for step in turn.history:
        lines.append(_line(step).replace("\n", "\\n"))
    return "\n".join(lines)


def _shown(step: dict[str, Any]) -> str:
    """A step's content as echo shows it: text, and media with its bytes' size and digest."""
    parts = []
    for item in step.get("content") or step.get("summary") or []:
        data = item.get("data") if item.get("type") != "text" else None
        if not data:
            parts.append(step_text({"content": [item]}))
            continue
        try:
            raw = base64.b64decode(data)
        except ValueError:
            raw = data.encode()
        digest = hashlib.sha256(raw).hexdigest()[:16]
        label = " ".join(filter(None, [item.get("type"), item.get("mime_type")]))
        parts.append(f"[{label} {len(raw)} bytes sha256:{digest}]")
    return " ".join(parts)


def _line(step: dict[str, Any]) -> str:
    kind = step.get("type")
    if kind == "user_input":
        return f"user: {_shown(step)}"
    if kind == "model_output":
        return f"model: {_shown(step)}"
    if kind == "thought":
        return f"thought: {_shown(step)}"
    if kind == "function_call":
        arguments = orjson.dumps(step.get("arguments") or {}).decode()
        return f"function_call: {step.get('name', '')} {arguments}"
    if kind == "function_result":
        return f"function_result: {step.get('name') or step.get('call_id', '')} " + (
            orjson.dumps(step.get("result")).decode()
        )
    return f"{kind}: {orjson.dumps({k: v for k, v in step.items() if k != 'type'}).decode()}"


class EchoProvider:
    """The echo model. `delay`: seconds to wait before each delta (default 0)."""

    capabilities = Capabilities(native_steps=None, continues=True)

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def check(self, turn: Turn) -> None:
        """echo takes any content; it refuses server-side tool types and generation settings
        it cannot honour, naming the field."""
        for index, tool in enumerate(turn.tools):
            if tool.get("type") != "function":
                raise InvalidArgument(
                    f"`tools.{index}`: echo does not run `{tool.get('type')}` tools"
                )
        for name in sorted(set(turn.generation_config) - _CONFIG):
            raise InvalidArgument(f"`generation_config.{name}` is not supported by echo")

    async def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        words_in = input_words(turn)
        calls = _calls(turn) if turn.continuation is None else []
        if calls:
            for call in calls:
                yield call
            yield UsageReport(_usage(turn, words_in, len(calls)))
            yield Finish("stop")
            return
        text = _answer(turn)
        if turn.continuation is not None:
            text = text.removeprefix(turn.continuation)
        limit = turn.generation_config.get("max_output_tokens")
        finish = Finish("stop")
        if limit is not None and len(text.split()) > limit:
            text = _first_words(text, limit)
            finish = Finish("max_tokens")
        for start in range(0, len(text), _CHUNK):
            if self.delay:
                await asyncio.sleep(self.delay)
            yield TextDelta(text[start : start + _CHUNK])
        yield UsageReport(_usage(turn, words_in, len(text.split())))
        yield finish

    async def embed(self, texts: list[str], dimensions: int | None) -> Embeddings:
        """The echo embedding of each text (see the module). Raises InvalidArgument naming
        `dimensions` when it is over MAX_EMBEDDING_DIMENSIONS."""
        size = dimensions or EMBEDDING_DIMENSIONS
        if size > MAX_EMBEDDING_DIMENSIONS:
            raise InvalidArgument(
                f"`dimensions`: echo makes at most {MAX_EMBEDDING_DIMENSIONS}", param="dimensions"
            )
        words = sum(len(text.split()) for text in texts)
        return Embeddings([echo_embedding(text, size) for text in texts], Usage.text(words, 0))

    async def close(self) -> None:
        pass


def input_words(turn: Turn) -> int:
    """The input tokens echo counts for `turn`: whitespace-separated words of its history and
    system instruction."""
    words = sum(len(step_text(s).split()) for s in turn.history)
    return words + len((turn.system_instruction or "").split())


def _usage(turn: Turn, words_in: int, words_out: int) -> Usage:
    """The usage of an answer: text tokens, the cached content's words as cached input."""
    usage = Usage.text(words_in, words_out)
    cached = sum(len(step_text(s).split()) for s in turn.history[: turn.cached_steps])
    if turn.cached_instruction:
        cached += len((turn.system_instruction or "").split())
    if cached:
        usage.cached_tokens = cached
        usage.cached_by_modality = {"text": cached}
    return usage


def echo_embedding(text: str, dimensions: int) -> list[float]:
    """A deterministic unit vector of `dimensions` float32-exact values for `text`."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    values = [v / 32768.0 - 1.0 for v in struct.unpack(f"<{dimensions}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    # Through float32 and back, so the float and base64 (float32) encodings agree exactly.
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


def _first_words(text: str, count: int) -> str:
    """`text` up to the end of its `count`-th word, as written (so a continuation that sends
    the rest joins up exactly)."""
    ends = [match.end() for match in re.finditer(r"\S+", text)]
    return text[: ends[count - 1]] if count else ""


def _answer(turn: Turn) -> str:
    """The text echo answers: the history, or the last input for a JSON response format;
    cut at the first stop sequence."""
    if turn.json_schema is not None:
        last: dict[str, Any] = next(
            (s for s in reversed(turn.history) if s.get("type") == "user_input"), {}
        )
        text = step_text(last)
    else:
        text = render_history(turn)
    for stop in turn.generation_config.get("stop_sequences") or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def _calls(turn: Turn) -> list[FunctionCall]:
    """The function calls the last user input asks for (see the module's directives)."""
    allowed = [tool["name"] for tool in turn.functions()]
    calls: list[FunctionCall] = []
    last = turn.history[-1] if turn.history else {}
    for line in step_text(last).splitlines() if last.get("type") == "user_input" else []:
        match = _DIRECTIVE.match(line.strip())
        if match and match.group(1) in allowed:
            try:
                arguments = orjson.loads(match.group(2)) if match.group(2) else {}
            except orjson.JSONDecodeError:
                continue
            calls.append(
                FunctionCall(f"call_{len(turn.history)}_{len(calls)}", match.group(1), arguments)
            )
    if not calls and allowed and turn.tool_choice().forced:
        calls.append(FunctionCall(f"call_{len(turn.history)}_0", allowed[0], {}))
    return calls
