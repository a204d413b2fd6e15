"""What dead processes leave behind, brought to an end: the reconciler, and the heartbeat of
`serve` processes it reads.

The reconciler is a periodic procrastinate job (one worker runs each pass). A pass:
1. takes over the run jobs of workers whose procrastinate heartbeat is stale (procrastinate
   finds them, `get_stalled_jobs`, and leaves their retry to us): the stalled job is ended
   `failed` and a new job is deferred for its interaction (a new job id, so the stalled
   worker, should it wake, cannot finish the new job in procrastinate's table; its writes
   to the run are refused by the run epoch). A job whose abort was asked is not retried
   (and keeps `abort_requested`: step 2 ends its run `cancelled`);
2. ends `cancelled` the unfinished background runs a user cancelled (a job of theirs has
   `abort_requested`, written by the cancel before anything else) that no job runs any more:
   their canceller died, or failed, before it ended them. A user's cancel is never retried;
3. re-queues the other unfinished background runs that have no job waiting or running, and
   unfinished Gemini batches likewise (a cancelled batch is ended in its row first, so it
   is never re-queued). Steps 2 and 3 leave what has moved within a heartbeat's staleness
   (being created, or cancelled right now: its canceller ends it);
4. ends `failed` (code `interrupted`) the foreground runs of `serve` processes whose
   heartbeat is stale, taking each run over first (its epoch fences the old writer out);
5. settles the open reservations (service/ledger.py) of `serve` processes whose heartbeat
   is stale (`recover_lost`): never a live process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from procrastinate import App

from propylon.jobs.procrastinate import BATCH_TASK, ProcrastinateQueue
from propylon.store.batches import UNFINISHED

__all__ = ["Heartbeat", "Reconciler"]

logger = logging.getLogger("propylon.jobs")

INTERRUPTED = {
    "code": "interrupted",
    "message": "the process running this interaction stopped while it was running",
}

# Ends a run whose process died: (interaction id, status, error) -> whether it was written.
CloseRun = Callable[[str, str, dict[str, str]], Awaitable[bool]]
# Ends a run its user cancelled: interaction id -> whether it was written.
CloseCancelled = Callable[[str], Awaitable[bool]]
# Settles the open reservations of these interactions, made by dead processes -> how many.
RecoverLost = Callable[[list[str]], Awaitable[int]]

# Unfinished background runs with no job waiting or running that have not moved lately:
# `{cancelled}` is EXISTS (a user cancelled it: ended `cancelled`) or NOT EXISTS (re-queued).
_UNJOBBED = """
SELECT i.id FROM interactions i
 WHERE i.background AND i.status IN ('queued', 'in_progress') AND i.updated < %s
   AND NOT EXISTS (
       SELECT 1 FROM procrastinate_jobs j
        WHERE j.lock = i.id AND j.status IN ('todo', 'doing'))
   AND {cancelled} (
       SELECT 1 FROM procrastinate_jobs j WHERE j.lock = i.id AND j.abort_requested)
"""
_UNJOBBED_BATCHES = f"""
SELECT b.id FROM batches b
 WHERE b.state IN ({", ".join(f"'{state}'" for state in UNFINISHED)}) AND b.updated < %s
   AND NOT EXISTS (
       SELECT 1 FROM procrastinate_jobs j
        WHERE j.lock = b.id AND j.status IN ('todo', 'doing'))
"""
_ORPHANS = """
SELECT i.id FROM interactions i JOIN propylon_run_owners o ON o.interaction_id = i.id
 WHERE NOT i.background AND i.status IN ('queued', 'in_progress')
   AND NOT EXISTS (
       SELECT 1 FROM propylon_processes p
        WHERE p.id = o.process_id AND p.heartbeat > now() - make_interval(secs => %s))
"""
_FORGET = """
DELETE FROM propylon_run_owners o WHERE NOT EXISTS (
    SELECT 1 FROM interactions i WHERE i.id = o.interaction_id
       AND i.status IN ('queued', 'in_progress'))
"""
# A stalled job ended `failed`; whether its abort was asked (a user's cancel), atomically.
_FAIL_STALLED = """
UPDATE procrastinate_jobs SET status = 'failed', attempts = attempts + 1
 WHERE id = %s AND status = 'doing' RETURNING abort_requested
"""
_DEAD = "DELETE FROM propylon_processes WHERE heartbeat < now() - make_interval(secs => %s)"
_LOST = """
SELECT l.interaction_id FROM ledger l
 WHERE l.settled IS NULL AND l.owner IS NOT NULL
   AND NOT EXISTS (
       SELECT 1 FROM propylon_processes p
        WHERE p.id = l.owner AND p.heartbeat > now() - make_interval(secs => %s))
