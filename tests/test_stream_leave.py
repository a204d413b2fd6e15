"""A store=false stream's run lives only as long as its reader, on every surface that streams
a log (Interactions in the current and the legacy revision, Responses): the reader leaves
while the run waits on its upstream, and the upstream call ends at once (cancelled), not when
the upstream gives up (the fault upstream's `hold` answers 500 after 10 s)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import API_KEY, API_KEY_DIGEST, Server, start_server, stop_server, wait_for

LEGACY = "2026-01-01"  # an `Api-Revision` before 2026-05-20: the legacy `outputs` schema


@pytest.fixture(scope="module")
def held(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]

[[models]]
name = "held"

[[models.targets]]
provider = "openai"
name = "primary"
base_url = "{upstream}/v1"
model = "primary"
timeout_seconds = 30
max_attempts = 1
"""
    data = tmp_path_factory.mktemp("leave")
    server = start_server(data, config, log=data / "server.log")
    yield server
    stop_server(server)


def _outcome(server: Server, interaction_id: str) -> str | None:
    """The outcome of the interaction's upstream call, once its log line is written."""
    for line in (server.data_dir / "server.log").read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "upstream_call" and (
                record.get("interaction_id") == interaction_id
            ):
                return str(record["outcome"])
    return None


def _leave_after_first_event(
    server: Server, path: str, body: dict[str, object], headers: dict[str, str]
) -> str:
    """Open the stream, read up to its first `data:` line, leave; the interaction's id."""
    sent = {"authorization": f"Bearer {API_KEY}", **headers}
    with httpx.stream(
        "POST", f"{server.url}{path}", json=body, headers=sent, timeout=30
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
                found = data.get("interaction", data.get("response", {})).get("id")
                assert isinstance(found, str), data
                return found
    raise AssertionError("the stream ended before its first event")


@pytest.mark.parametrize("revision", [None, LEGACY])
def test_an_interactions_reader_that_leaves_ends_its_store_false_run(
    held: Server, revision: str | None
) -> None:
    body = {
        "model": "held",
        "input": f"id={uuid.uuid4().hex[:12]} primary=hold",
        "stream": True,
        "store": False,
    }
    headers = {"api-revision": revision} if revision else {}
    started = time.monotonic()
    interaction_id = _leave_after_first_event(held, "/v1beta/interactions", body, headers)
    wait_for(lambda: _outcome(held, interaction_id) is not None, 15)
    assert _outcome(held, interaction_id) == "CancelledError"
    assert time.monotonic() - started < 8  # not the upstream's 10 s hold


def test_a_responses_reader_that_leaves_ends_its_store_false_run(held: Server) -> None:
    body = {
        "model": "held",
        "input": f"id={uuid.uuid4().hex[:12]} primary=hold",
        "stream": True,
        "store": False,
    }
    started = time.monotonic()
    response_id = _leave_after_first_event(held, "/v1/responses", body, {})
    wait_for(lambda: _outcome(held, response_id) is not None, 15)
    assert _outcome(held, response_id) == "CancelledError"
    assert time.monotonic() - started < 8
