"""Server-sent events framing (reference §5.1): `event:`, `id:` and a one-line JSON `data:`
that itself carries `event_type` and `event_id`; keep-alive comments; `data: [DONE]` last.

Once a stream has started its status line is sent, so a failure becomes an `error` event,
carrying the Interactions error object `{"code": "<string>", "message": ...}`
(api/interactions_errors.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import orjson
from prometheus_client import Gauge
from starlette.responses import StreamingResponse

from propylon.api.interactions_errors import API_ERROR, interactions_error

__all__ = ["WireEvent", "event_stream_response"]

logger = logging.getLogger("propylon.api")

_KEEPALIVE = b": keep-alive\n\n"
_DONE = b"data: [DONE]\n\n"


class WireEvent(Protocol):
    """An event a stream sends: a log `Event`, or its view in another API revision."""

    @property
    def type(self) -> str: ...

    def to_wire(self, interaction_id: str) -> dict[str, Any]: ...


def frame(interaction_id: str, event: WireEvent) -> bytes:
    """One SSE frame for `event`."""
    payload = event.to_wire(interaction_id)
    return b"event: %s\nid: %s\ndata: %s\n\n" % (
        event.type.encode(),
        payload["event_id"].encode(),
        orjson.dumps(payload),
    )


async def _frames(
    interaction_id: str,
    batches: AsyncIterator[Sequence[WireEvent] | None],
    open_streams: Gauge | None,
) -> AsyncIterator[bytes]:
    if open_streams is not None:
        open_streams.inc()
    try:
        async for batch in batches:  # one write for the events at hand
            if batch is None:
                yield _KEEPALIVE
            else:
                yield b"".join([frame(interaction_id, event) for event in batch])
    except Exception:
        logger.exception("stream of %s failed", interaction_id)
        error = {"event_type": "error", "error": interactions_error(API_ERROR, "stream failed")}
        yield b"event: error\ndata: %s\n\n" % orjson.dumps(error)
    finally:
        if open_streams is not None:
            open_streams.dec()
    yield _DONE


def event_stream_response(
    interaction_id: str,
    batches: AsyncIterator[Sequence[WireEvent] | None],
    open_streams: Gauge | None = None,
) -> StreamingResponse:
    """A 200 `text/event-stream` response that sends `batches` of events (each in one write;
    None: a keep-alive comment), then `data: [DONE]`; `open_streams` counts it while open."""
    return StreamingResponse(
        _frames(interaction_id, batches, open_streams),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )
