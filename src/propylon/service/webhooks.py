"""Webhooks (reference §7.2 and §8): registered webhooks, and the deliveries an ending
interaction enqueues, to its `webhook_config.uris` or else to every enabled webhook subscribed
to the event.

Events: `interaction.completed` (status completed or incomplete), `interaction.requires_action`,
`interaction.failed` (failed or budget_exceeded); a cancelled interaction sends none. The body
is Standard Webhooks' shape `{"type", "timestamp", "data"}`, `data` holding the interaction's
id, status, usage and the request's `webhook_config.user_metadata`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import orjson

from propylon.domain.caller import Caller
from propylon.domain.clock import now
from propylon.domain.redaction import redact_request
from propylon.errors import InvalidArgument, NotFound, PermissionDenied
from propylon.jobs.webhooks import GRACE_SECONDS
from propylon.outbound import OutboundPolicy, check_url
from propylon.schema.webhooks import check_webhook_fields
from propylon.store.base import Delivery, InteractionRecord, Store

__all__ = ["EVENTS", "WebhookService", "event_of", "new_secret", "tenant_secret"]

EVENTS = frozenset(
    {
        "batch.succeeded",
        "batch.expired",
        "batch.failed",
        "interaction.requires_action",
        "interaction.completed",
        "interaction.failed",
        "video.generated",
    }
)
_STATUS_EVENTS = {
    "completed": "interaction.completed",
    "incomplete": "interaction.completed",
    "requires_action": "interaction.requires_action",
    "failed": "interaction.failed",
    "budget_exceeded": "interaction.failed",
}
_STATES = frozenset({"enabled", "disabled"})
_MUTABLE = frozenset({"name", "uri", "subscribed_events", "state"})


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def tenant_secret(server_secret: str, tenant: str) -> str:
    """The `whsec_` secret that signs `tenant`'s `webhook_config.uris` deliveries: an HMAC of the
    tenant's name under the server's secret, so each tenant can verify its own deliveries and
    no tenant can sign (forge) another's. The server secret itself is never handed out."""
    label = b"propylon webhook_config.uris\x00" + tenant.encode()
    mac = hmac.new(server_secret.encode(), label, hashlib.sha256)
    return "whsec_" + base64.b64encode(mac.digest()).decode()


def event_of(status: str) -> str | None:
    """The webhook event a final status sends, or None."""
    return _STATUS_EVENTS.get(status)


def _public(webhook: dict[str, Any]) -> dict[str, Any]:
    """The wire Webhook: secrets shown truncated, never whole; credentials in its `uri`
    redacted by the rule of every stored request (the store keeps the real one)."""
    shown = redact_request({k: v for k, v in webhook.items() if k != "secrets"})
    shown["signing_secrets"] = [
        {
            "truncated_secret": s["secret"][:10] + "…",
            **({"expire_time": s["expire_time"]} if s.get("expire_time") else {}),
        }
        for s in webhook["secrets"]
    ]
    return shown


