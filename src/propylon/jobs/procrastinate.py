"""Background runs and webhook deliveries as procrastinate jobs on PostgreSQL.

Every process of a distributed deployment (`propylon serve`, `propylon worker`) opens one
procrastinate `App` on the store's database. A create that queues a background run defers its
job in the transaction that writes the interaction's row (`in_transaction`, called by the
store on its own connection), so a row never lacks its job nor a job its row. A run's job has
`lock` and `queueing_lock` set to the interaction id: it never runs twice at once, nor waits
twice in the queue. Workers run the jobs (jobs/worker.py); the reconciler (jobs/reconciler.py)
takes over what dead processes leave. A Gemini batch's job (`BATCH_TASK`, service/batches.py)
is deferred the same way, with the batch's row, its lock the batch id.

Cancel is procrastinate's abort (an asyncio cancel of the run in whichever worker runs it),
bounded in time: a run that has not ended `cancelled` by then is taken over and ended by the
canceller (the run epoch fences the old writer out). A worker that stops hands its runs back
(jobs/worker.py): that is a retry, never a user cancel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import JobDeferrer

from propylon.schema.interactions import queue_priority
from propylon.store.base import InteractionRecord
from propylon.store.batches import BatchRecord

__all__ = [
    "BATCH_TASK",
    "CONTROL_QUEUE",
    "DELIVER_TASK",
    "RECONCILE_TASK",
    "RUN_QUEUE",
    "RUN_TASK",
    "ProcrastinateQueue",
    "ensure_schema",
    "libpq_url",
    "new_app",
]

logger = logging.getLogger("propylon.jobs")

RUN_QUEUE = "propylon_runs"  # background runs
CONTROL_QUEUE = "propylon_control"  # the reconciler and webhook deliveries: never behind runs
RUN_TASK = "propylon.run"
BATCH_TASK = "propylon.batch"  # a Gemini batch (service/batches.py), on the run queue
DELIVER_TASK = "propylon.deliver"  # also its lock: one delivery pass at a time, anywhere
RECONCILE_TASK = "propylon.reconcile"

_SCHEMA_LOCK = 0x70726F70  # the advisory lock held while the job tables are created
CANCEL_GRACE_SECONDS = 2.0  # a run aborted in a worker has this long to end `cancelled`
_POLL = 0.05

# Tables of the distributed mode that belong to no aggregate of the store: which process runs
# a foreground interaction, and each process's heartbeat.
_TABLES = """
CREATE TABLE IF NOT EXISTS propylon_processes (
    id text PRIMARY KEY,
    kind text NOT NULL,
    heartbeat timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS propylon_run_owners (
    interaction_id text PRIMARY KEY,
    process_id text NOT NULL
);
"""


def libpq_url(database_url: str) -> str:
    """The libpq form (`postgresql://...`) of a SQLAlchemy URL (`postgresql+psycopg://...`)."""
    scheme, sep, rest = database_url.partition("://")
    return f"{scheme.split('+', 1)[0]}{sep}{rest}"


def new_app(database_url: str, name: str, max_connections: int = 4) -> App:
    """A procrastinate App on `database_url`; its connections carry `name` as their
    `application_name` (an operator sees which process holds which connection)."""
    connector = PsycopgConnector(
        conninfo=libpq_url(database_url),
        min_size=1,
        max_size=max_connections,
        kwargs={"application_name": name[:63]},
    )
    return App(connector=connector)


async def ensure_schema(app: App) -> None:
    """Create procrastinate's tables and ours unless they exist, under an advisory lock, so
    several processes starting at once create them once."""
    pool = app.connector.pool  # type: ignore[attr-defined]
    async with pool.connection() as conn:
        await conn.set_autocommit(True)
        await conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
        try:
            row = await (
                await conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
            ).fetchone()
            if not (row and row[0]):
                await app.schema_manager.apply_schema_async()
            await conn.execute(_TABLES)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


class ProcrastinateQueue:
    """The job queue (jobs/base.py) of a process of a distributed deployment: the jobs of
    `task` (background runs by default; a second queue runs Gemini batches, `BATCH_TASK`),
    each called with its id as the keyword `argument`."""

    transactional = True

    def __init__(
        self,
        app: App,
        owner: str,
        cancel_grace: float = CANCEL_GRACE_SECONDS,
        *,
        task: str = RUN_TASK,
        argument: str = "interaction_id",
    ) -> None:
        """`owner`: this process's id, recorded for the foreground runs it creates (their
        owner's heartbeat says whether they are still alive)."""
        self.app = app
        self.owner = owner
        self.cancel_grace = cancel_grace
        self.task = task
        self.argument = argument
        self._wakes: set[asyncio.Task[None]] = set()

    def has_capacity(self) -> bool:
        return False  # a worker takes the run: it is `queued` until then

    def waiting(self) -> int:
        return 0  # the queue is the database's, not this process's

    def _run_job(self, interaction_id: str, priority: int, connection: Any = None) -> JobDeferrer:
        return self.app.configure_task(
            self.task,
            queue=RUN_QUEUE,
            lock=interaction_id,
            queueing_lock=interaction_id,
            priority=-priority,  # procrastinate runs higher numbers first
            connection=connection,
        )

    async def submit(self, interaction_id: str, priority: int = 1) -> None:
        with contextlib.suppress(AlreadyEnqueued):
            await self._run_job(interaction_id, priority).defer_async(
                **{self.argument: interaction_id}
            )

    async def batch_created(
        self, connection: psycopg.AsyncConnection[Any], batch: BatchRecord
    ) -> None:
        """The batch store's hook (the queue of `BATCH_TASK`), run inside the transaction that
        creates `batch`'s row on `connection`: its job is deferred with it."""
        await self._run_job(batch.id, 1, connection).defer_async(**{self.argument: batch.id})

    async def in_transaction(
        self, connection: psycopg.AsyncConnection[Any], record: InteractionRecord
    ) -> None:
        """The store's hook, run inside the transaction that creates `record`'s row on
        `connection`: a background run's job is deferred; a foreground run is recorded as
        this process's (the reconciler ends it if this process dies)."""
        if record.background:
            priority = queue_priority(record.request.get("service_tier"))
            await self._run_job(record.id, priority, connection).defer_async(
                interaction_id=record.id
            )
            return
        await connection.execute(
            "INSERT INTO propylon_run_owners (interaction_id, process_id) VALUES (%s, %s) "
            "ON CONFLICT (interaction_id) DO NOTHING",
            (record.id, self.owner),
        )

    async def _live(self, interaction_id: str) -> list[Any]:
        jobs = await self.app.job_manager.list_jobs_async(lock=interaction_id, task=self.task)
        return [job for job in jobs if job.status in ("todo", "doing")]

    async def cancel(self, interaction_id: str) -> bool:
        """Abort the run's job: a queued one never starts, a running one is cancelled in its
        worker (which ends the run `cancelled`). Returns once it has stopped, or after
        `cancel_grace` seconds (the caller then takes the run over)."""
        jobs = await self._live(interaction_id)
        for job in jobs:
            assert job.id is not None
            await self.app.job_manager.cancel_job_by_id_async(job.id, abort=True)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cancel_grace
        while jobs and loop.time() < deadline:
            if not any(j.status == "doing" for j in await self._live(interaction_id)):
                break
            await asyncio.sleep(_POLL)
        return bool(jobs)

    def wake_deliveries(self) -> None:
        """New webhook deliveries are in the outbox: a worker delivers them now."""
        task = asyncio.get_running_loop().create_task(self._defer_delivery())
        self._wakes.add(task)
        task.add_done_callback(self._wakes.discard)

    async def _defer_delivery(self) -> None:
        try:
            await self.app.configure_task(
                DELIVER_TASK, queue=CONTROL_QUEUE, lock=DELIVER_TASK, queueing_lock=DELIVER_TASK
            ).defer_async()
        except AlreadyEnqueued:
            pass  # a pass is already due: it sends these too
        except Exception:  # the periodic pass sends them
            logger.exception("could not queue a webhook delivery pass")

    async def stop(self) -> None:
        await asyncio.gather(*self._wakes, return_exceptions=True)
