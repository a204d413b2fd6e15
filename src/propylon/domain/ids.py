"""Identifiers: interaction ids and per-interaction event ids.

An interaction id looks like the live API's (`v1_` + 24 url-safe characters). An event id is
`<interaction id>.<sequence number>`: the sequence starts at 1 and increases by one per event
(no gaps), so resuming after event k is an index range read, and an event id names its
interaction, so one from another interaction is recognised and refused.
"""

from __future__ import annotations

import secrets

__all__ = ["event_id", "new_interaction_id", "parse_event_id"]


def new_interaction_id() -> str:
    """A fresh, unguessable interaction id such as `v1_Zk3...` (27 characters)."""
    return "v1_" + secrets.token_urlsafe(18)


def event_id(interaction_id: str, seq: int) -> str:
    """The wire `event_id` of event number `seq` (1-based) of an interaction."""
    return f"{interaction_id}.{seq}"


def parse_event_id(interaction_id: str, value: str) -> int | None:
    """The sequence number in `value` if it is an event id of `interaction_id`, else None."""
    prefix, _, seq = value.rpartition(".")
    if prefix != interaction_id or not seq.isdigit():
        return None
    return int(seq)
