"""Console sign-in: a session cookie instead of a key header, and the same-origin check that
every console POST passes.

The cookie holds the SHA-256 digest of the key that signed in (never the key), signed with
the data dir's `console_secret` and timestamped (itsdangerous): it expires after
`console_session_seconds`, and each request resolves it through the Authenticator again,
so a revoked key's sessions end at once. It is HttpOnly, SameSite=Strict, scoped to the
console's path, and Secure whenever the request came over https: its own TLS, or
`X-Forwarded-Proto: https` from a proxy in `forwarded_allow_ips` (uvicorn rewrites the
request's scheme from that header only for those addresses).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import Scope

from propylon.api.auth import Authenticator, digest
from propylon.domain.caller import ANONYMOUS, Caller
from propylon.errors import PermissionDenied

__all__ = ["COOKIE", "ConsoleSessions", "check_same_origin", "console_secret"]

COOKIE = "propylon_console"
_SAFE_SITES = frozenset({"same-origin", "none"})  # `none`: typed or bookmarked by the user


def console_secret(data_dir: Path) -> str:
    """The data dir's signing secret of console sessions, made once (mode 0600)."""
    path = data_dir / "console_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


class ConsoleSessions:
    """Sessions of the console mounted at `bases` (e.g. `/console`, `/gemini/console`):
    implements api.auth.Sessions for AuthMiddleware."""

    def __init__(
        self, auth: Authenticator, secret: str, max_age: float, bases: tuple[str, ...]
    ) -> None:
        self.auth = auth
        self.max_age = max_age
        self.bases = bases
        self._signer = TimestampSigner(secret, salt="propylon console session")

    def owns(self, path: str) -> bool:
        return any(path == base or path.startswith(base + "/") for base in self.bases)

    async def caller(self, scope: Scope) -> Caller | None:
        if not await self.auth.requires_keys():
            return ANONYMOUS  # a server that never had a key: no sign-in, as for the API
        value = HTTPConnection(scope).cookies.get(COOKIE)
        if not value:
            return None
        try:
            key_digest = self._signer.unsign(value, max_age=int(self.max_age)).decode()
        except BadSignature:  # also an expired one (SignatureExpired)
            return None
        return await self.auth.caller_by_digest(key_digest)

    async def sign_in(self, key: str) -> tuple[Caller, str] | None:
        """The caller of `key` and the cookie value of its session, or None for a key that
        is not valid."""
        key_digest = digest(key)
        caller = await self.auth.caller_by_digest(key_digest)
        if caller is None:
            return None
        return caller, self._signer.sign(key_digest).decode()

    def set_cookie(self, request: Request, response: Response, value: str, base: str) -> None:
        """Put the session cookie on `response` (an empty `value` ends the session)."""
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(self.max_age) if value else 0,
            path=base,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )


def check_same_origin(request: Request) -> None:
    """Refuse a cross-site request (CSRF): the browser's `Sec-Fetch-Site` must say
    same-origin, and an `Origin` must name this host; at least one of them must be there.
    Raises PermissionDenied."""
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site is None and origin is None:
        raise PermissionDenied("a console form must be sent by the console page itself")
    if site is not None and site not in _SAFE_SITES:
        raise PermissionDenied(f"refused a cross-site request (Sec-Fetch-Site: {site})")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise PermissionDenied("refused a cross-site request (its Origin is another site)")