class WebhookService:
    """CRUD of registered webhooks and the outbox entries of ending interactions."""

    def __init__(self, store: Store, policy: OutboundPolicy, uris_secret: str) -> None:
        """`policy`: where webhook URLs may point. `uris_secret`: the server's secret, from
        which each tenant's signing secret of per-request `webhook_config.uris` deliveries is
        derived (`tenant_secret`)."""
        self.store = store
        self.policy = policy
        self._uris_secret = uris_secret
        self._cache: list[dict[str, Any]] | None = None  # enabled webhooks, for on_terminal

    async def _check(self, body: dict[str, Any]) -> None:
        check_webhook_fields(body)  # shapes first: the checks below read them
        if "uri" in body:
            await check_url(str(body["uri"]), policy=self.policy, what="webhook `uri`")
        events = body.get("subscribed_events")
        if events is not None:
            unknown = sorted(set(events) - EVENTS)
            if not events or unknown:
                raise InvalidArgument(
                    f"`subscribed_events` must list known events; unknown: "
                    f"{', '.join(unknown) or 'none given'}"
                )
        if "state" in body and body["state"] not in _STATES:
            raise InvalidArgument("`state` must be `enabled` or `disabled`")

    async def create(self, body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """Register a webhook. The answer's `new_signing_secret` is the only time the secret
        is shown. Raises InvalidArgument."""
        unknown = sorted(set(body) - {"uri", "subscribed_events", "name"})
        if unknown or "uri" not in body or "subscribed_events" not in body:
            raise InvalidArgument(
                "a webhook needs `uri` and `subscribed_events` (and an "
                f"optional `name`){'; unknown: ' + ', '.join(unknown) if unknown else ''}"
            )
        await self._check(body)
        secret = new_secret()
        stamp = now()
        webhook = {
            "id": "wh_" + secrets.token_urlsafe(12),
            "tenant": caller.tenant,
            "name": body.get("name") or "",
            "uri": body["uri"],
            "subscribed_events": list(body["subscribed_events"]),
            "state": "enabled",
            "create_time": stamp,
            "update_time": stamp,
            "secrets": [{"secret": secret}],
        }
        await self._save(webhook)
        return {**_public(webhook), "new_signing_secret": secret}

    async def page(self, page_size: int, page_token: str | None, caller: Caller) -> dict[str, Any]:
        """A page of the caller's webhooks: `{webhooks, next_page_token?}`."""
        size = max(1, min(page_size or 50, 1000))
        tenant = None if caller.admin else caller.tenant
        page = await self.store.list_webhooks(tenant, page_token, size + 1)
        answer: dict[str, Any] = {"webhooks": [_public(w) for w in page[:size]]}
        if len(page) > size:
            answer["next_page_token"] = page[size - 1]["id"]
        return answer

    async def get(self, webhook_id: str, caller: Caller) -> dict[str, Any]:
        """Raises NotFound."""
        return _public(await self._get(webhook_id, caller))

    async def update(
        self,
        webhook_id: str,
        body: dict[str, Any],
        update_mask: str | None,
        caller: Caller,
    ) -> dict[str, Any]:
        """Change the fields named by `update_mask` (default: those in the body).
        Raises NotFound or InvalidArgument."""
        webhook = await self._get(webhook_id, caller)
        fields = [f.strip() for f in update_mask.split(",")] if update_mask else list(body)
        unknown = sorted(set(fields) - _MUTABLE)
        if unknown:
            raise InvalidArgument(f"cannot update: {', '.join(unknown)}")
        changes = {f: body[f] for f in fields if f in body}
        await self._check(changes)
        webhook.update(changes, update_time=now())
        await self._save(webhook)
        return _public(webhook)

    async def delete(self, webhook_id: str, caller: Caller) -> None:
        """Raises NotFound."""
        await self._get(webhook_id, caller)
        if not await self.store.delete_webhook(webhook_id):
            raise NotFound(f"webhook `{webhook_id}` not found")
        self._cache = None

    async def ping(self, webhook_id: str, caller: Caller) -> dict[str, Any]:
        """Queue a `webhook.ping` delivery to the webhook. Raises NotFound."""
        webhook = await self._get(webhook_id, caller)
        await self.store.enqueue(
            [
                _delivery(
                    webhook["uri"],
                    "webhook.ping",
                    {"webhook_id": webhook_id},
                    webhook_id,
                    webhook.get("tenant", "default"),
                )
            ]
        )
        return {}

    async def rotate(
        self, webhook_id: str, revocation: str | None, caller: Caller
    ) -> dict[str, Any]:
        """A new signing secret, returned once; the old ones stop at once or after 24 h."""
        webhook = await self._get(webhook_id, caller)
        if revocation not in (
            None,
            "revoke_previous_secrets_after_h24",
            "revoke_previous_secrets_immediately",
        ):
            raise InvalidArgument(f"unknown `revocation_behavior` `{revocation}`")
        secret = new_secret()
        kept = []
        if revocation != "revoke_previous_secrets_immediately":
            expires = time.time() + GRACE_SECONDS
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))
            kept = [
                {
                    **s,
                    "expires_at": s.get("expires_at") or expires,
                    "expire_time": s.get("expire_time") or stamp,
                }
                for s in webhook["secrets"]
            ]
        webhook["secrets"] = [{"secret": secret}, *kept]
        webhook["update_time"] = now()
        await self._save(webhook)
        return {"secret": secret}

    def uris_secret_of(self, tenant: str) -> str:
        """The secret that signs `tenant`'s per-request `webhook_config.uris` deliveries."""
        return tenant_secret(self._uris_secret, tenant)

    def signing_secret(self, caller: Caller, tenant: str | None = None) -> dict[str, str]:
        """`{"secret"}`: the signing secret of the caller's tenant's per-request deliveries
        (an admin may name another `tenant`). Raises PermissionDenied for another tenant's."""
        tenant = tenant or caller.tenant
        if tenant != caller.tenant and not caller.admin:
            raise PermissionDenied("only an admin key may read another tenant's signing secret")
        return {"secret": self.uris_secret_of(tenant)}

    async def enabled(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's enabled webhooks (all cached until one changes)."""
        if self._cache is None:
            found, after = [], None
            while page := await self.store.list_webhooks(None, after, 500):
                found += [w for w in page if w["state"] == "enabled"]
                after = page[-1]["id"]
            self._cache = found
        return [w for w in self._cache if w.get("tenant", "default") == tenant]

    async def deliveries_for(self, record: InteractionRecord) -> list[Delivery]:
        """The outbox entries of an interaction that just ended with `record.status`."""
        event = event_of(record.status)
        if event is None:
            return []
        config = record.request.get("webhook_config") or {}
        data = {
            "id": record.id,
            "object": "interaction",
            "status": record.status,
            **({"usage": record.usage} if record.usage else {}),
            **({"user_metadata": config["user_metadata"]} if "user_metadata" in config else {}),
        }
        if config.get("uris"):
            return [_delivery(uri, event, data, None, record.tenant) for uri in config["uris"]]
        return [
            _delivery(w["uri"], event, data, w["id"], record.tenant)
            for w in await self.enabled(record.tenant)
            if event in w["subscribed_events"]
        ]

    async def _get(self, webhook_id: str, caller: Caller) -> dict[str, Any]:
        webhook = await self.store.get_webhook(webhook_id)
        if webhook is None or not caller.sees(webhook.get("tenant", "default")):
            raise NotFound(f"webhook `{webhook_id}` not found")
        return webhook

    async def _save(self, webhook: dict[str, Any]) -> None:
        await self.store.save_webhook(webhook)
        self._cache = None


def _delivery(
    uri: str, event: str, data: dict[str, Any], webhook_id: str | None, tenant: str
) -> Delivery:
    payload = orjson.dumps({"type": event, "timestamp": now(), "data": data}).decode()
    return Delivery(
        id="msg_" + secrets.token_urlsafe(16),
        uri=uri,
        payload=payload,
        webhook_id=webhook_id,
        next_attempt=time.time(),
        tenant=tenant,
    )
