"""The group-commit writer (runner/writer.py) takes a tick's logs one loop turn after it is
woken: what the tasks already due emit goes in the same transaction. A new run's first events
come from two places (the create's `interaction.created`, then the run task's status update):
written apart, a streamed store=true create waits for two commits before its first token.

Real parts: a SQLite file, the writer, a stored log and the in-process bus.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from propylon.bus.memory import MemoryBus
from propylon.domain.events import CREATED, STATUS_UPDATE
from propylon.runner.log import StoredLog
from propylon.runner.turn import announce, finish
from propylon.runner.writer import LogWriter
from propylon.service import reading
from propylon.store.base import LogWrite
from propylon.store.sqlite import SQLiteStore
from tests.conftest import new_record


async def _first_commits(database: Path) -> tuple[list[tuple[int, int]], list[str]]:
    store = SQLiteStore(database)
    await store.open()
    commits: list[tuple[int, int]] = []
    try:
        writer = LogWriter(store, lambda events, logs: commits.append((events, logs)))
        record = new_record("v1_linger")
        log = StoredLog(record, store, MemoryBus(), writer=writer)
        announce(log, "in_progress")  # the create wakes the writer

        async def run() -> None:  # the run task, due right after the writer
            log.emit(STATUS_UPDATE, {"interaction_id": record.id, "status": "in_progress"})

        await asyncio.create_task(run())
        await log.published()
        stored = await store.read_events(record.id, 0, 10)
        await writer.close()
        return commits, [event.type for event in stored]
    finally:
        await store.close()


def test_a_new_runs_first_events_are_one_transaction(tmp_path: Path) -> None:
    commits, stored = asyncio.run(_first_commits(tmp_path / "p.db"))
    assert stored == [CREATED, STATUS_UPDATE]
    assert commits == [(2, 1)], f"commits (events, logs): {commits}"


async def _read_by_a_fenced_out_log(
    database: Path,
) -> tuple[list[int], list[int], list[int], bool]:
    """(what the first writer's log reads before its row is written; past its own last write
    once another process took the run over and appended, while the log is idle, then after its
    next append was refused; whether it was fenced out)."""
    store = SQLiteStore(database)
    await store.open()
    try:
        record = new_record("v1_taken")
        first = StoredLog(record, store, MemoryBus(), writer=LogWriter(store))
        announce(first, "in_progress")
        before = [event.seq for event in await first.read_events(record.id, 0, 10)]
        await first.published()

        epoch = await store.claim_run(record.id)  # another process takes the run over
        stored = await store.get(record.id)
        assert epoch is not None and stored is not None
        existing = await reading.fold(store, record.id)
        second = StoredLog(stored, store, MemoryBus(), existing, epoch=epoch)
        second.emit(STATUS_UPDATE, {"interaction_id": record.id, "status": "in_progress"})
        await second.drain()
        idle = [event.seq for event in await first.read_events(record.id, 1, 10)]

        first.emit(STATUS_UPDATE, {"interaction_id": record.id, "status": "in_progress"})
        await first.published()  # refused: fenced out
        after = [event.seq for event in await first.read_events(record.id, 1, 10)]
        return before, idle, after, first.fenced
    finally:
        await store.close()


def test_a_log_reads_the_store_past_its_own_writes_once_fenced_out(tmp_path: Path) -> None:
    # A creator's stream reads its run's own log: before its row is written nothing of it can
    # be stored (no store read); after, the store is read, so a new owner's events are found.
    before, idle, after, fenced = asyncio.run(_read_by_a_fenced_out_log(tmp_path / "p.db"))
    assert before == []
    assert idle == [2]  # taken over while idle (not fenced yet): the new owner's event
    assert fenced
    assert after == [2]


class _CommitThenFail(SQLiteStore):
    """A store whose next group commit is written but reported failed (a COMMIT whose answer
    was lost: the connection dropped after the server had committed)."""

    armed = False

    async def write_logs(self, writes: list[LogWrite]) -> list[bool]:
        written = await super().write_logs(writes)
        if self.armed:
            self.armed = False
            raise ConnectionError("the connection was lost after COMMIT")
        return written


async def _after_a_written_failed_commit(database: Path, deltas: int) -> tuple[bool, int, bool]:
    """(whether the log failed, the last stored seq, whether the stored log has its end) once
    a batch of the log was written by a commit reported failed: with no `deltas`, its first
    (the create, with its end); else `deltas` status updates after its first commit."""
    store = _CommitThenFail(database)
    await store.open()
    try:
        record = new_record("v1_uncertain")
        log = StoredLog(record, store, MemoryBus(), writer=LogWriter(store))
        announce(log, "in_progress")
        if deltas:
            await log.published()
            for _ in range(deltas):
                log.emit(STATUS_UPDATE, {"interaction_id": record.id, "status": "in_progress"})
        else:
            finish(log, "completed")
        store.armed = True
        with contextlib.suppress(Exception):
            await log.drain()
        stored = await reading.fold(store, record.id)
        return log.failure is not None, stored.last_seq, stored.ended
    finally:
        await store.close()


@pytest.mark.parametrize(("deltas", "last"), [(0, 2), (600, 603)])
def test_a_failed_commit_that_wrote_is_found_by_the_log(
    tmp_path: Path, deltas: int, last: int
) -> None:
    # The failed log re-reads what is stored, from the store, not through its own last write:
    # a create's end that was written, or a batch past a page of the re-read, was missed (the
    # log then failed: its end appended over events already stored).
    failed, stored, ended = asyncio.run(_after_a_written_failed_commit(tmp_path / "p.db", deltas))
    assert not failed
    assert (stored, ended) == (last, True)


async def _after_a_written_failed_first_commit(database: Path) -> tuple[bool, int, bool]:
    """(whether the log failed, the last stored seq, whether the stored log has its end) once
    a new log's first commit (its row and `interaction.created`) was written but reported
    failed."""
    store = _CommitThenFail(database)
    await store.open()
    try:
        record = new_record("v1_first")
        log = StoredLog(record, store, MemoryBus(), writer=LogWriter(store))
        store.armed = True
        announce(log, "in_progress")
        with contextlib.suppress(Exception):
            await log.drain()
        stored = await reading.fold(store, record.id)
        return log.failure is not None, stored.last_seq, stored.ended
    finally:
        await store.close()


def test_a_failed_first_commit_that_wrote_is_ended_on_its_row(tmp_path: Path) -> None:
    # The row is there: the log's end (error, completed `failed`) is appended to it, not
    # written as a second create (a duplicate key: the run was left unended).
    failed, stored, ended = asyncio.run(_after_a_written_failed_first_commit(tmp_path / "p.db"))
    assert not failed
    assert (stored, ended) == (3, True)
