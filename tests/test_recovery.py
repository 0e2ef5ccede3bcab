"""A failed watch recovers on its own; SIGTERM never leaves a watch half-way."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import pytest
from litestar.testing import TestClient

from docora.asgi import create_app
from docora.jobs.delivery import INTERRUPTED
from docora.runtime import EXIT_STUCK, serve
from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import register_app, wait_status, wait_until, watch
from tests.gitrepo import GitRepo, fast_import
from tests.worker import WorkerProcess, wait_for_workers


def test_failed_watch_recovers_without_help(make_settings, receiver, tmp_path):
    from tests.worker import BackgroundWorker

    settings = make_settings(
        SCAN_INTERVAL_MS="1000",
        RESCAN_INTERVAL_MS="2000",
        RETRY_BASE_DELAY_MS="100",
        MAX_RETRY_ATTEMPTS="3",
    )
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a", "b.txt": "b"})
    down = {"until": time.monotonic() + 3600}
    receiver.state.respond = lambda event, body: 503 if time.monotonic() < down["until"] else None
    with TestClient(create_app(settings)) as client, BackgroundWorker(settings):
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, repo.url)
        status = wait_status(client, headers, rid, "failed")
        assert status["last_error"] == "delivery failed: create a.txt: HTTP 503"
        assert status["retry_count"] == 3
        down["until"] = 0  # the app is back; nobody calls resync
        status = wait_status(client, headers, rid, "synced", timeout=30)
    assert receiver.state.files == {"a.txt": b"a", "b.txt": b"b"}
    assert status["last_error"] is None


@pytest.mark.parametrize("delay", [0.5, 1.5])
def test_sigterm_during_a_sync_leaves_nothing_half_done(
    settings, client, receiver, db, tmp_path, delay
):
    remote = tmp_path / "acme" / "r.git"
    fast_import(remote, ((f"f{i:04d}.txt", f"{i}\n".encode()) for i in range(1500)))
    _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
    rid = watch(client, headers, f"file://{remote}")
    worker = WorkerProcess(settings)
    time.sleep(delay)
    assert "Traceback" not in worker.stop()
    # Stopped gracefully: the running job finished or was handed back; none is stuck.
    stuck = db.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'").fetchone()
    assert stuck[0] == 0
    finish_with_a_new_worker(settings, client, headers, rid)
    assert len(receiver.state.files) == 1500


def test_sigterm_interrupting_a_long_delivery_says_so_and_resumes(
    settings, client, receiver, db, tmp_path
):
    remote = tmp_path / "acme" / "r.git"
    fast_import(remote, ((f"f{i:04d}.txt", f"{i}\n".encode()) for i in range(600)))
    receiver.state.respond = lambda event, body: time.sleep(0.01)  # ~6 s of deliveries
    _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
    rid = watch(client, headers, f"file://{remote}")
    worker = WorkerProcess(settings, SHUTDOWN_GRACE_MS="200")
    receiver.wait_for(lambda s: len(s.files) >= 50, timeout=60)
    worker.stop(timeout=20)
    status = client.get(f"/api/repositories/{rid}", headers=headers).json()
    assert status["status"] == "retrying" and status["last_error"] == INTERRUPTED
    jobs = db.execute(
        "SELECT status, count(*) FROM procrastinate_jobs "
        "WHERE task_name = 'docora.deliver_watch' GROUP BY status"
    ).fetchall()
    # Handed back to run at once (a rescan may have queued one more behind it).
    assert set(dict(jobs)) == {"todo"}
    assert len(receiver.state.files) < 600
    finish_with_a_new_worker(settings, client, headers, rid)
    assert len(receiver.state.files) == 600
    assert len(receiver.state.accepted()) - 600 <= 1 + 1 + 32  # in flight + unrecorded


def test_sigterm_again_and_again_while_draining_still_exits_cleanly(
    settings, client, receiver, tmp_path
):
    remote = tmp_path / "acme" / "r.git"
    fast_import(remote, ((f"f{i:03d}.txt", f"{i}\n".encode()) for i in range(300)))
    receiver.state.respond = lambda event, body: time.sleep(0.005)
    _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
    watch(client, headers, f"file://{remote}")
    worker = WorkerProcess(settings)
    receiver.wait_for(lambda s: len(s.files) >= 20, timeout=60)
    deadline = time.monotonic() + 60
    while worker.alive() and time.monotonic() < deadline:
        worker.process.send_signal(signal.SIGTERM)  # through the drain and the exit itself
        time.sleep(0.01)
    assert worker.process.wait(1) == 0, worker.log()


def finish_with_a_new_worker(settings, client, headers, rid) -> None:
    worker = WorkerProcess(settings)
    wait_for_workers(settings.database_url)
    wait_status(client, headers, rid, "synced", timeout=120)
    worker.stop()


def test_a_shutdown_that_hangs_ends_with_every_threads_stack():
    # A thread that never returns is what keeps asyncio.run from finishing after SIGTERM.
    script = (
        "import threading\n"
        "from docora.runtime import arm_exit_deadline\n"
        "def stuck_in_a_thread():\n"
        "    threading.Event().wait()\n"
        "threading.Thread(target=stuck_in_a_thread).start()\n"
        "arm_exit_deadline(0.5)\n"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == EXIT_STUCK
    assert time.monotonic() - began < 15
    assert "shutdown not finished after 0.5 s; exiting" in done.stderr
    assert "stuck_in_a_thread" in done.stderr


def test_a_sigterm_noted_during_start_up_stops_the_worker_before_any_job(
    settings, client, receiver, db, tmp_path
):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    _, headers = register_app(client, receiver)
    watch(client, headers, repo.url)
    began = time.monotonic()
    handler_before = signal.getsignal(signal.SIGTERM)
    asyncio.run(serve(settings, api=False, worker=True, signalled_before=lambda: True))
    assert time.monotonic() - began < 10
    assert signal.getsignal(signal.SIGTERM) is handler_before  # put back, not reset
    jobs = db.execute("SELECT status FROM procrastinate_jobs").fetchall()
    assert jobs == [("todo",)]  # the sync is still waiting for a worker
    assert receiver.state.files == {}


def test_once_the_grace_is_over_nothing_more_is_posted(settings, client, receiver, tmp_path):
    remote = tmp_path / "acme" / "r.git"
    fast_import(remote, ((f"f{i:02d}.txt", f"{i}\n".encode()) for i in range(30)))
    arrivals: list[float] = []

    def slow_answer(event, body):
        arrivals.append(time.monotonic())
        time.sleep(1.0)  # meanwhile the next events are prepared and queued

    receiver.state.respond = slow_answer
    _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
    watch(client, headers, f"file://{remote}")
    worker = WorkerProcess(settings, SHUTDOWN_GRACE_MS="200")
    wait_until(lambda: len(arrivals) >= 2, 60, "the delivery did not start")
    signalled = time.monotonic()
    worker.stop(timeout=20)
    time.sleep(1.5)  # a post still on its way would arrive by now
    late = [round(at - signalled, 2) for at in arrivals if at > signalled + 0.2 + 0.5]
    assert late == [], f"posted after the grace ended (s after SIGTERM): {late}"
