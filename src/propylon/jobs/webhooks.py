"""The webhook delivery worker: sends due outbox entries, signed per Standard Webhooks
(`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 by the `standardwebhooks`
package), with bounded retries and exponential backoff. The outbox lives in the store, so
pending deliveries survive a restart; a receiver deduplicates by `webhook-id`.

Deliveries go out through the outbound policy's client (every connection's address checked)
and follow no redirect: a `3xx` answer is a failed attempt. Whether a registered webhook is
enabled is read by the store's query that picks due deliveries, never from a cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from standardwebhooks import Webhook

from propylon.outbound import OutboundPolicy, client_session
from propylon.store.base import Delivery, Store

__all__ = ["GRACE_SECONDS", "DeliveryWorker", "live_secrets"]

GRACE_SECONDS = 24 * 3600  # a rotated secret stays valid this long (revoke_..._after_h24)


def live_secrets(webhook: dict[str, Any]) -> list[str]:
    """The secrets a delivery is signed with now (a rotated one stays valid for its grace)."""
    moment = time.time()
    return [
        s["secret"]
        for s in webhook["secrets"]
        if not s.get("expires_at") or s["expires_at"] > moment
    ]


logger = logging.getLogger("propylon.webhooks")


class DeliveryWorker:
    """Delivers the outbox. `secret_for_uris(tenant)` is the secret that signs a tenant's
    per-request `webhook_config.uris` deliveries; registered webhooks are signed with their own
    live secrets.

    max_attempts: attempts per delivery. backoff: seconds before the second attempt, doubling
    (with jitter). disable_after: consecutive failed attempts that disable a webhook.
    timeout: seconds per attempt. policy: the addresses deliveries may reach.
    """

    def __init__(
        self,
        store: Store,
        secret_for_uris: Callable[[str], str],
        *,
        max_attempts: int,
        backoff: float,
        disable_after: int,
        timeout: float,
        policy: OutboundPolicy,
        poll: float = 1.0,
    ) -> None:
        self.store = store
        self.secret_for_uris = secret_for_uris
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.disable_after = disable_after
        self.timeout = timeout
        self.policy = policy
        self.poll = poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def start(self) -> None:
        """Deliver in a loop of this process (the embedded deployment)."""
        self._open()
        self._task = asyncio.create_task(self._loop())

    def _open(self) -> None:
        if self._session is None:
            self._session = client_session(
                self.policy, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )

    async def deliver_due(self) -> int:
        """One pass: send every delivery due now, in batches. Returns how many were tried
        (a worker's delivery job, jobs/worker.py)."""
        self._open()
        tried = 0
        while due := await self.store.due_deliveries(time.time(), 50):
            await asyncio.gather(*(self._deliver(d) for d in due))
            tried += len(due)
        return tried

    def wake(self) -> None:
        """New deliveries were queued: look now rather than at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._session is not None:
            await self._session.close()

    async def _loop(self) -> None:
        while True:
            try:
                await self.deliver_due()
            except Exception:
                logger.exception("webhook delivery loop failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def _secrets(self, delivery: Delivery) -> list[str]:
        if delivery.webhook_id is None:
            return [self.secret_for_uris(delivery.tenant)]
        webhook = await self.store.get_webhook(delivery.webhook_id)
        return live_secrets(webhook) if webhook else []

    async def _deliver(self, delivery: Delivery) -> None:
        error: str | None = None
        try:
            keys = await self._secrets(delivery)
            if not keys:
                raise RuntimeError("the webhook was deleted or has no live secret")
            moment = datetime.now(tz=UTC)
            signature = " ".join(
                Webhook(k).sign(delivery.id, moment, delivery.payload) for k in keys
            )
            headers = {
                "content-type": "application/json",
                "webhook-id": delivery.id,
                "webhook-timestamp": str(int(moment.timestamp())),
                "webhook-signature": signature,
            }
            assert self._session is not None
            async with self._session.post(
                delivery.uri,
                data=delivery.payload.encode(),
                headers=headers,
                allow_redirects=False,
            ) as response:
                if 300 <= response.status < 400:
                    error = f"HTTP {response.status} (a delivery follows no redirect)"
                elif not 200 <= response.status < 300:
                    error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = delivery.attempts + 1
        retry_at = None
        if error is not None and attempts < self.max_attempts:
            delay = self.backoff * 2 ** (attempts - 1)
            retry_at = time.time() + random.uniform(delay / 2, delay)
        if error is not None:
            logger.warning(
                "webhook delivery %s attempt %d failed: %s", delivery.id, attempts, error
            )
        await self.store.delivery_done(delivery, error is None, error, retry_at, self.disable_after)
