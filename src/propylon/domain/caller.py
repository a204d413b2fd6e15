"""Who is calling: the tenant a request acts in, the API key it used, and that key's policy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ANONYMOUS", "SYSTEM", "Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """tenant: whose data the request sees and writes. admin: may see every tenant's.
    policy: the key's limits (`models`, `rpm`, `tpm`, `budget_usd`, `budget_period`,
    `max_tokens_per_interaction`, `service_tiers`), empty for none. api_revision: the key's
    default wire revision (a date `YYYY-MM-DD`), None for the server's."""

    tenant: str = "default"
    key_id: str | None = None
    admin: bool = False
    policy: dict[str, Any] = field(default_factory=dict)
    api_revision: str | None = None

    def sees(self, tenant: str) -> bool:
        """May this caller see data of `tenant`?"""
        return self.admin or tenant == self.tenant


# A server with no keys at all: one tenant, everything visible (loopback only, see the CLI).
# Only the Authenticator hands it out, and only to a server that has never had a key.
ANONYMOUS = Caller(admin=True)

# Propylon itself (the background worker, start-up recovery, re-reads of a record a caller was
# already allowed to see). Service methods take the caller as a required argument, so acting
# as SYSTEM is always written out at the call site, never a default.
SYSTEM = Caller(tenant="default", key_id="system", admin=True)
