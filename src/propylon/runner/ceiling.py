"""Per-turn ceilings of a foreground answer, and the continuation token of a cut one.

A foreground run (the client waits on one HTTP request) on a model that can continue an
answer is held to `continuation_after_seconds` from its start and `continuation_after_tokens`
output tokens (settings). Past either, mid-answer, the run ends `requires_continuation` with
a `continuation_token`; the client (google-genai does it by itself) sends it back and the
next interaction goes on from where this one stopped. An upstream that cuts the answer at
its own limit (Gemini's `CONTINUATION` finish) ends the run the same way. Background runs
are never cut: the runner goes on with the answer itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from propylon.domain.continuation import Continuation, encode
from propylon.providers.base import Turn

__all__ = ["Ceiling"]


@dataclass(slots=True)
class Ceiling:
    """seconds / tokens: the ceilings (None: none). prior_output_tokens: output tokens the
    answer already had before this run (earlier hops), for a `store=false` token."""

    seconds: float | None = None
    tokens: int | None = None
    prior_output_tokens: int = 0
    capped: bool = False  # the turn's max_output_tokens is this ceiling's
    _deadline: float | None = field(default=None, repr=False)

    @property
    def armed(self) -> bool:
        """A ceiling is set: the answer may be cut as it streams."""
        return self.seconds is not None or self.tokens is not None

    def arm(self, turn: Turn) -> None:
        """Start the clock, and hold the turn's `max_output_tokens` to the token ceiling when
        that is the lower one (a cut there is a continuation, not `incomplete`)."""
        if self.seconds is not None:
            self._deadline = time.monotonic() + self.seconds
        if self.tokens is not None:
            own = turn.generation_config.get("max_output_tokens")
            if own is None or self.tokens < own:
                turn.generation_config = {
                    **turn.generation_config,
                    "max_output_tokens": self.tokens,
                }
                self.capped = True

    def passed(self) -> bool:
        """True once the time ceiling has passed."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def token(
        self,
        interaction_id: str,
        stored: bool,
        text: str,
        output_tokens: int,
        upstream: str | None = None,
    ) -> str:
        """The continuation token of a cut run: its id when stored, else the partial `text`
        (the whole answer so far) and its output tokens; and the upstream's own token."""
        if stored:
            return encode(Continuation(interaction_id=interaction_id, upstream=upstream))
        spent = self.prior_output_tokens + output_tokens
        return encode(Continuation(text=text, output_tokens=spent, upstream=upstream))
