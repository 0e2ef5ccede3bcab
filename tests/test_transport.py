"""The webhook transport (transport.py) against scripted loopback HTTP servers:
keep-alive, connections the server drops, answer framings, limits and timeouts."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest

from docora.net import RefusedAddress
from docora.transport import MAX_KEPT_BODY, PinnedTransport

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class ScriptedServer:
    """Reads whole requests (Content-Length bodies) and answers each with `answer(n)`:
    bytes to write, or None to close the connection without answering. Counts
    connections and requests."""

    def __init__(
        self,
        answer,
        *,
        close_after: bool = False,
        delay: float = 0.0,
        per_connection: int | None = None,
    ) -> None:
        self.answer = answer
        self.close_after = close_after
        # Answer this many requests on a connection, then drop the next one unanswered
        # (a server whose idle timeout closes kept connections as requests arrive).
        self.per_connection = per_connection
        self.delay = delay
        self.connections = 0
        self.open_now = 0
        self.most_open = 0
        self.requests: list[bytes] = []

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/create"
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        served = 0
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                if self.delay:
                    await asyncio.sleep(self.delay)
                answer = self.answer(len(self.requests))
                if answer is None or served == self.per_connection:
                    break
                served += 1
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


def transport(**options) -> PinnedTransport:
    return PinnedTransport(allow_private=True, **options)


async def post(t: PinnedTransport, url: str, body: bytes = b"{}", timeout: float = 5.0):
    request = httpx.Request(
        "POST",
        url,
        content=body,
        headers={"Content-Type": "application/json"},
        extensions={"timeout": {"connect": timeout, "read": timeout, "pool": timeout}},
    )
    response = await t.handle_async_request(request)
    await response.aread()
    return response


async def test_keep_alive_reuses_one_connection_and_sends_what_httpx_built():
    async with ScriptedServer(lambda n: OK) as server:
        t = transport()
        for _ in range(5):
            response = await post(t, server.url, b'{"a":1}')
            assert response.status_code == 200 and response.content == b"ok"
        await t.aclose()
    assert server.connections == 1 and len(server.requests) == 5
    first = server.requests[0]
    assert first.startswith(b"POST /hooks/create HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:%d\r\n" % server.port in first
    assert b"\r\nContent-Length: 7\r\n" in first and first.endswith(b'\r\n\r\n{"a":1}')


async def test_a_connection_the_server_closes_is_not_reused():
    async with ScriptedServer(lambda n: OK, close_after=True) as server:
        t = transport()
        for _ in range(3):
            assert (await post(t, server.url)).status_code == 200
            await asyncio.sleep(0.05)  # the close arrives while the connection is idle
        await t.aclose()
    assert server.connections == 3


async def test_connection_close_answers_are_not_kept():
    closing = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    async with ScriptedServer(lambda n: closing) as server:
        t = transport()
        assert (await post(t, server.url)).status_code == 204
        assert (await post(t, server.url)).status_code == 204
        await t.aclose()
    assert server.connections == 2


async def test_a_reused_connection_dropped_before_answering_is_retried_once_on_a_new_one():
    # The second request arrives on the kept connection, which the server then drops
    # without a byte of answer (its idle timeout raced us): sent again, answered.
    async with ScriptedServer(lambda n: None if n == 2 else OK) as server:
        t = transport()
        assert (await post(t, server.url)).status_code == 200
        assert (await post(t, server.url)).status_code == 200
        await t.aclose()
    assert server.connections == 2 and len(server.requests) == 3


async def test_when_every_kept_connection_was_dropped_the_retry_opens_a_new_one():
    async with ScriptedServer(lambda n: OK, per_connection=1, delay=0.05) as server:
        t = transport()
        await asyncio.gather(post(t, server.url), post(t, server.url))  # two kept
        assert (await post(t, server.url)).status_code == 200
        await t.aclose()
    assert server.connections == 3 and len(server.requests) == 4


async def test_a_new_connection_dropped_before_answering_is_an_error():
    async with ScriptedServer(lambda n: None) as server:
        t = transport()
        with pytest.raises(httpx.RemoteProtocolError):
            await post(t, server.url)
        await t.aclose()
    assert len(server.requests) == 1  # never sent twice on a connection of its own


@pytest.mark.parametrize(
    ("answer", "content"),
    [
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"abcde",
        ),
        (b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n", b""),
    ],
)
async def test_answer_framings(answer, content):
    async with ScriptedServer(lambda n: answer) as server:
        t = transport()
        for _ in range(2):
            response = await post(t, server.url)
            assert response.content == content and 200 <= response.status_code < 300
        await t.aclose()
    assert server.connections == 1


async def test_interim_answers_are_skipped():
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with ScriptedServer(lambda n: answer) as server:
        t = transport()
        for _ in range(2):
            response = await post(t, server.url)
            assert response.status_code == 200 and response.content == b"ok"
        await t.aclose()
    assert server.connections == 1


async def test_an_answer_ending_with_the_connection():
    answer = b"HTTP/1.1 200 OK\r\n\r\nall of it"
    async with ScriptedServer(lambda n: answer, close_after=True) as server:
        t = transport()
        response = await post(t, server.url)
        await t.aclose()
    assert response.status_code == 200 and response.content == b"all of it"


async def test_a_large_answer_is_read_but_only_its_start_kept():
    big = b"x" * (MAX_KEPT_BODY * 4)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    async with ScriptedServer(lambda n: answer) as server:
        t = transport()
        first = await post(t, server.url)
        second = await post(t, server.url)
        await t.aclose()
    assert len(first.content) == MAX_KEPT_BODY and second.status_code == 200
    assert server.connections == 1  # read to its end: the connection stayed usable


async def test_a_malformed_answer_is_a_protocol_error():
    async with ScriptedServer(lambda n: b"HTTP/9 what\r\n\r\n") as server:
        t = transport()
        with pytest.raises(httpx.RemoteProtocolError):
            await post(t, server.url)
        await t.aclose()


async def test_no_answer_in_time_is_a_read_timeout_and_the_connection_is_dropped():
    async with ScriptedServer(lambda n: OK, delay=0.5) as server:
        t = transport()
        with pytest.raises(httpx.ReadTimeout):
            await post(t, server.url, timeout=0.1)
        assert (await post(t, server.url)).status_code == 200
        await t.aclose()
    assert server.connections == 2


async def test_connections_are_bounded():
    async with ScriptedServer(lambda n: OK, delay=0.05) as server:
        t = transport(max_connections=2)
        answers = await asyncio.gather(*(post(t, server.url) for _ in range(6)))
        await t.aclose()
    assert [a.status_code for a in answers] == [200] * 6
    assert server.most_open <= 2


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool():
    async with ScriptedServer(lambda n: OK, delay=0.3) as server:
        t = transport()
        task = asyncio.create_task(post(t, server.url))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await post(t, server.url)).status_code == 200
        await t.aclose()
    assert server.connections == 2


async def test_refused_addresses_and_schemes():
    async def loopback(host, port):
        return ["127.0.0.1"]

    t = PinnedTransport(allow_private=False, resolver=loopback)
    with pytest.raises(RefusedAddress):
        await post(t, "http://hooks.example.test/x")
    with pytest.raises(httpx.UnsupportedProtocol):
        await post(t, "ftp://hooks.example.test/x")
    await t.aclose()


async def test_refused_connections_are_connect_errors():
    async with ScriptedServer(lambda n: OK) as server:
        url = server.url
    t = transport()
    with pytest.raises(httpx.ConnectError):
        await post(t, url)
    await t.aclose()


class Collected:
    """A body sink that keeps what it is handed (and can be told to fail)."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.pieces: list[bytes] = []
        self.fail_after = fail_after

    def write(self, piece: bytes) -> None:
        if self.fail_after is not None and sum(map(len, self.pieces)) >= self.fail_after:
            raise OSError("disk full")
        self.pieces.append(piece)


