"""Several processes on one PostgreSQL database and one Redis: real `propylon serve` and
`propylon worker` processes (two of each), a fresh database per module (tests/postgres.py) and
Redis database 13, loopback only. The slow model is echo with a `delay` per delta. Each test is
bounded in time (the worker's heartbeat threshold and the reconciler's period are short here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from httpx_sse import connect_sse
from standardwebhooks import Webhook

from tests.conftest import API_KEY, API_KEY_DIGEST, Server, free_port, helper, wait_for
from tests.postgres import fresh_database

REDIS_URL = "redis://127.0.0.1:6379/13"
STALE = 3.0  # stale_after_seconds
RECONCILE = 1  # reconcile_seconds
TAKEOVER = STALE + RECONCILE + 6  # bound on a dead process's runs being taken over, seconds

CONFIG = f"""
api_keys = ["sha256:{API_KEY_DIGEST}"]
stream_keepalive_seconds = 0.2
heartbeat_seconds = 0.5
stale_after_seconds = {STALE}
reconcile_seconds = {RECONCILE}
shutdown_timeout_seconds = 2
worker_concurrency = 24
webhook_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
allow_private_network_targets = true  # the webhook receiver listens on loopback

[[models]]
name = "echo"
provider = "echo"

[[models]]
name = "echo-slow"
provider = "echo"
options = {{ delay = 0.2 }}
"""
SLOW_INPUT = "slow " * 60  # echo-slow answers it in about five seconds


@dataclass
class Cluster:
    """The processes of one deployment, sharing one database and one Redis database."""

    database_url: str
    root: Path
    serves: list[Server] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    count: int = 0
    names: dict[int, str] = field(default_factory=dict)  # worker pid: its log's name

    def _args(self) -> list[str]:
        config = self.root / "propylon.toml"
        config.write_text(CONFIG)
        return [
            "--config",
            str(config),
            "--data-dir",
            str(self.root / "data"),
            "--database-url",
            self.database_url,
            "--redis-url",
            REDIS_URL,
        ]

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def serve(self) -> Server:
        """Start one more `propylon serve`; wait until it answers."""
        self.count += 1
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "propylon", "serve", "--port", str(port), *self._args()],
            stdout=subprocess.DEVNULL,
            stderr=self.log(f"serve{self.count}").open("ab"),
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert process.poll() is None, "propylon serve exited"
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 60)
        server = Server(url=url, data_dir=self.root / "data", process=process)
        self.serves.append(server)
        return server

    def worker(self, name: str | None = None) -> subprocess.Popen[bytes]:
        """Start one more `propylon worker` (its log: `<name>.log`)."""
        self.count += 1
        name = name or f"worker{self.count}"
        process = subprocess.Popen(
            [sys.executable, "-m", "propylon", "worker", *self._args()],
            stdout=subprocess.DEVNULL,
            stderr=self.log(name).open("ab"),
        )
        self.workers.append(process)
        self.names[process.pid] = name
        return process

    def started_runs(self, worker: subprocess.Popen[bytes]) -> int:
        """Run jobs `worker` has started, read from its log."""
        return self.log(self.names[worker.pid]).read_text().count("Starting job propylon.run")

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()  # type: ignore[arg-type]

    def terminal_events(self, interaction_id: str) -> int:
        return int(
            self.sql(
                "SELECT count(*) FROM events WHERE interaction_id = %s "
                "AND type = 'interaction.completed'",
                interaction_id,
            )[0][0]
        )

    def stop(self) -> None:
        for process in [*(s.process for s in self.serves), *self.workers]:
            if process.poll() is None:
                with_signal(process, signal.SIGCONT)
                process.terminate()
        for process in [*(s.process for s in self.serves), *self.workers]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def with_signal(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        os.kill(process.pid, sig)


def http(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"x-goog-api-key": API_KEY}, timeout=60)


def create(server: Server, **body: Any) -> dict[str, Any]:
    with http(server) as client:
        response = client.post(
            "/v1beta/interactions", json={"model": "echo", "input": "hello", **body}
        )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def get(server: Server, interaction_id: str) -> dict[str, Any]:
    with http(server) as client:
        response = client.get(f"/v1beta/interactions/{interaction_id}")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def status(server: Server, interaction_id: str) -> str:
    return str(get(server, interaction_id)["status"])


ENDED = {"completed", "failed", "cancelled", "incomplete"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    try:  # nothing here depends on what database 13 holds: keys and channels are per run
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}); these tests need a local one")
    with fresh_database() as url:
        running = Cluster(url, tmp_path_factory.mktemp("cluster"))
        try:
            running.serve()
            running.serve()
            running.worker()
            running.worker()
            yield running
        finally:
            running.stop()


@pytest.fixture
def two_workers(cluster: Cluster) -> Cluster:
    """The cluster with two live workers (a test before may have killed one)."""
    while len(cluster.live_workers()) < 2:
        cluster.worker()
    return cluster


def test_two_serve_and_two_workers_share_state(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    first = create(a, input="the first turn")
    assert first["status"] == "completed"
    assert get(b, first["id"])["steps"] == get(a, first["id"])["steps"]
    second = create(b, input="the second turn", previous_interaction_id=first["id"])
    assert second["status"] == "completed"
    text = str(get(a, second["id"])["steps"])
    assert "the first turn" in text and "the second turn" in text  # history read on B
    queued = create(a, input="in the background", background=True)
    assert queued["status"] in ("queued", "in_progress")
    wait_for(lambda: status(b, queued["id"]) == "completed", 30)
    assert two_workers.terminal_events(queued["id"]) == 1


def test_sigkill_of_a_worker_ends_each_of_its_runs_once(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    ids = [
        create((a, b)[n % 2], model="echo-slow", input=SLOW_INPUT, background=True)["id"]
        for n in range(40)
    ]
    # both workers have runs under way: the killed one leaves some half done
    doomed = two_workers.live_workers()[0]
    wait_for(lambda: all(two_workers.started_runs(w) >= 5 for w in two_workers.live_workers()), 20)
    killed = time.monotonic()
    doomed.kill()
    doomed.wait()

    def all_ended() -> bool:
        rows = two_workers.sql(
            "SELECT count(*) FROM interactions WHERE id = ANY(%s) AND status IN "
            "('queued', 'in_progress')",
            ids,
        )
        return rows[0][0] == 0

    wait_for(all_ended, TAKEOVER + 40 * 4 / 24 + 10)
    took = time.monotonic() - killed
    for interaction_id in ids:
        assert two_workers.terminal_events(interaction_id) == 1, interaction_id
        assert status(a, interaction_id) in ("completed", "failed")
    interrupted = [i for i in ids if status(b, i) == "failed"]
    for interaction_id in interrupted:
        errors = get(b, interaction_id).get("errors") or []
        assert any(e.get("code") == "interrupted" for e in errors), errors
    print(f"SIGKILL to last run ended: {took:.1f} s ({len(interrupted)} interrupted)")


def test_cancel_on_one_serve_of_a_run_on_a_worker(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    run = create(a, model="echo-slow", input=SLOW_INPUT, background=True)
    wait_for(lambda: len(get(a, run["id"]).get("steps") or []) > 1, 20)  # under way
    with http(b) as client:
        response = client.post(f"/v1beta/interactions/{run['id']}/cancel")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert status(a, run["id"]) == "cancelled"
    assert two_workers.terminal_events(run["id"]) == 1
    # the worker ended it itself (an asyncio cancel there): the run was claimed once, by
    # the worker, never taken over by the canceller; and its job is not retried
    assert two_workers.sql("SELECT run_epoch FROM interactions WHERE id = %s", run["id"]) == [(1,)]
    assert not two_workers.sql(
        "SELECT id FROM procrastinate_jobs WHERE lock = %s AND status IN ('todo', 'doing')",
        run["id"],
    )


def test_cancel_racing_the_pickup_never_ends_a_run_twice(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]

    def race(n: int) -> str:
        run = create((a, b)[n % 2], model="echo-slow", input="race", background=True)
        with http((b, a)[n % 2]) as client:
            response = client.post(f"/v1beta/interactions/{run['id']}/cancel")
        assert response.status_code in (200, 400), response.text
        return str(run["id"])

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(race, range(200)))
    for interaction_id in ids:
        wait_for(lambda i=interaction_id: status(a, i) in ENDED, TAKEOVER)
    counts = two_workers.sql(
        "SELECT interaction_id, count(*) FROM events WHERE interaction_id = ANY(%s) "
        "AND type = 'interaction.completed' GROUP BY interaction_id",
        ids,
    )
    assert len(counts) == 200 and all(c == 1 for _, c in counts)


def test_a_worker_paused_past_its_lease_is_fenced_out(two_workers: Cluster) -> None:
    a = two_workers.serves[0]
    for other in two_workers.live_workers():  # one worker only: the run is on `paused`
        other.terminate()
        other.wait(timeout=30)
    paused = two_workers.worker("paused")
    run = create(a, model="echo-slow", input=SLOW_INPUT * 2, background=True)
    wait_for(lambda: len(get(a, run["id"]).get("steps") or []) > 1, 30)
    with_signal(paused, signal.SIGSTOP)
    try:
        two_workers.worker()  # takes the run over once `paused` is stale
        wait_for(lambda: status(a, run["id"]) in ENDED, TAKEOVER + 10)
    finally:
        with_signal(paused, signal.SIGCONT)
    ended = get(a, run["id"])
    assert ended["status"] == "failed"
    assert any(e.get("code") == "interrupted" for e in ended.get("errors") or [])
    # its next write is refused; the run keeps its one end
    wait_for(lambda: "was taken over" in two_workers.log("paused").read_text(), 20)
    assert two_workers.terminal_events(run["id"]) == 1
    assert status(a, run["id"]) == "failed"


def frames(server: Server, path: str, *, limit: int | None = None, **kwargs: Any) -> list[Any]:
    """The SSE frames of a stream (`[DONE]` included, keep-alives left out), or its first
    `limit` (then the connection is dropped)."""
    seen = []
    with (
        http(server) as client,
        connect_sse(client, kwargs.pop("method", "GET"), path, **kwargs) as source,
    ):
        for frame in source.iter_sse():
            if not frame.data:
                continue  # a keep-alive
            seen.append(frame)
            if limit is not None and len(seen) >= limit:
                break
    return seen


def test_a_stream_dropped_on_one_serve_resumes_on_the_other(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    run = create(a, model="echo-slow", input="resume me " * 8, background=True)
    first = frames(a, f"/v1beta/interactions/{run['id']}", limit=4, params={"stream": "true"})
    rest = frames(
        b,
        f"/v1beta/interactions/{run['id']}",
        params={"stream": "true", "last_event_id": first[-1].id},
    )
    assert rest[-1].data == "[DONE]"
    whole = frames(b, f"/v1beta/interactions/{run['id']}", params={"stream": "true"})
    assert [f.id for f in first + rest[:-1]] == [f.id for f in whole[:-1]]  # no gap, no dup
    assert json.loads(rest[-2].data)["interaction"]["status"] == "completed"


def test_one_idempotency_key_on_two_serves_runs_once(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    body = {"model": "echo-slow", "input": "once", "store": True}

    def post(server: Server) -> dict[str, Any]:
        with http(server) as client:
            response = client.post(
                "/v1beta/interactions", json=body, headers={"Idempotency-Key": "same-key-1"}
            )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, [a, b, a, b]))
    assert len({answer["id"] for answer in answers}) == 1
    assert two_workers.sql(
        "SELECT count(*) FROM interactions WHERE input = %s", json.dumps("once")
    ) == [(1,)]


def test_a_third_serve_starting_disturbs_no_live_run(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    background = create(a, model="echo-slow", input=SLOW_INPUT, background=True)
    with ThreadPoolExecutor(1) as pool:
        foreground = pool.submit(
            frames,
            b,
            "/v1beta/interactions",
            method="POST",
            json={"model": "echo-slow", "input": "foreground " * 6, "stream": True},
        )
        wait_for(lambda: len(get(a, background["id"]).get("steps") or []) > 1, 20)
        two_workers.serve()  # its start-up closes and re-runs nothing of the others'
        streamed = foreground.result(timeout=60)
    assert streamed[-1].data == "[DONE]"
    assert json.loads(streamed[-2].data)["interaction"]["status"] == "completed"
    wait_for(lambda: status(a, background["id"]) in ENDED, 30)
    assert status(a, background["id"]) == "completed"
    assert two_workers.terminal_events(background["id"]) == 1


def test_sigkill_of_a_serve_mid_stream_closes_its_run(two_workers: Cluster) -> None:
    a = two_workers.serves[0]
    doomed = two_workers.serve()
    seen = frames(
        doomed,
        "/v1beta/interactions",
        limit=3,
        method="POST",
        json={"model": "echo-slow", "input": SLOW_INPUT, "stream": True},
    )
    interaction_id = json.loads(seen[0].data)["interaction"]["id"]
    doomed.process.kill()
    doomed.process.wait()
    wait_for(lambda: status(a, interaction_id) in ENDED, TAKEOVER)
    ended = get(a, interaction_id)
    assert ended["status"] == "failed"
    assert any(e.get("code") == "interrupted" for e in ended.get("errors") or [])
    assert two_workers.terminal_events(interaction_id) == 1


def test_redis_pubsub_killed_mid_stream_every_stream_ends(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    runs = [
        create((a, b)[n % 2], model="echo-slow", input="pubsub " * 10, background=True)["id"]
        for n in range(6)
    ]
    with ThreadPoolExecutor(len(runs)) as pool:
        streams = [
            pool.submit(
                frames, (b, a)[n % 2], f"/v1beta/interactions/{i}", params={"stream": "true"}
            )
            for n, i in enumerate(runs)
        ]
        wait_for(lambda: all(len(get(a, i).get("steps") or []) > 1 for i in runs), 20)
        redis.Redis.from_url(REDIS_URL).client_kill_filter(_type="pubsub")
        ended = [stream.result(timeout=60) for stream in streams]
    for stream in ended:
        assert stream[-1].data == "[DONE]"
        assert json.loads(stream[-2].data)["event_type"] == "interaction.completed"


def test_a_worker_whose_connections_are_terminated_recovers(two_workers: Cluster) -> None:
    a = two_workers.serves[0]
    create(a, background=True)  # the workers are connected
    killed = two_workers.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'propylon-worker%%'"
    )
    assert killed and all(row[0] for row in killed)
    runs = [create(a, input=f"after {n}", background=True)["id"] for n in range(6)]
    for interaction_id in runs:
        wait_for(lambda i=interaction_id: status(a, i) == "completed", TAKEOVER + 10)
    assert all(w.poll() is None for w in two_workers.workers[-2:])


def test_rpm_limits_hold_across_serve_processes(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "propylon",
            "keys",
            "create",
            "--tenant",
            "limited",
            "--rpm",
            "4",
            *two_workers._args()[:-2],  # no --redis-url: keys touch the database only
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    secret = made.stdout.split("api key:")[1].split()[0]
    codes = []
    for n in range(8):
        with httpx.Client(
            base_url=(a, b)[n % 2].url, headers={"x-goog-api-key": secret}, timeout=30
        ) as client:
            codes.append(
                client.post(
                    "/v1beta/interactions", json={"model": "echo", "input": "x"}
                ).status_code
            )
    assert codes.count(200) == 4 and codes.count(429) == 4, codes


def test_sigterm_of_a_worker_hands_its_runs_back(two_workers: Cluster) -> None:
    a = two_workers.serves[0]
    ids = [create(a, model="echo-slow", input=SLOW_INPUT, background=True)["id"] for _ in range(10)]
    stopping = two_workers.live_workers()[0]
    wait_for(lambda: all(two_workers.started_runs(w) >= 2 for w in two_workers.live_workers()), 20)
    stopping.terminate()
    assert stopping.wait(timeout=20) == 0  # shutdown_timeout_seconds = 2, then hands back
    for interaction_id in ids:
        wait_for(lambda i=interaction_id: status(a, i) in ENDED, 30)
        assert two_workers.terminal_events(interaction_id) == 1
        ended = get(a, interaction_id)
        assert ended["status"] in ("completed", "failed")  # a stop is never a user cancel
        if ended["status"] == "failed":
            assert [e["code"] for e in ended["errors"]] == ["interrupted"]


def test_webhook_deliveries_go_out_once_from_the_workers(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    with helper("webhook_receiver.py") as receiver:
        hook = {"uris": [f"{receiver}/hook/spread"]}
        foreground = create(a, webhook_config=hook)  # its delivery is queued by serve A
        background = create(b, webhook_config=hook, background=True)  # by a worker

        def received() -> list[dict[str, Any]]:
            got: list[dict[str, Any]] = httpx.get(f"{receiver}/received/spread").json()
            return got

        wait_for(lambda: len(received()) >= 2, 20)
        with http(b) as client:
            secret = client.get("/v1beta/webhooks:signingSecret").json()["secret"]
        delivered = [
            Webhook(secret).verify(d["body"], d["headers"])["data"]["id"] for d in received()
        ]
    assert sorted(delivered) == sorted([foreground["id"], background["id"]])  # each once
