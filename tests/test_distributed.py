"""Several processes on one PostgreSQL database and one Redis: real `propylon serve` and
`propylon worker` processes (two of each), a fresh database per module (tests/postgres.py) and
a `redis-server` of this module's own on a free loopback port (the tests kill and restart it).
The slow model is echo with a `delay` per delta. Each test is bounded in time (the worker's
heartbeat threshold and the reconciler's period are short here).

A crash between two steps is reproduced for real: a test holds a row or table lock in
PostgreSQL, so the process under test stops at the statement that needs it (seen in
`pg_stat_activity`), and SIGKILLs it there.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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

STALE = 3.0  # stale_after_seconds: a process whose heartbeat is older is dead
RECONCILE = 1  # reconcile_seconds: the reconciler's period
TAKEOVER = STALE + RECONCILE + 6  # bound on a dead process's runs being taken over, seconds
CHUNK, DELAY = 8, 0.2  # echo's characters per delta; echo-slow's seconds per delta

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
SLOW_INPUT = "slow " * 60


def answer_seconds(text: str) -> float:
    """How long echo-slow takes to answer `text` (it echoes `user: <text>`)."""
    return math.ceil(len(f"user: {text}") / CHUNK) * DELAY


RUN = answer_seconds(SLOW_INPUT)  # about 8 s


REDIS_OPTIONS = ("--bind", "127.0.0.1", "--save", "", "--appendonly", "no")  # nothing kept


@dataclass
class RedisServer:
    """A `redis-server` of this module's own (no persistence), on `port`."""

    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, *REDIS_OPTIONS, "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
        )

        def up() -> bool:
            assert self.process is not None and self.process.poll() is None, "redis exited"
            try:
                return bool(redis.Redis.from_url(self.url).ping())
            except redis.ConnectionError:
                return False

        wait_for(up, 20)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    """The processes of one deployment, sharing one database and one Redis database."""

    database_url: str
    root: Path
    redis: RedisServer
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
            self.redis.url,
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

    def job_states(self, interaction_id: str) -> list[tuple[str, bool]]:
        """(status, abort_requested) of each procrastinate job of the run, oldest first."""
        rows = self.sql(
            "SELECT status::text, abort_requested FROM procrastinate_jobs WHERE lock = %s "
            "ORDER BY id",
            interaction_id,
        )
        return [(str(s), bool(a)) for s, a in rows]

    def waits_on_a_lock(self, process: subprocess.Popen[bytes], query: str = "") -> bool:
        """Whether a connection of `process` waits for a lock, in a statement with `query`."""
        return bool(
            self.sql(
                "SELECT 1 FROM pg_stat_activity WHERE application_name LIKE %s "
                "AND wait_event_type = 'Lock' AND query LIKE %s",
                f"propylon-%-{process.pid}-%",
                f"%{query}%",
            )
        )

    def stop_workers(self) -> None:
        """Stop every worker (gracefully): no job is taken until one starts again."""
        for worker in self.live_workers():
            worker.terminate()
            worker.wait(timeout=30)

    def started(self, interaction_id: str) -> int:
        """How many times a worker started a job of the run (from the workers' logs)."""
        return sum(
            1
            for name in self.names.values()
            for line in self.log(name).read_text().splitlines()
            if "Starting job propylon.run" in line and interaction_id in line
        )

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
    if not (shutil.which("redis-server") or Path("/usr/bin/redis-server").exists()):
        pytest.fail("these tests start a `redis-server` of their own: none is installed")
    own_redis = RedisServer(free_port())
    own_redis.start()
    with fresh_database() as url:
        running = Cluster(url, tmp_path_factory.mktemp("cluster"), own_redis)
        try:
            running.serve()
            running.serve()
            running.worker()
            running.worker()
            yield running
        finally:
            running.stop()
            if own_redis.running():
                own_redis.kill()


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

    # The killed worker's jobs are stalled once its heartbeat is STALE old (it beat at most
    # 0.5 s before the kill), the next reconcile pass (every RECONCILE s) retries them, and the
    # other worker ends each at once (it had steps: `interrupted`) or runs it again from the
    # start (RUN s: every run fits in its 24 slots). MARGIN: a job's pickup, the periodic
    # pass's own scheduling, and a re-run stretched by a loaded 2-core machine (measured: 11.8 s
    # in the full suite, 16.0 s alone under load average 6, against 14.8 s with 3 s).
    margin = 8.0
    bound = STALE + RECONCILE + RUN + margin
    wait_for(all_ended, bound)
    took = time.monotonic() - killed
    assert took <= bound
    for interaction_id in ids:
        assert two_workers.terminal_events(interaction_id) == 1, interaction_id
        assert status(a, interaction_id) in ("completed", "failed")
    interrupted = [i for i in ids if status(b, i) == "failed"]
    for interaction_id in interrupted:
        errors = get(b, interaction_id).get("errors") or []
        assert any(e.get("code") == "interrupted" for e in errors), errors
    print(
        f"SIGKILL to last run ended: {took:.1f} s, bound {bound:.1f} s "
        f"({len(interrupted)} interrupted)"
    )


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
    """200 background runs, each cancelled (on the other serve) as soon as it is created: a
    200 answer means the run ended `cancelled`, a 400 that it had ended first (`completed`),
    and every run has exactly one terminal event. Some cancels really hit runs that a worker
    had already taken (their job was aborted, not cancelled in the queue)."""
    a, b = two_workers.serves[:2]

    def race(n: int) -> tuple[str, int]:
        run = create((a, b)[n % 2], model="echo-slow", input="race", background=True)
        with http((b, a)[n % 2]) as client:
            response = client.post(f"/v1beta/interactions/{run['id']}/cancel")
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            assert "has already finished" in response.json()["error"]["message"]
        return str(run["id"]), response.status_code

    with ThreadPoolExecutor(8) as pool:
        answers = dict(pool.map(race, range(200)))
    for interaction_id in answers:
        wait_for(lambda i=interaction_id: status(a, i) in ENDED, TAKEOVER)
    counts = dict(
        two_workers.sql(
            "SELECT interaction_id, count(*) FROM events WHERE interaction_id = ANY(%s) "
            "AND type = 'interaction.completed' GROUP BY interaction_id",
            list(answers),
        )
    )
    assert len(counts) == 200 and all(c == 1 for c in counts.values())
    rows = two_workers.sql(
        "SELECT id, status, run_epoch FROM interactions WHERE id = ANY(%s)", list(answers)
    )
    outcome: Counter[str] = Counter()
    epochs: Counter[int] = Counter()  # claims of each cancelled run (2: the canceller took over)
    for interaction_id, ended, epoch in rows:
        code = answers[interaction_id]
        assert ended == ("cancelled" if code == 200 else "completed"), (interaction_id, code)
        if code == 400:
            outcome["400: completed first"] += 1
            continue
        # its job: cancelled while queued, or taken by a worker: then aborted there, or
        # succeeded and deleted (the worker's run ended it `cancelled` and returned, or found
        # it ended by the canceller)
        jobs = two_workers.job_states(interaction_id)
        assert all(aborted for _, aborted in jobs), jobs  # no job but the aborted one
        if jobs == [("cancelled", True)]:
            outcome["200: cancelled in the queue"] += 1
        else:
            assert [state for state, _ in jobs] in ([], ["failed"], ["aborted"]), jobs
            outcome["200: cancelled after a worker had taken it"] += 1
        epochs[epoch] += 1
    print(f"cancel race: {dict(outcome)}; run epochs of the cancelled runs: {dict(epochs)}")
    assert outcome["200: cancelled after a worker had taken it"] > 0  # a race did happen


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
    run = create(a, model="echo-slow", input="resume me " * 20, background=True)  # ~5 s
    first = frames(a, f"/v1beta/interactions/{run['id']}", limit=4, params={"stream": "true"})
    # dropped while the run goes on: the other serve sees it still running, its log shorter
    ((stored_then,),) = two_workers.sql(
        "SELECT last_seq FROM interactions WHERE id = %s", run["id"]
    )
    assert status(b, run["id"]) == "in_progress"
    rest = frames(
        b,
        f"/v1beta/interactions/{run['id']}",
        params={"stream": "true", "last_event_id": first[-1].id},
    )
    assert rest[-1].data == "[DONE]"
    whole = frames(b, f"/v1beta/interactions/{run['id']}", params={"stream": "true"})
    assert [f.id for f in first + rest[:-1]] == [f.id for f in whole[:-1]]  # no gap, no dup
    assert json.loads(rest[-2].data)["interaction"]["status"] == "completed"
    assert stored_then < len(whole) - 1  # the resumed stream carried events written later


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


