"""Run by tests/test_genai2.py under google-genai 2.x (`.venvs/genai2`, the line google-adk
2.13 installs): provoke Interactions errors against the server at argv[1] and print, one JSON
line each, what the SDK raised. The SDK's logging goes to stderr at DEBUG, so anything it
logs (a parse failure's traceback, say) shows there."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

from google import genai
from google.genai import types

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
for chatty in ("httpx", "httpcore"):  # a line per request, not about errors
    logging.getLogger(chatty).setLevel(logging.WARNING)

client = genai.Client(api_key=sys.argv[2], http_options=types.HttpOptions(base_url=sys.argv[1]))
CALLS: dict[str, Callable[[], Any]] = {
    "unknown-previous": lambda: client.interactions.create(
        model="echo", input="x", previous_interaction_id="v1_missing"
    ),
    "store-false-background": lambda: client.interactions.create(
        model="echo", input="x", store=False, background=True
    ),
    "unknown-id": lambda: client.interactions.get("v1_missing"),
}

for name, call in CALLS.items():
    try:
        call()
        raise SystemExit(f"{name}: no error")
    except Exception as exc:  # what the SDK raised, whatever it is
        chain: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        typed = next((e.data.error for e in chain if hasattr(e, "data")), None)
        print(
            json.dumps(
                {
                    "name": name,
                    "version": genai.__version__,
                    "classes": [c.__name__ for c in type(exc).__mro__],
                    "status_code": getattr(exc, "status_code", None),
                    "body": getattr(exc, "body", None),
                    "message": str(exc),
                    "chain": [f"{type(e).__module__}.{type(e).__name__}: {e}" for e in chain],
                    "typed": typed and {"code": typed.code, "message": typed.message},
                }
            )
        )
