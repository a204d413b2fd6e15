"""`propylon worker`: runs the background runs, Gemini batches, webhook deliveries and
reconciler passes that procrastinate holds in PostgreSQL.

Two procrastinate workers share the process: one takes run and batch jobs (`concurrency` at
once; a batch answers `batch_concurrency` of its requests at once), the
other the control queue (the reconciler and webhook deliveries, one at a time), so a full run
queue never holds the reconciler up. Procrastinate records each worker's heartbeat; a worker
that dies (a lost database connection stops it) is started again.

SIGTERM (or SIGINT): no new job is taken; the runs under way have `shutdown_timeout_seconds`
to finish; the rest are handed back: the service is stopping, so a cancelled run is left
unfinished, and its job goes back to the queue (a retry, never a user cancel: a run whose
abort was asked is not retried). Another worker takes it over: it runs again when it had
produced no step, else it ends `failed` with code `interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import Any

from procrastinate.jobs import Job
from procrastinate.retry import BaseRetryStrategy, RetryDecision
from procrastinate.worker import Worker

from propylon.config import Settings
from propylon.gateway.registry import ModelRegistry
from propylon.jobs.procrastinate import (
    BATCH_TASK,
    CONTROL_QUEUE,
    DELIVER_TASK,
    RECONCILE_TASK,
    RUN_QUEUE,
    RUN_TASK,
)
from propylon.jobs.reconciler import Reconciler
from propylon.runtime import Runtime, build_runtime

__all__ = ["run_worker"]

logger = logging.getLogger("propylon.worker")

_DELIVER_EVERY = 5  # seconds between delivery passes (retries); new deliveries wake one
_RESTART_PAUSE = 1.0  # seconds before a procrastinate worker that stopped is started again


def _every(seconds: int) -> str:
    """A cron expression (with a seconds field) for every `seconds` seconds."""
    return f"* * * * * */{seconds}"


class HandBack(BaseRetryStrategy):
    """The retry of a run job: asked for a cancel only. Procrastinate turns it into `failed`
    when the cancel was a user's abort (never retried), into a new attempt when it was this
    worker's shutdown (the run is handed back). A run that raised otherwise has ended itself."""

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError):
            return RetryDecision(retry_in={"seconds": 0})
        return None


def _register(runtime: Runtime, running: set[asyncio.Task[Any]]) -> Reconciler:
    """Declare the tasks on the runtime's procrastinate App."""
    app, service, settings = runtime.jobs, runtime.service, runtime.settings
    assert app is not None and runtime.queue is not None

    @app.task(name=RUN_TASK, queue=RUN_QUEUE, retry=HandBack())
    async def run(interaction_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await service.execute(interaction_id)
        finally:
            running.discard(task)

    @app.task(name=BATCH_TASK, queue=RUN_QUEUE, retry=HandBack())
    async def batch(batch_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await runtime.batches.execute(batch_id)
        finally:
            running.discard(task)

    @app.periodic(cron=_every(_DELIVER_EVERY), periodic_id="deliver")
    @app.task(name=DELIVER_TASK, queue=CONTROL_QUEUE, lock=DELIVER_TASK, queueing_lock=DELIVER_TASK)
    async def deliver(timestamp: int | None = None) -> None:
        await runtime.deliveries.deliver_due()

    async def close_orphan(interaction_id: str, status: str, error: dict[str, str]) -> bool:
        """A dead serve process's foreground run: charged its reservation, as after a restart."""
        await service.ledger.charge(interaction_id)
        return await service.close_run(interaction_id, status, error)

    async def recover_lost(interaction_ids: list[str]) -> int:
        return await service.ledger.recover_lost(interaction_ids, service.store.get)

    reconciler = Reconciler(
        app,
        runtime.queue,
        close_orphan,
        settings.stale_after_seconds,
        close_cancelled=service.close_cancelled,
        recover_lost=recover_lost,
        batches=runtime.batch_queue,
    )

    @app.periodic(cron=_every(settings.reconcile_seconds), periodic_id="reconcile")
    # No `lock`: a pass that died with its worker would hold it. Two passes at once are safe
    # (each takeover is a claim of the run epoch; a second one finds nothing left to do).
    @app.task(name=RECONCILE_TASK, queue=CONTROL_QUEUE, queueing_lock=RECONCILE_TASK)
    async def reconcile(timestamp: int | None = None) -> None:
        await reconciler.run_once()

    return reconciler


async def _supervise(worker: Worker, stopping: asyncio.Event) -> None:
    """Run `worker` until the process stops, starting it again when it stops by itself (a
    failed heartbeat or a lost connection ends a procrastinate worker)."""
    while not stopping.is_set():
        try:
            await worker.run()  # type: ignore[no-untyped-call]
        except Exception:
            logger.exception("a job worker failed")
        if not stopping.is_set():
            logger.warning("a job worker stopped; starting it again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), _RESTART_PAUSE)


async def run_worker(settings: Settings, concurrency: int) -> None:
    """Run jobs until SIGTERM or SIGINT, then stop gracefully (see the module). Raises
    ValueError when the settings name no PostgreSQL database."""
    models = ModelRegistry.from_settings(settings)
    runtime = build_runtime(settings, models, "worker")
    if runtime.jobs is None:
        raise ValueError("`propylon worker` needs a PostgreSQL `database_url`")
    await runtime.open()
    running: set[asyncio.Task[Any]] = set()
    _register(runtime, running)
    common: dict[str, Any] = {
        "install_signal_handlers": False,
        "update_heartbeat_interval": settings.heartbeat_seconds,
        "stalled_worker_timeout": settings.stale_after_seconds,
        "fetch_job_polling_interval": 1.0,
        "abort_job_polling_interval": 1.0,
        "delete_jobs": "successful",
    }
    workers = [
        Worker(runtime.jobs, queues=[RUN_QUEUE], concurrency=concurrency, name="runs", **common),
        Worker(runtime.jobs, queues=[CONTROL_QUEUE], concurrency=1, name="control", **common),
    ]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    supervisors = [asyncio.create_task(_supervise(w, stopping)) for w in workers]
    logger.warning("propylon worker %s: running jobs (%d at once)", runtime.owner, concurrency)
    await stopping.wait()
    logger.warning("stopping: %d runs under way", len(running))
    for worker in workers:
        worker.stop()  # type: ignore[no-untyped-call]  # no new job; runs go on
    if running:
        await asyncio.wait(set(running), timeout=settings.shutdown_timeout_seconds)
    # Past the grace: hand the rest back (the service is stopping, so they stay unfinished).
    runtime.service.stopping = True
    for task in list(running):
        task.cancel()
    await asyncio.gather(*supervisors, return_exceptions=True)
    await runtime.service.shutdown()
    await runtime.close()
    logger.warning("propylon worker %s stopped", runtime.owner)
