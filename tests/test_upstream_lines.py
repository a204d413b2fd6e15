"""An upstream's SSE answer is split into lines by Propylon itself (providers/http.py,
`_lines`), from whatever each read brings: line breaks, CRLFs and multi-byte characters cut
by a read boundary, a last line without its break, and the per-line limit
(`upstream_max_line_bytes`, here 1024 bytes: a line of exactly that many is read, one byte
more fails with LineTooLongError, however many reads it arrives in).

Real parts: a local upstream that writes its answer in the pieces given (each write flushed
before the next), and the Upstream client the providers use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from propylon.providers.http import LineTooLongError, Upstream

LIMIT = 1024


def _line_of(size: int) -> bytes:
    """A `data:` line (without its break) of exactly `size` bytes."""
    head, tail = b'data: {"t": "', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def _answer(pieces: list[bytes]) -> list[dict[str, Any]]:
    """What Upstream.stream yields for an SSE answer written in `pieces`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0.02)  # pacing: each piece its own read, most likely
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/sse", handler)
    upstream = Upstream(10, {}, LIMIT)
    async with TestServer(app) as server:
        try:
            return [item async for item in upstream.stream(str(server.make_url("/sse")), {})]
        finally:
            await upstream.close()


def test_breaks_and_characters_cut_by_reads_and_a_last_line_without_its_break() -> None:
    e_acute = "é".encode()
    pieces = [
        b'data: {"t": "caf' + e_acute[:1],
        e_acute[1:] + b'"}\r',
        b"\n\r",
        b'\ndata: {"t": "two"}\n',
        b"\n",
        b'data: {"t": "three"}\n\ndata: [DONE]',  # the last line has no break
    ]
    assert asyncio.run(_answer(pieces)) == [{"t": "café"}, {"t": "two"}, {"t": "three"}]


def test_a_line_of_exactly_the_limit_is_read() -> None:
    line = _line_of(LIMIT)
    pieces = [line[:100], line[100:700], line[700:] + b"\n\n", b"data: [DONE]\n\n"]
    [got] = asyncio.run(_answer(pieces))
    assert len(got["t"]) == LIMIT - len(b'data: {"t": "') - len(b'"}')


@pytest.mark.parametrize("reads", [1, 40])
def test_a_line_over_the_limit_fails_in_one_read_or_many(reads: int) -> None:
    line = _line_of(LIMIT + 1) + b"\n\n"
    size = -(-len(line) // reads)
    pieces = [b'data: {"t": "first"}\n\n'] + [line[i : i + size] for i in range(0, len(line), size)]
    with pytest.raises(LineTooLongError):
        asyncio.run(_answer(pieces))
