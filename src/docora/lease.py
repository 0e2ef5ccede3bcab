"""A worker's lease on its work: how long it may go on sending webhooks without having
heard from Postgres (SPEC 12).

A worker cut off from Postgres by a network partition cannot record what it sends, and
its server-side sessions may linger for hours, so nothing on the database side can stop
it. It stops itself: every heartbeat that Postgres answers renews the lease from the
moment the heartbeat was sent, and nothing is sent once the lease has run out. Postgres
records the same heartbeat when it arrives (never before it was sent), so other workers
know when the lease ran out at the latest, and take the work over only after that
(store/workers.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from docora.errors import ExpectedFailure


class LeaseLost(ExpectedFailure):
    """This worker may no longer act for its jobs: another may have taken them over."""


class Lease:
    def __init__(self, duration_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.duration_s = duration_s
        self._clock = clock
        self._until = float("-inf")
        self._revoked = False

    def renewed(self, sent_at: float) -> None:
        """A heartbeat sent at `sent_at` (this clock) was answered."""
        if not self._revoked:
            self._until = max(self._until, sent_at + self.duration_s)

    def revoke(self) -> None:
        """The worker was declared gone: its jobs are someone else's now."""
        self._revoked = True
        self._until = float("-inf")

    def restart(self, sent_at: float) -> None:
        """A new registration (a fresh worker id) holds a lease of its own."""
        self._revoked = False
        self._until = sent_at + self.duration_s

    def now(self) -> float:
        return self._clock()

    def valid(self) -> bool:
        return self._clock() < self._until

    def check(self) -> None:
        if not self.valid():
            raise LeaseLost(
                "this worker has not heard from Postgres within its lease; "
                "another worker resumes its jobs"
            )
