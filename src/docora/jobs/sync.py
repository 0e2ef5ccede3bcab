"""The sync task: ask the remote, fetch and scan once, then hand each watch its delivery."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from procrastinate import JobContext

from docora import metrics
from docora.crypto import DecryptionError, watch_token_context
from docora.git.command import GitError, GitErrorKind
from docora.git.remote import RemoteHead, read_remote_head
from docora.jobs.queue import JobQueue
from docora.jobs.retry import attempt_number
from docora.jobs.services import Services
from docora.scan.snapshot import scan_commit
from docora.store import repositories, trends, watches
from docora.store.repositories import Repository
from docora.store.watches import Watch

log = logging.getLogger(__name__)

ACCESS_CHECK_CONCURRENCY = 8


@dataclass
class Credentials:
    """Watches grouped by the token they read with (None: anonymous)."""

    by_token: dict[str | None, list[str]] = field(default_factory=dict)
    undecryptable: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, services: Services, repo: Repository, watching: list[Watch]) -> Credentials:
        creds = cls()
        for watch in watching:
            token = None
            if watch.token_enc is not None:
                try:
                    token = services.box.decrypt(
                        watch.token_enc, context=watch_token_context(watch.app_id, repo.id)
                    )
                except DecryptionError:
                    creds.undecryptable.append(watch.app_id)
                    continue
            creds.by_token.setdefault(token, []).append(watch.app_id)
        return creds


async def sync_repository(
    services: Services, queue: JobQueue, context: JobContext, repository_id: str
) -> None:
    async with services.pool.connection() as conn:
        repo = await repositories.get_repository(conn, repository_id)
        watching = await watches.watches_of_repository(conn, repository_id) if repo else []
    if repo is None or not watching:
        return
    if repo.cooldown_until and repo.cooldown_until > datetime.now(UTC):
        log.info("sync of %s skipped: circuit breaker open until %s", repo.id, repo.cooldown_until)
        metrics.SYNCS.labels("skipped").inc()
        return
    run = SyncRun(services, queue, repo, watching, attempt_number(context.job))
    started = time.perf_counter()
    try:
        outcome = await run.execute()
    except GitError as exc:
        metrics.SYNCS.labels("failed").inc()
        await _record_run(services, repository_id, started, "failed", None)
        opened = await run.record_git_failure(exc)
        if not opened:
            raise
    except Exception:
        if not await _still_registered(services, repository_id):
            # Its last app was deleted mid-sync (rows gone under our writes): nothing is
            # left to sync, so stop without a retry.
            log.info("sync of %s stopped: the repository was deleted", repository_id)
            return
        metrics.SYNCS.labels("failed").inc()
        await _record_run(services, repository_id, started, "failed", None)
        await run.mark_all("retrying", "internal error during sync; retrying")
        raise
    else:
        metrics.SYNCS.labels(outcome).inc()
        metrics.SYNC_DURATION.observe(time.perf_counter() - started)
        await _record_run(services, repository_id, started, outcome, run.commit)


async def _record_run(
    services: Services, repository_id: str, started: float, outcome: str, commit: str | None
) -> None:
    """The sync's row for the console's charts. A trend point is not worth failing (and
    so repeating) a sync for: if Postgres cannot take it, the sync's own outcome shows."""
    try:
        async with services.pool.connection() as conn:
            await trends.record_sync(
                conn,
                repository_id=repository_id,
                duration_ms=round((time.perf_counter() - started) * 1000),
                outcome=outcome,
                commit_sha=commit,
            )
    except psycopg.Error as exc:
        log.warning("sync of %s not recorded for trends: %s", repository_id, type(exc).__name__)


async def _still_registered(services: Services, repository_id: str) -> bool:
    async with services.pool.connection() as conn:
        return await repositories.get_repository(conn, repository_id) is not None


