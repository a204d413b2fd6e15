"""API-key checks: `x-goog-api-key` (what the SDK sends) or `Authorization: Bearer <key>`.

Keys are held only as SHA-256 digests; the settings may give them as `sha256:<hex>`.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request

from propylon.errors import Unauthenticated

__all__ = ["KeyChecker", "digest"]


def digest(key: str) -> str:
    """The hex SHA-256 of `key`, as settings give it after `sha256:`."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyChecker:
    """Accepts the keys of `configured`; with none configured every request passes."""

    def __init__(self, configured: list[str]) -> None:
        self._digests = frozenset(
            key.removeprefix("sha256:").lower() if key.startswith("sha256:") else digest(key)
            for key in configured
        )

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, request: Request) -> None:
        """Raise Unauthenticated unless the request carries an accepted key."""
        if not self._digests:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        presented = [
            key
            for key in (
                request.headers.get("x-goog-api-key"),
                token.strip() if scheme.lower() == "bearer" else None,
            )
            if key
        ]
        if not presented:
            raise Unauthenticated(
                "missing API key: send `x-goog-api-key` or `Authorization: Bearer`"
            )
        # The SDK sends both headers when a user sets both (reference §1.2): either may match.
        if not any(digest(key) in self._digests for key in presented):
            raise Unauthenticated("API key not valid")
