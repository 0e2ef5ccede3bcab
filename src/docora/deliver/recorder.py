"""Recording acknowledgements off the sending path, in small batches.

The sender hands each acknowledged event to the recorder and moves on; the recorder
commits whatever has accumulated in one transaction, as soon as half of `max_pending` has
gathered or LINGER_S after the first one, whichever comes first: a fast receiver gets
large batches at once, a slow one still gets a commit for several events rather than one
each (a commit costs the worker about a millisecond). At most `max_pending` events can be
acknowledged but not yet recorded: those, with the requests in flight, are all that a
worker crash can cause to be sent again.
"""

from __future__ import annotations

import asyncio
import contextlib

from psycopg_pool import AsyncConnectionPool

from docora.store.changes import Change, LogEntry, record_acknowledged

LINGER_S = 0.05


class WatchGone(Exception):
    """The watch was deleted or reset while delivering: stop without error."""


class AckRecorder:
    def __init__(self, pool: AsyncConnectionPool, *, generation: int, max_pending: int) -> None:
        self._pool = pool
        self._generation = generation
        # Units of acknowledgement: one event, or every event of one batch request. The
        # window (`max_pending`) counts units; a batch is committed without lingering.
        self._pending: list[list[tuple[Change | None, LogEntry]]] = []
        self._room = asyncio.Semaphore(max_pending)
        self._flush_at = max(1, max_pending // 2)
        self._wake = asyncio.Event()  # something is pending
        self._full = asyncio.Event()  # enough is pending to commit without waiting
        self._closing = False
        self._error: BaseException | None = None
        self._task: asyncio.Task | None = None
        self.recorded = 0

    async def __aenter__(self) -> AckRecorder:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc) -> None:
        self._closing = True
        self._wake.set()
        self._full.set()
        assert self._task is not None
        await self._task
        if self._error is not None and exc[0] is None:
            raise self._error

    async def add(self, change: Change | None, entry: LogEntry) -> None:
        """Queue an acknowledged event (or, without a change, a log row only)."""
        await self._queue([(change, entry)], at_once=False)

    async def add_batch(self, items: list[tuple[Change, LogEntry]]) -> None:
        """Queue every event one batch request acknowledged: recorded together, at once."""
        await self._queue(list(items), at_once=True)

    async def _queue(self, unit: list[tuple[Change | None, LogEntry]], *, at_once: bool) -> None:
        if self._error is not None:
            raise self._error
        await self._room.acquire()
        self._pending.append(unit)
        self._wake.set()
        if at_once or len(self._pending) >= self._flush_at:
            self._full.set()

    async def _run(self) -> None:
        async with self._pool.connection() as conn:
            while True:
                await self._wake.wait()
                if not self._full.is_set():
                    # Let acknowledgements gather: one commit for many events.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(LINGER_S):
                            await self._full.wait()
                self._wake.clear()
                self._full.clear()
                units, self._pending = self._pending, []
                batch = [item for unit in units for item in unit]
                if batch and self._error is None:
                    try:
                        if not await record_acknowledged(conn, batch, generation=self._generation):
                            self._error = WatchGone()
                        else:
                            self.recorded += len(batch)
                    except Exception as exc:  # surfaced to the sender on its next add()
                        self._error = exc
                for _ in units:
                    self._room.release()
                if self._closing and not self._pending:
                    return
