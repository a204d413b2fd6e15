"""The job queue interface: background runs are jobs named by their interaction id.

A job carries only the id: the worker rebuilds the turn from the store, so the embedded
in-process queue and a distributed one (a queue library on PostgreSQL or Redis, with
`propylon worker` processes) share the runner unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Handler", "JobQueue", "Stopping"]

Handler = Callable[[str], Awaitable[None]]

# True once the process is stopping. A run cancelled then is left unfinished for the next
# start to recover, not ended `cancelled`: a state asked of the service, never read from the
# CancelledError (libraries re-raise cancellation with messages of their own).
Stopping = Callable[[], bool]


class JobQueue(Protocol):
    """Runs `handler(interaction_id)` for submitted jobs, at most `concurrency` at once."""

    def has_capacity(self) -> bool:
        """True when a job submitted now would start at once (else it is `queued`)."""

    def submit(self, interaction_id: str, priority: int = 1) -> None:
        """Queue the job; it starts when a worker is free, lower `priority` numbers first."""

    def cancel(self, interaction_id: str) -> bool:
        """Cancel the job if it is queued or running here. False when it is not."""

    async def stop(self) -> None:
        """Cancel every job (the service is `Stopping` first, so their runs stay unfinished
        and are recovered at the next start)."""
