"""A killed worker's watch resumes within seconds on another worker; a worker that is only
slow is never declared dead, so one watch's delivery never runs twice at once."""

from __future__ import annotations

import os
import signal
import statistics
import time

import pytest

from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_until, watch
from tests.gitrepo import fast_import
from tests.worker import WorkerProcess, wait_for_workers

pytestmark = pytest.mark.slow

FILES = 4000
KILLS = 3
# Each request takes the receiver this long, so the delivery is still running at each kill.
RECEIVER_LATENCY_S = 0.004


def slow_receiver(receiver) -> list[float]:
    """Arrival times of every request, and a receiver that takes a few ms per request."""
    arrivals: list[float] = []

    def respond(event, body):
        arrivals.append(time.monotonic())
        time.sleep(RECEIVER_LATENCY_S)

    receiver.state.respond = respond
    return arrivals


def first_after(arrivals: list[float], moment: float, timeout: float = 60) -> float:
    wait_until(lambda: any(a > moment for a in arrivals), timeout, "no event after the kill")
    return min(a for a in arrivals if a > moment)


def big_repository(tmp_path) -> str:
    remote = tmp_path / "acme" / "big.git"
    fast_import(remote, ((f"f{i:05d}.txt", f"file {i}\n".encode()) for i in range(FILES)))
    return f"file://{remote}"


@pytest.mark.timeout(300)
def test_kill_9_then_the_next_event_comes_within_seconds(settings, client, receiver, db, tmp_path):
    arrivals = slow_receiver(receiver)
    _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
    watch(client, headers, big_repository(tmp_path))
    # The default heartbeat: the figure is what an operator gets without tuning.
    worker = WorkerProcess(settings, WORKER_HEARTBEAT_MS="2000")
    gaps = []
    for _ in range(KILLS):
        seen = len(arrivals)
        wait_until(lambda seen=seen: len(arrivals) > seen + 150, 60, "delivery not running")
        worker.kill()
        killed_at = time.monotonic()
        worker = WorkerProcess(settings, WORKER_HEARTBEAT_MS="2000")  # started at once
        # A request already in flight at the kill may still land in its first milliseconds.
        gaps.append(first_after(arrivals, killed_at + RECEIVER_LATENCY_S + 0.2) - killed_at)
    worker.stop()
    print(f"kill -9 -> next event: {', '.join(f'{g:.1f} s' for g in gaps)}")
    assert statistics.median(gaps) <= 10, gaps
    forgotten = db.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0]
    assert forgotten == 0  # the dead workers' rows went with their jobs' retries


@pytest.mark.timeout(300)
def test_a_paused_worker_is_not_declared_dead(settings, client, receiver, db, tmp_path):
    arrivals = slow_receiver(receiver)
    _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
    watch(client, headers, big_repository(tmp_path))
    beat = {"WORKER_HEARTBEAT_MS": "500"}  # gone after 1 s, were its session gone
    slow = WorkerProcess(settings, **beat)
    wait_until(lambda: len(arrivals) > 100, 60, "delivery not running")
    other = WorkerProcess(settings, **beat)
    wait_for_workers(settings.database_url, 2)
    job = (
        "SELECT worker_id, attempts FROM procrastinate_jobs"
        " WHERE status = 'doing' AND task_name = 'docora.deliver_watch'"
    )
    before = db.execute(job).fetchall()
    os.kill(slow.process.pid, signal.SIGSTOP)  # no heartbeat, no progress, session kept
    try:
        paused_at = time.monotonic()
        time.sleep(5)  # ten missed beats
        assert not [a for a in arrivals if a > paused_at + 0.5]  # nobody took the watch over
        assert db.execute(job).fetchall() == before  # same worker, same attempt
    finally:
        os.kill(slow.process.pid, signal.SIGCONT)
    wait_until(
        lambda: db.execute("SELECT status FROM watches").fetchone()[0] == "synced",
        120,
        "not synced after the pause",
    )
    assert len(receiver.state.files) == FILES
    assert len(receiver.state.accepted()) == FILES  # nothing sent twice
    slow.stop()
    other.stop()
