"""API keys: `x-goog-api-key` (what the SDK sends) or `Authorization: Bearer <key>`.

Keys are held only as SHA-256 digests. Keys in the settings (`api_keys`) are admin keys of the
`default` tenant; keys made with `propylon keys create` live in the store with their tenant and
policy. Authentication happens once per request, in `AuthMiddleware`, before routing: routes read
the resolved caller with `caller_of`.

Whether keys are required is a latch, set at start-up (`Authenticator.start`) from the settings
and the store: a server with configured keys, or whose store has ever held a key (revoked ones
count), requires a key on every request for good. Only a server that has never had a key serves
every request as the anonymous admin of `default` (the CLI then listens on loopback only); the
first key created turns that off without a restart. Revoking the last key never turns it back on.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Protocol

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from propylon.api.errors import error_response
from propylon.domain.caller import ANONYMOUS, Caller
from propylon.errors import Unauthenticated
from propylon.store.base import ApiKey, Store

__all__ = ["AuthMiddleware", "Authenticator", "Sessions", "caller_of", "digest"]


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
        # The latch: True once keys are required; it is never set back to False.
        self._required = bool(self._admin_digests)
        self._next_check = 0.0  # keyless only: when to look for a first key again

    async def start(self) -> None:
        """Decide at start-up whether keys are required (call once the store is open)."""
        await self._check_for_keys()

    async def _check_for_keys(self) -> None:
        # Every key ever stored counts, revoked or not: a server that has had keys stays keyed.
        self._required = self._required or bool(await self._store.list_api_keys())
        self._next_check = time.monotonic() + self._ttl

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

    async def requires_keys(self) -> bool:
        """Whether requests need a key (False only on a server that has never had one)."""
        if not self._required and time.monotonic() >= self._next_check:
            await self._check_for_keys()  # a key made by the CLI turns auth on for good
        return self._required

    async def caller(self, headers: Headers) -> Caller:
        """The caller presenting `headers`. Raises Unauthenticated for a missing, unknown or
        revoked key (whenever keys are required)."""
        if not await self.requires_keys():
            return ANONYMOUS  # never had a key: auth is off (and the server on loopback)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        presented = [
            key
            for key in (
                headers.get("x-goog-api-key"),
                token.strip() if scheme.lower() == "bearer" else None,
            )
            if key
        ]
        if not presented:
            raise Unauthenticated(
                "missing API key: send `x-goog-api-key` or `Authorization: Bearer`"
            )
        # The SDK sends both headers when a user sets both (reference §1.2): either may match.
        for key in presented:
            found = await self.caller_by_digest(digest(key))
            if found is not None:
                return found
        raise Unauthenticated("API key not valid")

    async def caller_by_digest(self, key_digest: str) -> Caller | None:
        """The caller of the key whose SHA-256 is `key_digest` (hex), or None for an unknown
        or revoked key; ANONYMOUS while the server has never had a key. (The console's
        session cookie holds the digest, never the key.)"""
        if not await self.requires_keys():
            return ANONYMOUS
        if key_digest in self._admin_digests:
            return Caller(tenant="default", key_id="config", admin=True)
        stored = await self._stored(key_digest)
        if stored is None or stored.revoked is not None:
            return None
        return Caller(
            tenant=stored.tenant,
            key_id=stored.id,
            admin=stored.admin,
            policy=stored.policy,
            api_revision=stored.api_revision,
        )


class Sessions(Protocol):
    """Browser sessions of a part of the site with its own sign-in (the console): its paths
    are authenticated by a session cookie instead of a key header."""

    def owns(self, path: str) -> bool:
        """Whether `path` belongs to the session-authenticated part."""

    async def caller(self, scope: Scope) -> Caller | None:
        """The signed-in caller of the request, or None (the part answers it itself,
        sending the browser to its sign-in page)."""


class AuthMiddleware:
    """Authenticates every HTTP request before it is routed, except those to `open_paths`
    (exact paths, e.g. `/healthz`): the caller goes into the request's state (`caller_of`);
    a refused request is answered 401 in its surface's error body and reaches no route.

    Paths `sessions` owns (the console) are authenticated by its session cookie alone, and
    no other path ever by a cookie: a cross-site request cannot ride a console sign-in
    into the API.

    Requests `keyless` picks (a Files API upload URL, which carries its own credential) that
    send no key reach their route with no caller; one that sends a key is authenticated."""

    def __init__(
        self,
        app: ASGIApp,
        auth: Authenticator,
        open_paths: frozenset[str],
        sessions: Sessions | None = None,
        keyless: Callable[[Scope], bool] | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.open_paths = open_paths
        self.sessions = sessions
        self.keyless = keyless

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        if self.sessions is not None and self.sessions.owns(scope["path"]):
            signed_in = await self.sessions.caller(scope)
            if signed_in is not None:
                scope.setdefault("state", {})["caller"] = signed_in
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if (
            self.keyless is not None
            and self.keyless(scope)
            and "x-goog-api-key" not in headers
            and "authorization" not in headers
        ):
            await self.app(scope, receive, send)
            return
        try:
            caller = await self.auth.caller(headers)
        except Unauthenticated as exc:
            refusal = error_response(scope, 401, exc.status, exc.message)
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


def caller_of(request: Request) -> Caller:
    """The caller AuthMiddleware resolved for `request`. Raises Unauthenticated when there is
    none (a route the middleware did not cover must not act as anyone)."""
    caller = request.scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller):
        raise Unauthenticated("this request was not authenticated")
    return caller