"""


class Reconciler:
    """One pass at a time (`run_once`), over the whole deployment."""

    def __init__(
        self,
        app: App,
        queue: ProcrastinateQueue,
        close_run: CloseRun,
        stale_after: float,
        *,
        close_cancelled: CloseCancelled,
        recover_lost: RecoverLost,
        batches: ProcrastinateQueue | None = None,
    ) -> None:
        """`queue`: the background runs' jobs; `batches`: the Gemini batches' (if served)."""
        self.app = app
        self.queue = queue
        self.close_run = close_run
        self.close_cancelled = close_cancelled
        self.recover_lost = recover_lost
        self.stale_after = stale_after
        self.queues = {q.task: q for q in (queue, batches) if q is not None}

    async def run_once(self) -> dict[str, int]:
        """One pass; returns how many runs it took over, ended cancelled, re-queued and
        closed, and how many reservations it settled."""
        retried = await self._stalled()
        cancelled = await self._cancelled()
        requeued = await self._unjobbed()
        closed = await self._orphans()
        settled = await self.recover_lost(await self._ids(_LOST, self.stale_after))
        if retried or cancelled or requeued or closed or settled:
            logger.warning(
                "reconciled: %d stalled jobs retried, %d cancelled runs ended, %d runs or "
                "batches re-queued, %d foreground runs of dead processes closed, "
                "%d reservations of dead processes settled",
                retried,
                cancelled,
                requeued,
                closed,
                settled,
            )
        return {
            "retried": retried,
            "cancelled": cancelled,
            "requeued": requeued,
            "closed": closed,
            "settled": settled,
        }

    async def _stalled(self) -> int:
        manager = self.app.job_manager
        stalled = await manager.get_stalled_jobs(seconds_since_heartbeat=self.stale_after)
        retried = 0
        for job in stalled:
            assert job.id is not None
            # Ended `failed` keeping `abort_requested` (procrastinate's `finish_job` clears
            # it, and `get_stalled_jobs` does not read it): a user's cancel stays recorded.
            rows = await self._rows(_FAIL_STALLED, job.id)
            if not rows:
                continue  # it ended meanwhile
            queue = self.queues.get(job.task_name)
            if queue is None or rows[0][0] or job.lock is None:
                continue  # periodic passes come again; a cancelled run is ended below
            await queue.submit(job.lock, -job.priority)
            retried += 1
        return retried

    async def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            rows: list[tuple[Any, ...]] = await (await conn.execute(sql, params)).fetchall()
            return rows

    async def _ids(self, sql: str, *params: Any) -> list[str]:
        return [row[0] for row in await self._rows(sql, *params)]

    async def _unmoved(self, cancelled: bool) -> list[str]:
        """Unfinished background runs without a live job, unmoved for `stale_after`: those a
        user cancelled, or the others."""
        sql = _UNJOBBED.format(cancelled="EXISTS" if cancelled else "NOT EXISTS")
        return await self._ids(sql, self._unmoved_since())

    def _unmoved_since(self) -> str:
        """The wire timestamp (as rows store it) before which a row has not moved lately."""
        since = datetime.now(tz=UTC) - timedelta(seconds=self.stale_after)
        return since.strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _cancelled(self) -> int:
        ended = 0
        for interaction_id in await self._unmoved(cancelled=True):
            ended += await self.close_cancelled(interaction_id)
        return ended

    async def _unjobbed(self) -> int:
        rows = await self._unmoved(cancelled=False)
        for interaction_id in rows:
            await self.queue.submit(interaction_id)
        batches = self.queues.get(BATCH_TASK)
        if batches is None:
            return len(rows)
        stale = await self._ids(_UNJOBBED_BATCHES, self._unmoved_since())
        for batch_id in stale:
            await batches.submit(batch_id)
        return len(rows) + len(stale)

    async def _orphans(self) -> int:
        closed = 0
        for (interaction_id,) in await self._rows(_ORPHANS, self.stale_after):
            closed += await self.close_run(interaction_id, "failed", INTERRUPTED)
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            await conn.execute(_FORGET)
            await conn.execute(_DEAD, (self.stale_after * 10,))
        return closed


class Heartbeat:
    """Records every `every` seconds that process `owner` (of `kind`, `serve`) is alive."""

    def __init__(self, app: App, owner: str, kind: str, every: float) -> None:
        self.app = app
        self.owner = owner
        self.kind = kind
        self.every = every
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """Record one heartbeat now."""
        async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
            await conn.execute(
                "INSERT INTO propylon_processes (id, kind, heartbeat) VALUES (%s, %s, now()) "
                "ON CONFLICT (id) DO UPDATE SET heartbeat = now()",
                (self.owner, self.kind),
            )

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.beat()
            except Exception:  # the database is away: the next beat tries again
                logger.exception("heartbeat of %s failed", self.owner)

    async def stop(self) -> None:
        """Stop beating and forget this process (its runs were stopped first)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with self.app.connector.pool.connection() as conn:  # type: ignore[attr-defined]
                await conn.execute("DELETE FROM propylon_processes WHERE id = %s", (self.owner,))