def stream_all(
    pool: ThreadPoolExecutor, serves: list[Server], runs: list[str]
) -> list[Future[list[Any]]]:
    """Each run's stream from its start, read in `pool`, on the serves in turn."""
    return [
        pool.submit(
            frames, serves[n % len(serves)], f"/v1beta/interactions/{i}", params={"stream": "true"}
        )
        for n, i in enumerate(runs)
    ]


def assert_whole(cluster: Cluster, interaction_id: str, stream: list[Any]) -> None:
    """`stream` ended with the run's `interaction.completed` (`completed`) and `[DONE]`, and
    carried every stored event once, in order."""
    assert stream[-1].data == "[DONE]"
    last = json.loads(stream[-2].data)
    assert last["event_type"] == "interaction.completed"
    assert last["interaction"]["status"] == "completed"
    ((stored,),) = cluster.sql("SELECT last_seq FROM interactions WHERE id = %s", interaction_id)
    ids = [frame.id for frame in stream[:-1]]
    assert len(ids) == len(set(ids)) == stored


def test_redis_pubsub_killed_mid_stream_every_stream_ends(two_workers: Cluster) -> None:
    a, b = two_workers.serves[:2]
    runs = [
        create((a, b)[n % 2], model="echo-slow", input="pubsub " * 10, background=True)["id"]
        for n in range(6)
    ]
    with ThreadPoolExecutor(len(runs)) as pool:
        streams = stream_all(pool, [b, a], runs)
        wait_for(lambda: all(len(get(a, i).get("steps") or []) > 1 for i in runs), 20)
        killed = redis.Redis.from_url(two_workers.redis.url).client_kill_filter(_type="pubsub")
        assert killed >= 2  # each serve's listener, at least
        ended = [stream.result(timeout=60) for stream in streams]
    for interaction_id, stream in zip(runs, ended, strict=True):
        assert_whole(two_workers, interaction_id, stream)


