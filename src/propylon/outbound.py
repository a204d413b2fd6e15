"""Outbound HTTP: the SSRF policy, and the clients that enforce it where connections are made.

The policy: a URL Propylon calls on a tenant's behalf (MCP servers, webhooks) is http(s), and
unless the operator allows private networks it may not reach a loopback, private, link-local,
reserved or multicast address, except one inside `allowed_target_networks`.

`check_url` is the early check, when a request names a URL, for a clear 400. The enforcement is
in the clients, `client_session` (aiohttp) and `http_client` (httpx, for the MCP SDK): every
connection they open resolves its host name once, checks every address the name resolves to,
and connects to a checked address, so a DNS answer cannot change between the check and the
connection (rebinding); an address in a URL (redirect hops included) is checked the same way.
Names are resolved on anyio's worker threads, not on the event loop's default executor.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import anyio
import anyio.to_thread
import httpcore2
import httpx2
from aiohttp.abc import AbstractResolver, ResolveResult

from propylon.errors import InvalidArgument

if TYPE_CHECKING:
    from propylon.config import Settings

__all__ = [
    "STRICT",
    "TRUSTED",
    "OutboundPolicy",
    "OutboundRefused",
    "check_url",
    "client_session",
    "http_client",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = tuple[socket.AddressFamily, str, int]  # (family, IP address, port)

_SEE = "see `allow_private_network_targets` and `allowed_target_networks`"


class OutboundRefused(OSError):
    """The policy refuses an address. An OSError, so that either HTTP client reports it as a
    failure to connect (aiohttp: a ClientError; httpx: a ConnectError)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _literal(host: str) -> IPAddress | None:
    """`host` as an IP address, or None when it is a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, but still routed inside sites


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, 6to4, IPv4-compatible), so
    that the policy judges where a connection lands, not how it is written; None for none."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:10.0.0.1
    if address.sixtofour is not None:
        return address.sixtofour  # 2002:a00:1::/48
    packed = address.packed
    if address in _NAT64 or (not any(packed[:12]) and int(address) > 1):
        return ipaddress.IPv4Address(packed[12:])  # 64:ff9b::a00:1, ::10.0.0.1 (not ::, ::1)
    return None


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """Which addresses outbound calls may reach. `allow_private`: any address at all;
    `allowed_networks`: non-public networks reachable all the same."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        return cls(settings.allow_private_network_targets, tuple(settings.allowed_target_networks))

    def allows(self, address: IPAddress) -> bool:
        """May a connection go to `address`?"""
        if self.allow_private:
            return True
        if any(address in network for network in self.allowed_networks):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address in _SITE_LOCAL:
                return False
            address = _embedded_ipv4(address) or address  # 64:ff9b::a00:1 reaches 10.0.0.1
            if any(address in network for network in self.allowed_networks):
                return True
        return address.is_global and not address.is_multicast

    def check(self, host: str, address: IPAddress) -> None:
        """Raise OutboundRefused unless `address` (what `host` names) may be reached."""
        if self.allows(address):
            return
        if _literal(host) == address:
            raise OutboundRefused(
                f"{address} is a non-public address, which the outbound policy refuses ({_SEE})"
            )
        raise OutboundRefused(
            f"`{host}` resolves to the non-public address {address}, which the outbound "
            f"policy refuses ({_SEE})"
        )

    async def resolve(self, host: str, port: int, family: int = socket.AF_UNSPEC) -> list[Address]:
        """The addresses to connect to for `host`: resolved once, every one checked.

        Raises OutboundRefused when any address is refused (a name is refused as a whole),
        OSError when the name does not resolve.
        """
        literal = _literal(host)
        if literal is not None:
            self.check(host, literal)
            kind = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [(kind, str(literal), port)]
        infos = await anyio.to_thread.run_sync(
            lambda: socket.getaddrinfo(host, port, family, socket.SOCK_STREAM),
            abandon_on_cancel=True,
        )
        found: list[Address] = []
        for kind, _, _, _, sockaddr in infos:
            ip = str(sockaddr[0])
            if len(sockaddr) == 4 and sockaddr[3]:  # an IPv6 address with its scope
                ip = f"{ip.partition('%')[0]}%{sockaddr[3]}"
            self.check(host, ipaddress.ip_address(ip))
            if (kind, ip, int(sockaddr[1])) not in found:
                found.append((kind, ip, int(sockaddr[1])))
        if not found:
            raise OSError(errno.ENOENT, f"`{host}` resolves to no address")
        return found


