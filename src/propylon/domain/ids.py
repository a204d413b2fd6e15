"""Identifiers: interaction ids and per-interaction event ids.

An interaction id looks like the live API's (`v1_` + 24 url-safe characters): its creation time
(7 characters that sort as the time does), then 17 random ones. Ids of the same moments sort
together, so the stores' indexes on them (the interactions' key, the events' key) grow at their
end, where the pages of one commit are the same few, not at a random page per interaction. An
event id is
`<interaction id>.<sequence number>`: the sequence starts at 1 and increases by one per event
(no gaps), so resuming after event k is an index range read, and an event id names its
interaction, so one from another interaction is recognised and refused.
"""

from __future__ import annotations

import secrets
import time

__all__ = ["event_id", "new_interaction_id", "parse_event_id"]

# The url-safe characters in ASCII order: a number written in them sorts as the number does.
_SORTED = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def new_interaction_id() -> str:
    """A fresh, unguessable interaction id such as `v1_PVxZ3kQ...` (27 characters): the
    milliseconds since 1970 in 7 characters of `_SORTED` (42 bits: they sort until 2109, then
    wrap around, which only costs that locality), then 17 random ones (102 bits)."""
    millis = time.time_ns() // 1_000_000
    stamp = "".join(_SORTED[(millis >> shift) & 63] for shift in range(36, -1, -6))
    return "v1_" + stamp + secrets.token_urlsafe(13)[:17]


def event_id(interaction_id: str, seq: int) -> str:
    """The wire `event_id` of event number `seq` (1-based) of an interaction."""
    return f"{interaction_id}.{seq}"


def parse_event_id(interaction_id: str, value: str) -> int | None:
    """The sequence number in `value` if it is an event id of `interaction_id`, else None."""
    prefix, _, seq = value.rpartition(".")
    if prefix != interaction_id or not seq.isdigit():
        return None
    return int(seq)
