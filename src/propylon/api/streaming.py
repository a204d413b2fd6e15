"""A streaming response that always ends what it streams.

When the client has gone by the time a StreamingResponse starts, Starlette cancels the task
sending it (level-triggered, anyio's cancel scope): the body generator is cancelled at its
first await, a task it started may be cancelled before it ever ran (so its own `finally`
never runs), and every await in the generator's `finally` is cancelled again. Cleanup written
there cannot be relied on to end a model call; `on_close` runs after the response, outside
that cancellation, however it ended: sent, cut or never begun.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

__all__ = ["ClosingStreamingResponse"]


class ClosingStreamingResponse(StreamingResponse):
    """A StreamingResponse that awaits `on_close()` once it is over (an idempotent close of
    what the body streams: its accounting must run even when the body never started)."""

    def __init__(
        self, content: Any, on_close: Callable[[], Awaitable[None]], **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.on_close()
