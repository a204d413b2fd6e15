"""A streaming response that always ends what it streams.

Starlette never starts a StreamingResponse's body when the client has already gone when the
response begins (it sees the disconnect first and cancels the sending task), so an async
generator's `finally` cannot be relied on to end a model call: `on_close` runs however the
response ends, sent, cut or never started.
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
