"""Supervision of the embedded model's child process (embedded_worker.py).

The server talks to the child over its stdin and stdout, one JSON object per line:

- to the child: `{"op": "generate", "id": N, "prompt": str, "schema": {...} | null,
  "params": {...llama.cpp completion arguments}}` and `{"op": "cancel", "id": N}`;
- from the child: `{"ready": true, "pid": P}` once the model is loaded, then per request
  `{"id": N, "text": str}`*, ending with `{"id": N, "done": {"input_tokens", "output_tokens",
  "finish"}}` (`finish`: `stop`, `max_tokens`, or `cancelled` when a `cancel` stopped it;
  `done: null` for a request cancelled before it began) or `{"id": N, "error": str}`.

When the child ends unexpectedly (a segfault, an OOM kill, `kill -9`), the request it was
serving fails with ModelProcessDied naming the model and the signal or exit code; the next
child starts after a backoff that doubles with each crash in a row (reset by a request that
completes), so a model that keeps crashing cannot eat the CPU in a restart loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from propylon.providers.base import UpstreamError

__all__ = ["ModelProcess", "ModelProcessDied", "ProcessStats"]

logger = logging.getLogger("propylon.embedded")

_LINE_LIMIT = 16 * 1024 * 1024  # bytes of one protocol line (an error message, a long token)


class ModelProcessDied(UpstreamError):
    """The model's child process ended while it was needed. Not retried: a model that
    crashed on a request would most likely crash on it again (or hang on it again)."""

    @property
    def retryable(self) -> bool:
        return False


@dataclass(slots=True)
class ProcessStats:
    """Counters of one supervised model, read by /metrics. `waiting`: requests queued for
    the model (not counting the one it is generating); `cancelled`: generations the child
    stopped early because their request went away; `generations`: requests handed to the
    child; `backoff_seconds`: the wait before the latest restart, in seconds."""

    crashes: int = 0
    restarts: int = 0
    waiting: int = 0
    cancelled: int = 0
    generations: int = 0  # requests handed to the child
    backoff_seconds: float = 0.0  # the wait before the latest restart


def describe_exit(returncode: int) -> str:
    """`killed by signal SIGKILL` or `exited with code 1`."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"killed by signal {name}"
    return f"exited with code {returncode}"