class SyncRun:
    def __init__(
        self,
        services: Services,
        queue: JobQueue,
        repo: Repository,
        watching: list[Watch],
        attempt: int,
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.queue = queue
        self.repo = repo
        self.watches = watching
        self.attempt = attempt
        self.creds = Credentials.of(services, repo, watching)
        # The commit the repository's snapshot is at once the sync has run.
        self.commit: str | None = repo.snapshot_commit
        # Deliveries were handed out at a first snapshot's first part (scan/snapshot.py).
        self.handed_out_early = False

    async def execute(self) -> str:
        """Returns the outcome: `unchanged` (nothing fetched) or `synced`."""
        if self.creds.undecryptable:
            await self.mark(
                self.creds.undecryptable, "failed", "stored token cannot be decrypted; update it"
            )
        if not self.creds.by_token:
            return "unchanged"
        token, head = await self._first_readable_head()
        snapshot_commit = self.repo.snapshot_commit
        if self._all_in_sync(head, snapshot_commit):
            # The no-op rescan: one ls-remote and one write, nothing fetched or hashed.
            async with self.services.pool.connection() as conn:
                await watches.mark_checked(
                    conn, self.repo.id, rescan_ms=self.settings.rescan_interval_ms
                )
                if self.repo.consecutive_failures:
                    await repositories.close_circuit(conn, self.repo.id)
            return "unchanged"
        readable = await self._check_each_credential(token)
        if head.commit_sha is None:
            if snapshot_commit is not None:
                raise GitError(
                    GitErrorKind.NOT_FOUND, f"branch {self.repo.branch!r} no longer exists"
                )
        elif head.commit_sha != snapshot_commit or self._lfs_mode_changed():
            snapshot_commit = await self._fetch_and_snapshot(
                token, snapshot_commit, head.commit_sha, readable
            )
        if self.repo.consecutive_failures:
            async with self.services.pool.connection() as conn:
                await repositories.close_circuit(conn, self.repo.id)
        self.commit = snapshot_commit
        await self._hand_out(readable, snapshot_commit, unless_synced=self.handed_out_early)
        return "synced"

    def _lfs_mode_changed(self) -> bool:
        return self.services.lfs_mode_changed(self.repo.snapshot_commit, self.repo.snapshot_lfs)

    def _all_in_sync(self, head: RemoteHead, snapshot_commit: str | None) -> bool:
        if head.commit_sha is None or head.commit_sha != snapshot_commit:
            return False
        if self._lfs_mode_changed():
            return False
        return all(w.status == "synced" and w.commit_sha == snapshot_commit for w in self.watches)

    def _candidates(self) -> list[str | None]:
        # Anonymous first: a public repository then needs no token at all.
        return sorted(self.creds.by_token, key=lambda t: t is not None)

    async def _ls_remote(self, token: str | None) -> RemoteHead:
        return await read_remote_head(
            self.repo.url,
            branch=self.repo.branch,
            token=token,
            allow_local=self.settings.allow_local_repositories,
            timeout_ms=self.settings.git_timeout_ms,
            resolver=self.services.resolver,
            refs=self.services.refs,
        )

    async def _first_readable_head(self) -> tuple[str | None, RemoteHead]:
        first_error: GitError | None = None
        for token in self._candidates():
            try:
                return token, await self._ls_remote(token)
            except GitError as exc:
                first_error = first_error or exc
                if exc.kind not in (GitErrorKind.AUTH, GitErrorKind.NOT_FOUND):
                    raise
        assert first_error is not None
        raise first_error

    async def _check_each_credential(self, verified: str | None) -> list[str]:
        """Tenant isolation: every watch reads with its own token; failures fail that watch only."""
        limit = asyncio.Semaphore(ACCESS_CHECK_CONCURRENCY)

        async def check(token: str | None) -> GitError | None:
            if token == verified:
                return None
            async with limit:
                try:
                    await self._ls_remote(token)
                except GitError as exc:
                    return exc
            return None

        tokens = list(self.creds.by_token)
        outcomes = await asyncio.gather(*(check(t) for t in tokens))
        readable: list[str] = []
        for token, error in zip(tokens, outcomes, strict=True):
            app_ids = self.creds.by_token[token]
            if error is None:
                readable.extend(app_ids)
            else:
                message = (
                    f"access denied ({error.kind}): this watch's token cannot read the repository"
                )
                await self.mark(app_ids, "failed", message)
                async with self.services.pool.connection() as conn:
                    await watches.set_verified(conn, self.repo.id, app_ids, None)
        return readable

    async def _fetch_and_snapshot(
        self, token: str | None, previous: str | None, tip: str, readable: list[str]
    ) -> str:
        async with self.services.using_mirror(self.repo) as mirror:
            fetch_started = time.perf_counter()
            fetched = await self.services.fetch_mirror(self.repo, mirror, token=token, tip=tip)
            fetch_seconds = time.perf_counter() - fetch_started

            async def first_part_published() -> None:
                # A first snapshot's deliveries start with its first part (store/scans.py,
                # deliver/progress.py); they are handed out again once it is complete.
                await self._hand_out(readable, fetched)
                self.handed_out_early = True

            async with self.services.pool.connection() as conn:
                stats = await scan_commit(
                    conn,
                    mirror,
                    self.repo.id,
                    previous=previous,
                    commit=fetched,
                    max_size=self.settings.max_file_size_bytes,
                    lfs=self.services.lfs_source(self.repo, token),
                    rescan_all=self._lfs_mode_changed(),
                    first_part_published=first_part_published,
                )
            if stats.lfs.downloaded or stats.blobs_hashed:
                # LFS objects downloaded, blobs spooled for the deliveries (git/spool.py):
                # the mirror grew since its fetch was accounted.
                await self.services.account_mirror(mirror)
        metrics.BLOBS_HASHED.inc(stats.blobs_hashed)
        metrics.BYTES_HASHED.inc(stats.bytes_hashed)
        log.info(
            "snapshot of %s at %s: %s scan, %d paths examined, %d blobs hashed, "
            "%d parts published before the end; "
            "fetch %.0f ms, list %.0f ms, hash %.0f ms, apply %.0f ms; "
            "%d LFS objects, %d downloaded (%d bytes)",
            self.repo.id,
            fetched[:12],
            "full" if stats.full else "incremental",
            stats.paths_examined,
            stats.blobs_hashed,
            stats.parts,
            fetch_seconds * 1000,
            stats.list_ms,
            stats.hash_ms,
            stats.apply_ms,
            stats.lfs.pointers,
            stats.lfs.downloaded,
            stats.lfs.downloaded_bytes,
        )
        return fetched

    async def _hand_out(
        self, readable: list[str], commit: str | None, *, unless_synced: bool = False
    ) -> None:
        """Queue one delivery task per readable watch, in the same transaction as its status
        and the commit its access was verified at. `unless_synced`: not to the watches
        synced at `commit` already (by the deliveries a first part let start)."""
        async with self.services.pool.connection() as conn, conn.transaction():
            if unless_synced and readable:
                readable = await watches.not_synced_at(conn, self.repo.id, readable, commit)
            if not readable:
                return
            await watches.set_verified(conn, self.repo.id, readable, commit)
            await watches.set_watch_status(
                conn,
                self.repo.id,
                readable,
                status="scanning",
                error=None,
                recheck_ms=self.settings.rescan_interval_ms,
            )
            for app_id in readable:
                await self.queue.deliver_now(conn, app_id, self.repo.id)

    async def mark(self, app_ids: list[str], status: str, error: str | None) -> None:
        async with self.services.pool.connection() as conn:
            await watches.set_watch_status(
                conn,
                self.repo.id,
                app_ids,
                status=status,
                error=error,
                retry_count=self.attempt,
                recheck_ms=self.settings.rescan_interval_ms,
            )

    async def mark_all(self, status: str, error: str) -> None:
        await self.mark([w.app_id for w in self.watches], status, error)

    async def record_git_failure(self, exc: GitError) -> bool:
        """Count the failure on the circuit breaker; True when this failure opened it."""
        # git's own words go to the operator's log only; clients see the failure class.
        log.warning("sync of %s failed: git %s: %s", self.repo.id, exc.kind, exc.detail or exc)
        settings = self.settings
        async with self.services.pool.connection() as conn:
            circuit = await repositories.record_git_failure(
                conn,
                self.repo.id,
                threshold=settings.circuit_breaker_threshold,
                cooldown_ms=settings.circuit_breaker_cooldown_ms,
            )
        final = circuit.opened_now or self.attempt >= settings.max_retry_attempts
        await self.mark_all("failed" if final else "retrying", f"git {exc.kind}: {exc.message}")
        if circuit.opened_now:
            async with self.services.pool.connection() as conn, conn.transaction():
                for watch in self.watches:
                    await self.queue.alert(
                        conn,
                        app_id=watch.app_id,
                        repository_id=self.repo.id,
                        message=f"{exc.kind}: {exc.message}",
                        consecutive_failures=circuit.consecutive_failures,
                        cooldown_until=circuit.cooldown_until.isoformat()
                        if circuit.cooldown_until
                        else None,
                        retry_count=self.attempt,
                    )
        return circuit.opened_now
