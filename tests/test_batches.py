"""Gemini batches (`models/{m}:batchGenerateContent`, `batches/{id}`) through the real
google-genai client: answered in the background in request order, as direct generateContent
calls answer; listed, cancelled, deleted; a tenant's own; each request accounted once.

Under `PROPYLON_TEST_DATABASE=postgresql` the same tests run the batches as procrastinate jobs
of a `propylon worker` (tests/conftest.py starts one with the server)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from tests.conftest import (
    API_KEY,
    TEST_DATABASE,
    Server,
    create_key,
    one_process_only,
    start_server,
    stop_server,
    wait_for,
)

CONCURRENCY = 2
CONFIG = f"""
auth_cache_seconds = 0
path_prefix = "/gemini"
batch_concurrency = {CONCURRENCY}

[[models]]
name = "echo"
provider = "echo"

[[models]]
name = "echo-cancel"
provider = "echo"
options = {{ delay = 0.4 }}

[[models]]
name = "echo-resume"
provider = "echo"
options = {{ delay = 0.4 }}

[[models]]
name = "priced"
[[models.targets]]
provider = "echo"
price_input_per_million = 1000000.0
"""
DONE = {
    types.JobState.JOB_STATE_SUCCEEDED,
    types.JobState.JOB_STATE_FAILED,
    types.JobState.JOB_STATE_CANCELLED,
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batches")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    """Secrets of keys of three tenants (`spend` under a budget, so its calls are in the
    ledger; large enough for a batch's concurrent reservations of 32768 tokens at 1 USD)."""
    return {
        "acme": create_key(data_dir, "--tenant", "acme")[1],
        "other": create_key(data_dir, "--tenant", "other")[1],
        "spend": create_key(
            data_dir, "--tenant", "spend", "--budget-usd", "1000000", "--budget-period", "day"
        )[1],
    }


@pytest.fixture(scope="module")
def server(data_dir: Path, keys: dict[str, str]) -> Iterator[Server]:
    running = start_server(data_dir, CONFIG, log=data_dir / "server.log")
    yield running
    stop_server(running)


def _client(server: Server, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.url))


def _http(server: Server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"x-goog-api-key": key}, timeout=30)


def _done(client: genai.Client, name: str, seconds: float = 60) -> types.BatchJob:
    """The batch once it has ended (polled every 0.1 s; fails after `seconds`)."""
    deadline = time.monotonic() + seconds
    while True:
        job = client.batches.get(name=name)
        if job.state in DONE:
            return job
        assert time.monotonic() < deadline, f"batch {name} still {job.state}"
        time.sleep(0.1)


def _ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def _calls(server: Server, model: str) -> list[dict[str, Any]]:
    """The `upstream_call` log lines of `model` (the server's and its worker's)."""
    lines = (server.data_dir / "server.log").read_text().splitlines()
    calls = [json.loads(line) for line in lines if '"upstream_call"' in line]
    return [call for call in calls if call["model"] == model]


