"""Waiting for git never occupies the event loop's default executor, which also resolves
the names of webhook targets: deliveries go on while slow fetches hang."""

from __future__ import annotations

import asyncio
import os
import socket
import time

from docora.deliver.client import WebhookSender
from docora.git.command import GitError, git_environment, run_git_async

# More hanging git commands than the default executor has threads (min(32, cores + 4)).
HANGING = (os.cpu_count() or 1) + 8


async def test_deliveries_go_on_while_git_hangs(receiver):
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/acme/project"
    env = git_environment(url=url, allow_local=True)
    hanging = [
        asyncio.create_task(run_git_async(["ls-remote", "--", url], env=env, timeout_ms=15_000))
        for _ in range(HANGING)
    ]
    sender = WebhookSender(timeout_ms=5000, allow_private=True)  # resolves through the loop
    try:
        await asyncio.sleep(1.0)  # every git command is connected and waiting
        assert not any(task.done() for task in hanging)
        started = time.monotonic()
        result = await sender.post(
            f"http://localhost:{receiver.server_port}/hooks/create",
            {"Content-Type": "application/json"},
            b'{"probe":true}',
        )
        elapsed = time.monotonic() - started
        assert result.status_code == 401, result.error  # answered (unsigned, so refused)
        assert elapsed < 1.0, f"a delivery waited {elapsed:.1f} s behind hanging git commands"
        assert not any(task.done() for task in hanging)
    finally:
        for task in hanging:
            task.cancel()
        outcomes = await asyncio.gather(*hanging, return_exceptions=True)
        await sender.aclose()
        silent.close()
    assert all(isinstance(o, asyncio.CancelledError | GitError) for o in outcomes)