def test_redis_killed_and_restarted_mid_stream_every_stream_ends(two_workers: Cluster) -> None:
    """Redis SIGKILLed while runs stream: the streams of the short runs end while it is
    down (their serves poll the store), the long ones' once it is back on the same port; runs
    created after that stream too."""
    a, b = two_workers.serves[:2]
    short = answer_seconds("short " * 28)  # about 4.5 s
    assert answer_seconds("long " * 100) > short + 8  # still running once Redis is back
    runs = {
        create((a, b)[n % 2], model="echo-slow", input=text, background=True)["id"]: kind
        for n, (kind, text) in enumerate(
            [("short", "short " * 28)] * 4 + [("long", "long " * 100)] * 4
        )
    }
    with ThreadPoolExecutor(len(runs)) as pool:
        streams = dict(zip(runs, stream_all(pool, [b, a], list(runs)), strict=True))
        wait_for(lambda: all(len(get(a, i).get("steps") or []) > 1 for i in runs), 20)
        two_workers.redis.kill()
        down = time.monotonic()
        # every stream was under way when Redis went
        assert not any(stream.done() for stream in streams.values())
        assert two_workers.sql(
            "SELECT count(*) FROM interactions WHERE id = ANY(%s) AND status = 'in_progress'",
            list(runs),
        ) == [(len(runs),)]
        for interaction_id, kind in runs.items():
            if kind == "short":  # ends while Redis is down: read from the store
                assert_whole(two_workers, interaction_id, streams[interaction_id].result(30))
        assert not two_workers.redis.running()
        assert not any(streams[i].done() for i, kind in runs.items() if kind == "long")
        print(f"the short runs' streams ended {time.monotonic() - down:.1f} s into the outage")
        two_workers.redis.start()
        print(f"Redis down for {time.monotonic() - down:.1f} s")
        for interaction_id, kind in runs.items():
            if kind == "long":
                assert_whole(two_workers, interaction_id, streams[interaction_id].result(60))
        after = [create(a, model="echo-slow", input="after", background=True)["id"]]
        after += [create(b, model="echo-slow", input="after " * 3, background=True)["id"]]
        for interaction_id, stream in zip(after, stream_all(pool, [b, a], after), strict=True):
            assert_whole(two_workers, interaction_id, stream.result(30))


