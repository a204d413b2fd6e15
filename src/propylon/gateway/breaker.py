"""A per-target circuit breaker: closed, open after repeated failures, half-open after a
cooldown (one probe call decides)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["CircuitBreaker", "Permit"]


class Permit:
    """Leave to make one call; `probe`: it is the half-open state's one probe."""

    __slots__ = ("probe",)

    def __init__(self, probe: bool) -> None:
        self.probe = probe


class CircuitBreaker:
    """`failures` consecutive failed attempts open the circuit for `cooldown` seconds; then one
    probe is allowed: its success closes the circuit, its failure opens it again.

    Every permit `allow` gives must be given back with `release` whatever the call's outcome
    (in a `finally`): a probe that recorded neither a success nor a failure (the request was
    refused, the caller was cancelled) frees the half-open slot for the next call.
    """

    def __init__(
        self, failures: int, cooldown: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probe: Permit | None = None

    @property
    def state(self) -> str:
        """`closed`, `open` or `half_open`."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cooldown:
            return "open"
        return "half_open"

    def allow(self) -> Permit | None:
        """A permit to call this target now, or None. In half-open state, one at a time."""
        state = self.state
        if state == "closed":
            return Permit(probe=False)
        if state == "half_open" and self._probe is None:
            self._probe = Permit(probe=True)
            return self._probe
        return None

    def release(self, permit: Permit) -> None:
        """The call made with `permit` is over; a probe still undecided gives its slot back."""
        if permit is self._probe:
            self._probe = None

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._probe = None

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._probe is not None or self._consecutive >= self.failures:
            self._opened_at = self._clock()
        self._probe = None
