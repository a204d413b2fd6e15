"""The bus contract: every test runs against the in-process bus and against Redis (127.0.0.1:6379,
database 13; only that database is flushed). A writer appends a real log to a real SQLite store
and publishes on its bus; a reader follows with `reading.tail` on another bus (for Redis, two
buses are two processes: nothing is shared but Redis and the store).

The Redis-only tests break what only Redis can lose: the pub/sub connections killed mid-stream
(`CLIENT KILL TYPE pubsub`), a restart simulated by killing every connection of this process
for a while, Redis not running at all. Only this process's connections are killed (by their
client name), never another test's or the machine's Redis itself.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from propylon.bus.base import Bus
from propylon.bus.memory import MemoryBus
from propylon.bus.redis import RedisBus
from propylon.domain import lifecycle
from propylon.domain.clock import now
from propylon.domain.events import COMPLETED, CREATED, STEP_DELTA, STEP_START, Event
from propylon.domain.ids import new_interaction_id
from propylon.runner.log import StoredLog
from propylon.service import reading
from propylon.store.base import InteractionRecord
from propylon.store.sqlite import SQLiteStore
from tests.conftest import free_port

REDIS_URL = "redis://127.0.0.1:6379/13"
KINDS = ["memory", "redis"]
BOUND = 30.0  # seconds any one scenario may take


@pytest.fixture(scope="module", autouse=True)
def _flushed() -> Iterator[None]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield
    client.flushdb()
    client.close()


def _pair(kind: str, **options: Any) -> tuple[Bus, Bus]:
    """(the writer's bus, the reader's bus): one bus in one process, or two processes' buses."""
    if kind == "memory":
        bus = MemoryBus(options.get("limit", 1024))
        return bus, bus
    return RedisBus(REDIS_URL, **options), RedisBus(REDIS_URL, **options)


def _run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(scenario(), BOUND)

    asyncio.run(bounded())


def _kill_own(kind: str = "pubsub") -> int:
    """`CLIENT KILL TYPE <kind>` for each of this process's bus connections; how many died."""
    client = redis.Redis.from_url(REDIS_URL)
    killed = 0
    try:
        for info in client.client_list(_type=kind):
            if info.get("name") == f"propylon-bus-{os.getpid()}":
                killed += client.execute_command("CLIENT KILL TYPE", kind, "ID", info["id"])
    finally:
        client.close()
    return killed


class Run:
    """A run's log, written to the store and published on `bus` event by event."""

    def __init__(self, store: SQLiteStore, bus: Bus) -> None:
        self.id = new_interaction_id()
        record = InteractionRecord(
            id=self.id,
            status="in_progress",
            created=now(),
            updated=now(),
            request={"model": "echo"},
            input="x",
            input_steps=[],
        )
        self.log = StoredLog(record, store, bus)

    async def start(self) -> None:
        self.log.emit(CREATED, {"interaction": self.log.summary("in_progress")})
        self.log.emit(STEP_START, {"index": 0, "step": {"type": "model_output"}})
        await self.log.drain()

    async def delta(self, text: str) -> None:
        self.log.emit(STEP_DELTA, {"index": 0, "delta": {"type": "text", "text": text}})
        await self.log.drain()

    async def finish(self) -> None:
        self.log.emit(COMPLETED, {"interaction": self.log.summary("completed")})
        await self.log.drain()


def _watch(store: SQLiteStore, interaction_id: str) -> reading.Watch:
    """What the service asks on a tick (InteractionService._watcher) for a run on another
    process: go on while the stored status is not terminal."""

    async def watch() -> dict[str, str] | None:
        record = await store.get(interaction_id)
        if record is not None and lifecycle.is_terminal(record.status):
            return {"code": "api_error", "message": "ended without a last event"}
        return None

    return watch


async def _follow(
    store: SQLiteStore, bus: Bus, interaction_id: str, keepalive: float = 0.5
) -> AsyncIterator[Event]:
    """The reader: a stream's events (keep-alive ticks left out)."""
    subscription = bus.subscribe(interaction_id)
    batches = reading.tail(
        store, interaction_id, 0, subscription, keepalive, _watch(store, interaction_id)
    )
    async for event in reading.each(batches):  # (tail yields batches of events)
        if event is not None:
            yield event


async def _opened(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "propylon.db")
    await store.open()
    return store


def _assert_whole(events: list[Event], deltas: int) -> None:
    """Every event of the log once, in order: created, step.start, the deltas, completed."""
    assert [e.seq for e in events] == list(range(1, deltas + 4))
    assert events[0].type == CREATED and events[-1].type == COMPLETED
    assert [e.data["delta"]["text"] for e in events[2:-1]] == [str(i) for i in range(deltas)]


