"""A fast loopback webhook receiver for benchmarks: answers 200 at once, keeps counts.

asyncio protocol, one write per response, TCP_NODELAY: the receiver must not be what is
measured. Control routes (GET): /_stats, /_arrival?path=..., /_reset, /_dump?file=...
(writes every body received, length-prefixed, for the bare POST-loop baseline).
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
from urllib.parse import parse_qs, urlsplit

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.by_event: dict[str, int] = {}
        self.arrivals: dict[str, float] = {}
        self.bodies: list[bytes] = []


STATS = Stats()
KEEP_BODIES = "--keep-bodies" in sys.argv


class Receiver(asyncio.Protocol):
    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self.transport.write(self.handle(head.split(" ", 2)[:2], body))

    def handle(self, request_line: list[str], body: bytes) -> bytes:
        method, target = request_line
        if method == "GET":
            return control(target)
        now = time.monotonic()
        event = target.rsplit("/", 1)[-1]
        STATS.count += 1
        STATS.first = STATS.first or now
        STATS.last = now
        STATS.by_event[event] = STATS.by_event.get(event, 0) + 1
        path = json.loads(body).get("file", {}).get("path")
        if path:
            STATS.arrivals[path] = now
        if KEEP_BODIES:
            STATS.bodies.append(body)
        return OK


def control(target: str) -> bytes:
    url = urlsplit(target)
    query = parse_qs(url.query)
    if url.path == "/_reset":
        STATS.reset()
        payload: object = {"ok": True}
    elif url.path == "/_arrival":
        payload = {"at": STATS.arrivals.get(query["path"][0])}
    elif url.path == "/_dump":
        with open(query["file"][0], "wb") as out:
            for body in STATS.bodies:
                out.write(struct.pack(">I", len(body)) + body)
        payload = {"bodies": len(STATS.bodies)}
    else:
        payload = {
            "count": STATS.count,
            "first": STATS.first,
            "last": STATS.last,
            "by_event": STATS.by_event,
        }
    data = json.dumps(payload).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(data),
        data,
    )


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port)
    print(f"receiver listening on {port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
