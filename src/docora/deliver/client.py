"""POSTing signed events: keep-alive, no redirects, bounded time, and every connection made
to an address that passed the SSRF rules at that very moment (transport.py)."""

from __future__ import annotations

import functools
import time

import httpx
import msgspec

from docora.lease import Lease
from docora.net import RefusedAddress, Resolver, system_resolver
from docora.transport import PinnedTransport


@functools.lru_cache(maxsize=4096)
def _parsed(url: str) -> httpx.URL:
    """Webhook URLs repeat ({base_url}/{event}); parsing one costs more than a signature."""
    return httpx.URL(url)


class SendResult(msgspec.Struct, frozen=True):
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class WebhookSender:
    """An httpx transport used directly: a webhook needs no cookies, auth flows, redirects
    (never followed) or event hooks, and skipping the client's machinery saves its cost on
    every request."""

    def __init__(
        self,
        *,
        timeout_ms: int,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        max_connections: int = 256,
        lease: Lease | None = None,
    ) -> None:
        # A worker's lease (docora/lease.py): nothing is sent once it has run out.
        self._lease = lease
        self._transport = PinnedTransport(
            resolver=resolver, allow_private=allow_private, max_connections=max_connections
        )
        seconds = timeout_ms / 1000
        self._timeouts = {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
        self._timeout_ms = timeout_ms

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> SendResult:
        """Raises LeaseLost, sending nothing, once the worker's lease has run out."""
        if self._lease is not None:
            self._lease.check()
        started = time.perf_counter()
        request = httpx.Request(
            "POST",
            _parsed(url),
            headers={"User-Agent": "Docora-Webhooks", **headers},
            content=body,
            extensions={"timeout": self._timeouts},
        )
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.TimeoutException:
            return self._failed(started, f"timed out after {self._timeout_ms} ms")
        except RefusedAddress as exc:
            return self._failed(started, f"webhook target refused: {exc}")
        except httpx.HTTPError as exc:
            return self._failed(started, f"connection failed: {type(exc).__name__}")
        latency = round((time.perf_counter() - started) * 1000)
        code = response.status_code
        if 200 <= code < 300:
            return SendResult(ok=True, status_code=code, latency_ms=latency, error=None)
        return SendResult(ok=False, status_code=code, latency_ms=latency, error=f"HTTP {code}")

    def _failed(self, started: float, error: str) -> SendResult:
        latency = round((time.perf_counter() - started) * 1000)
        return SendResult(ok=False, status_code=None, latency_ms=latency, error=error)

    async def aclose(self) -> None:
        await self._transport.aclose()
