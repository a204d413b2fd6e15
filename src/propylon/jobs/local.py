"""The embedded job queue: asyncio tasks in this process, a semaphore as the worker pool."""

from __future__ import annotations

import asyncio
import logging

from propylon.jobs.base import Handler

__all__ = ["LocalQueue"]

logger = logging.getLogger("propylon.jobs")


class LocalQueue:
    """Runs jobs as tasks; `concurrency` of them at once, the rest wait in FIFO order."""

    def __init__(self, handler: Handler, concurrency: int) -> None:
        self._handler = handler
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = 0

    def has_capacity(self) -> bool:
        return self._running + self.waiting() < self._concurrency

    def waiting(self) -> int:
        """Jobs queued for a worker (the queue depth)."""
        return len(self._tasks) - self._running

    def submit(self, interaction_id: str) -> None:
        task = asyncio.create_task(self._run(interaction_id))
        self._tasks[interaction_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(interaction_id, None))

    async def _run(self, interaction_id: str) -> None:
        async with self._slots:
            self._running += 1
            try:
                await self._handler(interaction_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("background run of %s failed", interaction_id)
            finally:
                self._running -= 1

    def cancel(self, interaction_id: str) -> bool:
        task = self._tasks.get(interaction_id)
        if task is None:
            return False
        task.cancel()
        return True

    async def wait(self, interaction_id: str) -> None:
        """Until the job is done (returns at once when it is not here)."""
        task = self._tasks.get(interaction_id)
        if task is not None:
            await asyncio.gather(asyncio.shield(task), return_exceptions=True)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