async def sunk(t: PinnedTransport, url: str, sink: Collected, timeout: float = 5.0):
    request = httpx.Request(
        "GET",
        url,
        extensions={"timeout": {"read": timeout, "connect": 5, "pool": 5}, "body_sink": sink},
    )
    response = await t.handle_async_request(request)
    await response.aread()
    return response


async def test_a_sink_gets_a_2xx_body_and_nothing_is_kept():
    big = bytes(range(256)) * (MAX_KEPT_BODY // 64)  # 4x what an answer may keep
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)]
    answers.append(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")
    async with ScriptedServer(lambda n: answers[n - 1]) as server:
        t = transport()
        sink = Collected()
        first = await sunk(t, server.url, sink)
        second = await sunk(t, server.url, Collected())
        await t.aclose()
    assert first.status_code == 200 and first.content == b"" and b"".join(sink.pieces) == big
    assert second.status_code == 404 and second.content == b"nope"  # an error is read as ever
    assert server.connections == 1


async def test_a_failing_sink_fails_the_request_and_drops_the_connection():
    big = b"y" * 1_000_000
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)
    async with ScriptedServer(lambda n: answer) as server:
        t = transport()
        with pytest.raises(OSError, match="disk full"):
            await sunk(t, server.url, Collected(fail_after=1))
        assert (await sunk(t, server.url, Collected())).status_code == 200
        await t.aclose()
    assert server.connections == 2


async def test_with_a_sink_the_read_timeout_is_for_silence_not_the_whole_body():
    async def trickle(reader, writer, pause: float, pieces: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % pieces)
        for _ in range(pieces):
            await asyncio.sleep(pause)
            writer.write(b"z")
            await writer.drain()
        writer.close()

    # Ten pieces 0.05 s apart: 0.5 s in all, well past a 0.2 s timeout, never silent for it.
    server = await asyncio.start_server(lambda r, w: trickle(r, w, 0.05, 10), "127.0.0.1", 0)
    stalled = await asyncio.start_server(lambda r, w: trickle(r, w, 0.5, 2), "127.0.0.1", 0)
    async with server, stalled:
        t = transport()
        sink = Collected()
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/o"
        assert (await sunk(t, url, sink, timeout=0.2)).status_code == 200
        assert b"".join(sink.pieces) == b"z" * 10
        with pytest.raises(httpx.ReadTimeout):
            url = f"http://127.0.0.1:{stalled.sockets[0].getsockname()[1]}/o"
            await sunk(t, url, Collected(), timeout=0.2)
        await t.aclose()
