"""API keys: `x-goog-api-key` (what the SDK sends) or `Authorization: Bearer <key>`.

Keys are held only as SHA-256 digests. Keys in the settings (`api_keys`) are admin keys of the
`default` tenant; keys made with `propylon keys create` live in the store with their tenant and
policy. With no key anywhere, every request is the anonymous admin of `default` (the CLI then
listens on loopback only).
"""

from __future__ import annotations

import hashlib
import time

from starlette.requests import Request

from propylon.domain.caller import ANONYMOUS, Caller
from propylon.errors import Unauthenticated
from propylon.store.base import ApiKey, Store

__all__ = ["Authenticator", "authorize", "digest"]


def digest(key: str) -> str:
    """The hex SHA-256 of `key`, as settings give it after `sha256:` and the store keeps it."""
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Resolves a request's key to a Caller. `cache_seconds`: how long a stored key's lookup
    is reused (a revoked key is refused at most that long after the revocation)."""

    def __init__(self, configured: list[str], store: Store, cache_seconds: float) -> None:
        self._admin_digests = frozenset(
            key.removeprefix("sha256:").lower() if key.startswith("sha256:") else digest(key)
            for key in configured
        )
        self._store = store
        self._ttl = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._any_stored: tuple[float, bool] = (0.0, False)

    async def _stored(self, key_digest: str) -> ApiKey | None:
        hit = self._cache.get(key_digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        found = await self._store.api_key_by_hash(key_digest)
        if self._ttl > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_digest] = (time.monotonic() + self._ttl, found)
        return found

    async def _keys_exist(self) -> bool:
        if self._admin_digests:
            return True
        until, exist = self._any_stored
        if until > time.monotonic():
            return exist
        exist = await self._store.count_api_keys() > 0
        self._any_stored = (time.monotonic() + max(self._ttl, 0.0), exist)
        return exist

    async def caller(self, request: Request) -> Caller:
        """The caller of `request`. Raises Unauthenticated for a missing, unknown or revoked
        key (when keys exist)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = [
            key
            for key in (
                request.headers.get("x-goog-api-key"),
                token.strip() if scheme.lower() == "bearer" else None,
            )
            if key
        ]
        if not await self._keys_exist():
            return ANONYMOUS  # no keys anywhere: auth is off (and the server on loopback)
        if not presented:
            raise Unauthenticated(
                "missing API key: send `x-goog-api-key` or `Authorization: Bearer`"
            )
        # The SDK sends both headers when a user sets both (reference §1.2): either may match.
        for key in presented:
            key_digest = digest(key)
            if key_digest in self._admin_digests:
                return Caller(tenant="default", key_id="config", admin=True)
            stored = await self._stored(key_digest)
            if stored is not None and stored.revoked is None:
                return Caller(
                    tenant=stored.tenant, key_id=stored.id, admin=stored.admin, policy=stored.policy
                )
        raise Unauthenticated("API key not valid")


async def authorize(request: Request) -> Caller:
    """The caller of `request`, by the app's Authenticator. Raises Unauthenticated."""
    auth: Authenticator = request.app.state.auth
    return await auth.caller(request)