class _Child:
    """One running child process and the requests in flight on it."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        model: str,
        stats: ProcessStats,
        on_exit: Callable[[_Child], None],
    ) -> None:
        self.process = process
        self.model = model
        self.stats = stats
        self._on_exit = on_exit  # called before `exited` is set: waiters see its effects
        self.killed = False  # kill() was called: it is ending
        self.ended: str | None = None
        self.stopping = False  # stop() was called: its end is no crash
        self._streams: dict[int, asyncio.Queue[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.exited = asyncio.Event()

    @property
    def pid(self) -> int:
        return self.process.pid

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                message = orjson.loads(line)
                stream = self._streams.get(message.get("id", -1))
                if stream is not None:
                    stream.put_nowait(message)
                elif (message.get("done") or {}).get("finish") == "cancelled":
                    self.stats.cancelled += 1  # a given-up request the child stopped early
        except (ValueError, asyncio.LimitOverrunError) as exc:
            logger.error("embedded model %s: bad protocol line (%s); stopping it", self.model, exc)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        returncode = await self.process.wait()
        self.ended = describe_exit(returncode)
        died = {"died": self.ended}
        for stream in self._streams.values():
            stream.put_nowait(died)
        self._on_exit(self)
        self.exited.set()

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        if self.ended is None and not self.process.stdin.is_closing():
            self.process.stdin.write(orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE))

    def open(self, request_id: int) -> asyncio.Queue[dict[str, Any]]:
        stream: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._streams[request_id] = stream
        return stream

    def close(self, request_id: int) -> None:
        self._streams.pop(request_id, None)

    def kill(self) -> None:
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def stop(self, grace: float) -> None:
        """Close its stdin (the child exits on EOF); kill it after `grace` seconds."""
        self.stopping = True
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.exited.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.exited.wait()


class ModelProcess:
    """Starts the model's child process on first use and restarts it after a crash.

    model: the served model's name, for error messages and logs. argv: the child's
    arguments after `python -m propylon.providers.embedded_worker`. start_timeout: seconds the
    model may take to load. idle_timeout: seconds a generation may go without a message from
    the child before the child counts as hung (it is killed, as in a crash).
    backoff_initial/backoff_max: seconds before a restart after one crash, doubling per crash
    in a row up to the maximum.
    """

    def __init__(
        self,
        model: str,
        argv: list[str],
        start_timeout: float,
        idle_timeout: float,
        backoff_initial: float,
        backoff_max: float,
    ) -> None:
        self.model = model
        self.argv = argv
        self.start_timeout = start_timeout
        self.idle_timeout = idle_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stats = ProcessStats()
        self._child: _Child | None = None
        self._starting: asyncio.Task[_Child] | None = None
        self._crashes_in_a_row = 0
        self._not_before = 0.0  # monotonic time of the next allowed start
        self._next_id = 0
        self._closed = False
        self._started_once = False

    @property
    def pid(self) -> int | None:
        """The running child's PID, or None."""
        child = self._child
        return child.pid if child is not None and child.ended is None else None

    async def generate(self, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Run one request (`prompt`, `schema`, `params`) on the child: its `text` messages,
        then its `done` message. Raises ModelProcessDied when the child ends first (or cannot
        start), UpstreamError for a request the child refused. Closing the iterator early
        cancels the generation in the child."""
        child = await self._running_child()
        self._next_id += 1
        request_id = self._next_id
        stream = child.open(request_id)
        finished = False
        try:
            child.send({"op": "generate", "id": request_id, **payload})
            self.stats.generations += 1
            while True:
                try:
                    message = await asyncio.wait_for(stream.get(), self.idle_timeout)
                except TimeoutError:
                    finished = True
                    child.kill()  # hung: its end is handled as a crash, and it restarts
                    raise self._died(
                        child, f"sent nothing for {self.idle_timeout:g} s and was killed"
                    ) from None
                if "text" in message:
                    yield message
                elif "done" in message:
                    finished = True
                    self._crashes_in_a_row = 0
                    yield message
                    return
                elif "died" in message:
                    finished = True
                    raise self._died(child, message["died"])
                else:
                    finished = True
                    refused = message["error"]
                    raise UpstreamError(f"model `{self.model}` refused the request: {refused}")
        finally:
            child.close(request_id)
            if not finished:  # the caller went away: stop generating for it
                child.send({"op": "cancel", "id": request_id})

    def _died(self, child: _Child, how: str) -> ModelProcessDied:
        return ModelProcessDied(f"the process of model `{self.model}` (pid {child.pid}) {how}")

    async def _running_child(self) -> _Child:
        while True:
            if self._closed:
                raise UpstreamError(f"model `{self.model}` is shutting down", status=503)
            child = self._child
            if child is None or child.ended is not None:
                break
            if not child.killed:
                return child
            await child.exited.wait()  # killed as hung: its end schedules the restart
        if self._starting is None or self._starting.done():
            self._restart()
        assert self._starting is not None
        return await asyncio.shield(self._starting)

    def _restart(self) -> None:
        self._starting = asyncio.create_task(self._start())
        self._starting.add_done_callback(_retrieve)

    async def _start(self) -> _Child:
        delay = self._not_before - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # backoff after a crash
        if self._started_once:
            self.stats.restarts += 1
        self._started_once = True
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "propylon.providers.embedded_worker",
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            self._crashed()
            message = f"the process of model `{self.model}` could not start: {exc}"
            raise ModelProcessDied(message) from exc
        child = _Child(process, self.model, self.stats, self._exited)
        assert process.stdout is not None
        try:
            ready = await asyncio.wait_for(process.stdout.readline(), self.start_timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
            self._crashed()
            loading = f"did not load the model within {self.start_timeout:g} s"
            raise self._died(child, loading) from None
        if not ready:
            ended = describe_exit(await process.wait())
            self._crashed()
            raise self._died(child, f"{ended} while loading the model")
        child.start_reading()
        self._child = child
        logger.info("embedded model %s serving in process %d", self.model, child.pid)
        return child

    def _exited(self, child: _Child) -> None:
        if self._closed or child.stopping:
            return
        self._crashed()
        logger.error(
            "embedded model %s: process %d %s; restarting in %.1f s",
            self.model,
            child.pid,
            child.ended,
            self.stats.backoff_seconds,
        )

    def _crashed(self) -> None:
        """Count a crash and start the next process after the backoff, so that it is ready
        for the next request (a start that fails counts as a crash too)."""
        self.stats.crashes += 1
        self._crashes_in_a_row += 1
        backoff = min(self.backoff_max, self.backoff_initial * 2 ** (self._crashes_in_a_row - 1))
        self.stats.backoff_seconds = backoff
        self._not_before = time.monotonic() + backoff
        if not self._closed:
            self._restart()

    async def close(self, grace: float = 5.0) -> None:
        """Stop the child (and any start under way)."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(BaseException):
                await self._starting
        if self._child is not None and self._child.ended is None:
            await self._child.stop(grace)


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A start nobody awaited may fail; its error was logged by the next request's."""
    if not task.cancelled():
        task.exception()
