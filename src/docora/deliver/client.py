"""POSTing signed events: keep-alive, no redirects, bounded time, and every connection made
to an address that passed the SSRF rules at that very moment (transport.py)."""

from __future__ import annotations

import functools
import time

import httpx
import msgspec

from docora.lease import Lease
from docora.net import RefusedAddress, Resolver, system_resolver
from docora.transport import Endpoint, PinnedTransport

USER_AGENT = "Docora-Webhooks"


@functools.lru_cache(maxsize=4096)
def _endpoint(url: str) -> Endpoint:
    """Webhook URLs repeat ({base_url}/{event}); parsing one costs more than a signature."""
    return Endpoint(url, USER_AGENT)


def _header_lines(headers: dict[str, str]) -> bytes:
    """`Name: value` lines; the values are Docora's own (ids, signatures), never a
    client's, and carry no line break."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


class SendResult(msgspec.Struct, frozen=True):
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


class WebhookSender:
    """The pinned transport used directly (transport.py): a webhook needs no cookies, auth
    flows, redirects (never followed), event hooks, or even request and response objects,
    and skipping them saves their cost on every request."""

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
        try:
            code = await self._transport.post(
                _endpoint(url), _header_lines(headers), body, self._timeouts
            )
        except httpx.TimeoutException:
            return self._failed(started, f"timed out after {self._timeout_ms} ms")
        except RefusedAddress as exc:
            return self._failed(started, f"webhook target refused: {exc}")
        except httpx.HTTPError as exc:
            return self._failed(started, f"connection failed: {type(exc).__name__}")
        latency = round((time.perf_counter() - started) * 1000)
        if 200 <= code < 300:
            return SendResult(ok=True, status_code=code, latency_ms=latency, error=None)
        return SendResult(ok=False, status_code=code, latency_ms=latency, error=f"HTTP {code}")

    def _failed(self, started: float, error: str) -> SendResult:
        latency = round((time.perf_counter() - started) * 1000)
        return SendResult(ok=False, status_code=None, latency_ms=latency, error=error)

    async def aclose(self) -> None:
        await self._transport.aclose()