STRICT = OutboundPolicy()
"""Public addresses only: the default."""
TRUSTED = OutboundPolicy(allow_private=True)
"""For the destinations the operator configured (model targets, agents): any address."""


async def check_url(url: str, *, policy: OutboundPolicy, what: str) -> None:
    """Raise InvalidArgument (naming `what`) unless `url` may be called under `policy`."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname, parts.port
    except ValueError:  # `http://[::1`, a port that is not a number
        scheme, host, port = "", None, None
    if scheme not in ("http", "https") or not host:
        raise InvalidArgument(f"{what}: only http(s) URLs are allowed, got `{url}`")
    if policy.allow_private:
        return
    try:
        await policy.resolve(host, port or (443 if scheme == "https" else 80))
    except OutboundRefused as exc:
        raise InvalidArgument(f"{what}: {exc}") from None
    except OSError as exc:
        raise InvalidArgument(f"{what}: cannot resolve `{host}`: {exc}") from None


# aiohttp ------------------------------------------------------------------------------------


class PolicyResolver(AbstractResolver):
    """aiohttp's resolver under `policy`: the connector connects to the addresses it returns,
    so only checked addresses are ever connected to."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": ip,
                "port": resolved_port,
                "family": kind,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
            for kind, ip, resolved_port in await self.policy.resolve(host, port, family)
        ]

    async def close(self) -> None:
        pass


def _address_check(policy: OutboundPolicy) -> aiohttp.ClientMiddlewareType:
    """A middleware checking a URL's IP address: aiohttp's connector does not hand those to
    the resolver. It runs for every request, each redirect hop included."""

    async def check(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        host = request.url.host or ""
        address = _literal(host)
        if address is not None:
            policy.check(host, address)
        return await handler(request)

    return check


def client_session(
    policy: OutboundPolicy, *, timeout: aiohttp.ClientTimeout, limit: int = 100
) -> aiohttp.ClientSession:
    """An aiohttp session whose every connection obeys `policy`. `timeout`: the requests'
    default; `limit`: connections open at once. Environment proxies are ignored (a proxy
    would hide the real destination)."""
    # The policy's resolver even when it allows any address: names are still resolved off the
    # default executor (it runs only when the connector's DNS cache misses, not per request).
    connector = aiohttp.TCPConnector(
        limit=limit, resolver=PolicyResolver(policy), enable_cleanup_closed=True
    )
    # any address allowed: no address in a URL to check, so no middleware run per request
    checks = () if policy.allow_private else (_address_check(policy),)
    return aiohttp.ClientSession(
        connector=connector, middlewares=checks, timeout=timeout, trust_env=False
    )


# httpx --------------------------------------------------------------------------------------


class _PolicyBackend(httpcore2.AsyncNetworkBackend):
    """httpcore's network backend under `policy`: resolves, checks and connects to the checked
    address. TLS still verifies the URL's host name (httpcore passes it on `start_tls`)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self._network = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await self.policy.resolve(host, port)
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"resolving `{host}` timed out") from exc
        except OSError as exc:
            raise httpcore2.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for _, ip, resolved_port in addresses:
            try:
                return await self._network.connect_tcp(
                    ip,
                    resolved_port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise httpcore2.ConnectError("Unix sockets are not outbound targets")

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default TLS context (certificate verification on), made once: loading the
    trust store is not free, and a context serves any number of connections."""
    return httpx2.create_ssl_context(trust_env=False)


class _PolicyTransport(httpx2.AsyncHTTPTransport):
    """httpx's transport on a connection pool whose network backend obeys `policy`."""

    def __init__(self, policy: OutboundPolicy) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        limits = httpx2.Limits()
        # httpx has no parameter for the network backend: its pool is rebuilt around ours,
        # with httpx's default limits.
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PolicyBackend(policy),
        )


def http_client(
    policy: OutboundPolicy, *, headers: Mapping[str, str], timeout: float
) -> httpx2.AsyncClient:
    """An httpx client whose every connection obeys `policy`; it follows no redirect by
    default (a caller that asks to has each hop checked). `timeout`: seconds per operation."""
    return httpx2.AsyncClient(
        transport=_PolicyTransport(policy),
        headers=dict(headers),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
    )
