"""Faults on purpose: the worker is killed with SIGKILL again and again during a sync.

At the end the receiver's copy equals the repository, and resends stay within what was
in flight or acknowledged-but-unrecorded at each kill.
"""

from __future__ import annotations

import hashlib
import random
import time

import pytest

from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_until, watch
from tests.gitrepo import fast_import
from tests.worker import WorkerProcess

FILES = 3000
CONCURRENCY = 4
UNRECORDED_MAX = 32
KILLS = 12


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_during_initial_sync_loses_nothing(settings, client, receiver, db, tmp_path):
    remote = tmp_path / "acme" / "big.git"
    content = {f"d{i % 20}/f{i:05d}.txt": f"file {i}\n".encode() for i in range(FILES)}
    fast_import(remote, content.items())
    _, headers = onboard(
        client,
        base_url=receiver.base_url,
        client_auth_key=RECEIVER_KEY,
        delivery_concurrency=CONCURRENCY,
    )
    rid = watch(client, headers, f"file://{remote}")
    rnd = random.Random(42)
    for kill in range(KILLS):
        worker = WorkerProcess(settings)
        if kill % 3 == 0:
            time.sleep(rnd.uniform(0.2, 1.2))  # during startup, fetch, scan or first sends
        else:
            _wait_for_progress(receiver, rnd.randint(30, 200))
        worker.kill()
    # Every kill landed in the middle of the sync, not after it.
    assert len(receiver.state.files) < FILES
    worker = WorkerProcess(settings)

    def synced() -> bool:
        status = db.execute("SELECT status FROM watches").fetchone()[0]
        return status == "synced" and len(receiver.state.files) == FILES

    wait_until(synced, 300, "not synced after the kills", interval=0.2)
    worker.stop()
    expected = {path: hashlib.sha256(data).hexdigest() for path, data in content.items()}
    assert receiver.state.shas == expected  # every path at its final sha, nothing extra
    accepted = len(receiver.state.accepted())
    resent = accepted - FILES
    bound = KILLS * (2 * CONCURRENCY + UNRECORDED_MAX)
    print(f"{KILLS} kills, {accepted} accepted events, {resent} resent (bound {bound})")
    assert 0 <= resent <= bound
    status = client.get(f"/api/repositories/{rid}", headers=headers).json()
    assert status["files_delivered"] == FILES and status["pending_changes"] == 0


def _wait_for_progress(receiver, events: int) -> None:
    """Until the receiver holds `events` more files, so the kill lands mid-delivery."""
    target = len(receiver.state.files) + events
    receiver.wait_for(lambda s: len(s.files) >= target, timeout=30)
