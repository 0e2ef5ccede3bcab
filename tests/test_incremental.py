"""The cost of a sync follows what changed: regression tests for the mechanisms."""

from __future__ import annotations

import time

import pytest

from tests.e2e import (
    register_app,
    resync,
    wait_quiet,
    wait_status,
    wait_synced,
    wait_until,
    watch,
)
from tests.gitrepo import fast_import


@pytest.fixture
def settings(make_settings):
    return make_settings(RETRY_BASE_DELAY_MS="100")


def counters(db) -> tuple[int, int]:
    return db.execute("SELECT fetch_count, blobs_hashed FROM snapshots").fetchone()


def files(count: int, version: str = "v1"):
    return ((f"dir{i % 10}/file{i:06d}.txt", f"{version} {i}\n".encode()) for i in range(count))


def test_noop_rescan_fetches_and_hashes_nothing(client, worker, receiver, db, tmp_path):
    remote = tmp_path / "acme" / "big.git"
    fast_import(remote, files(200))
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, f"file://{remote}")
    wait_status(client, headers, rid, "synced")
    assert counters(db) == (1, 200)
    for _ in range(3):
        resync(client, headers, rid)
        wait_quiet(db)
    assert counters(db) == (1, 200)  # no fetch, no hashing, no snapshot write
    assert len(receiver.state.events) == 200


def test_unchanged_blobs_are_never_hashed_again(client, worker, receiver, db, tmp_path):
    remote = tmp_path / "acme" / "repo.git"
    first = fast_import(remote, files(100))
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, f"file://{remote}")
    wait_status(client, headers, rid, "synced")
    assert counters(db) == (1, 100)
    # One file modified: one blob read and hashed.
    second = fast_import(remote, [("dir3/file000003.txt", b"changed\n")], parent=first)
    resync(client, headers, rid)
    wait_synced(client, headers, rid, second)
    assert counters(db) == (2, 101)
    # Back to the old content: that blob is known, nothing is hashed.
    third = fast_import(remote, [("dir3/file000003.txt", b"v1 3\n")], parent=second)
    resync(client, headers, rid)
    wait_synced(client, headers, rid, third)
    assert counters(db) == (3, 101)
    # A .docoraignore change re-evaluates the whole tree without re-hashing known blobs:
    # only the ignore file itself is new.
    fourth = fast_import(remote, [(".docoraignore", b"dir1/\n")], parent=third)
    resync(client, headers, rid)
    wait_synced(client, headers, rid, fourth)
    assert counters(db) == (4, 102)
    assert len(receiver.state.files) == 100 - 10 + 1
    assert [e.event for e in receiver.state.events[-11:]].count("delete") == 10


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_100k_file_repository_syncs(make_settings, db, tmp_path):
    """100k files: COPY-based snapshot writes, paged diffs, delivery to a fast receiver
    (bench/receiver.py in its own process, so the receiver is not what is measured)."""
    import subprocess
    import sys
    from pathlib import Path

    import httpx
    from litestar.testing import TestClient

    from docora.asgi import create_app
    from tests.conftest import onboard
    from tests.worker import BackgroundWorker

    port = _free_port()
    receiver = subprocess.Popen(
        [sys.executable, str(Path(__file__).parents[1] / "bench" / "receiver.py"), str(port)],
        stdout=subprocess.DEVNULL,
    )
    settings = make_settings(RETRY_BASE_DELAY_MS="200", DELIVERY_TIMEOUT_MS="10000")
    remote = tmp_path / "acme" / "huge.git"
    fast_import(remote, files(100_000))
    started = time.monotonic()
    try:
        with TestClient(create_app(settings)) as client, BackgroundWorker(settings):
            _, headers = onboard(
                client, base_url=f"http://127.0.0.1:{port}/hooks", delivery_concurrency=32
            )
            rid = watch(client, headers, f"file://{remote}")
            wait_until(
                lambda: db.execute("SELECT status FROM watches").fetchone()[0] == "synced",
                800,
                "100k repository did not sync",
                interval=1,
            )
            status = client.get(f"/api/repositories/{rid}", headers=headers).json()
        received = httpx.get(f"http://127.0.0.1:{port}/_stats").json()["count"]
    finally:
        receiver.terminate()
        receiver.wait()
    assert status["files_delivered"] == 100_000 and status["pending_changes"] == 0
    assert db.execute("SELECT file_count FROM snapshots").fetchone()[0] == 100_000
    assert received == 100_000
    print(f"100k files synced in {time.monotonic() - started:.1f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
