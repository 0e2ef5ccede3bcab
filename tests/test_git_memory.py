"""git's memory stays bounded whatever a repository holds (issue 21): a 100 MB binary
is fetched, hashed and sent in chunks by `docora worker` while every git process it starts
stays well under the blob's size (core.bigFileThreshold, bounded pack windows, a kept
pack: git/command.py MEMORY_BOUNDS)."""

from __future__ import annotations

import hashlib
import os

from bench.memory import PeakRss
from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_status, watch
from tests.githttp import GitHttpServer
from tests.gitrepo import fast_import
from tests.test_lfs_memory import DigestReceiver
from tests.worker import WorkerProcess, wait_for_workers

BLOB_BYTES = 100 * 1024 * 1024
# git maps at most 64 MB of packs (32 MB for the hashing reader) and holds no object over
# 16 MB whole; without the bounds index-pack and cat-file each held the whole blob.
GIT_PROCESS_BOUND_MB = 90


def test_a_100_mb_blob_passes_through_bounded_git_processes(make_settings, client, tmp_path):
    settings = make_settings()
    remote = tmp_path / "srv" / "acme" / "media.git"
    blob = os.urandom(BLOB_BYTES)
    commit = fast_import(remote, [("big.bin", blob), ("README.md", b"# media\n")])
    with GitHttpServer(tmp_path / "srv", None) as server, DigestReceiver() as receiver:
        worker = WorkerProcess(
            settings,
            MAX_FILE_SIZE_BYTES=str(200 * 1024 * 1024),
            BINARY_CHUNK_SIZE_BYTES=str(8 * 1024 * 1024),
            GIT_TIMEOUT_MS="120000",
        )
        wait_for_workers(settings.database_url)
        _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
        with PeakRss(worker.process.pid) as memory:
            rid = watch(client, headers, server.url_for(remote))
            status = wait_status(client, headers, rid, "synced", timeout=300)
        worker.stop()
    assert status["commit_sha"] == commit
    digest, announced, size = receiver.done["big.bin"]
    assert digest == announced == hashlib.sha256(blob).hexdigest() and size == BLOB_BYTES
    name, largest = memory.child
    print(
        f"100 MB blob: peak RSS of the worker with its git processes {memory.tree / 2**20:.0f} MB"
        f" ({memory.composition()}); the largest git process: {name}, {largest / 2**20:.0f} MB"
    )
    assert largest < GIT_PROCESS_BOUND_MB * 2**20, (name, largest / 2**20)