async def _stream_while(
    tmp_path: Path,
    writer_bus: Bus,
    reader_bus: Bus,
    deltas: int,
    disturb: Callable[[int, list[Event]], Awaitable[None]] | None = None,
    keepalive: float = 0.5,
) -> list[Event]:
    """Write a run of `deltas` deltas while a reader on `reader_bus` follows it; `disturb(i,
    got)` is awaited before delta i (`got`: what the reader has so far). Returns all it got."""
    store = await _opened(tmp_path)
    try:
        run = Run(store, writer_bus)
        await run.start()
        got: list[Event] = []
        following = asyncio.ensure_future(
            _collect(_follow(store, reader_bus, run.id, keepalive), got)
        )
        for i in range(deltas):
            if disturb is not None:
                await disturb(i, got)
            await run.delta(str(i))
        await run.finish()
        await following
        return got
    finally:
        await writer_bus.aclose()
        await reader_bus.aclose()
        await store.close()


async def _collect(events: AsyncIterator[Event], into: list[Event]) -> None:
    async for event in events:
        into.append(event)


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll `condition` until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- every bus


@pytest.mark.parametrize("kind", KINDS)
def test_a_reader_gets_every_event_once_in_order(kind: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        writer, reader = _pair(kind)
        _assert_whole(await _stream_while(tmp_path, writer, reader, 200), 200)

    _run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_after_ready_no_publish_is_missed(kind: str) -> None:
    """`ready()` returns once a publish from any process reaches the subscription."""

    async def scenario() -> None:
        writer, reader = _pair(kind)
        try:
            for i in range(50):
                interaction_id = new_interaction_id()
                subscription = reader.subscribe(interaction_id)
                await subscription.ready()
                event = Event(1, STEP_DELTA, {"index": 0, "n": i})
                writer.publish(interaction_id, [event])
                assert await subscription.next(10) == [event]
                subscription.close()
        finally:
            await writer.aclose()
            await reader.aclose()

    _run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_publish_wakes_the_reader(kind: str) -> None:
    async def scenario() -> None:
        writer, reader = _pair(kind)
        try:
            interaction_id = new_interaction_id()
            subscription = reader.subscribe(interaction_id)
            await subscription.ready()
            started = time.monotonic()
            waiting = asyncio.ensure_future(subscription.next(20))
            writer.publish(interaction_id, [])
            assert await waiting == []
            assert time.monotonic() - started < 10  # woken, not timed out
        finally:
            await writer.aclose()
            await reader.aclose()

    _run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_close_wakes_every_reader_now_and_later(kind: str) -> None:
    async def scenario() -> None:
        _, reader = _pair(kind)
        try:
            subscriptions = [reader.subscribe(new_interaction_id()) for _ in range(3)]
            for subscription in subscriptions:
                await subscription.ready()
            waiting = [asyncio.ensure_future(s.next(20)) for s in subscriptions]
            started = time.monotonic()
            reader.close()
            assert await asyncio.gather(*waiting) == [[], [], []]
            assert await subscriptions[0].next(20) == []
            assert time.monotonic() - started < 10
        finally:
            await reader.aclose()

    _run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_a_slow_reader_is_sent_back_to_the_store(kind: str) -> None:
    """Past its buffer's limit a reader gets None (re-read the store), not a partial list."""

    async def scenario() -> None:
        writer, reader = _pair(kind, limit=4)
        try:
            interaction_id = new_interaction_id()
            subscription = reader.subscribe(interaction_id)
            await subscription.ready()
            seen = reader.subscribe(interaction_id)  # a reader that keeps up: all arrived
            await seen.ready()
            for seq in range(1, 7):
                event = Event(seq, STEP_DELTA, {"index": 0})
                writer.publish(interaction_id, [event])
                assert await seen.next(10) == [event]
            assert await subscription.next(10) is None
        finally:
            await writer.aclose()
            await reader.aclose()

    _run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_a_closed_subscription_leaves_the_others_receiving(kind: str) -> None:
    async def scenario() -> None:
        writer, reader = _pair(kind)
        try:
            interaction_id = new_interaction_id()
            first, second = reader.subscribe(interaction_id), reader.subscribe(interaction_id)
            await first.ready()
            await second.ready()
            first.close()
            event = Event(1, STEP_DELTA, {"index": 0})
            writer.publish(interaction_id, [event])
            assert await second.next(10) == [event]
            again = reader.subscribe(interaction_id)  # a channel dropped and taken again
            second.close()
            await again.ready()
            writer.publish(interaction_id, [Event(2, STEP_DELTA, {"index": 0})])
            assert [e.seq for e in await again.next(10) or []] == [2]
        finally:
            await writer.aclose()
            await reader.aclose()

    _run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_lost_hints_do_not_hang_the_stream(kind: str, tmp_path: Path) -> None:
    """The writer's hints go nowhere (its bus has no reader): the reader of a run still going
    gets its events by re-reading the store on its keep-alive ticks, and then its end."""

    async def scenario() -> None:
        _, reader = _pair(kind)

        async def disturb(i: int, got: list[Event]) -> None:
            if i == 0:  # the reader follows: it has replayed what the store had
                await _until(lambda: len(got) == 2)
            if i == 5:  # the run pauses: only a tick can show the reader the five deltas
                await _until(lambda: len(got) == 7)

        got = await _stream_while(tmp_path, MemoryBus(), reader, 6, disturb, keepalive=0.2)
        _assert_whole(got, 6)

    _run(scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_an_event_too_large_for_a_message_comes_from_the_store(kind: str, tmp_path: Path) -> None:
    async def scenario() -> None:
        writer, reader = _pair(kind)
        store = await _opened(tmp_path)
        try:
            run = Run(store, writer)
            await run.start()
            subscription = reader.subscribe(run.id)
            got: list[Event] = []
            following = asyncio.ensure_future(
                _collect(_tail_events(store, run.id, subscription), got)
            )
            await run.delta("x" * 400_000)
            await run.finish()
            await following
            assert [e.seq for e in got] == [1, 2, 3, 4]
            assert len(got[2].data["delta"]["text"]) == 400_000
        finally:
            await writer.aclose()
            await reader.aclose()
            await store.close()

    _run(scenario)


async def _tail_events(
    store: SQLiteStore, interaction_id: str, subscription: Any
) -> AsyncIterator[Event]:
    batches = reading.tail(
        store, interaction_id, 0, subscription, 5.0, _watch(store, interaction_id)
    )
    async for event in reading.each(batches):
        if event is not None:
            yield event


# -- Redis only: what only Redis can lose


def test_pubsub_connections_killed_mid_stream(tmp_path: Path) -> None:
    """`CLIENT KILL TYPE pubsub` on this process's pub/sub connection twice while 300 events
    stream: what is written while it is away reaches the reader long before a keep-alive
    tick (20 s), and the stream gets each event once, in order, and ends."""

    async def scenario() -> None:
        writer, reader = _pair("redis")
        killed: list[int] = []

        async def disturb(i: int, got: list[Event]) -> None:
            if i in (50, 150):  # the second time, once the reader has connected again
                while not (count := await asyncio.to_thread(_kill_own)):
                    await asyncio.sleep(0.02)  # polled: the reconnection is the bus's own
                killed.append(count)
            if i in (100, 200):  # the run pauses: the reader has all written so far
                await _until(lambda: len(got) == i + 2)

        got = await _stream_while(tmp_path, writer, reader, 300, disturb, keepalive=20)
        _assert_whole(got, 300)
        assert killed == [1, 1]  # the reader's connection, each time (the writer has none)

    _run(scenario)


def test_a_redis_restart_mid_stream(tmp_path: Path) -> None:
    """A restart, simulated: for a second every connection of this process (pub/sub and
    PUBLISH) is killed as soon as it appears, while the writer goes on; the stream reads the
    store meanwhile and ends with every event once."""

    async def scenario() -> None:
        writer, reader = _pair("redis")
        killed = 0

        async def kill_for_a_second() -> None:
            nonlocal killed
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                for kind in ("pubsub", "normal"):
                    killed += await asyncio.to_thread(_kill_own, kind)

        killing: list[asyncio.Future[None]] = []

        async def disturb(i: int, got: list[Event]) -> None:
            if i == 20:
                killing.append(asyncio.ensure_future(kill_for_a_second()))
            if i == 60:  # deltas 20-59 were written while Redis was "away"
                await killing[0]

        got = await _stream_while(tmp_path, writer, reader, 100, disturb)
        _assert_whole(got, 100)
        assert killed >= 2

    _run(scenario)


def test_redis_down_streams_poll_the_store_and_end(tmp_path: Path) -> None:
    """Nothing listens at the URL: publishing raises nothing, and a reader on another
    process's bus still gets every event (polling the store) and ends, within a bound."""

    async def scenario() -> None:
        url = f"redis://127.0.0.1:{free_port()}/13"
        writer, reader = RedisBus(url), RedisBus(url, poll_seconds=0.2)
        started = time.monotonic()
        got = await _stream_while(tmp_path, writer, reader, 30, keepalive=5.0)
        _assert_whole(got, 30)
        # polled every 0.2 s, not stuck until a 5 s keep-alive per event
        assert time.monotonic() - started < 10
        assert reader.down  # type: ignore[attr-defined]

    _run(scenario)


def test_a_channel_nobody_follows_is_unsubscribed() -> None:
    """Readers gone, the process's pub/sub connection leaves their channels (Redis keeps no
    subscription per finished stream)."""

    async def scenario() -> None:
        bus = RedisBus(REDIS_URL)
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            ids = [new_interaction_id() for _ in range(5)]
            subscriptions = [bus.subscribe(i) for i in ids]
            for subscription in subscriptions:
                await subscription.ready()
            channels = [f"propylon:13:events:{i}" for i in ids]
            assert [n for _, n in await client.pubsub_numsub(*channels)] == [1] * 5
            for subscription in subscriptions:
                subscription.close()
            while any(n for _, n in await client.pubsub_numsub(*channels)):
                await asyncio.sleep(0.02)  # polled: the UNSUBSCRIBE is asynchronous
        finally:
            await bus.aclose()
            await client.aclose()

    _run(scenario)
