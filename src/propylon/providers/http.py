"""Upstream HTTP for the network providers: one aiohttp session per provider, SSE decoding,
and the mapping of failures to UpstreamError.

aiohttp rather than httpx: measured on this kind of machine, httpx.AsyncClient's latency grew
sharply under concurrency where aiohttp's stayed flat (shared/reference/anchor-performance.md).
SSE fields are decoded by httpx-sse's decoder, fed the lines of what each read brings, each at
most `upstream_max_line_bytes` long (aiohttp's own line limit, twice its read buffer, is far
below what a large function-call argument chunk or an inline image needs). The session is the
outbound module's, for the operator's destinations (any address); no redirect is followed, so
an upstream's credentials never go to where a `Location` header points.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from httpx_sse._decoders import SSEDecoder  # the decoder is independent of httpx itself

from propylon.outbound import TRUSTED, client_session
from propylon.providers.base import UpstreamError

__all__ = ["LineTooLongError", "Upstream"]

_MAX_ERROR_BODY = 65536  # of an upstream's error body kept for the client's error


class LineTooLongError(UpstreamError):
    """An upstream's stream line passed `upstream_max_line_bytes`: the same answer again would
    not fit either, so it is not retried (a fallback target may answer differently)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"an event stream line is longer than {limit} bytes "
            "(raise the setting `upstream_max_line_bytes` to accept it)"
        )

    @property
    def retryable(self) -> bool:
        return False


class Upstream:
    """POSTs JSON to one upstream and yields the `data:` payloads of its SSE answer (or,
    `whole`, returns its one JSON answer).
    `max_line_bytes`: the longest SSE line accepted."""

    def __init__(self, timeout: float, headers: dict[str, str], max_line_bytes: int) -> None:
        self.timeout = timeout
        self.headers = {"content-type": "application/json", **headers}
        self.max_line_bytes = max_line_bytes
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = client_session(
                TRUSTED, timeout=aiohttp.ClientTimeout(total=self.timeout), limit=256
            )
        return self._session

    @contextlib.asynccontextmanager
    async def _answer(
        self, url: str, body: dict[str, Any]
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The 200 response to POST `url` with `body`, while it is read. Raises UpstreamError
        for an error status (with `Retry-After`), a connection failure (a body cut short
        included) or a timeout (`timeout` seconds to the first byte, then between reads)."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout
        )
        try:
            async with self._client().post(
                url,
                data=orjson.dumps(body),
                headers=self.headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    raise _status_error(response, await response.text())
                yield response
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def stream(self, url: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The JSON `data:` payloads of the SSE response to POST `url` with `body`.

        Raises UpstreamError as `_answer` does, or for a line longer than `max_line_bytes`
        (LineTooLongError).
        """
        async with self._answer(url, body) as response:
            decoder = SSEDecoder()
            async for lines in _lines(response.content, self.max_line_bytes):
                for line in lines:
                    sse = decoder.decode(line.decode().rstrip("\r"))
                    if sse is None or not sse.data:
                        continue
                    if sse.data == "[DONE]":
                        return
                    yield orjson.loads(sse.data)

    async def whole(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to POST `url` with `body`, for a model call not streamed (one body,
        read at once: no per-line SSE decoding).

        Raises UpstreamError as `_answer` does (the upstream is silent while it makes the
        whole answer, so `timeout` bounds the making of it), or for an answer that is not JSON.
        """
        async with self._answer(url, body) as response:
            raw = await response.read()
        try:
            answer: dict[str, Any] = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"the upstream's answer is not JSON: {exc}") from None
        return answer

    async def post_json(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST JSON (or nothing) and return the JSON answer. Raises UpstreamError."""
        return await self.request_json("POST", url, body)

    async def request_json(
        self, method: str, url: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """`method` (`POST`, `PATCH`, `DELETE`) with JSON (or nothing); the JSON answer
        (`{}` for an empty one). Raises UpstreamError."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._client().request(
                method,
                url,
                data=orjson.dumps(body) if body else b"",
                headers=self.headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                text = await response.text()
                if response.status != 200:
                    raise _status_error(response, text)
                answer: dict[str, Any] = orjson.loads(text) if text else {}
                return answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _lines(content: aiohttp.StreamReader, limit: int) -> AsyncIterator[list[bytearray]]:
    """The stream's lines (without their `\n`), as many as each read brings: one read, not one
    call of aiohttp's `readline` per line (that was most of the cost of a fast answer's
    chunks). A last line without its `\n` comes at the end. Raises LineTooLongError for a
    line longer than `limit` bytes."""
    pending = bytearray()
    async for data in content.iter_any():
        pending += data
        if b"\n" not in data:
            if len(pending) > limit:
                raise LineTooLongError(limit)  # its message would quote the line: content
            continue
        lines = pending.split(b"\n")
        pending = lines.pop()
        if len(pending) > limit or any(len(line) > limit for line in lines):
            raise LineTooLongError(limit)
        yield lines
    if pending:
        yield [pending]


def _status_error(response: aiohttp.ClientResponse, text: str) -> UpstreamError:
    """The error for a non-200 answer: its status, body head and `Retry-After`."""
    return UpstreamError(
        f"HTTP {response.status}: {text[:500]}",
        response.status,
        _retry_after(response.headers.get("retry-after")),
        text[:_MAX_ERROR_BODY],
    )


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
