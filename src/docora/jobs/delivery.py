"""The delivery task: one watch's pending changes to its app, resumable and isolated."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from procrastinate import JobContext
from psycopg import AsyncConnection

from docora.crypto import DecryptionError, client_key_context, watch_token_context
from docora.deliver.events import WatchKey
from docora.deliver.payloads import RepositoryRef
from docora.deliver.progress import PublishedSnapshot, SnapshotStopped
from docora.deliver.recorder import WatchGone
from docora.deliver.run import BatchPolicy, ChunkPolicy, DeliveryFailed, Target, WatchDelivery
from docora.deliver.targets import UnsafeTarget, check_target
from docora.git.command import GitError
from docora.git.lfs import Wanted
from docora.git.lfs_cache import ObjectCache
from docora.git.mirror import has_commit
from docora.git.spool import SpoolReader
from docora.git.spool import remove as remove_spool
from docora.jobs.queue import sync_running
from docora.jobs.retry import attempt_number
from docora.jobs.services import Services
from docora.net import RefusedAddress
from docora.scan.lfs_content import ensure_objects
from docora.store import apps, changes, repositories, snapshots, watches
from docora.store.apps import AppRow
from docora.store.changes import Change
from docora.store.repositories import Repository
from docora.store.snapshots import Progress
from docora.store.watches import Watch

log = logging.getLogger(__name__)

INTERRUPTED = "interrupted: the worker stopped; the delivery resumes where it left off"


async def deliver_watch(
    services: Services, context: JobContext, app_id: str, repository_id: str
) -> None:
    settings = services.settings
    attempt = attempt_number(context.job)
    async with services.pool.connection() as conn:
        app = await apps.get_app(conn, app_id)
        repo = await repositories.get_repository(conn, repository_id)
        watch = await watches.get_watch(conn, app_id, repository_id)
        commit, partial = await _snapshot_to_send(conn, watch, repository_id)
    if app is None or repo is None or watch is None:
        return  # unwatched or deleted meanwhile: nothing more for this watch
    if watch.verified_commit != commit:
        # Tenant isolation: this watch's token was not shown to read this commit (access
        # revoked, or a newer snapshot not checked yet); the sync that checks it queues a
        # delivery if access holds.
        return
    if commit is not None and await _already_synced(services, watch, commit):
        # Queued by a sync's end while a delivery that followed its parts was still
        # sending (jobs/sync.py): that one finished the work.
        return
    spooled_in: Path | None = None  # the mirror whose spool this delivery read
    try:
        if commit is not None:
            await _set(services, repo, watch, "scanning", watch_error=None, attempt=attempt)
            # The mirror is this host's: held against eviction while the delivery reads it.
            async with services.using_mirror(repo) as mirror:
                delivery = await _prepare(services, app, repo, watch, commit, attempt, mirror)
                if partial is not None:
                    delivery.published = PublishedSnapshot(
                        services.pool,
                        repository_id,
                        commit,
                        through=partial.partial_through,
                        sync_running=lambda: _sync_running(services, repository_id),
                    )
                async with services.pool.connection() as conn:
                    # The one place pending_changes is counted: what this delivery will
                    # send, whatever an older delivery of the watch did before it.
                    await watches.refresh_pending(conn, repository_id, [app_id])
                try:
                    sent = await delivery.run()
                finally:
                    if delivery.spool is not None:
                        delivery.spool.close()
                        spooled_in = mirror
            log.info("delivered %d events to %s for %s", sent, app_id, repository_id)
        async with services.pool.connection() as conn:
            if (await snapshots.progress(conn, repository_id)).commit == commit:
                await watches.mark_synced(
                    conn,
                    app_id=app_id,
                    repository_id=repository_id,
                    generation=watch.generation,
                    commit_sha=commit,
                    rescan_ms=settings.rescan_interval_ms,
                )
                if spooled_in is not None and await watches.all_synced_at(
                    conn, repository_id, commit
                ):
                    # The last delivery of this commit: its spool has served (git/spool.py).
                    remove_spool(spooled_in, commit)
    except WatchGone:
        return
    except SnapshotStopped as exc:
        # What was acknowledged is recorded; the sync's retry hands the watch out again.
        log.info("delivery to %s for %s paused: %s", app_id, repository_id, exc)
        return
    except asyncio.CancelledError:
        # The worker is shutting down: say so rather than leave the watch `scanning`
        # with nobody working on it. The job is retried at once by the next worker. Not
        # past the lease: the watch is another worker's by then.
        if services.lease.valid():
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    _set(
                        services, repo, watch, "retrying", watch_error=INTERRUPTED, attempt=attempt
                    )
                )
        raise
    except (DeliveryFailed, GitError, UnsafeTarget, RefusedAddress, DecryptionError) as exc:
        final = attempt >= settings.max_retry_attempts
        await _set(
            services,
            repo,
            watch,
            "failed" if final else "retrying",
            watch_error=_describe(exc),
            attempt=attempt,
        )
        raise


async def _snapshot_to_send(
    conn: AsyncConnection, watch: Watch | None, repository_id: str
) -> tuple[str | None, Progress | None]:
    """The commit this delivery sends: the complete snapshot's, or that of a first snapshot
    still being published (with its progress) when the watch holds nothing yet: its
    creates then go out as the parts become final (deliver/progress.py)."""
    progress = await snapshots.progress(conn, repository_id)
    commit = progress.publishing
    if (
        commit is not None
        and watch is not None
        and watch.verified_commit == commit
        # Kept in the transaction that changes delivered_files (migrations/0005): exact.
        and watch.files_delivered == 0
    ):
        return commit, progress
    return progress.commit, None


async def _already_synced(services: Services, watch: Watch, commit: str) -> bool:
    if watch.status != "synced" or watch.commit_sha != commit:
        return False
    async with services.pool.connection() as conn:
        return not await changes.any_pending(
            conn,
            app_id=watch.app_id,
            repository_id=watch.repository_id,
            regexes=watch.path_regexes,
            includes=watch.path_includes,
        )


async def _sync_running(services: Services, repository_id: str) -> bool:
    async with services.pool.connection() as conn:
        return await sync_running(conn, repository_id)


def _describe(exc: Exception) -> str:
    if isinstance(exc, GitError):
        return f"git {exc.kind}: {exc.message}"
    if isinstance(exc, UnsafeTarget | RefusedAddress):
        return f"webhook target refused: {exc}"
    if isinstance(exc, DecryptionError):
        return "stored secret cannot be decrypted; rotate it"
    return f"delivery failed: {exc}"


async def _set(services, repo, watch, status, *, watch_error, attempt) -> None:
    # A failed watch comes back to the scheduler after RESCAN_INTERVAL_MS.
    async with services.pool.connection() as conn:
        await watches.set_watch_status(
            conn,
            repo.id,
            [watch.app_id],
            status=status,
            error=watch_error,
            retry_count=attempt if status != "scanning" else None,
            recheck_ms=services.settings.rescan_interval_ms,
        )


async def _prepare(
    services: Services,
    app: AppRow,
    repo: Repository,
    watch: Watch,
    commit: str,
    attempt: int,
    mirror: Path,
) -> WatchDelivery:
    settings = services.settings
    key = services.box.decrypt(app.client_auth_key_enc, context=client_key_context(app.id))
    # SSRF rules again at delivery time: DNS may have changed since onboarding. The sender
    # checks once more at each connection; this one fails fast, before any mirror work.
    await check_target(
        app.base_url,
        allow_private=settings.allow_private_webhook_targets,
        resolver=services.resolver,
    )
    await _ensure_commit(services, repo, watch, mirror, commit)
    return WatchDelivery(
        pool=services.pool,
        sender=services.sender,
        target=Target(
            app_id=app.id,
            base_url=app.base_url,
            key=key,
            concurrency=app.delivery_concurrency,
            batches=BatchPolicy(settings.batch_max_events, settings.batch_max_bytes)
            if app.delivery_mode == "batch"
            else None,
        ),
        watch=WatchKey(
            app.id,
            repo.id,
            watch.generation,
            commit_sha=commit,
            paths_version=watch.paths_version,
        ),
        repository=RepositoryRef(
            repository_id=repo.id, github_url=repo.url, owner=repo.owner, name=repo.name
        ),
        commit_sha=commit,
        mirror=mirror,
        chunks=ChunkPolicy(
            threshold_bytes=settings.binary_chunk_threshold_bytes,
            chunk_chars=settings.binary_chunk_size_bytes,
        ),
        attempt=attempt,
        path_regexes=watch.path_regexes,
        path_includes=watch.path_includes,
        ensure_lfs=_lfs_ensurer(services, repo, watch, mirror, commit),
        spool=SpoolReader.open(mirror, commit),
    )


async def _ensure_commit(
    services: Services, repo: Repository, watch: Watch, mirror: Path, commit: str
) -> None:
    """Another worker host may have made the snapshot: fetch with this watch's own token."""
    if await has_commit(mirror, commit, branch=repo.branch):
        return
    await services.fetch_mirror(repo, mirror, token=_token(services, repo, watch), tip=commit)
    if not await has_commit(mirror, commit, branch=repo.branch):
        raise DeliveryFailed(
            "the snapshot's commit is no longer on the remote; waiting for the next sync"
        )


def _token(services: Services, repo: Repository, watch: Watch) -> str | None:
    if watch.token_enc is None:
        return None
    return services.box.decrypt(watch.token_enc, context=watch_token_context(watch.app_id, repo.id))


def _lfs_ensurer(
    services: Services, repo: Repository, watch: Watch, mirror: Path, commit: str
) -> Callable[[list[Change]], Awaitable[None]] | None:
    """What makes a page's LFS objects present here: the scan may have run on another
    host, or the cache may have been evicted since (LFS=off: None)."""
    if services.lfs is None:
        return None
    cache = ObjectCache(mirror)

    async def ensure(page: list[Change]) -> None:
        missing = [Wanted(c.sha, c.size, c.path) for c in page if not cache.has(c.sha)]
        if not missing:
            return
        source = services.lfs_source(repo, _token(services, repo, watch))
        assert source is not None
        if await ensure_objects(mirror, commit, source, missing):
            await services.account_mirror(mirror)

    return ensure
