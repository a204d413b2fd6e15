"""Redis bus: new events announced on Redis pub/sub, one channel per interaction; a hint only.

Each process holds one pub/sub connection (the listener), subscribed to the channels of the
interactions its readers follow, and one client that PUBLISHes. A publish reaches this process's
own readers at once, as on the in-process bus, and goes to Redis for the other processes; a
process ignores its own messages when they come back.

A reader's `ready()` waits for Redis's acknowledgement of its channel's SUBSCRIBE: from then on
nothing published is missed, so the reader replays the store and then follows the hints. What
Redis cannot promise turns into "re-read the store" (`next` returns None):
- the connection is lost (killed, Redis restarted or down): every reader re-reads at once, then
  polls the store every `poll_seconds` while Redis is away, and re-reads once more when its
  channel's SUBSCRIBE is acknowledged again;
- a message too large to carry its events (over `max_payload_bytes`) carries the hint alone.
A hint lost on the way (a PUBLISH that failed) is caught by the reader's keep-alive tick, which
re-reads the store too (service/reading.py).

Channels are `propylon:<db>:events:<interaction id>`: pub/sub ignores Redis's database numbers,
so the number in the URL is part of the name and deployments on one Redis stay apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from collections import deque
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from propylon.bus.memory import BufferedSubscription, Fanout
from propylon.domain.events import Event

__all__ = ["RedisBus"]

logger = logging.getLogger("propylon.bus")

_OUTBOX = 10_000  # messages waiting for Redis; past that the oldest are dropped (hints only)
_PIPELINE = 64  # messages sent in one round trip
_RECONNECT = (0.1, 2.0)  # seconds between attempts to reach Redis: first, most


class _Subscription(BufferedSubscription):
    """A reader of one interaction: the in-process buffer, plus what Redis can promise."""

    def __init__(self, bus: RedisBus, interaction_id: str, limit: int) -> None:
        super().__init__(bus, interaction_id, limit)
        self._redis = bus
        self._started = False  # ready() has returned: the reader has replayed the store
        self._settled = asyncio.Event()  # the channel was acknowledged, or Redis is away

    def _resync(self) -> None:
        """The channel's SUBSCRIBE was acknowledged, or the connection lost: a reader that has
        replayed already must re-read the store (what was published meanwhile may be lost)."""
        if self._started:
            self._drop()
        else:
            self._settled.set()

    async def ready(self) -> None:
        bus = self._redis
        if not bus.follows(self.interaction_id) and not bus.down:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), bus.ack_timeout)
        self._started = True

    async def next(self, timeout: float) -> list[Event] | None:
        if self._bus.closed:
            return []
        if self._ready.is_set():
            return self._take()
        live = self._redis.follows(self.interaction_id)
        wait = timeout if live else min(timeout, self._redis.poll_seconds)
        try:
            async with asyncio.timeout(wait):  # no task of its own, as in bus/memory.py
                await self._ready.wait()
        except TimeoutError:
            # Redis away: a short wait ends in None, so the reader polls the store
            return [] if live or wait >= timeout else None
        return self._take()


class RedisBus(Fanout[_Subscription]):
    """Fan-out across processes through Redis at `url` (`redis://HOST:PORT/N`).

    `limit`: events buffered per subscriber (as MemoryBus); `poll_seconds`: how often readers
    re-read the store while Redis is away; `ack_timeout`: the longest `ready()` waits for a
    SUBSCRIBE's acknowledgement; `ping_seconds`: silence on the pub/sub connection after which
    a PING checks it (no answer within as long again: the connection is taken as lost);
    `max_payload_bytes`: larger messages carry the hint alone. Nothing connects until the
    first publish or subscribe; connection failures are never raised to callers.
    """

    def __init__(
        self,
        url: str,
        *,
        limit: int = 1024,
        poll_seconds: float = 1.0,
        ack_timeout: float = 2.0,
        ping_seconds: float = 5.0,
        max_payload_bytes: int = 256 * 1024,
    ) -> None:
        super().__init__()
        self.poll_seconds = poll_seconds
        self.ack_timeout = ack_timeout
        self._limit = limit
        self._ping_seconds = ping_seconds
        self._max_payload = max_payload_bytes
        self._origin = uuid.uuid4().hex  # this process: its own messages come back to it
        options: dict[str, Any] = {
            "socket_connect_timeout": 2.0,
            "socket_timeout": 5.0,
            "client_name": f"propylon-bus-{os.getpid()}",  # which process holds it
        }
        # One retry for a PUBLISH on a pooled connection Redis has closed meanwhile; none on
        # the pub/sub connection: a reconnect there must be seen, since messages were lost.
        self._publisher = Redis.from_url(url, retry=Retry(NoBackoff(), 1), **options)
        self._subscriber = Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)
        db = self._publisher.connection_pool.connection_kwargs.get("db", 0)
        self._prefix = f"propylon:{db}:events:"
        self._control = f"propylon:{db}:bus:{self._origin}"  # always subscribed: the liveness
        # the pub/sub connection: what was asked, what Redis has answered
        self._pubsub: PubSub | None = None
        self._state = "connecting"  # "up" once the control channel is acknowledged, "down"
        self._sent: set[str] = set()  # channels SUBSCRIBEd (not UNSUBSCRIBEd since)
        self._pending: dict[str, int] = {}  # (UN)SUBSCRIBE replies still to come, by channel
        self._live: set[str] = set()  # channels whose SUBSCRIBE is answered
        self._writing = asyncio.Lock()
        self._dirty = asyncio.Event()
        self._outbox: deque[tuple[str, bytes]] = deque(maxlen=_OUTBOX)
        self._outbox_ready = asyncio.Event()
        self._publish_failing = False
        self._tasks: list[asyncio.Task[None]] = []
        self._sender: asyncio.Task[None] | None = None

    @property
    def down(self) -> bool:
        """Whether the last attempt to reach Redis failed (readers poll the store)."""
        return self._state == "down"

    def follows(self, interaction_id: str) -> bool:
        """Whether everything published on `interaction_id`'s channel reaches this process."""
        return self._prefix + interaction_id in self._live

    def publish(self, interaction_id: str, events: list[Event]) -> None:
        self._deliver(interaction_id, events)
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="propylon-bus-publish")
        self._outbox.append((self._prefix + interaction_id, self._encode(events)))
        self._outbox_ready.set()

    def subscribe(self, interaction_id: str) -> _Subscription:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="propylon-bus-listen"),
                asyncio.create_task(self._sync(), name="propylon-bus-sync"),
            ]
        self._dirty.set()
        return self._add(_Subscription(self, interaction_id, self._limit))

    async def aclose(self) -> None:
        """Stop listening; give what waits to be published a second to go; close the clients."""
        self.close()
        if self._sender is not None and self._outbox:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained(), 1.0)
        pending = {*self._tasks, *([self._sender] if self._sender else [])}
        while pending:  # again until done: on 3.11 a cancel landing in redis-py can be lost
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        await self._publisher.aclose()
        await self._subscriber.aclose()

    def _abandoned(self, interaction_id: str) -> None:
        self._dirty.set()  # its channel is UNSUBSCRIBEd

    # -- publishing

    def _encode(self, events: list[Event]) -> bytes:
        """The message: this process's origin and the events, or the hint alone when they do
        not fit (or do not encode)."""
        try:
            payload = orjson.dumps(
                {"o": self._origin, "e": [[e.seq, e.type, e.data] for e in events]}
            )
        except TypeError:
            payload = b""
        if not payload or len(payload) > self._max_payload:
            payload = orjson.dumps({"o": self._origin})
        return payload

    async def _send(self) -> None:
        """PUBLISH what waits, in order, a pipeline at a time. A failure drops what waits:
        they are hints, and readers re-read the store on their keep-alive ticks."""
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), _PIPELINE))]
                try:
                    async with self._publisher.pipeline(transaction=False) as pipe:
                        for channel, payload in batch:
                            pipe.publish(channel, payload)
                        await pipe.execute()
                except (RedisError, OSError) as exc:
                    if not self._publish_failing:
                        logger.warning("cannot publish to Redis, streams poll the store: %s", exc)
                    self._publish_failing = True
                    self._outbox.clear()
                    continue
                if self._publish_failing:
                    logger.warning("publishing to Redis again")
                self._publish_failing = False

    async def _drained(self) -> None:
        while self._outbox:
            await asyncio.sleep(0.01)

    # -- listening

    async def _listen(self) -> None:
        """Hold the pub/sub connection: connect, hand messages to the subscribers, and on any
        failure mark every channel lost and start over after a short wait."""
        delay = _RECONNECT[0]
        while True:
            pubsub = self._subscriber.pubsub()
            try:
                self._sent, self._pending, self._live = set(), {self._control: 1}, set()
                await pubsub.subscribe(self._control)
                self._pubsub = pubsub
                self._dirty.set()  # subscribe every channel wanted
                unanswered = False
                while True:
                    message = await pubsub.get_message(timeout=self._ping_seconds)
                    if message is None:
                        if unanswered:
                            raise ConnectionError("Redis did not answer a PING")
                        unanswered = True
                        async with self._writing:
                            await pubsub.ping()
                        continue
                    unanswered = False
                    if self._handle(message):
                        delay = _RECONNECT[0]
            except Exception as exc:  # whatever broke the connection: start over
                if self._state != "down":
                    logger.warning("Redis pub/sub unreachable, streams poll the store: %s", exc)
            finally:
                self._pubsub = None
                self._lost()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RECONNECT[1])

    def _handle(self, message: dict[str, Any]) -> bool:
        """One message from the pub/sub connection; True for the control channel's ack."""
        kind = message["type"]
        if kind == "pong":
            return False
        channel = message["channel"].decode()
        if kind in ("subscribe", "unsubscribe"):
            left = self._pending.get(channel, 0) - 1
            if left > 0:
                self._pending[channel] = left
                return False
            self._pending.pop(channel, None)
            if channel == self._control:
                if self._state == "down":
                    logger.warning("Redis pub/sub reachable again")
                self._state = "up"
                return True
            if kind == "subscribe" and channel in self._sent:
                self._live.add(channel)
                for subscription in self._subscribers.get(channel[len(self._prefix) :], ()):
                    subscription._resync()
            return False
        if kind == "message":
            self._received(channel[len(self._prefix) :], message["data"])
        return False

    def _received(self, interaction_id: str, data: bytes) -> None:
        """A message from another process to this one's subscribers of `interaction_id`."""
        subscribers = self._subscribers.get(interaction_id)
        if not subscribers:
            return
        origin: object = None
        events: list[Event] | None = None  # None: the hint alone, re-read the store
        try:
            message = orjson.loads(data)
            origin = message["o"]
            if "e" in message:
                events = [Event(seq, kind, payload) for seq, kind, payload in message["e"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            pass  # not a message of ours to read: re-read the store
        if origin == self._origin:
            return
        for subscription in subscribers:
            if events is None:
                subscription._drop()
            else:
                subscription._push(events)

    def _lost(self) -> None:
        """The pub/sub connection is gone: nothing is followed until Redis answers again."""
        self._state = "down"
        self._sent, self._pending, self._live = set(), {}, set()
        for subscriptions in self._subscribers.values():
            for subscription in subscriptions:
                subscription._resync()

    async def _sync(self) -> None:
        """Bring the connection's channels in line with the subscribers: SUBSCRIBE the new,
        UNSUBSCRIBE the abandoned. A failure here is the listener's to see and recover."""
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            pubsub = self._pubsub
            if pubsub is None:
                continue
            wanted = {self._prefix + interaction_id for interaction_id in self._subscribers}
            add, drop = wanted - self._sent, self._sent - wanted
            try:
                async with self._writing:
                    if drop:
                        self._expect(drop)
                        self._sent -= drop
                        self._live -= drop  # from now: a new subscriber waits for a new ack
                        await pubsub.execute_command("UNSUBSCRIBE", *drop)
                    if add:
                        self._expect(add)
                        self._sent |= add
                        await pubsub.execute_command("SUBSCRIBE", *add)
            except (RedisError, OSError) as exc:
                logger.debug("pub/sub (un)subscribe failed: %s", exc)

    def _expect(self, channels: set[str]) -> None:
        """One more reply to come for each of `channels` (a channel is live only once every
        SUBSCRIBE and UNSUBSCRIBE sent for it is answered and the last was a SUBSCRIBE)."""
        for channel in channels:
            self._pending[channel] = self._pending.get(channel, 0) + 1
