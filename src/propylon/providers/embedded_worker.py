"""The embedded model's child process: `python -m propylon.providers.embedded_worker MODEL
THREADS CTX`. It loads Gemma with llama-cpp-python and answers generation requests, one at a
time, over its stdin and stdout as JSON lines (the protocol is in embedded_process.py).

Running the model here and not in the server is what keeps a native crash (a segfault in
llama.cpp, an OOM kill) from taking the server down: the supervisor sees this process end and
fails only the request it was serving.

The child reads stdin on a thread of its own so that a `cancel` arrives while a generation
runs; stdin reaching EOF (the server went away, even by SIGKILL) ends the child at once.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import IO, Any

import orjson

__all__ = ["load_model", "main"]


def load_model(model_path: str, n_threads: int, n_ctx: int) -> Any:
    """A llama_cpp.Llama for the GGUF at `model_path`, safe on every CPU (see below)."""
    import llama_cpp.llama_cpp as native
    from llama_cpp import Llama

    defaults = native.llama_model_default_params

    def model_params() -> Any:
        params = defaults()
        # Weights stay in plain CPU buffers, never in llama.cpp's "extra" buffer types. A source
        # build targets the build machine's CPU (GGML_NATIVE), and on an Intel Xeon with AMX
        # that compiles in the AMX buffer type, whose matmul (ggml_backend_amx_mul_mat)
        # segfaults on this model. `use_extra_bufts` is the one switch that keeps every build
        # on every CPU off that path; Llama() has no argument for it, so its default params are
        # wrapped, in this child process only.
        params.use_extra_bufts = False
        return params

    native.llama_model_default_params = model_params
    try:
        return Llama(model_path=model_path, n_threads=n_threads, n_ctx=n_ctx, verbose=False)
    finally:
        native.llama_model_default_params = defaults


class _Channel:
    """The protocol's output: one JSON object per line on a private copy of stdout.

    File descriptor 1 is pointed at stderr, so that whatever native code prints can never
    corrupt the protocol."""

    def __init__(self) -> None:
        self._out: IO[bytes] = os.fdopen(os.dup(1), "wb", buffering=0)
        os.dup2(2, 1)

    def send(self, message: dict[str, Any]) -> None:
        self._out.write(orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE))


def _read_requests(requests: queue.Queue[dict[str, Any]], cancelled: set[int]) -> None:
    """stdin to `requests`; a `cancel` marks its id at once. EOF ends the process."""
    for line in sys.stdin:
        message = orjson.loads(line)
        if message.get("op") == "cancel":
            cancelled.add(int(message["id"]))
        else:
            requests.put(message)
    os._exit(0)  # the server closed the pipe (stopped, or died): nothing left to serve


def _generate(llama: Any, request: dict[str, Any], cancelled: set[int], out: _Channel) -> None:
    request_id = int(request["id"])
    kwargs: dict[str, Any] = dict(request["params"])
    if request.get("schema") is not None:
        from llama_cpp.llama_grammar import LlamaGrammar

        kwargs["grammar"] = LlamaGrammar.from_json_schema(
            json.dumps(request["schema"]), verbose=False
        )
    prompt: str = request["prompt"]
    input_tokens = len(llama.tokenize(prompt.encode()))
    output_tokens = 0
    finish = "stop"
    for chunk in llama.create_completion(prompt, stream=True, **kwargs):
        if request_id in cancelled:
            finish = "cancelled"
            break
        choice = chunk["choices"][0]
        output_tokens += 1
        if choice.get("text"):
            out.send({"id": request_id, "text": choice["text"]})
        if choice.get("finish_reason") == "length":
            finish = "max_tokens"
    out.send(
        {
            "id": request_id,
            "done": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "finish": finish,
            },
        }
    )


def main(argv: list[str]) -> None:
    """Load the model, say `ready`, then serve requests until stdin closes."""
    model_path, n_threads, n_ctx = argv[0], int(argv[1]), int(argv[2])
    out = _Channel()
    llama = load_model(model_path, n_threads, n_ctx)
    requests: queue.Queue[dict[str, Any]] = queue.Queue()
    cancelled: set[int] = set()
    threading.Thread(target=_read_requests, args=(requests, cancelled), daemon=True).start()
    out.send({"ready": True, "pid": os.getpid()})
    while True:
        request = requests.get()
        request_id = int(request["id"])
        try:
            if request_id not in cancelled:
                _generate(llama, request, cancelled, out)
            else:
                out.send({"id": request_id, "done": None})
        except Exception as exc:  # a bad request fails alone; the model stays loaded
            out.send({"id": request_id, "error": f"{type(exc).__name__}: {exc}"})
        cancelled.discard(request_id)


if __name__ == "__main__":
    main(sys.argv[1:])
