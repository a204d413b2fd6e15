"""The group-commit writer (runner/writer.py) takes a tick's logs one loop turn after it is
woken: what the tasks already due emit goes in the same transaction. A new run's first events
come from two places (the create's `interaction.created`, then the run task's status update):
written apart, a streamed store=true create waits for two commits before its first token.

Real parts: a SQLite file, the writer, a stored log and the in-process bus.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from propylon.bus.memory import MemoryBus
from propylon.domain.events import CREATED, STATUS_UPDATE
from propylon.runner.log import StoredLog
from propylon.runner.turn import announce
from propylon.runner.writer import LogWriter
from propylon.store.base import InteractionRecord
from propylon.store.sqlite import SQLiteStore


async def _first_commits(database: Path) -> tuple[list[tuple[int, int]], list[str]]:
    store = SQLiteStore(database)
    await store.open()
    commits: list[tuple[int, int]] = []
    try:
        writer = LogWriter(store, lambda events, logs: commits.append((events, logs)))
        record = InteractionRecord(
            id="v1_linger",
            status="in_progress",
            created="2026-01-01T00:00:00Z",
            updated="2026-01-01T00:00:00Z",
            request={"model": "m"},
            input="hi",
            input_steps=[],
        )
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
