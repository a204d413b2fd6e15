"""The outbound URL policy (SSRF): which URLs Propylon itself may call (MCP servers, webhooks).

Only http(s). Unless the operator allows private networks, a URL whose host resolves to a
loopback, private, link-local, reserved or multicast address is refused. The check resolves
the name itself; the connection resolves it again, so a DNS answer that changes in between is
not caught (the operator's network egress rules are the second line).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from propylon.errors import InvalidArgument

__all__ = ["check_url"]


async def check_url(url: str, *, allow_private: bool, what: str) -> None:
    """Raise InvalidArgument (naming `what`) unless `url` may be called under the policy."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgument(f"{what}: only http(s) URLs are allowed, got `{url}`")
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname,
            parts.port or (443 if parts.scheme == "https" else 80),
            type=socket.SOCK_STREAM,
        )
    except OSError as exc:
        raise InvalidArgument(f"{what}: cannot resolve `{parts.hostname}`: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise InvalidArgument(
                f"{what}: `{parts.hostname}` resolves to the non-public address {address}, "
                "which the outbound policy refuses (see `allow_private_network_targets`)"
            )
