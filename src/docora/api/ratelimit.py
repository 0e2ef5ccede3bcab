"""Token-bucket rate limiting per bearer token (or per peer), and who the peer is.

Buckets live in the process: with N API replicas the effective limit is N times the
setting, which is the documented trade-off for keeping Postgres the only server.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import Callable, Sequence

from litestar.types import ASGIApp, Receive, Scope, Send

_MAX_BUCKETS = 50_000
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key: str) -> float:
        """Take one token; return 0 when allowed, else the seconds until one is free."""
        now = self._clock()
        tokens, updated = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - updated) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > _MAX_BUCKETS:
            self._prune(now)
        return 0.0

    def blocked_for(self, key: str) -> float:
        """Seconds until `key` may act again, without taking a token."""
        now = self._clock()
        tokens, updated = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - updated) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [
            k for k, (t, u) in self._buckets.items() if t + (now - u) * self.rate >= self.capacity
        ]
        for key in full:
            del self._buckets[key]


def peer_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The socket peer, or the client named by X-Forwarded-For when the peer is a trusted proxy."""
    client = scope.get("client")
    peer = client[0] if client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = _header(scope, b"x-forwarded-for")
    if not forwarded:
        return peer
    # Walk from the right: the first hop that is not one of our proxies is the client.
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _is_trusted(hop, trusted):
            return hop
    return peer


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def bearer_token(scope: Scope) -> str | None:
    value = _header(scope, b"authorization")
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip() or None
    return None


def rate_limit_key(scope: Scope, trusted: Sequence[Network]) -> str:
    token = bearer_token(scope)
    if token:
        return "token:" + hashlib.sha256(token.encode()).hexdigest()[:32]
    return "peer:" + peer_address(scope, trusted)


def too_many_requests_body(retry_after: float) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    seconds = str(max(1, math.ceil(retry_after))).encode()
    body = b'{"error":"Too many requests, retry later"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"retry-after", seconds),
        (b"content-length", str(len(body)).encode()),
    ]
    return body, headers


def rate_limit_middleware(limiter: RateLimiter, trusted: Sequence[Network]):
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope.get("path") in ("/health", "/version"):
                await app(scope, receive, send)
                return
            wait = limiter.acquire(rate_limit_key(scope, trusted))
            if wait <= 0:
                await app(scope, receive, send)
                return
            body, headers = too_many_requests_body(wait)
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return middleware

    return factory