def test_a_worker_whose_connections_are_terminated_recovers(two_workers: Cluster) -> None:
    """Every connection of both workers terminated (pg_terminate_backend) while they run
    background runs: each run still ends exactly once, never `cancelled` (no user asked), the
    workers live on and take new runs."""
    a, b = two_workers.serves[:2]
    text = "terminated " * 30  # about 7 s
    runs = [
        create((a, b)[n % 2], model="echo-slow", input=text, background=True)["id"]
        for n in range(8)
    ]
    wait_for(lambda: all(len(get(a, i).get("steps") or []) > 1 for i in runs), 20)
    killed = two_workers.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name LIKE 'propylon-worker%%'"
    )
    assert len(killed) >= 4 and all(row[0] for row in killed)  # two pools per worker at least
    unended = two_workers.sql(
        "SELECT count(*) FROM interactions WHERE id = ANY(%s) AND status = 'in_progress'", runs
    )
    assert unended[0][0] > 0  # they were in flight when their connections went
    for interaction_id in runs:
        wait_for(lambda i=interaction_id: status(a, i) in ENDED, TAKEOVER + answer_seconds(text))
    outcome: Counter[str] = Counter()
    for interaction_id in runs:
        assert two_workers.terminal_events(interaction_id) == 1
        ended = get(a, interaction_id)
        assert ended["status"] in ("completed", "failed"), ended["status"]
        if ended["status"] == "failed":
            assert ended.get("errors"), ended
        outcome[ended["status"]] += 1
    print(f"runs in flight when their worker's connections were terminated: {dict(outcome)}")
    after = [create(a, input=f"after {n}", background=True)["id"] for n in range(6)]
    for interaction_id in after:
        wait_for(lambda i=interaction_id: status(a, i) == "completed", TAKEOVER + 10)
    assert all(w.poll() is None for w in two_workers.workers[-2:])


def _kill_the_canceller_at_the_run_lock(
    cluster: Cluster, canceller: Server, run: str, job_status: str
) -> None:
    """Cancel `run` at `canceller` and SIGKILL that serve once its cancel has marked the job
    (`job_status`, abort requested) and waits to take the run over (a row lock held here)."""
    with psycopg.connect(cluster.database_url) as blocker, ThreadPoolExecutor(1) as pool:
        blocker.execute("SELECT id FROM interactions WHERE id = %s FOR UPDATE", (run,))
        cancel = pool.submit(http(canceller).post, f"/v1beta/interactions/{run}/cancel")
        wait_for(lambda: cluster.job_states(run) == [(job_status, True)], 20)
        wait_for(lambda: cluster.waits_on_a_lock(canceller.process, "run_epoch"), 20)
        canceller.process.kill()
        canceller.process.wait()
        blocker.rollback()
        with pytest.raises(httpx.TransportError):
            cancel.result(timeout=30)


def test_a_cancel_whose_serve_dies_before_ending_the_run_is_never_run(two_workers: Cluster) -> None:
    """The serve cancelling a queued run is SIGKILLed after the cancel reached the run's job
    (cancelled) and before it ended the run (still `queued`): the run ends `cancelled`, once,
    and never runs: a user's cancel is never re-queued."""
    a = two_workers.serves[0]
    two_workers.stop_workers()  # the run stays in the queue
    doomed = two_workers.serve()
    run = create(doomed, model="echo-slow", input="never run", background=True)["id"]
    assert two_workers.job_states(run) == [("todo", False)]
    _kill_the_canceller_at_the_run_lock(two_workers, doomed, run, "cancelled")
    # what the crash left: the job cancelled, the run not ended
    assert status(a, run) == "queued"
    two_workers.worker()  # the reconciler's passes run on workers
    wait_for(lambda: status(a, run) in ENDED, STALE + RECONCILE + 10)
    ended = get(a, run)
    assert ended["status"] == "cancelled"
    assert two_workers.terminal_events(run) == 1
    assert not [s for s in ended["steps"] if s.get("type") == "model_output"]
    assert two_workers.started(run) == 0
    assert two_workers.job_states(run) == [("cancelled", True)]  # no job queued again


