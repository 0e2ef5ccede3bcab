"""Webhook targets and the SSRF rules that guard them."""

from __future__ import annotations

from urllib.parse import urlsplit

from docora.errors import InvalidInput
from docora.net import Resolver, checked_addresses, system_resolver

MAX_BASE_URL_LENGTH = 2048


class UnsafeTarget(InvalidInput):
    """A base_url of the wrong shape (scheme, credentials, query...)."""


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
    """Resolve base_url's host; RefusedAddress when any address is not public."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return await checked_addresses(
        parts.hostname or "", port, allow_private=allow_private, resolver=resolver, what="base_url"
    )
