"""The job queue interface: background runs are jobs named by their interaction id.

A job carries only the id: the worker rebuilds the turn from the store, so the embedded
in-process queue (jobs/local.py) and procrastinate on PostgreSQL (jobs/procrastinate.py, with
`propylon worker` processes) share the runner unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["Handler", "JobQueue", "Stopping"]

Handler = Callable[[str], Awaitable[None]]

# True once the process is stopping. A run cancelled then is left unfinished for the next
# start (or another worker) to recover, not ended `cancelled`: a state asked of the service,
# never read from the CancelledError (libraries re-raise cancellation with messages of their
# own).
Stopping = Callable[[], bool]


class JobQueue(Protocol):
    """Runs `handler(interaction_id)` for submitted jobs, at most `concurrency` at once."""

    # True when the store defers a background run's job in the transaction that writes its
    # row (the create needs no `submit`); False for a queue in this process.
    transactional: bool

    def has_capacity(self) -> bool:
        """True when a job submitted now would start at once (else it is `queued`)."""

    async def submit(self, interaction_id: str, priority: int = 1) -> None:
        """Queue the job; it starts when a worker is free, lower `priority` numbers first.
        A job already queued for the interaction is left as it is."""

    async def cancel(self, interaction_id: str) -> bool:
        """Stop the job wherever it is queued or running, and return once it has stopped (or
        a bounded wait is over: the caller then takes the run over, see `claim_run`). False
        when there was no such job."""

    def waiting(self) -> int:
        """Jobs of this process waiting for a worker (0 when not known here)."""

    async def stop(self) -> None:
        """Cancel every job running here (the service is `Stopping` first, so their runs stay
        unfinished and are recovered)."""