def test_a_cancel_of_a_dead_workers_run_whose_serve_dies_is_never_retried(
    two_workers: Cluster,
) -> None:
    """The worker running a run is SIGKILLed, a cancel reaches its job (abort requested,
    still `doing`: nobody runs it), and the canceller is SIGKILLed where it would end the run:
    the reconciler, taking the stalled job over, keeps the cancel: the run ends `cancelled`,
    once, and its job is not retried."""
    a = two_workers.serves[0]
    two_workers.stop_workers()
    dead = two_workers.worker()
    doomed = two_workers.serve()
    run = create(doomed, model="echo-slow", input=SLOW_INPUT, background=True)["id"]
    wait_for(lambda: len(get(a, run).get("steps") or []) > 1, 30)  # under way on `dead`
    dead.kill()
    dead.wait()
    _kill_the_canceller_at_the_run_lock(two_workers, doomed, run, "doing")
    assert status(a, run) == "in_progress"
    two_workers.worker()  # its reconciler finds the dead worker's job stalled
    wait_for(lambda: status(a, run) in ENDED, TAKEOVER + 10)
    ended = get(a, run)
    assert ended["status"] == "cancelled", ended.get("errors")
    assert two_workers.terminal_events(run) == 1
    assert two_workers.job_states(run) == [("failed", True)]  # no job queued again
    assert two_workers.started(run) == 1


def test_a_cancel_reaching_a_worker_early_in_its_run_ends_the_run_there(
    two_workers: Cluster,
) -> None:
    """The abort reaches the worker while it is still rebuilding the run (its epoch claimed,
    its log being read), and the canceller is SIGKILLed before it ends the run: the worker
    ends it `cancelled` itself, once; it is never run."""
    a = two_workers.serves[0]
    two_workers.stop_workers()
    doomed = two_workers.serve()
    run = create(doomed, model="echo-slow", input="never run", background=True)["id"]
    with (
        psycopg.connect(two_workers.database_url) as events_lock,
        psycopg.connect(two_workers.database_url) as row_lock,
        ThreadPoolExecutor(1) as pool,
    ):
        events_lock.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
        worker = two_workers.worker()  # claims the run, then waits to read its log
        wait_for(lambda: two_workers.waits_on_a_lock(worker, "events"), 30)
        assert two_workers.sql("SELECT run_epoch FROM interactions WHERE id = %s", run) == [(1,)]
        # whoever ends the run next waits for its row
        row_lock.execute("SELECT id FROM interactions WHERE id = %s FOR UPDATE", (run,))
        cancel = pool.submit(http(doomed).post, f"/v1beta/interactions/{run}/cancel")
        wait_for(lambda: [aborted for _, aborted in two_workers.job_states(run)] == [True], 20)
        # the canceller's bounded wait is over: it would take the run over now
        wait_for(lambda: two_workers.waits_on_a_lock(doomed.process, "run_epoch"), 20)
        doomed.process.kill()
        doomed.process.wait()
        events_lock.rollback()
        row_lock.rollback()
        with pytest.raises(httpx.TransportError):
            cancel.result(timeout=30)
    wait_for(lambda: status(a, run) in ENDED, STALE + RECONCILE + 10)
    ended = get(a, run)
    assert ended["status"] == "cancelled"
    assert two_workers.terminal_events(run) == 1
    assert not [s for s in ended["steps"] if s.get("type") == "model_output"]
    # the worker ended it under its own claim: not taken over, not run again
    assert two_workers.sql("SELECT run_epoch FROM interactions WHERE id = %s", run) == [(1,)]
    wait_for(lambda: two_workers.job_states(run) == [("failed", True)], 20)
    assert two_workers.started(run) == 1


