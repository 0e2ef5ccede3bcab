"""Webhook targets and the SSRF rules that guard them."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
MAX_BASE_URL_LENGTH = 2048


class UnsafeTarget(ValueError):
    pass


async def system_resolver(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [info[4][0] for info in infos]


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


def normalize_base_url(text: str, *, allow_private: bool) -> str:
    """Shape checks only (no DNS): scheme, no credentials/query/fragment, trailing slash off."""
    text = text.strip()
    if not text or len(text) > MAX_BASE_URL_LENGTH:
        raise UnsafeTarget(f"base_url must be 1 to {MAX_BASE_URL_LENGTH} characters")
    parts = urlsplit(text)
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme.lower() not in allowed:
        raise UnsafeTarget("base_url must use https")
    if not parts.hostname:
        raise UnsafeTarget("base_url must name a host")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("base_url must not contain credentials")
    if parts.query or parts.fragment:
        raise UnsafeTarget("base_url must not contain a query string or fragment")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in text):
        raise UnsafeTarget("base_url must not contain whitespace or control characters")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise UnsafeTarget("base_url has an invalid port") from None
    return text.rstrip("/")


async def check_target(
    base_url: str, *, allow_private: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """Resolve base_url's host and refuse it when any address is not public."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return await checked_addresses(
        parts.hostname or "", port, allow_private=allow_private, resolver=resolver
    )


async def checked_addresses(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = system_resolver
) -> list[str]:
    """The addresses of host, all of them public (unless private targets are allowed)."""
    try:
        addresses = await resolver(host, port)
    except (OSError, UnicodeError):
        raise UnsafeTarget(f"base_url host {host!r} does not resolve") from None
    if not addresses:
        raise UnsafeTarget(f"base_url host {host!r} does not resolve")
    if allow_private:
        return addresses
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if not is_public_address(address):
            raise UnsafeTarget(
                f"base_url host {host!r} resolves to a non-public address ({address})"
            )
    return addresses
