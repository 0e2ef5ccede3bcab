"""Token-bucket rate limiting per verified bearer token (else per peer), and who the peer is.

Buckets live in the process: with N API replicas the effective limit is N times the
setting, which is the documented trade-off for keeping Postgres the only server.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from litestar.types import ASGIApp, Receive, Scope, Send

_MAX_BUCKETS = 50_000


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


def peer_address(scope: Scope) -> str:
    """The client's address. Behind a proxy listed in TRUSTED_PROXIES, uvicorn has already
    put the client named by X-Forwarded-For here (runtime.run_api); nothing else reads
    that header, so a client cannot choose its own bucket."""
    client = scope.get("client")
    return client[0] if client else "unknown"


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


def credential_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class VerifiedCredentials:
    """Digests of bearer tokens that authenticated in this process (bounded, oldest out).

    Only these get a rate-limit bucket of their own: anything else a request carries
    (no token, a random string, a revoked token never seen here) is charged to the peer,
    so varying the token buys a client nothing.
    """

    def __init__(self, capacity: int = _MAX_BUCKETS) -> None:
        self._capacity = capacity
        self._digests: OrderedDict[str, None] = OrderedDict()

    def add(self, token: str) -> None:
        digest = credential_digest(token)
        self._digests[digest] = None
        self._digests.move_to_end(digest)
        while len(self._digests) > self._capacity:
            self._digests.popitem(last=False)

    def __contains__(self, digest: str) -> bool:
        return digest in self._digests


def rate_limit_key(scope: Scope, verified: VerifiedCredentials) -> str:
    token = bearer_token(scope)
    if token:
        digest = credential_digest(token)
        if digest in verified:
            return "token:" + digest[:32]
    return "peer:" + peer_address(scope)


def too_many_requests_body(retry_after: float) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    seconds = str(max(1, math.ceil(retry_after))).encode()
    body = b'{"error":"Too many requests, retry later"}'
    headers = [
        (b"content-type", b"application/json"),
        (b"retry-after", seconds),
        (b"content-length", str(len(body)).encode()),
    ]
    return body, headers


def rate_limit_middleware(limiter: RateLimiter, verified: VerifiedCredentials):
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope.get("path") in ("/health", "/version"):
                await app(scope, receive, send)
                return
            wait = limiter.acquire(rate_limit_key(scope, verified))
            if wait <= 0:
                await app(scope, receive, send)
                return
            body, headers = too_many_requests_body(wait)
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return middleware

    return factory
