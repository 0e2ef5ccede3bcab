"""No-change checks in batches (jobs/checks.py, SPEC 12), against real remotes over smart
HTTP and a real Postgres: only a changed remote gets a sync job, the rest is one statement;
checks are spread over the interval, served oldest first and fairly when there are more
than a worker keeps up with, and finished jobs do not pile up."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from datetime import timedelta

import pytest

from docora.crypto import SecretBox
from docora.db import open_pool
from docora.deliver.client import WebhookSender
from docora.git.smart_http import SmartHttpRefs
from docora.jobs.app import build_job_app, purge_old_jobs
from docora.jobs.checks import RescanChecker
from docora.jobs.queue import JobQueue
from docora.jobs.services import Services
from docora.lease import Lease
from docora.net import system_resolver
from docora.runtime import lfs_client
from docora.store import checks
from tests.e2e import register_app, wait_status, watch
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo
from tests.worker import BackgroundWorker


@contextlib.asynccontextmanager
async def checker_for(settings):
    """A RescanChecker as a worker builds it, without the Procrastinate worker around it."""
    pool = await open_pool(settings.database_url, max_size=4)
    services = Services(
        settings=settings,
        pool=pool,
        box=SecretBox(settings.key_bytes),
        sender=WebhookSender(timeout_ms=5000, allow_private=True),
        lease=Lease(settings.lease_s),
        refs=SmartHttpRefs(allow_local=True),
        lfs=lfs_client(settings, system_resolver),
    )
    jobs = build_job_app(settings)
    await jobs.open_async(pool)
    try:
        yield RescanChecker(services, JobQueue(jobs))
    finally:
        await services.refs.aclose()
        if services.lfs is not None:
            await services.lfs.aclose()
        await services.sender.aclose()
        await jobs.close_async()
        await pool.close()


def synced_repositories(client, receiver, settings, server, repos) -> list[str]:
    _, headers = register_app(client, receiver)
    ids = [watch(client, headers, server.url_for(repo.remote)) for repo in repos]
    with BackgroundWorker(settings):
        for rid in ids:
            wait_status(client, headers, rid, "synced")
    return ids


def remotes(tmp_path, count: int) -> tuple:
    """(served root, `count` repositories of one commit each)."""
    root = tmp_path / "srv"
    (root / "acme").mkdir(parents=True)
    repos = [GitRepo(root / "acme", f"r{i}") for i in range(count)]
    for repo in repos:
        repo.commit("v1", {"a.txt": "a"})
    return root, repos


def queued_syncs(db) -> list[str]:
    rows = db.execute(
        "SELECT args->>'repository_id' FROM procrastinate_jobs "
        "WHERE task_name = 'docora.sync_repository' AND status = 'todo'"
    ).fetchall()
    return sorted(r[0] for r in rows)


def make_due(db) -> None:
    db.execute("UPDATE watches SET next_check_at = now() - interval '1 second'")


async def test_a_batch_syncs_only_the_changed_remote(settings, client, receiver, db, tmp_path):
    root = tmp_path / "srv"
    (root / "acme").mkdir(parents=True)
    repos = [GitRepo(root / "acme", f"r{i}") for i in range(3)]
    for i, repo in enumerate(repos):
        repo.commit("v1", {"a.txt": f"{i}"})
    with GitHttpServer(root, passwords=None) as server:
        ids = synced_repositories(client, receiver, settings, server, repos)
        repos[1].commit("v2", {"a.txt": "changed"})
        db.execute("DELETE FROM rescan_totals")  # counted while the watches were new
        make_due(db)
        server.seen.clear()
        async with checker_for(settings) as checker:
            while await checker.step():
                pass
    assert queued_syncs(db) == [ids[1]]  # only the changed one
    assert dict(db.execute("SELECT outcome, n FROM rescan_totals").fetchall()) == {
        "unchanged": 2,
        "changed": 1,
    }
    # Read in-process over kept-alive connections, none by git: two requests a check, as
    # the three went out together before the reader knew the origin speaks v2.
    assert len(server.seen) == 6
    assert all(agent.startswith("git/docora-") for _, _, agent in server.seen)
    rows = db.execute(
        "SELECT repository_id, now() - last_scanned_at, next_check_at - now() FROM watches"
    ).fetchall()
    interval = timedelta(milliseconds=settings.rescan_interval_ms)
    for rid, since_scan, until_next in rows:
        if rid != ids[1]:
            assert since_scan < timedelta(seconds=5)
            assert timedelta(0) < until_next <= interval


async def test_a_repository_whose_sync_is_queued_is_left_to_that_sync(
    settings, client, receiver, db, tmp_path
):
    """A first sync or a push hook's sync reads the tip itself: a check meanwhile would only
    queue a second sync behind it (a 1,000-repository burst did 1,497 syncs that way)."""
    root, repos = remotes(tmp_path, 2)
    with GitHttpServer(root, passwords=None) as server:
        ids = synced_repositories(client, receiver, settings, server, repos)
        repos[0].commit("v2", {"a.txt": "changed"})
        db.execute("DELETE FROM rescan_totals")
        make_due(db)
        server.seen.clear()
        async with checker_for(settings) as checker:
            async with checker.services.pool.connection() as conn:
                await checker.queue.sync_now(conn, ids[0])  # as a push hook does
            while await checker.step():
                pass
    assert queued_syncs(db) == [ids[0]]  # the one queued before, no second
    assert dict(db.execute("SELECT outcome, n FROM rescan_totals").fetchall()) == {"unchanged": 1}
    assert {path.split("/")[2] for _, path, _ in server.seen} == {"r1"}
    # Pushed a lease ahead, not left due: the checker does not claim it again and again.
    (until_next,) = db.execute(
        "SELECT next_check_at - now() FROM watches WHERE repository_id = %s", (ids[0],)
    ).fetchone()
    assert until_next > timedelta(seconds=30)


async def test_throttled_checks_are_served_oldest_first_fairly_and_the_lag_shows(
    make_settings, client, receiver, db, tmp_path, caplog
):
    settings = make_settings(CHECK_CONCURRENCY="1", RESCAN_INTERVAL_MS="1000")
    root, repos = remotes(tmp_path, 10)
    with GitHttpServer(root, passwords=None) as server:
        synced_repositories(client, receiver, settings, server, repos)
        make_due(db)
        server.seen.clear()
        server.delay = 0.3  # one request a check once v2 is known: a round of ten takes 3 s
        caplog.set_level(logging.WARNING, logger="docora.jobs.checks")
        async with checker_for(settings) as checker:
            stop = asyncio.Event()
            running = asyncio.create_task(checker.run(stop))
            await asyncio.sleep(9)
            async with checker.services.pool.connection() as conn:
                lag, _ = await checks.lag(conn)
            stop.set()
            await running
    checked = collections.Counter(path for method, path, _ in server.seen if method == "POST")
    assert len(checked) == 10, checked
    assert max(checked.values()) - min(checked.values()) <= 1, checked  # round robin
    assert sum(checked.values()) >= 20
    assert lag > 1.0  # due checks wait: the gauge says so
    assert any("rescans are" in r.getMessage() for r in caplog.records)


def test_checks_are_spread_over_the_interval(db):
    interval = 60_000
    offsets = [
        row[0]
        for row in db.execute(
            "SELECT extract(epoch FROM docora_next_check('repo_' || i, %s) - now()) "
            "FROM generate_series(1, 6000) i",
            (interval,),
        ).fetchall()
    ]
    assert all(0 < o <= 60 for o in offsets)
    buckets = collections.Counter(int(o // 6) for o in offsets)  # ten buckets of 6 s
    assert all(450 <= buckets[b] <= 750 for b in range(10)), buckets
    same = db.execute(
        "SELECT docora_next_check('repo_x', 60000) = docora_next_check('repo_x', 60000)"
    ).fetchone()[0]
    assert same  # a repository keeps its phase


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
async def test_finished_jobs_are_removed_after_the_retention(settings, db, status):
    pool = await open_pool(settings.database_url, max_size=2)
    jobs = build_job_app(settings)
    await jobs.open_async(pool)
    queue = JobQueue(jobs)
    try:
        async with pool.connection() as conn:
            for name in ("old", "recent", "waiting"):
                await queue.sync_now(conn, f"repo_{name}")
        db.execute(
            "UPDATE procrastinate_jobs SET status = %s WHERE args->>'repository_id' <> "
            "'repo_waiting'",
            (status,),
        )
        # Every event (the status change's too) dated: the old job ended 26 h ago.
        db.execute(
            "UPDATE procrastinate_events e SET at = now() - CASE j.args->>'repository_id' "
            "WHEN 'repo_recent' THEN interval '1 hour' ELSE interval '26 hours' END "
            "FROM procrastinate_jobs j WHERE j.id = e.job_id"
        )
        await purge_old_jobs(jobs.job_manager, settings.job_retention_hours)
    finally:
        await jobs.close_async()
        await pool.close()
    left = sorted(r[0] for r in db.execute("SELECT args->>'repository_id' FROM procrastinate_jobs"))
    assert left == ["repo_recent", "repo_waiting"]  # a job still to run is never removed
