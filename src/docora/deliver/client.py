"""POSTing signed events: one keep-alive client, no redirects, bounded time."""

from __future__ import annotations

import time

import httpx
import msgspec


class SendResult(msgspec.Struct, frozen=True):
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class WebhookSender:
    """httpx's transport layer, used directly: a webhook needs no cookies, auth flows,
    redirects (never followed) or event hooks, and skipping that machinery roughly halves
    the client's cost per request."""

    def __init__(self, *, timeout_ms: int, max_connections: int = 256) -> None:
        self._transport = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            retries=0,
        )
        seconds = timeout_ms / 1000
        self._timeouts = {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}
        self._timeout_ms = timeout_ms

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> SendResult:
        started = time.perf_counter()
        request = httpx.Request(
            "POST",
            url,
            headers={"User-Agent": "Docora-Webhooks", **headers},
            content=body,
            extensions={"timeout": self._timeouts},
        )
        try:
            response = await self._transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return self._failed(started, f"timed out after {self._timeout_ms} ms")
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
