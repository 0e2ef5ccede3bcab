"""A real console in a real browser: the API served by uvicorn on loopback http, driven by
Playwright with Debian's Chromium (Playwright cannot download a browser here)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import uvicorn

from docora.asgi import create_app
from docora.runtime import _Server
from tests.test_cli import free_port
from tests.tools import require_tool

# Chromium as the project's own probe runs it: no sandbox (root), and nothing in the
# background that would try to reach the network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    return require_tool("chromium", "apt-get install chromium; `bash .ci/run` installs it")


@contextlib.contextmanager
def live_api(settings) -> Iterator[str]:
    """The API on http://127.0.0.1:<port> in a background thread, for the test's length."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "the API did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
