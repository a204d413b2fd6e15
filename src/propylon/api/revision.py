"""The wire revision an Interactions request is answered in, and that revision's view.

The revision is, first found: the `Api-Revision` request header, the API key's default
(`propylon keys create --api-revision DATE`), the server's `api_revision` setting; with none,
the current one. A date from 2026-05-20 on is the current `steps` schema; an earlier one is the
legacy `outputs` schema (schema/legacy.py). Both are views of the same event log and
projection, computed here at the edge: runs, the store and resumption are one for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from propylon.api.auth import caller_of
from propylon.config import Settings
from propylon.domain.caller import Caller
from propylon.domain.events import Event
from propylon.domain.ids import parse_event_id
from propylon.errors import InvalidArgument
from propylon.schema.legacy import (
    LegacyEvent,
    is_legacy,
    legacy_events,
    legacy_interaction,
    legacy_request,
    resume_point,
    revision_date,
)
from propylon.service.interactions import InteractionService
from propylon.service.reading import Batch, each, singles

__all__ = ["HEADER", "View", "revision_of", "view_of"]

HEADER = "Api-Revision"

# Batches of events in a revision's form (None: a keep-alive tick), each sent as one write.
WireEvents = AsyncIterator[list[Event] | None] | AsyncIterator[list[LegacyEvent] | None]


def revision_of(request: Request) -> str | None:
    """The request's revision (a date `YYYY-MM-DD`), None for the current one. Raises
    InvalidArgument, naming the header, when `Api-Revision` is not a date."""
    value = request.headers.get(HEADER)
    if value is not None:
        try:
            return revision_date(value.strip())
        except ValueError as exc:
            raise InvalidArgument(f"header `{HEADER}`: {exc}, not `{value}`") from None
    caller: Caller = caller_of(request)
    if caller.api_revision is not None:
        return caller.api_revision
    settings: Settings = request.app.state.settings
    return settings.api_revision


@dataclass(frozen=True, slots=True)
class View:
    """How answers are shaped: `legacy` for the `outputs` revision, else as stored."""

    legacy: bool

    def request(self, body: Any) -> Any:
        """A decoded create body in the current revision's form."""
        return legacy_request(body) if self.legacy else body

    def resource(self, resource: dict[str, Any]) -> dict[str, Any]:
        """A wire Interaction (with `steps`) in this revision."""
        return legacy_interaction(resource) if self.legacy else resource

    def events(self, interaction_id: str, events: AsyncIterator[Batch]) -> WireEvents:
        """A stream of the log from its first event, in this revision."""
        if not self.legacy:
            return events
        return singles(legacy_events(interaction_id, each(events)))

    async def stream(
        self,
        service: InteractionService,
        interaction_id: str,
        last_event_id: str | None,
        caller: Caller,
    ) -> WireEvents:
        """`GET ...?stream=true`: the log from the start or after `last_event_id` (an event id
        this revision sent). Raises what `InteractionService.stream` raises."""
        if not self.legacy:
            return await service.stream(interaction_id, last_event_id, caller)
        if not last_event_id:
            return self.events(interaction_id, await service.stream(interaction_id, None, caller))
        # Output indexes depend on the whole log: the view reads it from the first event
        # and sends what follows the resume point.
        own, n = resume_point(interaction_id, last_event_id)
        events = await service.stream(interaction_id, own, caller, from_start=True)
        seq = parse_event_id(interaction_id, own) or 0
        return singles(legacy_events(interaction_id, each(events), (seq, n)))


def view_of(request: Request) -> View:
    """The view of the request's revision (see `revision_of`; raises InvalidArgument)."""
    return View(legacy=is_legacy(revision_of(request)))
