"""Which addresses Docora may connect to: the SSRF table shared by webhook targets and git
hosts (SPEC section 6). Pure rules plus the system resolver; no connection is made here."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from docora.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses to connect to, as text. Tests inject their own, so that a
# name can be pointed at loopback without touching the machine's DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class RefusedAddress(InvalidInput):
    """The host does not resolve, or resolves to an address Docora must not connect to."""


def ip_literal(host: str) -> IPAddress | None:
    """The address a host name spells literally (IPv6 without brackets), else None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def is_public_address(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped or address.sixtofour
        if mapped is not None:
            return is_public_address(mapped)
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _CGNAT
        or not address.is_global
    )


async def checked_addresses(
    host: str,
    port: int,
    *,
    allow_private: bool,
    resolver: Resolver = system_resolver,
    what: str = "host",
) -> list[str]:
    """The addresses of host, all of them public (unless private ones are allowed).

    One non-public address among public ones is enough to refuse: the connection could
    be made to any of them. `what` names the field in messages ("base_url", "github_url").
    The message never says which address a name resolved to, nor tells a name that does
    not resolve from one that resolves inside the network: that would map it for a tenant.
    """
    refused = RefusedAddress(
        f"{what} host {host!r} is refused: it must resolve to public addresses"
    )
    try:
        addresses = await resolver(host, port)
    except (OSError, UnicodeError):
        raise refused from None
    if not addresses:
        raise refused
    if allow_private:
        return addresses
    for text in addresses:
        if not is_public_address(ipaddress.ip_address(text.split("%", 1)[0])):
            raise refused
    return addresses
