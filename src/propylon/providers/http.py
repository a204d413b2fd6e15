"""Upstream HTTP for the network providers: one aiohttp session per provider, SSE decoding,
and the mapping of failures to UpstreamError.

aiohttp rather than httpx: measured on this kind of machine, httpx.AsyncClient's latency grew
sharply under concurrency where aiohttp's stayed flat (shared/reference/anchor-performance.md).
SSE fields are decoded by httpx-sse's decoder, fed aiohttp's lines.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from httpx_sse._decoders import SSEDecoder  # the decoder is independent of httpx itself

from propylon.providers.base import UpstreamError

__all__ = ["Upstream"]


class Upstream:
    """POSTs JSON to one upstream and yields the `data:` payloads of its SSE answer."""

    def __init__(self, timeout: float, headers: dict[str, str]) -> None:
        self.timeout = timeout
        self.headers = {"content-type": "application/json", **headers}
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, enable_cleanup_closed=True),
                json_serialize=lambda value: orjson.dumps(value).decode(),
            )
        return self._session

    async def stream(self, url: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The JSON `data:` payloads of the SSE response to POST `url` with `body`.

        Raises UpstreamError for an error status (with `Retry-After`), a connection failure
        or a timeout (`timeout` seconds to the first byte, then between reads).
        """
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=self.timeout
        )
        try:
            async with self._client().post(
                url, data=orjson.dumps(body), headers=self.headers, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise _status_error(response, await response.text())
                decoder = SSEDecoder()
                async for raw in response.content:
                    sse = decoder.decode(raw.decode().rstrip("\r\n"))
                    if sse is None or not sse.data:
                        continue
                    if sse.data == "[DONE]":
                        return
                    yield orjson.loads(sse.data)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc

    async def post_json(self, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST JSON (or nothing) and return the JSON answer. Raises UpstreamError."""
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._client().post(
                url, data=orjson.dumps(body) if body else b"", headers=self.headers, timeout=timeout
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


def _status_error(response: aiohttp.ClientResponse, text: str) -> UpstreamError:
    """The error for a non-200 answer: its status, body head and `Retry-After`."""
    return UpstreamError(
        f"HTTP {response.status}: {text[:500]}",
        response.status,
        _retry_after(response.headers.get("retry-after")),
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
