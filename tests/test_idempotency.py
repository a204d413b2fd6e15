"""`Idempotency-Key` under concurrency: duplicates arriving while the store's one writer is busy
(another client storing large image inputs) get the first interaction, and the upstream is
called once."""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.genai import _interactions as errors

from tests.conftest import CONFIG, Server, start_server, stop_server, wait_for


@pytest.fixture(scope="module")
def server(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = (
        CONFIG
        + f"""
[[models]]
name = "counted"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "primary"
max_attempts = 1
"""
    )
    running = start_server(tmp_path_factory.mktemp("idempotency"), config)
    yield running
    stop_server(running)


def _calls(upstream: str, run: str) -> int:
    return int(httpx.get(f"{upstream}/calls/{run}").json().get("primary", 0))


def test_concurrent_same_key_creates_under_writer_load(server: Server, upstream: str) -> None:
    image = base64.b64encode(os.urandom(3 * 1024 * 1024)).decode()  # 4 MiB of base64
    heavy = {
        "model": "echo",
        "input": [
            {"type": "text", "text": "describe"},
            {"type": "image", "data": image, "mime_type": "image/png"},
        ],
    }
    stop = threading.Event()
    stored: list[int] = []

    def load() -> None:
        with server.http() as http:
            while not stop.is_set():
                stored.append(http.post("/v1beta/interactions", json=heavy).status_code)

    writers = [threading.Thread(target=load) for _ in range(3)]
    for writer in writers:
        writer.start()
    run = uuid.uuid4().hex[:10]
    body = {"model": "counted", "input": f"id={run} primary=ok"}
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def create() -> None:
        with server.http() as http:
            answer = http.post(
                "/v1beta/interactions", json=body, headers={"Idempotency-Key": f"key-{run}"}
            )
        with lock:
            answers.append(answer)

    try:
        wait_for(lambda: len(stored) >= 3)  # the writer is busy
        duplicates = [threading.Thread(target=create) for _ in range(24)]
        for thread in duplicates:
            thread.start()
        for thread in duplicates:
            thread.join(timeout=120)
    finally:
        stop.set()
        for writer in writers:
            writer.join(timeout=120)
    assert set(stored) == {200}
    assert len(answers) == 24
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert {a.json()["status"] for a in answers} == {"completed"}
    assert _calls(upstream, run) == 1
    rows = server.query(
        "SELECT count(*) FROM interactions WHERE input = ?", (f'"id={run} primary=ok"',)
    )
    assert rows == [(1,)]  # one interaction stored


# google-genai 3.4.0 refuses `create(idempotency_key=...)` (a TypeError pointing at
# `extra_body`), which puts the key into the JSON body: it means what the header means.


def _key(way: str, key: str) -> dict[str, Any]:
    """The SDK's keywords that send `key` the `way` given: in the body or in the header."""
    if way == "body":
        return {"extra_body": {"idempotency_key": key}}
    if way == "header":
        return {"extra_headers": {"Idempotency-Key": key}}
    return {**_key("body", key), **_key("header", key)}  # both, the same key


@pytest.mark.parametrize("way", ["body", "header"])
def test_one_key_one_interaction_and_one_upstream_call(
    server: Server, upstream: str, way: str
) -> None:
    client = server.client()
    run = uuid.uuid4().hex[:10]
    body = {"model": "counted", "input": f"id={run} primary=ok"}
    first = client.interactions.create(**body, **_key(way, run))
    again = client.interactions.create(**body, **_key(way, run))
    assert again.id == first.id
    assert again.model_dump() == first.model_dump()  # the key is not part of the request
    assert "idempotency_key" not in client.interactions.get(first.id).model_dump(exclude_none=True)
    for other in ("body", "header", "both"):  # one key, whichever way it comes
        assert client.interactions.create(**body, **_key(other, run)).id == first.id
    assert _calls(upstream, run) == 1


@pytest.mark.parametrize(
    ("extra", "mentions"),
    [
        (
            {"extra_headers": {"Idempotency-Key": "one"}, "extra_body": {"idempotency_key": "two"}},
            "`idempotency_key` differs from the `Idempotency-Key` header",
        ),
        ({"extra_body": {"idempotency_key": ""}}, "idempotency_key"),
        ({"extra_body": {"idempotency_key": 7}}, "idempotency_key"),
        ({"extra_body": {"idempotency_key": "k", "store": False}}, "`idempotency_key`"),
    ],
    ids=["header-and-body-differ", "empty", "not-a-string", "store-false"],
)
def test_bad_idempotency_keys_are_400_naming_the_field(
    server: Server, upstream: str, extra: dict[str, Any], mentions: str
) -> None:
    client = server.client()
    run = uuid.uuid4().hex[:10]
    before = server.rows()[0]
    with pytest.raises(errors.BadRequestError) as caught:
        client.interactions.create(model="counted", input=f"id={run} primary=ok", **extra)
    assert caught.value.body["error"]["code"] == "invalid_request"
    assert mentions in caught.value.body["error"]["message"]
    assert _calls(upstream, run) == 0
    assert server.rows()[0] == before
