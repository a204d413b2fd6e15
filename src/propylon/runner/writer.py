"""Group commit: the one task that writes every stored log's events (runner/log.py).

A log with events to write asks the writer (`request`); each tick the writer takes what every
asking log has queued and writes it all in one transaction (`InteractionStore.write_logs`),
so N concurrent runs cost one commit per tick, not N. Woken, it lets the tasks already due run
first (one loop turn), so their events join the tick (a new run's created and status events).
Whatever is emitted while a transaction is in flight goes in the next one. Only after the
commit are a log's events published.

A log whose events nobody can read yet (a foreground create that is not streamed: its id is
known to no one until it answers) may be held (`hold`): written at the latest after a delay,
sooner when it ends or someone waits for it, so a quick run is one write of its row, its events
and its end. Closing the writer writes every held log at once.

Within one tick a log contributes one batch, and a log is in at most one transaction at a time,
so each log's events are written (and published) in order. An append that is fenced out is
refused alone: the other logs of the transaction are written. When the transaction itself
fails, nothing of it was written, and each of its logs is written alone (runner/log.py:
`_write_alone`), so one bad log cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from propylon.store.base import InteractionStore, LogWrite

if TYPE_CHECKING:
    from propylon.runner.log import StoredLog, _Prior

__all__ = ["LogWriter"]

logger = logging.getLogger("propylon.runner")

# Told of each committed group: (events, logs) written in it.
OnCommit = Callable[[int, int], None]


class LogWriter:
    """Writes the stored logs of one process to `store`; `on_commit` is told of each group
    transaction (the events and logs it held)."""

    def __init__(self, store: InteractionStore, on_commit: OnCommit | None = None) -> None:
        self._store = store
        self._on_commit = on_commit
        self._asking: dict[StoredLog, None] = {}  # an ordered set: first asked, first written
        # held logs, by when they are due (loop time), in the order they were held
        self._held: dict[StoredLog, float] = {}
        self._due: asyncio.TimerHandle | None = None  # when the first held log is
        self._wake: asyncio.Event | None = None
        self._quiet: asyncio.Event | None = None  # set while nothing is asked or in flight
        self._task: asyncio.Task[None] | None = None

    def hold(self, log: StoredLog, seconds: float) -> None:
        """`log` has events to write that nobody reads yet: in a tick at most `seconds` from
        now (held logs are asked for in the order they were held, so the process holds for
        one length: a later log's due time is never earlier), or the next tick after a
        `request` of it. One timer serves every held log: most are asked for before it."""
        loop = asyncio.get_running_loop()
        due = self._held[log] = loop.time() + seconds
        if self._due is None:
            self._due = loop.call_at(due, self._ask_due)

    def _ask_due(self) -> None:
        """Ask for the held logs that are due; the timer waits for the next one."""
        self._due = None
        loop = asyncio.get_running_loop()
        while self._held:
            log, due = next(iter(self._held.items()))
            if due > loop.time():
                self._due = loop.call_at(due, self._ask_due)
                return
            self.request(log)

    def request(self, log: StoredLog) -> None:
        """`log` has events to write: in the next tick."""
        self._held.pop(log, None)
        self._asking[log] = None
        if self._wake is None or self._quiet is None:
            self._wake, self._quiet = asyncio.Event(), asyncio.Event()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._wake, self._quiet), name="propylon-log-writer"
            )
        self._quiet.clear()
        self._wake.set()

    async def close(self) -> None:
        """Write what is queued, the held logs' events too, then stop the task (a later
        `request` starts it again)."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        for log in list(self._held):
            self.request(log)
        if self._quiet is not None:
            await self._quiet.wait()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self, wake: asyncio.Event, quiet: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            # One loop turn more: what the tasks already due emit (a new run's first events,
            # its request's) goes in this transaction, not in the next.
            await asyncio.sleep(0)
            while self._asking:
                logs = list(self._asking)
                self._asking.clear()
                try:
                    await self._tick(logs)
                except Exception:  # never lose the writer: its logs must go on
                    logger.exception("the log writer failed a tick")
                finally:
                    for log in logs:
                        log._settle()
            quiet.set()

    async def _tick(self, logs: list[StoredLog]) -> None:
        group: list[tuple[StoredLog, LogWrite, _Prior]] = []
        for log in logs:
            batch = log._take()
            if not batch:
                continue
            if log._alone():
                await log._write_alone(batch)
                continue
            try:
                write, prior = await log._prepare(batch)
            except Exception:
                await log._write_alone(batch)  # its `_prepare` runs again, and fails it
                continue
            group.append((log, write, prior))
        if not group:
            return
        try:
            written = await self._store.write_logs([write for _, write, _ in group])
        except Exception as exc:
            logger.warning("a group commit of %d logs failed (%s): each alone", len(group), exc)
            for log, _, prior in group:
                log._restore(prior)
            for log, write, _ in group:
                await log._write_alone(write.events)
            return
        events = 0
        for (log, write, prior), ok in zip(group, written, strict=True):
            if ok:
                log._commit(write)
                events += len(write.events)
            else:
                log._restore(prior)
                log._fence()
        if self._on_commit is not None:
            self._on_commit(events, len(group))
