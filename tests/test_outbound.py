"""The outbound clients (src/propylon/outbound.py) against a real receiver on loopback: each
checks every address it connects to under the policy (a name is resolved once, and each of
its addresses checked), redirect hops included."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
import httpx2
import pytest

from propylon.outbound import TRUSTED, OutboundPolicy, client_session, http_client
from tests.conftest import helper


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    """The receiver on 127.0.0.1 (it answers on 127.0.0.2 too)."""
    with helper("webhook_receiver.py") as url:
        yield url


def _on(url: str, address: str) -> str:
    return url.replace("127.0.0.1", address)


def _received(receiver: str, name: str) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = httpx.get(f"{receiver}/received/{name}").json()
    return got


POLICY = OutboundPolicy(
    allow_private=False, allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),)
)


def test_the_aiohttp_client_checks_each_address_it_connects_to(receiver: str) -> None:
    allowed = _on(receiver, "127.0.0.2")

    async def run() -> None:
        async with client_session(POLICY, timeout=aiohttp.ClientTimeout(total=5)) as session:
            async with session.post(f"{allowed}/hook/aiohttp") as response:
                assert response.status == 200
            for refused in (
                f"{receiver}/hook/aiohttp-refused",  # an address
                f"{_on(receiver, 'localhost')}/hook/aiohttp-refused",  # a name, resolved once
                # a redirect hop is checked as well, when a caller follows redirects
                f"{allowed}/redirect/aiohttp?to={quote(receiver + '/hook/aiohttp-refused')}",
            ):
                with pytest.raises(aiohttp.ClientError, match="outbound policy"):
                    async with session.post(refused, allow_redirects=True):
                        pass

    asyncio.run(run())
    assert len(_received(receiver, "aiohttp")) == 2  # the call and the redirect's first hop
    assert _received(receiver, "aiohttp-refused") == []


class _RefusingExecutor(ThreadPoolExecutor):
    """A default executor that fails whatever is handed to it."""

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        raise AssertionError("a name was resolved on the event loop's default executor")


def test_the_aiohttp_client_resolves_names_off_the_default_executor(receiver: str) -> None:
    """Also for the operator's destinations (TRUSTED: any address, nothing to check): the
    default executor runs the file store's I/O, which a slow resolver must not hold up."""

    async def run() -> None:
        asyncio.get_running_loop().set_default_executor(_RefusingExecutor(max_workers=1))
        url = f"{_on(receiver, 'localhost')}/hook/trusted"
        async with (
            client_session(TRUSTED, timeout=aiohttp.ClientTimeout(total=5)) as session,
            session.post(url) as response,
        ):
            assert response.status == 200

    asyncio.run(run())


def test_the_httpx_client_checks_each_address_it_connects_to(receiver: str) -> None:
    allowed = _on(receiver, "127.0.0.2")

    async def run() -> None:
        async with http_client(POLICY, headers={}, timeout=5) as http:
            assert (await http.post(f"{allowed}/hook/httpx")).status_code == 200
            for refused in (
                f"{receiver}/hook/httpx-refused",
                f"{_on(receiver, 'localhost')}/hook/httpx-refused",
                f"{allowed}/redirect/httpx?to={quote(receiver + '/hook/httpx-refused')}",
            ):
                with pytest.raises(httpx2.ConnectError, match="outbound policy"):
                    await http.post(refused, follow_redirects=True)

    asyncio.run(run())
    assert len(_received(receiver, "httpx")) == 2
    assert _received(receiver, "httpx-refused") == []


@pytest.mark.parametrize(
    "address",
    [
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
        "fec0::1",  # site-local (deprecated)
        "fefe::1",  # site-local too (fec0::/10)
    ],
)
def test_the_policy_refuses_ipv4_wrapped_in_ipv6_and_site_local(address: str) -> None:
    assert not OutboundPolicy().allows(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["64:ff9b::5db8:d822", "2002:5db8:d822::1", "93.184.216.34", "2606:4700::1111"]
)
def test_the_policy_allows_public_addresses_however_written(address: str) -> None:
    assert OutboundPolicy().allows(ipaddress.ip_address(address))
