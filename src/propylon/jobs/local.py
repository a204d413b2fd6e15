"""The embedded job queue: asyncio tasks in this process, `concurrency` of them running at
once; the rest wait in a priority queue (lower number first, FIFO within a priority)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging

from propylon.jobs.base import Handler

__all__ = ["LocalQueue"]

logger = logging.getLogger("propylon.jobs")


class LocalQueue:
    """Runs jobs as tasks; `concurrency` of them at once, the rest wait by priority."""

    transactional = False

    def __init__(self, handler: Handler, concurrency: int) -> None:
        self._handler = handler
        self._concurrency = concurrency
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # (priority, submission order, id) of jobs waiting for a slot, and their wake-ups
        self._heap: list[tuple[int, int, str]] = []
        self._gates: dict[str, asyncio.Future[None]] = {}
        self._order = itertools.count()
        self._running = 0

    def has_capacity(self) -> bool:
        return self._running + self.waiting() < self._concurrency

    def waiting(self) -> int:
        """Jobs queued for a worker (the queue depth)."""
        return len(self._gates)

    async def submit(self, interaction_id: str, priority: int = 1) -> None:
        """Queue the job; it starts when a slot is free and no job of a lower `priority`
        number (or of the same, submitted earlier) is waiting."""
        if interaction_id in self._tasks:
            return
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._gates[interaction_id] = gate
        heapq.heappush(self._heap, (priority, next(self._order), interaction_id))
        task = asyncio.create_task(self._run(interaction_id, gate))
        self._tasks[interaction_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(interaction_id, None))
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to the first waiting jobs."""
        while self._running < self._concurrency and self._heap:
            _, _, interaction_id = heapq.heappop(self._heap)
            gate = self._gates.pop(interaction_id, None)
            if gate is None or gate.done():
                continue  # cancelled while it waited
            self._running += 1
            gate.set_result(None)

    async def _run(self, interaction_id: str, gate: asyncio.Future[None]) -> None:
        try:
            await gate
        except asyncio.CancelledError:
            if self._gates.get(interaction_id) is gate:
                del self._gates[interaction_id]
            elif not gate.cancelled():  # given a slot, cancelled before it began
                self._running -= 1
                self._dispatch()
            raise
        try:
            await self._handler(interaction_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("background run of %s failed", interaction_id)
        finally:
            self._running -= 1
            self._dispatch()

    async def cancel(self, interaction_id: str) -> bool:
        task = self._tasks.get(interaction_id)
        if task is None:
            return False
        task.cancel()
        await self.wait(interaction_id)
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
