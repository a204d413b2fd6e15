"""Use cases of OpenAI's Responses API, as a view of interactions: every Response is an
interaction, created, run, stored, streamed, cancelled and deleted by InteractionService.

Same id on both surfaces, same log, lifecycle, tenancy, retention, export, webhooks and
idempotency. What differs is the wire shape, which api/openai renders from what this returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from propylon.domain import lifecycle
from propylon.domain.caller import Caller
from propylon.domain.events import Event
from propylon.domain.redaction import redact_request
from propylon.errors import FailedPrecondition, InvalidArgument, NotFound
from propylon.schema.interactions import parse_create
from propylon.schema.openai.responses import (
    CompactRequest,
    CreateResponse,
    to_create_interaction,
)
from propylon.service import reading
from propylon.service.interactions import InteractionService, to_resource
from propylon.store.base import InteractionRecord

__all__ = ["ResponseService", "Stream", "View"]


@dataclass(slots=True)
class View:
    """An interaction to show as a Response: its resource (`steps`: output steps only) and how
    it was created."""

    interaction: dict[str, Any]
    background: bool
    store: bool = True


@dataclass(slots=True)
class Stream:
    """An interaction's log from its first event, live until its end. `base`: its id and
    echoed request fields (what a Response shows besides the log's fold)."""

    base: dict[str, Any]
    events: AsyncIterator[Event | None]
    background: bool
    store: bool = True


class ResponseService:
    """The Responses use cases over the interactions' ones."""

    def __init__(self, interactions: InteractionService) -> None:
        self.interactions = interactions

    async def create(
        self,
        request: CreateResponse,
        caller: Caller,
        idempotency_key: str | None = None,
        body: Any = None,
        history: list[dict[str, Any]] | None = None,
    ) -> View | Stream:
        """Create and run the interaction behind a Response for `caller`. A stream (also of a
        background run) starts at its first event. `history`: steps that go before `input`
        (the conversation a WebSocket connection keeps for a `store` false response). Raises
        what InteractionService.create raises, and InvalidArgument for OpenAI fields that
        cannot be carried."""
        fields = to_create_interaction(request)
        if history:
            fields["input"] = history + (fields["input"] or [])
        create = parse_create(fields)
        try:
            self.interactions.models.resolve(request.model)
        except NotFound as exc:  # said before any other check: OpenAI's `model_not_found`
            raise NotFound(exc.message, param="model") from None
        if request.previous_response_id:
            await self.previous(request.previous_response_id, caller)
        created = await self.interactions.create(create, caller, idempotency_key, body)
        background, store = create.background, create.store
        if created.events is not None or (create.stream and background):
            base = {"id": created.interaction_id, **redact_request(create.echoed_fields())}
            events = reading.each(
                created.events
                or await self.interactions.stream(created.interaction_id, None, caller)
            )
            return Stream(base, events, background, store)
        assert created.resource is not None
        return View(created.resource, background, store)

    async def previous(self, response_id: str, caller: Caller) -> None:
        """Check that `previous_response_id` names a finished Response (or interaction) of
        `caller`'s: else InvalidArgument or FailedPrecondition naming the field (400, as
        OpenAI answers it)."""
        try:
            record = await self._record(response_id, caller)
        except NotFound:
            raise InvalidArgument(
                f"previous response `{response_id}` not found", param="previous_response_id"
            ) from None
        if not lifecycle.is_terminal(record.status):
            raise FailedPrecondition(
                f"previous response `{response_id}` has not finished (status `{record.status}`)",
                param="previous_response_id",
            )

    async def _record(self, response_id: str, caller: Caller) -> InteractionRecord:
        """The Response's interaction. Raises NotFound in this API's words."""
        try:
            return await self.interactions.current(response_id, caller)
        except NotFound:
            raise _missing(response_id) from None

    async def get(self, response_id: str, caller: Caller) -> View:
        """The Response's interaction. Raises NotFound (also for another tenant's, and for
        one created with `store` false: it was never kept)."""
        record = await self._record(response_id, caller)
        return View(to_resource(record, include_input_steps=False), record.background)

    async def stream(self, response_id: str, caller: Caller) -> Stream:
        """The Response's log from its first event, then live until its end (a reader resumes
        by skipping what it has seen). Raises NotFound, or Unavailable while stopping."""
        record = await self._record(response_id, caller)
        events = reading.each(await self.interactions.stream(response_id, None, caller))
        base = {"id": record.id, **redact_request(record.request)}
        return Stream(base, events, record.background)

    async def input_steps(self, response_id: str, caller: Caller) -> list[dict[str, Any]]:
        """The steps this Response's `input` became, in order. Raises NotFound."""
        return (await self._record(response_id, caller)).input_steps

    async def cancel(self, response_id: str, caller: Caller) -> View:
        """Cancel a background Response still running; one that has ended is returned as it
        is (a cancelled one never becomes completed: its log holds one end). Raises NotFound,
        or FailedPrecondition for a foreground Response."""
        record = await self._record(response_id, caller)
        if not record.background:
            raise FailedPrecondition(
                f"only background responses can be cancelled; `{response_id}` was created "
                "with `background` false"
            )
        if not lifecycle.is_terminal(record.status):
            with contextlib.suppress(FailedPrecondition):  # it ended first: shown as it ended
                await self.interactions.cancel(response_id, caller)
        return await self.get(response_id, caller)

    async def delete(self, response_id: str, caller: Caller) -> None:
        """Delete the Response's interaction and its log (a running one is stopped first).
        Raises NotFound."""
        try:
            await self.interactions.delete(response_id, caller)
        except NotFound:
            raise _missing(response_id) from None

    async def compact(self, request: CompactRequest, caller: Caller) -> list[dict[str, Any]]:
        """The whole conversation a compaction carries, as steps: the chain ending at
        `previous_response_id`, then `input`. Runs no model. Raises NotFound (the model, the
        previous response), FailedPrecondition (that response still runs), InvalidArgument
        (nothing to compact)."""
        self.interactions.models.resolve(request.model)
        history: list[dict[str, Any]] = []
        if request.previous_response_id:
            previous = await self._record(request.previous_response_id, caller)
            if not lifecycle.is_terminal(previous.status):
                raise FailedPrecondition(
                    f"previous response `{previous.id}` has not finished (status "
                    f"`{previous.status}`)",
                    param="previous_response_id",
                )
            history = await self.interactions.store.history(previous.id)
        steps = history + request.input_steps()
        if not steps:
            raise InvalidArgument("`input` is required: there is nothing to compact", param="input")
        return steps


def _missing(response_id: str) -> NotFound:
    return NotFound(f"response `{response_id}` not found")
