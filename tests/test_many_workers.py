"""Two and three workers on one database: one sync per repository at a time, each event
once."""

from __future__ import annotations

import itertools
import signal
import time

import pytest

from tests.e2e import wait_until, watch
from tests.gitrepo import fast_import
from tests.hosts import onboard_apps
from tests.worker import WorkerProcess


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("worker_count", [2, 3])
def test_workers_share_the_work_without_overlap(
    settings, client, receiver, db, tmp_path, worker_count
):
    workers = [WorkerProcess(settings) for _ in range(worker_count)]
    apps = [headers for _, headers in onboard_apps(client, receiver, 2)]
    expected = 0
    for r in range(4):
        remote = tmp_path / "acme" / f"r{r}.git"
        fast_import(remote, ((f"f{i:03d}.txt", f"{r}-{i}\n".encode()) for i in range(100)))
        for headers in apps:
            watch(client, headers, f"file://{remote}")
            expected += 100
    wait_until(
        lambda: (
            db.execute("SELECT count(*) FROM watches WHERE status = 'synced'").fetchone()[0] == 8
        ),
        120,
        "not all watches synced",
        interval=0.2,
    )
    time.sleep(2.5)  # let the checkers run a few rounds side by side
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)  # all at once: they drain side by side
    for worker in workers:
        worker.stop()
    bodies = [
        (
            e.headers["x-docora-app-id"],
            e.body["file"]["path"],
            e.body["repository"]["repository_id"],
        )
        for e in receiver.state.accepted()
    ]
    assert len(bodies) == expected and len(set(bodies)) == expected  # each event exactly once
    assert all(e.verified for e in receiver.state.events)
    # Never two syncs of one repository at the same time, across the workers. Events are
    # ordered by id, not `at`: `at` is now(), the start of the recording transaction, which
    # can precede the moment its snapshot saw the previous job finish; ids come from a
    # sequence drawn while the row is written, so they follow real time.
    spans = db.execute(
        "SELECT j.args->>'repository_id', "
        "min(e.id) FILTER (WHERE e.type = 'started'), "
        "max(e.id) FILTER (WHERE e.type IN ('succeeded', 'failed')) "
        "FROM procrastinate_jobs j JOIN procrastinate_events e ON e.job_id = j.id "
        "WHERE j.task_name = 'docora.sync_repository' GROUP BY j.id"
    ).fetchall()
    by_repo: dict[str, list] = {}
    for repo, start, end in spans:
        by_repo.setdefault(repo, []).append((start, end))
    for intervals in by_repo.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert end < start, "two syncs of one repository overlapped"
