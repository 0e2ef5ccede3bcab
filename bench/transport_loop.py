"""CPU per webhook request: Docora's transport against httpx's own, nothing else around it.

    python bench/transport_loop.py [--requests 5000]

Each request is what a delivery sends: a ~5 KB body, signed (both signatures), POSTed to the
Node receiver (bench/receiver.js --verify: it parses the body and checks the signature),
answered 200, over keep-alive connections. Prints requests/s and the process' CPU per
request at concurrency 1 and 8, for `PinnedTransport` and for `httpx.AsyncHTTPTransport`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import KEY, node_receiver  # noqa: E402
from docora.deliver.signing import signed_headers  # noqa: E402
from docora.transport import PinnedTransport  # noqa: E402

BODY = b'{"repository":{"repository_id":"r"},"file":{"path":"a","content":"' + b"x" * 5000 + b'"}}'


async def loop(transport: httpx.AsyncBaseTransport, url: str, requests: int, concurrency: int):
    slots = asyncio.Semaphore(concurrency)
    timeouts = {"connect": 10, "read": 10, "write": 10, "pool": 10}

    async def one(i: int) -> None:
        async with slots:
            headers = signed_headers(
                app_id="app",
                key=KEY,
                event="create",
                delivery_id=str(i),
                timestamp=int(time.time()),
                body=BODY,
            )
            request = httpx.Request(
                "POST", url, headers=headers, content=BODY, extensions={"timeout": timeouts}
            )
            response = await transport.handle_async_request(request)
            await response.aread()
            assert response.status_code == 200, response.status_code

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    await transport.aclose()
    return requests / wall, cpu / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    with node_receiver("--verify", KEY) as port:
        url = f"http://127.0.0.1:{port}/hooks/create"
        transports = {
            "docora PinnedTransport": lambda: PinnedTransport(allow_private=True),
            "httpx AsyncHTTPTransport": lambda: httpx.AsyncHTTPTransport(),
        }
        for name, make in transports.items():
            for concurrency in (1, 8):
                rate, cpu_us = asyncio.run(loop(make(), url, args.requests, concurrency))
                print(
                    f"{name}, concurrency {concurrency}: {rate:,.0f} requests/s, "
                    f"{cpu_us:.0f} µs CPU per request (signing included)"
                )
        stats = httpx.get(f"http://127.0.0.1:{port}/_stats").json()
        assert stats["bad_signatures"] == 0, stats


if __name__ == "__main__":
    main()
