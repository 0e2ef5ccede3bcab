"""The rescan checker: keeps every repository fresh without a job per check (SPEC 12).

Each worker runs one beside its Procrastinate worker. It claims due repositories (oldest
first, `SKIP LOCKED`, so several workers share the work and none waits for another), asks
their remotes concurrently where the branch's tip is (in-process over smart HTTP, else
`git ls-remote`), and records the outcomes of everything that finished in one statement:

- `unchanged`: the tip is the snapshot's commit and every watch is synced at it. The
  watches are marked checked; nothing else happens: no job, no fetch.
- `changed`: the tip moved, or a watch is behind (new, failed, reset): a sync job is
  queued, which does everything a sync does (access per watch, fetch, scan, hand-out).
- `failed`: the remote could not be read: a sync job is queued too, and records the
  failure exactly as before (circuit breaker, statuses, `sync_failed`).

A check that takes long does not hold up the others: results are recorded every
FLUSH_S whatever is still in flight. When nothing is due it sleeps until the next check
falls due, at least MIN_PAUSE_S (so checks are taken in batches, not one at a time) and
at most SCAN_INTERVAL_MS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec

from docora.crypto import DecryptionError, watch_token_context
from docora.git.command import GitError
from docora.git.remote import read_remote_head
from docora.jobs.queue import SYNC_LOCK_PREFIX, JobQueue
from docora.jobs.services import Services
from docora.store import checks
from docora.store.checks import DueRepository

log = logging.getLogger(__name__)

FLUSH_S = 0.25
MIN_PAUSE_S = 1.0
SKIPPED_PAUSE_S = 0.05
ERROR_PAUSE_S = 2.0
# A check is one small question; a remote that takes longer than this is a failure (the
# sync job then asks again with the full GIT_TIMEOUT_MS).
CHECK_TIMEOUT_MS = 30_000


class Checked(msgspec.Struct, frozen=True):
    repository: DueRepository
    outcome: str


class RescanChecker:
    def __init__(self, services: Services, queue: JobQueue) -> None:
        self.services = services
        self.settings = services.settings
        self.queue = queue
        self.concurrency = self.settings.check_concurrency
        self.timeout_ms = min(self.settings.git_timeout_ms, CHECK_TIMEOUT_MS)
        # Claims push what they take this far ahead: past any check still in flight.
        self.lease_ms = max(self.settings.rescan_interval_ms, self.timeout_ms)
        self._inflight: set[asyncio.Task[Checked]] = set()
        self._finished: list[Checked] = []
        self._warned_at = float("-inf")

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if not await self.step():
                    await self._pause(stop, await self._seconds_to_next_due())
            except Exception as exc:  # Postgres away: try again shortly
                log.warning("rescan checks paused: %s: %s", type(exc).__name__, exc)
                await self._pause(stop, ERROR_PAUSE_S)
        await self.drain()

    async def step(self) -> bool:
        """Claim what fits, wait a moment for checks to finish, record them. True when more
        may be due or checks are still in flight."""
        free = self.concurrency - len(self._inflight)
        claimed: list[DueRepository] = []
        if free > 0:
            async with self.services.pool.connection() as conn:
                claimed = await checks.claim_due(
                    conn, limit=free, lease_ms=self.lease_ms, sync_lock_prefix=SYNC_LOCK_PREFIX
                )
            self._note_lag(claimed)
            for due in claimed:
                task = asyncio.create_task(self._check(due), name=f"check {due.id}")
                self._inflight.add(task)
                task.add_done_callback(self._collect)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=FLUSH_S)
        await self.flush()
        return len(claimed) == free or bool(self._inflight)

    async def drain(self) -> None:
        """Let checks in flight finish (they are short) and record them."""
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=self.timeout_ms / 1000)
        for task in list(self._inflight):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.flush()

    def _collect(self, task: asyncio.Task[Checked]) -> None:
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is None:
            self._finished.append(task.result())
        elif not task.cancelled():
            log.error("a rescan check failed unexpectedly", exc_info=task.exception())

    async def _check(self, due: DueRepository) -> Checked:
        if not due.all_in_sync or self.services.lfs_mode_changed(
            due.snapshot_commit, due.snapshot_lfs
        ):
            return Checked(due, "changed")
        token = None
        if due.token_enc is not None:
            try:
                context = watch_token_context(due.app_id, due.id)
                token = self.services.box.decrypt(due.token_enc, context=context)
            except DecryptionError:
                return Checked(due, "failed")  # the sync marks the watch
        try:
            head = await read_remote_head(
                due.url,
                branch=due.branch,
                token=token,
                allow_local=self.settings.allow_local_repositories,
                timeout_ms=self.timeout_ms,
                resolver=self.services.resolver,
                refs=self.services.refs,
            )
        except GitError as exc:
            log.debug("check of %s failed (%s); its sync will record it", due.id, exc.kind)
            return Checked(due, "failed")
        return Checked(due, "unchanged" if head.commit_sha == due.snapshot_commit else "changed")

    async def flush(self) -> None:
        """Record every finished check: one statement, plus a sync job per repository that
        needs one."""
        if not self._finished:
            return
        finished, self._finished = self._finished, []
        counts = {outcome: 0 for outcome in checks.OUTCOMES}
        for item in finished:
            counts[item.outcome] += 1
        unchanged = [i.repository for i in finished if i.outcome == "unchanged"]
        try:
            async with self.services.pool.connection() as conn:
                await checks.record_batch(
                    conn,
                    unchanged=[r.id for r in unchanged],
                    closing=[r.id for r in unchanged if r.consecutive_failures],
                    counts=counts,
                    interval_ms=self.settings.rescan_interval_ms,
                    max_lag_s=max(i.repository.due_seconds for i in finished),
                )
                for item in finished:
                    if item.outcome != "unchanged":
                        await self.queue.sync_now(conn, item.repository.id)
        except BaseException:
            self._finished.extend(finished)  # recorded by the next flush
            raise

    def _note_lag(self, claimed: list[DueRepository]) -> None:
        """Warn (once an interval) when the oldest due check waited more than an interval."""
        if not claimed:
            return
        behind = claimed[0].due_seconds
        interval_s = self.settings.rescan_interval_ms / 1000
        now = time.monotonic()
        if behind > interval_s and now - self._warned_at > interval_s:
            self._warned_at = now
            log.warning(
                "rescans are %.1f s behind (more than RESCAN_INTERVAL_MS): more due checks "
                "than this worker's CHECK_CONCURRENCY keeps up with; add workers or raise it",
                behind,
            )

    async def _seconds_to_next_due(self) -> float:
        async with self.services.pool.connection() as conn:
            _, next_due = await checks.lag(conn)
        return self.settings.scan_interval_ms / 1000 if next_due is None else next_due

    async def _pause(self, stop: asyncio.Event, seconds: float) -> None:
        """Until the next check falls due; when that is soon, a little longer, so that
        checks are claimed in batches rather than one at a time. A check already due but
        not claimable (another worker is claiming it) is looked at again at once."""
        longest = self.settings.scan_interval_ms / 1000
        if seconds <= 0:
            seconds = SKIPPED_PAUSE_S
        else:
            seconds = max(min(MIN_PAUSE_S, longest), min(seconds, longest))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
