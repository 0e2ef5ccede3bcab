"""Test scaffolding around the reference receiver (docora.receiver): scripted answers
and waiting for conditions. Kept out of the package: a client app needs neither."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from docora.receiver import Received, ReceiverState, WebhookReceiver, compact, verify

__all__ = ["Received", "ReceiverServer", "ReceiverState", "compact", "verify"]


@dataclass
class ScriptedState(ReceiverState):
    # The answer to each verified request (None: 200). May sleep to make Docora time out.
    respond: Callable[[str, dict], int | None] = lambda event, body: None


class ReceiverServer(WebhookReceiver):
    """The reference receiver with answers a test scripts (`state.respond`) and a way to
    wait for what it has received (`wait_for`)."""

    state: ScriptedState

    def __init__(self, key: str, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(key, port, host)
        self.state = ScriptedState(key=key)

    def status_for(self, event: str, body: dict) -> int | None:
        return self.state.respond(event, body)

    def fail_first(self, count: int, status: int = 500) -> None:
        """Answer the next `count` verified requests with `status`, then 200."""
        left = {"n": count}

        def respond(event: str, body: dict) -> int | None:
            if left["n"]:
                left["n"] -= 1
                return status
            return None

        self.state.respond = respond

    def wait_for(self, predicate: Callable[[ReceiverState], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.state.lock:
                if predicate(self.state):
                    return
            time.sleep(0.05)
        raise AssertionError(
            f"receiver condition not met in {timeout}s; got {len(self.state.events)} events"
        )
