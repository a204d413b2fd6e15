"""A burst of upstream events reaches the readers from its first event (gateway/router.py,
`_SLICE`; runner/turn.py, `EventLog.published`).

A fast upstream (or a slow reader of it) delivers many SSE chunks in one read; folding them all
before any reader runs would put the whole burst's fold in front of the first token. A stored
log sends nothing before its commit, and its writer thread waits for the GIL that folding
holds: the run lets the answer's first output be committed and published before it folds the
rest. Real parts: a model routed to an OpenAI-compatible target, a local upstream that sends
its answer in one write, the runner, a store=false log or a stored one (a real SQLite file, the
group-commit writer) and the in-process bus; the reader is a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from propylon.bus.memory import MemoryBus
from propylon.config import ModelSettings, Settings, TargetSettings
from propylon.domain.events import STEP_DELTA
from propylon.gateway.registry import ModelRegistry
from propylon.providers.base import Turn
from propylon.runner.log import EventLog, MemoryLog, StoredLog
from propylon.runner.turn import announce, run_turn
from propylon.runner.writer import LogWriter
from propylon.store.sqlite import SQLiteStore
from tests.conftest import new_record

CHUNKS = 2000
GONE = web.AppKey("gone", asyncio.Event)  # set once the upstream's caller has gone


def _chunk(delta: dict[str, object], usage: bool = False) -> bytes:
    body: dict[str, object] = {"choices": [{"index": 0, "delta": delta}]}
    if usage:
        body = {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": CHUNKS}}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def _burst(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    answer = b"".join(_chunk({"content": f"t{i} "}) for i in range(CHUNKS))
    await response.write(answer + _chunk({}, usage=True) + b"data: [DONE]\n\n")  # one write
    await response.write_eof()
    return response


async def _reader_sees_first_delta(bus: MemoryBus, log: EventLog) -> int:
    """How many events the run had emitted when its reader first got a `step.delta`."""
    subscription = bus.subscribe(log.interaction_id)
    try:
        while True:
            events = await subscription.next(10)
            assert events is not None, "the reader's buffer overflowed"
            if any(event.type == STEP_DELTA for event in events):
                return log.projection.last_seq
    finally:
        subscription.close()


async def _first_delta_after_burst(database: Path | None) -> tuple[int, int]:
    """(events emitted when the reader got its first delta, events in all) for a run with a
    store=false log (`database` None) or one stored in the SQLite file `database`."""
    app = web.Application()
    app.router.add_post("/v1/chat/completions", _burst)
    upstream = TestServer(app)
    await upstream.start_server()
    target = TargetSettings(provider="openai", base_url=str(upstream.make_url("/v1")), model="m")
    settings = Settings(models=[ModelSettings(name="m", targets=[target])])
    registry = ModelRegistry.from_settings(settings)
    provider = registry.resolve("m").bind("v1_burst", "m", {}, lambda call: None)
    store = None if database is None else SQLiteStore(database)
    try:
        record = new_record("v1_burst")
        bus = MemoryBus(limit=10 * CHUNKS)
        log: EventLog = MemoryLog(record, bus)
        if store is not None:
            await store.open()
            log = StoredLog(record, store, bus, writer=LogWriter(store))
        announce(log, "in_progress")
        reader = asyncio.create_task(_reader_sees_first_delta(bus, log))
        turn = Turn(history=[{"type": "user_input", "content": [{"type": "text", "text": "hi"}]}])
        await run_turn(log, provider, turn, stopping=lambda: False)
        return await reader, log.projection.last_seq
    finally:
        await registry.close()
        await upstream.close()
        if store is not None:
            await store.close()


@pytest.mark.parametrize("stored", [False, True], ids=["store=false", "store=true"])
def test_a_burst_of_buffered_chunks_reaches_the_reader_from_its_first_event(
    stored: bool, tmp_path: Path
) -> None:
    seen, total = asyncio.run(_first_delta_after_burst(tmp_path / "p.db" if stored else None))
    assert total > CHUNKS  # created, status, step start, every delta, step stop, completed
    # the reader ran right after the first delta was folded, not after the burst's read
    assert seen < 20, f"the reader got its first delta when {seen} of {total} were folded"


async def _other_tasks_turns_while_folding() -> tuple[list[int], int]:
    """(events the run had emitted at each turn another task got, events in all) while an
    answer nobody reads as it comes (`Turn.streamed` False) is folded: `echo` streams it
    anyway, thousands of deltas without a read."""
    registry = ModelRegistry.from_settings(
        Settings(models=[ModelSettings(name="echo", provider="echo")])
    )
    provider = registry.resolve("echo").bind("v1_whole", "echo", {}, lambda call: None)
    try:
        record = new_record("v1_whole", "echo")
        log = MemoryLog(record, MemoryBus())
        announce(log, "in_progress")
        turns: list[int] = []

        async def other() -> None:  # another client's task on the same loop
            while True:
                turns.append(len(log.events))
                await asyncio.sleep(0)

        task = asyncio.create_task(other())
        text = "word " * 80_000  # echo answers with it: 50,000 deltas
        history = [{"type": "user_input", "content": [{"type": "text", "text": text}]}]
        turn = Turn(history=history, streamed=False)
        await run_turn(log, provider, turn, stopping=lambda: False)
        task.cancel()
        return turns, len(log.events)
    finally:
        await registry.close()


def test_an_answer_read_whole_still_lets_other_tasks_run_while_it_is_folded() -> None:
    turns, total = asyncio.run(_other_tasks_turns_while_folding())
    assert total > 40_000
    folding = [n for n in turns if 10 < n < total - 10]
    assert folding, f"no other task ran while {total} events were folded: {turns[:5]}..."


async def _first_then_hold(request: web.Request) -> web.StreamResponse:
    """An answer whose first chunk comes at once and whose rest never does: it sends an SSE
    comment every 10 ms until the caller has gone (then sets `GONE`)."""
    await request.read()
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    await response.write(_chunk({"content": "first "}))
    try:
        while True:
            await asyncio.sleep(0.01)
            await response.write(b": still thinking\n\n")
    finally:  # (the loop ends only once the caller has gone: a failed write, or a cancel)
        request.app[GONE].set()


async def _calls_ended_when_cancelled_at_first_commit(database: Path) -> tuple[list[str], bool]:
    """(the outcomes of the upstream calls that had ended once a stored run, cancelled while
    its first output waited for its commit (the store held locked by another connection),
    ended; whether the upstream then saw its caller go within 2 s, the run's task still held)."""
    app = web.Application()
    gone = app[GONE] = asyncio.Event()
    app.router.add_post("/v1/chat/completions", _first_then_hold)
    upstream = TestServer(app)
    await upstream.start_server()
    target = TargetSettings(provider="openai", base_url=str(upstream.make_url("/v1")), model="m")
    registry = ModelRegistry.from_settings(
        Settings(models=[ModelSettings(name="m", targets=[target])])
    )
    ended: list[str] = []
    provider = registry.resolve("m").bind("v1_held", "m", {}, lambda c: ended.append(c.outcome))
    store = SQLiteStore(database)
    await store.open()
    lock = sqlite3.connect(database, isolation_level=None)
    try:
        record = new_record("v1_held")
        bus = MemoryBus()
        log = StoredLog(record, store, bus, writer=LogWriter(store))
        announce(log, "in_progress")
        await log.published()  # the row is written; from here on the store is locked
        lock.execute("BEGIN EXCLUSIVE")
        subscription = bus.subscribe(record.id)
        turn = Turn(history=[{"type": "user_input", "content": [{"type": "text", "text": "hi"}]}])
        run = asyncio.create_task(run_turn(log, provider, turn, stopping=lambda: True))
        while log.projection.last_seq < 4:  # created, status, step.start, the first delta
            await asyncio.sleep(0.01)
        assert subscription._events == []  # nothing committed, nothing sent
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        calls = list(ended)
        try:
            await asyncio.wait_for(gone.wait(), 2)
        except TimeoutError:
            return calls, False
        return calls, True
    finally:
        lock.rollback()
        lock.close()
        await registry.close()
        await upstream.close()
        await store.close()


def test_a_run_cancelled_while_its_first_output_waits_for_its_commit_ends_its_call(
    tmp_path: Path,
) -> None:
    # (the process stopping: the run is left to the next start, its upstream call must end)
    ended, closed = asyncio.run(_calls_ended_when_cancelled_at_first_commit(tmp_path / "p.db"))
    assert len(ended) == 1, "the upstream call was still open when the cancelled run ended"
    assert closed, "the upstream's connection stayed open after the cancelled run ended"
