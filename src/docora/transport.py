"""An httpx transport on asyncio protocols, parsed by httptools, that connects only to
addresses the SSRF rules allow: webhooks (deliver/) and smart-HTTP ref reads (git/).

httpx's own transport (httpcore on anyio, h11 in pure Python) cost 0.4-0.7 ms of CPU per
request, more than everything else a delivery does, and more with more requests in flight
(bench/transport_loop.py; bench/throughput.py --profile). A webhook POST needs a small part
of HTTP: one request written at once, a status and headers back, keep-alive. This transport
does that part, behind httpx's `AsyncBaseTransport`, so callers keep httpx's request and
response types:

- connections are opened to an address that passed the SSRF rules at that moment (the
  name is resolved and checked once per connection, and the socket goes to a checked
  address: DNS cannot change between the check and the connection); TLS still verifies
  the certificate against the host name;
- keep-alive per (scheme, host, port); a connection the server closed while idle is
  dropped as soon as the close arrives, and a request that finds its reused connection
  closed before any byte of answer is sent once more on a new connection;
- redirects are answers like any other (never followed); timeouts come from the request's
  `timeout` extension as in httpx (connect, read, write, pool) and raise httpx's
  exceptions;
- an answer's body is kept up to `max_body` bytes (MAX_KEPT_BODY for webhooks, whose
  answer is read for its status); the rest is read and dropped, so a large answer costs
  no memory, and the response's `truncated` extension says that it happened;
- a request may carry a `body_sink` extension (a BodySink): a 2xx answer's body is then
  handed to it piece by piece as it arrives instead of being kept (Git LFS downloads,
  hundreds of MB), and the read timeout becomes an inactivity timeout. An error the sink
  raises closes the connection and is raised from the request.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from typing import Protocol

import httptools
import httpx

from docora.net import Resolver, checked_addresses, system_resolver

MAX_KEPT_BODY = 64 * 1024
# Bodies up to this size are sent joined to their head in one write; larger ones follow it.
JOIN_UP_TO = 256 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}


class BodySink(Protocol):
    def write(self, piece: bytes) -> None: ...


class _StaleConnection(Exception):
    """A reused connection was closed by the server before any byte of the answer."""


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer being read on it."""

    def __init__(self, max_body: int = MAX_KEPT_BODY) -> None:
        self.transport: asyncio.Transport | None = None
        self._max_body = max_body
        self._truncated = False
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body = bytearray()
        self._headers_done = False
        self._received = False
        self.keep_alive = False
        self._sink: BodySink | None = None
        self._sink_error: BaseException | None = None
        self._deadline: asyncio.Timeout | None = None
        self._idle_timeout: float | None = None

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        self._received = True
        if self._deadline is not None and self._idle_timeout is not None:
            self._deadline.reschedule(asyncio.get_running_loop().time() + self._idle_timeout)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._sink_error is not None:
                self.close()  # the rest of the body cannot be read past a failed sink
                self._finish(self._sink_error)
            else:
                self._finish(httpx.RemoteProtocolError(f"invalid HTTP answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close our side as well

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._parser.should_keep_alive():
            self._finish(None)  # an answer whose body ends with the connection
        elif not self._received:
            self._finish(_StaleConnection())
        else:
            self._finish(httpx.RemoteProtocolError("the server closed the connection mid-answer"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        if self._sink is not None and 200 <= self._parser.get_status_code() < 300:
            try:
                self._sink.write(body)
            except BaseException as exc:
                self._sink_error = exc
                raise  # stops the parser; data_received raises it from the request
            return
        room = self._max_body - len(self._body)
        if room < len(body):
            self._truncated = True
        if room > 0:
            self._body += body[:room]

    def on_message_complete(self) -> None:
        if 100 <= self._parser.get_status_code() < 200:
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._headers, self._body, self._headers_done = [], bytearray(), False
            return
        self.keep_alive = self._parser.should_keep_alive()
        self._finish(None)

    def _finish(self, error: BaseException | None) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

    async def exchange(
        self, request: bytes, read_timeout: float | None, sink: BodySink | None = None
    ) -> httpx.Response:
        """Write one request, wait for its whole answer (with a sink: for no more than
        `read_timeout` between two pieces of it)."""
        await self.roundtrip(request, read_timeout, sink)
        # A stream, as transports return: the caller reads it if it wants the body
        # (decoding it at once here cost 6 us a request nobody reads).
        return httpx.Response(
            self._parser.get_status_code(),
            headers=self._headers,
            stream=httpx.ByteStream(bytes(self._body)),
            extensions={"http_version": b"HTTP/1.1", "truncated": self._truncated},
        )

    @property
    def status_code(self) -> int:
        """The status of the answer the last roundtrip read."""
        return self._parser.get_status_code()

    async def roundtrip(
        self,
        request: bytes,
        read_timeout: float | None,
        sink: BodySink | None = None,
        body: bytes = b"",
    ) -> None:
        """Write one request (`body`, when given, goes after it, unjoined) and wait until
        its whole answer has been read."""
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._headers, self._body = [], bytearray()
        self._headers_done = self._received = self._truncated = False
        self._sink, self._sink_error = sink, None
        self.transport.write(request)
        if body:
            self.transport.write(body)
        try:
            async with asyncio.timeout(read_timeout) as deadline:
                if sink is not None:
                    self._deadline, self._idle_timeout = deadline, read_timeout
                await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("no answer in time") from None
        finally:
            self._waiter = None
            self._sink = self._deadline = self._idle_timeout = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class PinnedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        resolver: Resolver = system_resolver,
        allow_private: bool,
        ssl_context: ssl.SSLContext | None = None,
        max_connections: int = 256,
        keepalive_expiry: float = 5.0,
        max_body: int = MAX_KEPT_BODY,
        what: str = "base_url",
    ) -> None:
        """`what` names the setting a refused address came from in its message."""
        self._resolver = resolver
        self._allow_private = allow_private
        self._ssl = ssl_context or httpx.create_ssl_context()
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], collections.deque[_Connection]] = {}
        self._max_body = max_body
        self._what = what

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"only http(s) is spoken, not {url.scheme!r}")
        key = (url.scheme, url.host, url.port or DEFAULT_PORTS[url.scheme])
        payload = _serialize(request, await request.aread())
        sink = request.extensions.get("body_sink")
        return await self._on_connection(
            key,
            request.extensions.get("timeout", {}),
            lambda connection, timeout: connection.exchange(payload, timeout, sink),
        )

    async def post(self, target: Endpoint, headers: bytes, body: bytes, timeouts: dict) -> int:
        """POST `body` with `headers` (already `Name: value\r\n` lines) to `target`; the
        answer's status. The webhook sender's path: no request or response objects, the
        request line and fixed headers built once per URL (bench/transport_loop.py)."""
        payload = b"".join((target.head, headers, b"Content-Length: %d\r\n\r\n" % len(body), body))

        async def exchange(connection: _Connection, timeout: float | None) -> int:
            await connection.roundtrip(payload, timeout)
            return connection.status_code

        return await self._on_connection(target.key, timeouts, exchange)

    async def _on_connection(self, key, timeouts: dict, exchange):
        """Run `exchange(connection, read timeout)` on a kept or a new connection to `key`:
        one more time on a new connection when a kept one was closed under it."""
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection in time") from None
        try:
            for fresh in (False, True):
                # A second attempt (the kept connection was closed under us) always opens
                # a new connection: the other kept ones may have been closed too.
                connection = None if fresh else self._take_idle(key)
                reused = connection is not None
                if connection is None:
                    connection = await self._open(key, timeouts.get("connect"))
                try:
                    answer = await exchange(connection, timeouts.get("read"))
                except _StaleConnection:
                    connection.close()
                    if reused:
                        continue  # the server let it go while idle; nothing was answered
                    raise httpx.RemoteProtocolError("the server closed the connection") from None
                except BaseException:
                    connection.close()  # its state is unknown (timeout, cancellation)
                    raise
                self._put_idle(key, connection)
                return answer
            raise AssertionError("the second attempt is on a new connection, never reused")
        finally:
            self._slots.release()

    def _take_idle(self, key) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to be closed
            if not connection.closed and now - connection.idle_since < self._keepalive_expiry:
                return connection
            connection.close()
        return None

    def _put_idle(self, key, connection: _Connection) -> None:
        if connection.closed or not connection.keep_alive:
            connection.close()
            return
        idle = self._idle.setdefault(key, collections.deque())
        if len(idle) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    async def _open(self, key, connect_timeout: float | None) -> _Connection:
        scheme, host, port = key
        addresses = await checked_addresses(
            host,
            port,
            allow_private=self._allow_private,
            resolver=self._resolver,
            what=self._what,
        )
        tls = {"ssl": self._ssl, "server_hostname": host} if scheme == "https" else {}
        failure: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(connect_timeout):
                    return await self._connect(address.split("%", 1)[0], port, tls)
            except TimeoutError:
                raise httpx.ConnectTimeout(f"could not connect to {host} in time") from None
            except (OSError, ssl.SSLError) as exc:
                failure = exc
        raise httpx.ConnectError(f"could not connect to {host}: {failure}")

    async def _connect(self, address: str, port: int, tls: dict) -> _Connection:
        """A connection to an address that passed the checks (a seam for tests that stand
        a loopback server in for a public address)."""
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            lambda: _Connection(self._max_body), address, port, **tls
        )
        return connection

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        await asyncio.sleep(0)  # one loop turn: the transports close their sockets


class Endpoint:
    """A URL to POST to, parsed once: its connection key and the head every request to it
    starts with (request line, Host, User-Agent)."""

    def __init__(self, url: str, user_agent: str) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"only http(s) is spoken, not {parsed.scheme!r}")
        port = parsed.port or DEFAULT_PORTS[parsed.scheme]
        self.key = (parsed.scheme, parsed.host, port)
        host = parsed.netloc.decode("ascii")
        self.head = b"POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n" % (
            parsed.raw_path,
            host.encode("ascii"),
            user_agent.encode("ascii"),
        )


def _serialize(request: httpx.Request, body: bytes) -> bytes:
    """The request as written on the wire, in one piece (one write, one segment or few).
    httpx has already set Host and Content-Length."""
    lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
    lines += [b"%s: %s\r\n" % (name, value) for name, value in request.headers.raw]
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)
