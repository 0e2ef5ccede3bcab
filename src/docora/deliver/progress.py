"""Following a first snapshot that is still being published, part by part (store/scans.py).

A watch that holds nothing yet has only creates to receive from a first snapshot, and the
rows of each published part are final: its delivery sends the creates up to what is
published, in path order, and waits for the next part, so the sync and the delivery
overlap (issue 21). Everything else (deletes, updates, a watch holding files) waits for
the complete snapshot, which keeps SPEC §4's order within a sync.

The delivery asks Postgres every POLL_S while it waits. If the scan stops before its end
(its sync failed, or its worker died), the delivery stops too, keeping what was
acknowledged: the sync's retry publishes the snapshot again and hands the watch out anew.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from psycopg_pool import AsyncConnectionPool

from docora.errors import ExpectedFailure
from docora.store import snapshots
from docora.store.snapshots import Progress

# A part takes a sync tens to hundreds of milliseconds: a few polls each, each one read of
# one row by primary key.
POLL_S = 0.02


class SnapshotStopped(ExpectedFailure):
    """The scan publishing the snapshot stopped before its end; its retry hands out again."""


@dataclass
class PublishedSnapshot:
    pool: AsyncConnectionPool
    repository_id: str
    commit: str
    # The rows of paths up to this one are final; None once the snapshot is complete.
    through: str | None
    # Whether the repository's sync job is still running (jobs/queue.py knows the jobs).
    sync_running: Callable[[], Awaitable[bool]]

    @property
    def complete(self) -> bool:
        return self.through is None

    async def advance(self) -> None:
        """Wait until more of the snapshot is final: `through` moves on, or it is complete.
        Raises SnapshotStopped when nobody is publishing it any more."""
        while not self._took(await self._read()):
            if not await self.sync_running():
                # The sync may have finished between the two reads: look once more.
                if self._took(await self._read()):
                    return
                raise SnapshotStopped(
                    f"the scan of {self.commit[:12]} stopped before its end; "
                    "its retry hands the watch out again"
                )
            await asyncio.sleep(POLL_S)

    async def _read(self) -> Progress:
        async with self.pool.connection() as conn:
            return await snapshots.progress(conn, self.repository_id)

    def _took(self, progress: Progress) -> bool:
        """Take in what `progress` says; True when it says something new."""
        if progress.commit == self.commit:
            self.through = None
            return True
        if progress.partial_commit != self.commit:
            raise SnapshotStopped(
                f"the snapshot of {self.commit[:12]} was replaced before it was complete"
            )
        if progress.partial_through != self.through:
            self.through = progress.partial_through
            return True
        return False
