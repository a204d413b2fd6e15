"""API keys as a use case: make one (the secret returned once, only its SHA-256 kept), list
them, revoke one. Shared by `propylon keys` and the console."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from propylon.domain.caller import Caller
from propylon.domain.clock import now
from propylon.errors import NotFound, PermissionDenied
from propylon.store.base import ApiKey, KeyStore

__all__ = ["KeyService", "new_key"]


def new_key(
    tenant: str,
    name: str,
    admin: bool,
    policy: dict[str, Any],
    *,
    api_revision: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key of `tenant` and its secret (`pk-...`, to show once); not stored yet.
    `api_revision`: the key's default `Api-Revision` (a date), None for the server's."""
    secret = "pk-" + secrets.token_urlsafe(32)
    key = ApiKey(
        id="key_" + secrets.token_hex(6),
        key_hash=hashlib.sha256(secret.encode()).hexdigest(),
        tenant=tenant,
        name=name,
        admin=admin,
        policy=policy,
        created=now(),
        api_revision=api_revision,
    )
    return key, secret


class KeyService:
    """Keys for a caller: an admin key manages every tenant's keys; any other key only
    sees its own tenant's, and changes none."""

    def __init__(self, store: KeyStore) -> None:
        self.store = store

    async def list(self, caller: Caller) -> list[ApiKey]:
        """The keys the caller may see, oldest first."""
        return [k for k in await self.store.list_api_keys() if caller.sees(k.tenant)]

    async def create(
        self, caller: Caller, tenant: str, name: str, admin: bool, policy: dict[str, Any]
    ) -> tuple[ApiKey, str]:
        """Store a new key and return it with its secret (shown once). Raises
        PermissionDenied for a caller that is not an admin."""
        _admin_only(caller)
        key, secret = new_key(tenant, name, admin, policy)
        await self.store.save_api_key(key)
        return key, secret

    async def revoke(self, caller: Caller, key_id: str) -> ApiKey:
        """Revoke the key `key_id` (again: no change). Raises PermissionDenied for a caller
        that is not an admin, NotFound for an unknown key."""
        _admin_only(caller)
        for key in await self.store.list_api_keys():
            if key.id == key_id:
                if key.revoked is None:
                    key.revoked = now()
                    await self.store.save_api_key(key)
                return key
        raise NotFound(f"key `{key_id}` not found")


def _admin_only(caller: Caller) -> None:
    if not caller.admin:
        raise PermissionDenied("only an admin key may create or revoke keys")