def _stays(condition: Callable[[], bool], seconds: float) -> None:
    """Assert `condition` holds at every poll (0.1 s apart) for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition()
        time.sleep(0.1)


def test_results_come_in_request_order_as_direct_calls_answer(
    server: Server, keys: dict[str, str]
) -> None:
    client = _client(server, keys["acme"])
    texts = ["first question", "the second one", "third and last question here"]
    configs: list[dict[str, Any]] = [
        {},
        {"system_instruction": "be brief"},
        {"max_output_tokens": 3},
    ]
    src: list[Any] = [
        {**_ask(text), "config": config, "metadata": {"key": f"k{i}"}}
        for i, (text, config) in enumerate(zip(texts, configs, strict=True))
    ]
    created = client.batches.create(
        model="echo", src=src, config={"display_name": "three questions"}
    )
    assert created.name is not None and created.name.startswith("batches/")
    assert created.state in (types.JobState.JOB_STATE_PENDING, types.JobState.JOB_STATE_RUNNING)
    assert created.display_name == "three questions" and created.model == "models/echo"

    job = _done(client, created.name)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.create_time is not None and job.end_time is not None
    assert job.dest is not None and job.dest.inlined_responses is not None
    answers = job.dest.inlined_responses
    assert [a.metadata for a in answers] == [{"key": "k0"}, {"key": "k1"}, {"key": "k2"}]
    for answer, text, config in zip(answers, texts, configs, strict=True):
        direct = client.models.generate_content(model="echo", contents=text, config=config)
        assert answer.error is None and answer.response is not None
        assert answer.response.text == direct.text
        assert answer.response.candidates == direct.candidates
        assert answer.response.usage_metadata == direct.usage_metadata
    assert answers[1].response is not None and answers[1].response.text is not None
    assert answers[1].response.text.startswith("system: be brief")


def test_a_failing_request_gets_its_own_error(server: Server, keys: dict[str, str]) -> None:
    client = _client(server, keys["acme"])
    src: list[Any] = [
        _ask("fine"),
        {**_ask("not served"), "config": {"cached_content": "cachedContents/none"}},
        _ask("fine again"),
    ]
    job = _done(client, client.batches.create(model="echo", src=src).name or "")
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    assert job.dest is not None and job.dest.inlined_responses is not None
    first, failed, last = job.dest.inlined_responses
    assert first.response is not None and first.response.text == "user: fine"
    assert last.response is not None and last.response.text == "user: fine again"
    assert failed.response is None and failed.error is not None
    # a cached content the tenant does not have: NOT_FOUND (gRPC code 5), for that request only
    assert failed.error.code == 5 and "cachedContents/none" in (failed.error.message or "")
    stats = _http(server, keys["acme"]).get(f"/v1beta/{job.name}").json()["metadata"]
    assert stats["batchStats"] == {
        "requestCount": "3",
        "successfulRequestCount": "2",
        "failedRequestCount": "1",
        "pendingRequestCount": "0",
    }


def test_every_version_and_the_path_prefix(server: Server, keys: dict[str, str]) -> None:
    http = _http(server, keys["acme"])
    body = {"batch": {"inputConfig": {"requests": {"requests": [{"request": _ask("hi")}]}}}}
    created = http.post("/gemini/v1/models/echo:batchGenerateContent", json=body)
    assert created.status_code == 200, created.text
    name = created.json()["name"]
    assert created.json()["metadata"]["state"] == "BATCH_STATE_PENDING"

    def finished() -> bool:
        return bool(http.get(f"/v1alpha/{name}").json()["done"])

    wait_for(finished)
    answer = http.get(f"/gemini/v1beta/{name}").json()
    assert answer["metadata"]["state"] == "BATCH_STATE_SUCCEEDED"
    [entry] = answer["response"]["inlinedResponses"]["inlinedResponses"]
    assert entry["response"]["candidates"][0]["content"]["parts"] == [{"text": "user: hi"}]
    assert (
        answer["metadata"]["output"]["inlinedResponses"] == answer["response"]["inlinedResponses"]
    )


def test_listing_pages_through_the_tenants_batches(server: Server, keys: dict[str, str]) -> None:
    client = _client(server, keys["acme"])
    made = [client.batches.create(model="echo", src=[_ask(f"list {i}")]).name for i in range(3)]
    listed = [job.name for job in client.batches.list(config={"page_size": 2})]
    assert set(made) <= set(listed)
    assert listed.index(made[2]) < listed.index(made[1]) < listed.index(made[0])  # newest first
    page = _http(server, keys["acme"]).get("/v1beta/batches", params={"pageSize": 1}).json()
    assert len(page["operations"]) == 1 and page["nextPageToken"]
    stranger = _client(server, keys["other"])  # kept: a collected client closes its pager's
    others = [job.name for job in stranger.batches.list()]
    assert not set(made) & set(others)


def test_cancel_stops_the_requests_not_yet_run(server: Server, keys: dict[str, str]) -> None:
    client, http = _client(server, keys["acme"]), _http(server, keys["acme"])
    total = 8
    name = client.batches.create(
        model="echo-cancel", src=[_ask(f"slow one {i}") for i in range(total)]
    ).name
    assert name is not None

    def answered() -> int:
        stats = http.get(f"/v1beta/{name}").json()["metadata"]["batchStats"]
        return int(stats["successfulRequestCount"]) + int(stats["failedRequestCount"])

    wait_for(lambda: answered() >= 1)
    client.batches.cancel(name=name)
    job = client.batches.get(name=name)
    assert job.state == types.JobState.JOB_STATE_CANCELLED
    ran = answered()
    assert 1 <= ran < total
    # The whole batch takes total / CONCURRENCY requests of ~0.8 s each: in that time, the
    # requests under way at the cancel may end, none starts.
    _stays(lambda: len(_calls(server, "echo-cancel")) <= ran + CONCURRENCY, 4 * 0.8 + 1)
    assert answered() == ran
    assert job.dest is not None and job.dest.inlined_responses is not None
    answers = job.dest.inlined_responses
    assert len(answers) == total
    assert all(a.response is not None for a in answers[:ran])
    assert all(a.error is not None and a.error.code == 1 for a in answers if a.response is None)
    client.batches.cancel(name=name)  # again: nothing changes
    assert client.batches.get(name=name).state == types.JobState.JOB_STATE_CANCELLED


def test_delete(server: Server, keys: dict[str, str]) -> None:
    client = _client(server, keys["acme"])
    name = _done(client, client.batches.create(model="echo", src=[_ask("gone")]).name or "").name
    assert name is not None
    client.batches.delete(name=name)
    with pytest.raises(errors.ClientError) as missing:
        client.batches.get(name=name)
    assert missing.value.code == 404
    assert server.query("SELECT count(*) FROM batch_requests WHERE batch_id = ?", (name[8:],)) == [
        (0,)
    ]
    with pytest.raises(errors.ClientError) as again:
        client.batches.delete(name=name)
    assert again.value.code == 404


def test_another_tenants_batch_is_not_found(server: Server, keys: dict[str, str]) -> None:
    owner, stranger = _client(server, keys["acme"]), _client(server, keys["other"])
    name = _done(owner, owner.batches.create(model="echo", src=[_ask("mine")]).name or "").name
    assert name is not None
    for act in (stranger.batches.get, stranger.batches.cancel, stranger.batches.delete):
        with pytest.raises(errors.ClientError) as refused:
            act(name=name)
        assert refused.value.code == 404 and refused.value.status == "NOT_FOUND"
    assert owner.batches.get(name=name).state == types.JobState.JOB_STATE_SUCCEEDED


@pytest.mark.parametrize(
    ("path", "body", "status", "names"),
    [
        ("echo", {"batch": {}}, 400, "inputConfig"),
        ("echo", {"batch": {"inputConfig": {"fileName": "files/abc"}}}, 404, "files/abc"),
        ("echo", {"batch": {"inputConfig": {"fileName": "gs://b/x.jsonl"}}}, 400, "fileName"),
        (
            "echo",
            {
                "batch": {
                    "inputConfig": {
                        "fileName": "files/abc",
                        "requests": {"requests": [{"request": _ask("x")}]},
                    }
                }
            },
            400,
            "fileName",
        ),
        ("echo", {"batch": {"inputConfig": {"requests": {"requests": []}}}}, 400, "requests"),
        (
            "echo",
            {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": []}}]}}}},
            400,
            "batch.inputConfig.requests.requests.0.request.contents",
        ),
        (
            "echo",
            {
                "batch": {
                    "inputConfig": {"requests": {"requests": [{"request": _ask("x")}]}},
                    "webhookConfig": {},
                }
            },
            400,
            "batch.webhookConfig",
        ),
        (
            "nope",
            {"batch": {"inputConfig": {"requests": {"requests": [{"request": _ask("x")}]}}}},
            404,
            "nope",
        ),
    ],
)
def test_a_bad_create_is_refused_and_nothing_stored(
    server: Server, keys: dict[str, str], path: str, body: dict[str, Any], status: int, names: str
) -> None:
    before = server.query("SELECT count(*) FROM batches")
    answer = _http(server, keys["acme"]).post(
        f"/v1beta/models/{path}:batchGenerateContent", json=body
    )
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == status and names in error["message"]
    assert server.query("SELECT count(*) FROM batches") == before


def test_a_batch_from_a_jsonl_file_writes_its_results_file(
    server: Server, keys: dict[str, str], tmp_path: Path
) -> None:
    client = _client(server, keys["acme"])
    attached = tmp_path / "note.txt"
    attached.write_bytes(b"attached bytes")
    note = client.files.upload(file=attached, config={"mime_type": "text/plain"})
    lines = [
        {"key": "first", "request": _ask("one")},
        {
            "key": "second",
            "request": {
                "contents": [
                    {
                        "role": "user",
                        "parts": [
                            {"text": "two"},
                            {"fileData": {"fileUri": note.uri, "mimeType": "text/plain"}},
                        ],
                    }
                ]
            },
        },
        {"key": "third", "request": _ask("three")},
    ]
    source = tmp_path / "requests.jsonl"
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    uploaded = client.files.upload(file=source, config={"mime_type": "application/jsonl"})
    assert uploaded.name is not None

    # another tenant cannot name it
    other = _client(server, keys["other"])
    with pytest.raises(errors.ClientError) as hidden:
        other.batches.create(model="echo", src=uploaded.name)
    assert hidden.value.code == 404

    job = client.batches.create(model="echo", src=uploaded.name)
    assert job.name is not None
    done = _done(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.file_name and not done.dest.inlined_responses
    results = [
        json.loads(line) for line in client.files.download(file=done.dest.file_name).splitlines()
    ]
    assert [r["key"] for r in results] == ["first", "second", "third"]
    texts = [r["response"]["candidates"][0]["content"]["parts"][0]["text"] for r in results]
    assert texts[0] == "user: one" and texts[2] == "user: three"
    assert texts[1].startswith("user: two") and "14 bytes" in texts[1]  # the file, inline
    # the results file is the tenant's own
    assert client.files.get(name=done.dest.file_name).mime_type == "application/jsonl"
    with pytest.raises(errors.ClientError) as elsewhere:
        other.files.get(name=done.dest.file_name)
    assert elsewhere.value.code == 404

    # a file that is no JSONL of requests: 400 naming its line, nothing stored
    before = server.query("SELECT count(*) FROM batches")
    (tmp_path / "bad.jsonl").write_text('{"key": "a", "request": {}}\nnot json\n')
    bad = client.files.upload(
        file=tmp_path / "bad.jsonl", config={"mime_type": "application/jsonl"}
    )
    assert bad.name is not None
    with pytest.raises(errors.ClientError) as refused:
        client.batches.create(model="echo", src=bad.name)
    assert refused.value.code == 400 and "line" in (refused.value.message or "")
    assert server.query("SELECT count(*) FROM batches") == before


def test_each_request_is_accounted_once(server: Server, keys: dict[str, str]) -> None:
    """A batch's request costs what a direct call costs, once: one settled ledger entry and
    one upstream call each."""
    client = _client(server, keys["spend"])
    client.models.generate_content(model="priced", contents="two words")
    [(direct_usd,)] = server.query("SELECT spent_usd FROM ledger WHERE tenant = 'spend'")
    assert direct_usd == pytest.approx(2.0)  # 2 input tokens at 1 USD each
    job = _done(
        client, client.batches.create(model="priced", src=[_ask("two words")] * 3).name or ""
    )
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED
    rows = server.query("SELECT spent_usd, settled FROM ledger WHERE tenant = 'spend'")
    assert len(rows) == 4 and all(settled is not None for _, settled in rows)
    assert [usd for usd, _ in rows] == pytest.approx([2.0] * 4)
    wait_for(lambda: len(_calls(server, "priced")) == 4)
    _stays(lambda: len(_calls(server, "priced")) == 4, 0.5)


@pytest.mark.skipif(TEST_DATABASE != "postgresql", reason="procrastinate's jobs: PostgreSQL")
def test_a_batch_job_is_deferred_with_its_row_and_a_lost_one_recovered(tmp_path: Path) -> None:
    """With no worker running, a created batch's job waits in procrastinate's table; when that
    job is lost, the reconciler of the next worker queues the batch again and it runs."""
    from tests.postgres import WORKERS

    config = "heartbeat_seconds = 0.5\nstale_after_seconds = 2\nreconcile_seconds = 1\n"
    running = start_server(tmp_path, config + CONFIG, log=tmp_path / "server.log")
    try:
        assert running.worker is not None
        running.worker.terminate()
        running.worker.wait(timeout=20)
        client = _client(running, API_KEY)
        name = client.batches.create(model="echo", src=[_ask("a"), _ask("b")]).name or ""
        batch_id = name.removeprefix("batches/")
        jobs = running.query(
            "SELECT task_name, status, args::text FROM procrastinate_jobs WHERE lock = ?",
            (batch_id,),
        )
        assert jobs == [("propylon.batch", "todo", json.dumps({"batch_id": batch_id}))]
        running.query("DELETE FROM procrastinate_jobs WHERE lock = ? RETURNING id", (batch_id,))
        assert client.batches.get(name=name).state == types.JobState.JOB_STATE_PENDING
        running.worker = WORKERS.start(
            [
                sys.executable,
                "-m",
                "propylon",
                "worker",
                "--config",
                str(tmp_path / "propylon.toml"),
                "--data-dir",
                str(tmp_path),
                "--database-url",
                running.database_url or "",
            ],
            stderr=(tmp_path / "server.log").open("ab"),
        )
        job = _done(client, name, 30)
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED
        assert job.dest is not None and job.dest.inlined_responses is not None
        assert [a.response.text for a in job.dest.inlined_responses if a.response] == [
            "user: a",
            "user: b",
        ]
    finally:
        stop_server(running)


@one_process_only
def test_a_batch_cut_by_a_restart_goes_on_after_it(tmp_path: Path) -> None:
    """The in-process queue: a stop leaves the batch running; the next start answers only the
    requests it had not answered."""
    config = CONFIG.replace(f"batch_concurrency = {CONCURRENCY}", "batch_concurrency = 1")
    config = config.replace("auth_cache_seconds = 0", 'api_keys = ["plain-key"]')
    running = start_server(tmp_path, config)
    client, http = _client(running, "plain-key"), _http(running, "plain-key")
    name = client.batches.create(model="echo-resume", src=[_ask(f"r {i}") for i in range(6)]).name

    def answered() -> int:
        return int(
            http.get(f"/v1beta/{name}").json()["metadata"]["batchStats"]["successfulRequestCount"]
        )

    wait_for(lambda: answered() >= 1)
    stop_server(running)
    first = running.query("SELECT count(*) FROM batch_requests WHERE result IS NOT NULL")[0][0]
    assert isinstance(first, int) and 1 <= first < 6
    running = start_server(tmp_path, config)
    try:
        client = _client(running, "plain-key")
        job = _done(client, name or "")
        assert job.state == types.JobState.JOB_STATE_SUCCEEDED
        assert job.dest is not None and job.dest.inlined_responses is not None
        texts = [a.response.text if a.response else None for a in job.dest.inlined_responses]
        assert texts == [f"user: r {i}" for i in range(6)]
    finally:
        stop_server(running)
