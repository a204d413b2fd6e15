"""The spend and token ledger: budgets hold against `store=false` runs, deletes, the retention
purge, concurrent creates and a crash, against a real server and a priced upstream on loopback.

Every run of the `pricey` model costs 1.00 USD: the fault-injecting upstream reports 10 tokens
(5 input, 2 cached, 3 output) and every token costs 0.10 USD.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import alembic.command
import alembic.config
import httpx
import pytest

from propylon.domain.clock import now
from propylon.store import migrate
from propylon.store.sqlite import SQLiteStore
from propylon.store.sqlite_ledger import SQLiteLedgerStore
from tests.conftest import (
    Server,
    new_key,
    one_process_only,
    start_server,
    stop_server,
    wait_for,
)

RUN_USD = 1.0


def _config(upstream: str, extra: str = "") -> str:
    return f"""
auth_cache_seconds = 0
{extra}
[[models]]
name = "pricey"
[[models.targets]]
provider = "openai"
base_url = "{upstream}/v1"
model = "primary"
max_attempts = 1
price_input_per_million = 100000.0
price_output_per_million = 100000.0
price_cached_per_million = 100000.0
"""


def _body(run: str, script: str = "ok", **fields: object) -> dict[str, object]:
    return {"model": "pricey", "input": f"id={run} primary={script}", **fields}


def _calls(upstream: str, run: str) -> int:
    return int(httpx.get(f"{upstream}/calls/{run}").json().get("primary", 0))


def _refused_for_budget(response: httpx.Response) -> bool:
    return response.status_code == 429 and "budget" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger")


@pytest.fixture(scope="module")
def keys(data_dir: Path) -> dict[str, str]:
    day = ("--budget-period", "day")
    return {
        "store-false": new_key(data_dir, "--budget-usd", "1.5", *day),
        "tpm": new_key(data_dir, "--tpm", "10"),
        "delete": new_key(data_dir, "--budget-usd", "1.5", *day),
        # a ceiling of 20 tokens: each run reserves 2.00 USD
        "concurrent": new_key(data_dir, "--budget-usd", "0.5", "--max-tokens", "20", *day),
    }


@pytest.fixture(scope="module")
def server(upstream: str, data_dir: Path, keys: dict[str, str]) -> Iterator[Server]:
    running = start_server(data_dir, _config(upstream))
    yield running
    stop_server(running)


def test_store_false_runs_are_counted(server: Server, keys: dict[str, str], upstream: str) -> None:
    run = uuid.uuid4().hex[:10]
    with server.http(keys["store-false"]) as http:
        for _ in range(2):  # 0.00, then 1.00 USD spent: under the 1.50 budget
            answer = http.post("/v1beta/interactions", json=_body(run, store=False))
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "completed"
        refused = http.post("/v1beta/interactions", json=_body(run, store=False))
    assert _refused_for_budget(refused), refused.text
    assert _calls(upstream, run) == 2


def test_store_false_runs_count_against_tokens_per_minute(
    server: Server, keys: dict[str, str]
) -> None:
    run = uuid.uuid4().hex[:10]
    with server.http(keys["tpm"]) as http:
        first = http.post("/v1beta/interactions", json=_body(run, store=False))
        assert first.status_code == 200, first.text  # 10 tokens: the whole minute's allowance
        refused = http.post("/v1beta/interactions", json=_body(run, store=False))
    assert refused.status_code == 429, refused.text
    assert "tokens-per-minute" in refused.json()["error"]["message"]


def test_deleting_interactions_does_not_refund(server: Server, keys: dict[str, str]) -> None:
    run = uuid.uuid4().hex[:10]
    with server.http(keys["delete"]) as http:
        for _ in range(2):
            answer = http.post("/v1beta/interactions", json=_body(run))
            assert answer.status_code == 200, answer.text
            assert http.delete(f"/v1beta/interactions/{answer.json()['id']}").status_code == 200
        refused = http.post("/v1beta/interactions", json=_body(run))
    assert _refused_for_budget(refused), refused.text


def test_concurrent_creates_spend_at_most_the_budget_plus_one_ceiling(
    server: Server, keys: dict[str, str], upstream: str
) -> None:
    run = uuid.uuid4().hex[:10]
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def create() -> None:
        with server.http(keys["concurrent"]) as http:
            answer = http.post("/v1beta/interactions", json=_body(run, "slow"))  # 3 s each
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    completed = [a for a in answers if a.status_code == 200]
    assert len(answers) == 8
    assert all(_refused_for_budget(a) for a in answers if a.status_code != 200)
    assert completed and {a.json()["status"] for a in completed} == {"completed"}
    spent = _calls(upstream, run) * RUN_USD
    assert spent == len(completed) * RUN_USD
    assert spent <= 0.5 + 2.0  # the budget plus one run's ceiling (20 tokens at 0.10 USD)


def test_the_purge_does_not_refund(upstream: str, tmp_path: Path) -> None:
    data = tmp_path / "purged"
    data.mkdir()
    secret = new_key(data, "--budget-usd", "1.5", "--budget-period", "day")
    # 0.00002 days: about 1.7 s
    server = start_server(
        data, _config(upstream, "retention_days = 0.00002\npurge_interval_seconds = 0.2")
    )
    run = uuid.uuid4().hex[:10]
    try:
        with server.http(secret) as http:
            for _ in range(2):
                answer = http.post("/v1beta/interactions", json=_body(run))
                assert answer.status_code == 200, answer.text
                path = f"/v1beta/interactions/{answer.json()['id']}"
                wait_for(lambda p=path: http.get(p).status_code == 404, 20)  # purged
            refused = http.post("/v1beta/interactions", json=_body(run))
        assert _refused_for_budget(refused), refused.text
    finally:
        stop_server(server)


@one_process_only
def test_a_crashed_run_keeps_its_reservation(upstream: str, tmp_path: Path) -> None:
    data = tmp_path / "crash"
    data.mkdir()
    secret = new_key(data, "--budget-usd", "0.5", "--max-tokens", "20", "--budget-period", "day")
    server = start_server(data, _config(upstream))
    run = uuid.uuid4().hex[:10]
    with server.http(secret) as http:
        started = http.post("/v1beta/interactions", json=_body(run, "slow", background=True))
        assert started.status_code == 200, started.text
        path = f"/v1beta/interactions/{started.json()['id']}"
        wait_for(lambda: len(http.get(path).json()["steps"]) > 1)  # output under way
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)

    restarted = start_server(data, _config(upstream))
    try:
        with restarted.http(secret) as http:
            interrupted = http.get(path).json()
            assert interrupted["status"] == "failed"
            assert interrupted["errors"][0]["code"] == "interrupted"
            # what the lost run cost upstream is not known: it is charged its reservation
            refused = http.post("/v1beta/interactions", json=_body(run))
        assert _refused_for_budget(refused), refused.text
        assert _calls(upstream, run) == 1
    finally:
        stop_server(restarted)


def test_a_tenant_budget_spans_its_keys(upstream: str, tmp_path: Path) -> None:
    data = tmp_path / "tenant"
    data.mkdir()
    first, second = new_key(data), new_key(data)
    tenant = '[tenants.acme]\nbudget_usd = 1.5\nbudget_period = "day"\n'
    server = start_server(data, _config(upstream) + tenant)
    run = uuid.uuid4().hex[:10]
    try:
        for secret in (first, second):  # 0.00, then 1.00 USD spent by the tenant
            with server.http(secret) as http:
                answer = http.post("/v1beta/interactions", json=_body(run, store=False))
                assert answer.status_code == 200, answer.text
        with server.http(first) as http:
            refused = http.post("/v1beta/interactions", json=_body(run))
        assert _refused_for_budget(refused), refused.text
        assert "tenant `acme`" in refused.json()["error"]["message"]
    finally:
        stop_server(server)


def test_an_upgrade_keeps_the_spend_of_stored_interactions(tmp_path: Path) -> None:
    database = tmp_path / "propylon.db"
    config = alembic.config.Config()
    config.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{database}")
    alembic.command.upgrade(config, "0006")  # before the ledger
    with sqlite3.connect(database) as conn:
        conn.execute(
            "INSERT INTO interactions (id, status, created, updated, request, input_steps, "
            "cost_usd, usage, tenant, api_key_id) VALUES ('v1_old', 'completed', ?, ?, '{}', "
            "'[]', 1.25, '{\"total_tokens\": 10}', 'acme', 'key_1')",
            (now(), now()),
        )

    async def scenario() -> None:
        store = SQLiteStore(database)
        await store.open()
        try:
            ledger = SQLiteLedgerStore(store)
            spent = await ledger.committed("2000-01-01T00:00:00Z", api_key_id="key_1")
            assert spent == (1.25, 10)
        finally:
            await store.close()

    asyncio.run(scenario())
