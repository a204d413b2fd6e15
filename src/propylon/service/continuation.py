"""Going on with an answer cut short: the checks on a create that sends `continuation_token`,
and what the turn continues from (see runner/ceiling.py for how answers are cut).

google-genai sends the token back by itself (automatic continuation): with `store=true` as
`{continuation_token, previous_interaction_id: <the cut interaction>}` and no `input`; with
`store=false` with the original `input` (the token then carries the partial answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from propylon.domain import continuation
from propylon.errors import FailedPrecondition, InvalidArgument
from propylon.schema.interactions import CreateInteraction
from propylon.store.base import InteractionRecord, Store

__all__ = ["Resumed", "resume"]

# How far back a chain of cut interactions is followed to count its output tokens.
_MAX_HOPS = 1000


@dataclass(slots=True)
class Resumed:
    """history: the stored conversation before the cut answer (none with `store=false`:
    the request's `input` is all of it). text: the answer so far.
    output_tokens: what the answer has cost so far, in output tokens. upstream: the
    upstream's own token, when it cut the answer."""

    history: list[dict[str, Any]]
    text: str
    output_tokens: int
    upstream: str | None = None


async def resume(
    request: CreateInteraction,
    input_steps: list[dict[str, Any]],
    previous: InteractionRecord | None,
    history: list[dict[str, Any]],
    store: Store,
) -> Resumed:
    """Check `request.continuation_token` against the request and, for `store=true`, against
    `previous` (the interaction it names, already checked as the caller's, with `history`).
    Raises InvalidArgument or FailedPrecondition naming the field."""
    assert request.continuation_token is not None
    try:
        token = continuation.decode(request.continuation_token)
    except ValueError:
        raise InvalidArgument(
            "`continuation_token` is not a token this server issued: send back the latest "
            "`continuation_token` of an interaction that ended `requires_continuation`"
        ) from None
    if token.interaction_id is None:  # a store=false answer: the token carries it
        if request.store:
            raise InvalidArgument(
                "`continuation_token` comes from a `store=false` interaction: send it with "
                "`store=false` and the original `input`"
            )
        return Resumed([], token.text or "", token.output_tokens, token.upstream)
    if not request.store:
        raise InvalidArgument(
            "`continuation_token` comes from a stored interaction: send it with "
            f"`previous_interaction_id` `{token.interaction_id}` and `store=true`"
        )
    if previous is None or previous.id != token.interaction_id:
        raise InvalidArgument(
            f"`continuation_token` belongs to interaction `{token.interaction_id}`: send it "
            "with that interaction as `previous_interaction_id`"
        )
    if previous.status != "requires_continuation":
        raise FailedPrecondition(
            f"interaction `{previous.id}` has status `{previous.status}`, not "
            "`requires_continuation`: there is nothing to continue"
        )
    if input_steps:
        raise InvalidArgument(
            "`input` cannot go with a stored `continuation_token`: the continued interaction "
            "already holds it"
        )
    start, text = continuation.trailing_answer(history)
    spent = await _chain_output_tokens(previous, store)
    return Resumed(history[:start], text, spent, token.upstream)


async def _chain_output_tokens(cut: InteractionRecord, store: Store) -> int:
    """Output tokens of `cut` and of the cut interactions it continued (a hop that
    continues another has no input of its own)."""
    total, record = 0, cut
    for _ in range(_MAX_HOPS):
        total += int((record.usage or {}).get("total_output_tokens") or 0)
        if record.input_steps or not record.previous_interaction_id:
            break
        parent = await store.get(record.previous_interaction_id)
        if parent is None or parent.status != "requires_continuation":
            break
        record = parent
    return total
