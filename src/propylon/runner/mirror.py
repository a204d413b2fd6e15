"""Mirroring a Google-hosted agent's interaction: its upstream events become this
interaction's own log, so clients read, stream and resume it from Propylon.

The upstream's `interaction.created` only tells its id (Propylon announced its own); status
updates, steps and errors are appended as they come, with Propylon's ids; the upstream's
`interaction.completed` (status and usage) ends the log. Google's usage object is passed on
unchanged (per-modality lists, `grounding_tool_count` and fields Propylon does not know).
Cancelling the task cancels upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from propylon.domain.events import COMPLETED, CREATED, ERROR, STATUS_UPDATE
from propylon.jobs.base import Stopping
from propylon.providers.base import UpstreamError
from propylon.providers.google_interactions import GoogleInteractions
from propylon.runner.log import EventLog
from propylon.runner.turn import cancel_handled, finish

__all__ = ["mirror_turn"]

logger = logging.getLogger("propylon.runner")


async def mirror_turn(
    log: EventLog, agent: GoogleInteractions, body: dict[str, Any], *, stopping: Stopping
) -> None:
    """Forward `body` (a create for a Google-hosted agent) and mirror what comes back.
    Never raises for an upstream failure: the interaction ends `failed`. A cancel ends it
    `cancelled` (and cancels upstream) unless the process is `stopping`."""
    record = log.record
    status, usage = "failed", None
    try:
        async for event in agent.create(body):
            if log.ended:  # the log could not be written
                break
            kind = event.pop("event_type", None)
            event.pop("event_id", None)
            if kind == CREATED:
                record.upstream_id = event["interaction"]["id"]
            elif kind == STATUS_UPDATE:
                log.emit(STATUS_UPDATE, {**event, "interaction_id": record.id})
            elif kind == COMPLETED:
                status = event["interaction"].get("status", "completed")
                usage = event["interaction"].get("usage")
                break
            elif kind == ERROR:
                log.emit(ERROR, {"error": event.get("error") or {}})
            elif kind is not None:
                log.emit(kind, event)  # step.start / step.delta / step.stop, as sent
        else:
            log.emit(
                ERROR,
                {
                    "error": {
                        "code": "upstream_error",
                        "message": "the agent's stream ended before its interaction completed",
                    }
                },
            )
    except asyncio.CancelledError:
        if stopping():
            raise
        status = "cancelled"
        cancel_handled()
        if record.upstream_id:
            with contextlib.suppress(UpstreamError):
                await agent.cancel(record.upstream_id)
    except UpstreamError as exc:
        log.emit(
            ERROR,
            {
                "error": {
                    "code": "upstream_error",
                    "message": f"the agent's upstream failed: {exc.message}",
                }
            },
        )
    finish(log, status, usage)
    await log.drain()
