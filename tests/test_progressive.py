"""A first snapshot published in parts, and the deliveries that start before it is complete
(issue 21): the spool's parts, a delivery following the parts and stopping when the scan
does, and the whole overlap against a real worker and receiver. The kill -9 in the middle
of it is in test_worker_death.py."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from bench.synth import make_repository
from docora.db import open_pool
from docora.deliver.progress import PublishedSnapshot, SnapshotStopped
from docora.git.spool import SpoolReader, SpoolWriter
from docora.scan.snapshot import FIRST_PART
from docora.store import scans
from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_until, watch
from tests.worker import WorkerProcess

COMMIT = "c" * 40


def test_spool_parts_become_readable_as_they_are_published(tmp_path):
    writer = SpoolWriter(tmp_path, COMMIT)
    writer.add("aa" * 20, b"first")
    assert SpoolReader.open(tmp_path, COMMIT) is None  # nothing published yet
    writer.publish()
    reader = SpoolReader.open(tmp_path, COMMIT)
    assert reader is not None
    assert reader.read(reader.place("aa" * 20)) == b"first"
    writer.add("bb" * 20, b"second")
    assert reader.place("bb" * 20) is None
    reader.refresh()
    assert reader.place("bb" * 20) is None  # added, not published: not readable yet
    writer.finish()
    reader.refresh()
    assert reader.read(reader.place("bb" * 20)) == b"second"
    # A scan of the same commit that starts over writes other data: the open reader keeps
    # what it had and takes in nothing of the new index.
    again = SpoolWriter(tmp_path, COMMIT)
    again.add("cc" * 20, b"third")
    again.finish()
    reader.refresh()
    assert reader.place("cc" * 20) is None
    assert reader.read(reader.place("aa" * 20)) == b"first"
    reader.close()


def test_a_delivery_follows_the_parts_and_stops_when_the_scan_does(client, settings, tmp_path):
    """Against real rows (no worker runs): `advance` waits for the next part, ends at the
    complete snapshot, and raises SnapshotStopped once nobody is publishing."""
    _, headers = onboard(client)
    make_repository(tmp_path / "acme" / "p.git", 3)
    rid = watch(client, headers, f"file://{tmp_path / 'acme' / 'p.git'}")

    async def scenario() -> None:
        pool = await open_pool(settings.database_url)
        try:
            running = True

            async def sync_running() -> bool:
                return running

            async with pool.connection() as conn:
                await scans.start_work(conn)
                await scans.start_parts(conn, rid, COMMIT)
                await scans.publish_part(conn, rid, COMMIT, after="", through="m")
                snapshot = PublishedSnapshot(pool, rid, COMMIT, "m", sync_running)
                waiting = asyncio.create_task(snapshot.advance())
                await asyncio.sleep(0.1)
                assert not waiting.done()  # nothing new yet, and the sync still runs
                await scans.publish_part(conn, rid, COMMIT, after="m", through="t")
                await asyncio.wait_for(waiting, 5)
                assert snapshot.through == "t" and not snapshot.complete
                running = False  # the sync died: nobody will publish more
                with pytest.raises(SnapshotStopped):
                    await snapshot.advance()
                await scans.apply_work(conn, rid, COMMIT, full=True, hashed=0, published="t")
                await snapshot.advance()  # the end came after all: complete
                assert snapshot.complete
                await scans.end_work(conn)
        finally:
            await pool.close()

    asyncio.run(scenario())


FILES = 12_000


def first_snapshot_remote(tmp_path) -> str:
    """Enough files that hashing the parts after the first takes a noticeable time."""
    remote = tmp_path / "acme" / "parts.git"
    make_repository(remote, FILES, binaries=0, text_size=(1500, 2500))
    subprocess.run(["git", "-C", str(remote), "repack", "-adq"], check=True)
    return f"file://{remote}"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_first_snapshot_is_delivered_while_it_is_still_being_hashed(
    settings, client, receiver, db, tmp_path
):
    assert FILES > 4 * FIRST_PART
    url = first_snapshot_remote(tmp_path)
    _, headers = onboard(
        client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY, delivery_concurrency=8
    )
    worker = WorkerProcess(settings)
    try:
        rid = watch(client, headers, url)
        wait_until(
            lambda: db.execute("SELECT status FROM watches").fetchone()[0] == "synced",
            120,
            "not synced",
        )
    finally:
        worker.stop()
    first_recorded, scanned_at = db.execute(
        "SELECT (SELECT min(created_at) FROM deliveries), scanned_at FROM snapshots"
    ).fetchone()
    assert first_recorded < scanned_at  # events were acknowledged before the end of the scan
    partial = db.execute("SELECT partial_commit, partial_through FROM snapshots").fetchone()
    assert partial == (None, None)
    events = {e.event for e in receiver.state.accepted()}
    assert events == {"create"}
    snapshot = dict(db.execute("SELECT path, sha FROM snapshot_files").fetchall())
    assert len(snapshot) == FILES and receiver.state.shas == snapshot
    status = client.get(f"/api/repositories/{rid}", headers=headers).json()
    assert status["files_delivered"] == FILES and status["pending_changes"] == 0
