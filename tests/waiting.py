"""Polling, for tests that wait on another process or thread."""

from __future__ import annotations

import time


def wait_until(predicate, timeout: float, what, interval: float = 0.05) -> None:
    """Poll until predicate() holds; past the timeout fail with `what` (text, or a callable
    giving it, so the message can show the last state seen)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise AssertionError(what() if callable(what) else what)
        time.sleep(interval)
