"""A legacy client: google-genai 1.75, the last release of the `outputs` schema, run in its own
venv (`.venvs/genai-legacy`, made by .ci/run) by tests/test_revisions.py.

    python tests/legacy_client.py BASE_URL API_KEY COMMAND [ARGS...]

prints one JSON object: what the SDK parsed (its own typed objects, dumped); with the
environment variable API_REVISION, it sends that `Api-Revision` header. Commands:
`create INPUT [TOOL_NAME]`, `turns USER MODEL USER` (a history of legacy turns),
`answer ID CALL_ID NAME RESULT` (a function result),
`stream INPUT`, `get ID`, `resume ID LAST_EVENT_ID`.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from typing import Any

from google import genai
from google.genai import types

warnings.simplefilter("ignore")  # "Interactions usage is experimental"


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json", exclude_none=True)


def main(url: str, key: str, command: str, *args: str) -> dict[str, Any]:
    revision = os.environ.get("API_REVISION")
    headers = {"Api-Revision": revision} if revision else None
    client = genai.Client(
        api_key=key,
        http_options=types.HttpOptions(base_url=url, api_version="v1beta", headers=headers),
    )
    interactions = client.interactions
    if command == "create":
        tools = [{"type": "function", "name": name, "parameters": {}} for name in args[1:]]
        made = interactions.create(model="echo", input=args[0], tools=tools or None)
        return {"type": type(made).__name__, "interaction": _dump(made)}
    if command == "turns":  # a stateless conversation as legacy turns: user, model, user
        turns = [
            {"role": "user", "content": args[0]},
            {"role": "model", "content": [{"type": "text", "text": args[1]}]},
            {"role": "user", "content": args[2]},
        ]
        made = interactions.create(model="echo", input=turns)
        return {"type": type(made).__name__, "interaction": _dump(made)}
    if command == "answer":
        result = {"type": "function_result", "call_id": args[1], "name": args[2]}
        made = interactions.create(
            model="echo", previous_interaction_id=args[0], input=[{**result, "result": args[3]}]
        )
        return {"type": type(made).__name__, "interaction": _dump(made)}
    if command == "get":
        return {"interaction": _dump(interactions.get(args[0]))}
    if command == "stream":
        events = interactions.create(model="echo", input=args[0], stream=True)
    else:  # resume
        events = interactions.get(args[0], stream=True, last_event_id=args[1])
    return {"events": [{"class": type(e).__name__, **_dump(e)} for e in events]}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
