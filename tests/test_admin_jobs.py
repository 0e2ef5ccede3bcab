"""Operator actions that run on workers: bulk operations to the end or cancelled, and an
app's deletion taking its repositories' mirrors, with a real worker and real git."""

from __future__ import annotations

from pathlib import Path

from docora.asgi import create_app
from docora.git.mirror import mirror_path
from tests.admin import ADMIN, add_repository, add_watch, console_settings, https_client
from tests.conftest import onboard
from tests.e2e import register_app, wait_status, wait_until, watch
from tests.gitrepo import GitRepo
from tests.worker import BackgroundWorker


def operation(client, operation_id: str) -> dict:
    return client.get(f"/api/admin/operations/{operation_id}", headers=ADMIN).json()


def test_a_bulk_retry_runs_to_the_end_and_survives_restarts(make_settings, db):
    settings = console_settings(make_settings)
    with https_client(create_app(settings)) as client:
        apps = [onboard(client, app_name=f"app {i}")[0] for i in range(3)]
        for i in range(12):
            rid = add_repository(db, f"r{i}")
            add_watch(db, apps[i % 3], rid, "failed", "git network: could not connect")
        started = client.post("/api/admin/operations", json={"action": "retry"}, headers=ADMIN)
        assert started.status_code == 202 and started.json()["total"] == 12
        op_id = started.json()["operation_id"]
    # The API restarts before any worker ran: the operation is still there, untouched.
    with https_client(create_app(settings)) as client:
        assert operation(client, op_id)["completed"] == 0
        with BackgroundWorker(settings):
            wait_until(lambda: operation(client, op_id)["status"] == "done", 30, "not done")
            (worker,) = client.get("/api/admin/workers", headers=ADMIN).json()["items"]
            assert worker["state"] == "live" and worker["has_session"]
            overview = client.get("/api/admin/overview", headers=ADMIN).json()
            assert overview["workers_alive"] == 1
        done = operation(client, op_id)
    assert (done["total"], done["completed"], done["succeeded"], done["failed"]) == (12, 12, 12, 0)
    assert done["finished_at"] is not None
    # Every watch got its sync (they fail again here: their remotes do not exist).
    synced = db.execute(
        "SELECT count(DISTINCT args->>'repository_id') FROM procrastinate_jobs"
        " WHERE task_name = 'docora.sync_repository'"
    ).fetchone()[0]
    assert synced == 12


def test_a_cancelled_operation_stops_before_its_next_item(make_settings, db):
    settings = console_settings(make_settings)
    with https_client(create_app(settings)) as client:
        app_id = onboard(client)[0]
        for i in range(5):
            add_watch(db, app_id, add_repository(db, f"r{i}"), "synced")
        started = client.post("/api/admin/operations", json={"action": "resync"}, headers=ADMIN)
        op_id = started.json()["operation_id"]
        cancelled = client.post(f"/api/admin/operations/{op_id}/cancel", headers=ADMIN)
        assert cancelled.status_code == 202
        with BackgroundWorker(settings):
            wait_until(lambda: operation(client, op_id)["status"] == "cancelled", 30, "running")
        stopped = operation(client, op_id)
    assert stopped["completed"] == 0 and stopped["finished_at"] is not None


async def test_two_operations_on_the_same_watches_queue_one_sync_each(make_settings, db):
    """The operations' job, run here without a worker: the syncs they queue stay waiting."""
    from docora.admin import actions
    from docora.db import open_pool
    from docora.jobs.app import build_job_app
    from docora.jobs.operations import run_operation
    from docora.jobs.queue import JobQueue

    settings = console_settings(make_settings)
    with https_client(create_app(settings)) as client:
        app_id = onboard(client)[0]
    for i in range(5):
        add_watch(db, app_id, add_repository(db, f"r{i}"), "failed", "boom")
    pool = await open_pool(settings.database_url, name="test")
    jobs = build_job_app(settings)
    await jobs.open_async(pool)
    try:
        queue = JobQueue(jobs)
        async with pool.connection() as conn:
            first = await actions.start_operation(
                conn, queue, action="retry", app_id=None, status=None
            )
            second = await actions.start_operation(
                conn, queue, action="resync", app_id=app_id, status=None
            )
        await run_operation(pool, queue, first.id)
        await run_operation(pool, queue, second.id)
    finally:
        await jobs.close_async()
        await pool.close()
    waiting = db.execute(
        "SELECT lock, count(*) FROM procrastinate_jobs"
        " WHERE task_name = 'docora.sync_repository' AND status = 'todo' GROUP BY lock"
    ).fetchall()
    assert len(waiting) == 5 and all(count == 1 for _, count in waiting)
    done = db.execute("SELECT status, completed, succeeded FROM operations ORDER BY created_at")
    assert done.fetchall() == [("done", 5, 5), ("done", 5, 5)]


def test_deleting_an_app_removes_its_mirror_and_stops_its_work(make_settings, receiver, tmp_path):
    settings = console_settings(make_settings)
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    with https_client(create_app(settings)) as client, BackgroundWorker(settings):
        app_id, headers = register_app(client, receiver)
        rid = watch(client, headers, repo.url)
        wait_status(client, headers, rid, "synced")
        row = client.get(f"/api/admin/watches?app_id={app_id}", headers=ADMIN).json()["items"][0]
        mirror = mirror_path(
            settings.repos_base_path,
            url=row["github_url"],
            host="local",
            owner=row["owner"],
            name=row["name"],
            branch=row["branch"],
        )
        assert (mirror / "HEAD").exists()
        assert client.delete(f"/api/admin/apps/{app_id}", headers=ADMIN).status_code == 204
        wait_until(lambda: not mirror.exists(), 30, "the mirror is still there")
        assert client.get("/api/repositories", headers=headers).status_code == 401
    assert Path(settings.repos_base_path).exists()  # only the mirror went


def test_deleting_an_app_mid_delivery_stops_it_cleanly(make_settings, receiver, db, tmp_path):
    import time

    from tests.gitrepo import fast_import

    settings = console_settings(make_settings)
    remote = tmp_path / "acme" / "big.git"
    fast_import(remote, ((f"f{i:04d}.txt", f"{i}\n".encode()) for i in range(800)))
    receiver.state.respond = lambda event, body: time.sleep(0.01)
    with https_client(create_app(settings)) as client, BackgroundWorker(settings):
        app_id, headers = register_app(client, receiver)
        watch(client, headers, f"file://{remote}")
        receiver.wait_for(lambda s: len(s.events) > 50, timeout=30)
        assert client.delete(f"/api/admin/apps/{app_id}", headers=ADMIN).status_code == 204

        def settled() -> bool:
            busy = db.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
                " AND task_name <> 'docora.schedule'"
            ).fetchone()[0]
            return busy == 0

        wait_until(settled, 30, "the delivery did not stop")
        after = len(receiver.state.events)
        time.sleep(0.5)
        assert len(receiver.state.events) == after < 800  # nothing more is posted
    failed = db.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'"
    ).fetchone()[0]
    assert failed == 0  # it stopped; nothing was left failing or retrying
