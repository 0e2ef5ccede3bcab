"""POSTing signed events: one keep-alive client, no redirects, bounded time, and every
connection made to an address that passed the SSRF rules at that very moment."""

from __future__ import annotations

import time
from collections.abc import Iterable

import httpcore
import httpx
import msgspec

from docora.net import RefusedAddress, Resolver, checked_addresses, system_resolver


class SendResult(msgspec.Struct, frozen=True):
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the webhook host when a connection opens, checks every address, and
    connects to a checked one, so DNS cannot point elsewhere between the check and the
    connection (rebinding). TLS still verifies the certificate against the host name."""

    def __init__(self, *, resolver: Resolver, allow_private: bool) -> None:
        self._resolver = resolver
        self._allow_private = allow_private
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await checked_addresses(
            host, port, allow_private=self._allow_private, resolver=self._resolver, what="base_url"
        )
        failure: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._network.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, *args, **kwargs) -> httpcore.AsyncNetworkStream:
        raise RefusedAddress("webhooks go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class WebhookSender:
    """httpx's transport layer, used directly: a webhook needs no cookies, auth flows,
    redirects (never followed) or event hooks, and skipping that machinery roughly halves
    the client's cost per request."""

    def __init__(
        self,
        *,
        timeout_ms: int,
        allow_private: bool,
        resolver: Resolver = system_resolver,
        max_connections: int = 256,
    ) -> None:
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._transport = httpx.AsyncHTTPTransport(limits=limits, retries=0)
        # httpx offers no public way to hand its pool a network backend; the transport
        # only wraps this one attribute (tests/test_ssrf_delivery.py fails if that changes).
        self._transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=0,
            network_backend=CheckedBackend(resolver=resolver, allow_private=allow_private),
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