def test_the_reservations_of_a_dead_serve_are_settled_never_a_live_ones(
    two_workers: Cluster,
) -> None:
    """A serve SIGKILLed with a `store=false` run under way leaves its reservation open: the
    reconciler settles it (at the reservation) once the serve's heartbeat is stale, while the
    reservation of a run still going on a live serve stays open until that run ends."""
    a = two_workers.serves[0]
    made = subprocess.run(
        [
            *(sys.executable, "-m", "propylon", "keys", "create"),
            *("--tenant", "budgeted", "--budget-usd", "100"),
            *two_workers._args()[:-2],  # no --redis-url: keys touch the database only
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    secret = made.stdout.split("api key:")[1].split()[0]

    def stream(server: Server, text: str) -> list[Any]:
        with (
            httpx.Client(
                base_url=server.url, headers={"x-goog-api-key": secret}, timeout=60
            ) as client,
            connect_sse(
                client,
                "POST",
                "/v1beta/interactions",
                json={"model": "echo-slow", "input": text, "stream": True, "store": False},
            ) as source,
        ):
            return [f for f in source.iter_sse() if f.data]

    def open_reservations() -> list[str]:
        rows = two_workers.sql(
            "SELECT interaction_id FROM ledger WHERE tenant = 'budgeted' AND settled IS NULL"
        )
        return [str(row[0]) for row in rows]

    doomed = two_workers.serve()
    with ThreadPoolExecutor(2) as pool:
        lost = pool.submit(stream, doomed, SLOW_INPUT)
        wait_for(lambda: len(open_reservations()) == 1, 20)
        (lost_id,) = open_reservations()
        doomed.process.kill()
        doomed.process.wait()
        with pytest.raises(httpx.TransportError):
            lost.result(timeout=30)
        killed = time.monotonic()
        text = "live " * 100  # about 13 s: longer than a dead serve takes to be settled
        live = pool.submit(stream, a, text)
        wait_for(lambda: len(open_reservations()) == 2, 20)
        wait_for(lambda: lost_id not in open_reservations(), STALE + RECONCILE + 5)
        print(f"a dead serve's reservation settled {time.monotonic() - killed:.1f} s after")
        assert not live.done()  # its run goes on, its reservation open
        (live_id,) = open_reservations()
        owners = dict(
            two_workers.sql(
                "SELECT interaction_id, owner FROM ledger WHERE interaction_id = ANY(%s)",
                [lost_id, live_id],
            )
        )
        assert f"-{doomed.process.pid}-" in owners[lost_id]
        assert f"-{a.process.pid}-" in owners[live_id]
        settled = two_workers.sql(
            "SELECT spent_usd = reserved_usd, spent_tokens = reserved_tokens FROM ledger "
            "WHERE interaction_id = %s",
            lost_id,
        )
        assert settled == [(True, True)]  # charged its reservation: its spend is not known
        frames_seen = live.result(timeout=answer_seconds(text) + 10)
    assert frames_seen[-1].data == "[DONE]"
    wait_for(lambda: open_reservations() == [], 10)  # its own end settled it


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


def test_a_keys_token_ceiling_holds_on_a_workers_background_run(two_workers: Cluster) -> None:
    """A key's policy goes with its background runs to the worker that runs them: its
    `max_tokens_per_interaction` ends the run `budget_exceeded`, as in a foreground run."""
    a = two_workers.serves[0]
    made = subprocess.run(
        [
            *(sys.executable, "-m", "propylon", "keys", "create"),
            *("--tenant", "ceiled", "--max-tokens", "3"),
            *two_workers._args()[:-2],  # no --redis-url: keys touch the database only
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    secret = made.stdout.split("api key:")[1].split()[0]
    with httpx.Client(base_url=a.url, headers={"x-goog-api-key": secret}, timeout=30) as client:
        body = {"model": "echo", "input": "one two three four"}
        foreground = client.post("/v1beta/interactions", json=body).json()
        assert foreground["status"] == "budget_exceeded", foreground
        queued = client.post("/v1beta/interactions", json={**body, "background": True}).json()
        wait_for(lambda: status(a, queued["id"]) in {*ENDED, "budget_exceeded"}, 30)
        ended = client.get(f"/v1beta/interactions/{queued['id']}").json()
    assert ended["status"] == "budget_exceeded", ended
    assert "ceiling of 3" in ended["errors"][0]["message"]


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
