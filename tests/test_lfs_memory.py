"""A 500 MB Git LFS object through `docora worker` as a real process (SPEC 13): downloaded
to the cache, checked and sent as chunks without the worker ever holding it whole. The
receiver here keeps only a running digest of what it applied, so the test's own memory
stays small too."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time

import httpx

from docora.receiver import BackgroundServer, NoDelayHandler, is_fresh, verify
from tests.conftest import RECEIVER_KEY as KEY
from tests.conftest import onboard
from tests.e2e import wait_status, watch
from tests.githttp import GitHttpServer
from tests.lfs_server import LfsRemote, pointer_for
from tests.test_cli import free_port
from tests.test_metrics import samples
from tests.worker import WorkerProcess, wait_for_workers

OBJECT_BYTES = 500 * 1024 * 1024
CHUNK_CHARS = 2 * 1024 * 1024  # base64 characters per chunk: 1.5 MB of the object
# The worker's own peak (VmHWM) with the object in flight; its baseline is ~70-90 MB.
PEAK_RSS_BOUND_MB = 150
TOKEN = "lfs-token-1"


class DigestReceiver(BackgroundServer):
    """Verifies every request like the reference receiver, then folds each chunk into a
    per-path SHA-256 (chunks of one file arrive in order, one at a time, in single mode)."""

    def __init__(self) -> None:
        super().__init__(_DigestHandler)
        self.lock = threading.Lock()
        self.digests: dict[str, hashlib._Hash] = {}
        self.next_index: dict[str, int] = {}
        self.done: dict[str, tuple[str, str, int]] = {}  # path -> (digest, announced sha, size)
        self.rejected = 0
        self.out_of_order = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/hooks"


class _DigestHandler(NoDelayHandler):
    server: DigestReceiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server
        if not verify(KEY, headers, raw) or not is_fresh(headers, time.time(), 300):
            with state.lock:
                state.rejected += 1
            self._answer(401)
            return
        file = json.loads(raw).get("file") or {}
        with state.lock:
            self._apply(state, file)
        self._answer(200)

    @staticmethod
    def _apply(state: DigestReceiver, file: dict) -> None:
        path = file.get("path", "")
        data = file.get("content", "")
        data = base64.b64decode(data) if file.get("content_encoding") == "base64" else data.encode()
        chunk = file.get("chunk") or {"index": 0, "total": 1}
        if chunk["index"] == 0:
            state.digests[path], state.next_index[path] = hashlib.sha256(), 0
        if chunk["index"] != state.next_index.get(path):
            state.out_of_order += 1
            return
        state.digests[path].update(data)
        state.next_index[path] += 1
        if chunk["index"] + 1 == chunk["total"]:
            state.done[path] = (state.digests.pop(path).hexdigest(), file["sha"], file["size"])

    def _answer(self, status: int) -> None:
        payload = b'{"ok":true}'
        self.wfile.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )


def _write_random(path, size: int) -> None:
    with path.open("wb") as f:
        for _ in range(size // (8 * 1024 * 1024)):
            f.write(os.urandom(8 * 1024 * 1024))
        f.write(os.urandom(size % (8 * 1024 * 1024)))


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM line")


def test_a_500_mb_lfs_object_streams_through_a_bounded_worker(make_settings, client, db, tmp_path):
    settings = make_settings()
    remote = LfsRemote(tmp_path)
    source = tmp_path / "object.tmp"
    _write_random(source, OBJECT_BYTES)
    oid, size = remote.store.put_file(source)
    commit = remote.repo.commit(
        "media",
        {".gitattributes": "*.bin filter=lfs -text\n", "video/huge.bin": pointer_for(oid, size)},
    )
    with (
        GitHttpServer(remote.root, passwords={TOKEN}, lfs=remote.store) as server,
        DigestReceiver() as receiver,
    ):
        port = free_port()
        worker = WorkerProcess(
            settings,
            WORKER_METRICS_PORT=str(port),
            HOST="127.0.0.1",
            MAX_FILE_SIZE_BYTES=str(600 * 1024 * 1024),
            BINARY_CHUNK_SIZE_BYTES=str(CHUNK_CHARS),
            GIT_TIMEOUT_MS="120000",
        )
        wait_for_workers(settings.database_url)
        _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=KEY)
        started = time.monotonic()
        rid = watch(client, headers, server.url_for(remote.repo.remote), github_token=TOKEN)
        status = wait_status(client, headers, rid, "synced", timeout=600)
        elapsed = time.monotonic() - started
        peak = _peak_rss_mb(worker.process.pid)
        own = samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
        worker.stop()

    assert status["commit_sha"] == commit
    assert receiver.rejected == 0 and receiver.out_of_order == 0
    digest, announced, announced_size = receiver.done["video/huge.bin"]
    assert digest == announced == oid and announced_size == OBJECT_BYTES
    assert remote.store.downloads == [oid]
    assert status["lfs"] == {"objects": 1, "bytes": OBJECT_BYTES}
    assert own[("docora_lfs_objects_downloaded_total", ())] == 1
    assert own[("docora_lfs_bytes_downloaded_total", ())] == OBJECT_BYTES
    print(
        f"500 MB LFS object: registration -> synced {elapsed:.1f} s, worker peak RSS {peak:.0f} MB"
    )
    assert peak < PEAK_RSS_BOUND_MB, f"worker peak RSS {peak:.0f} MB"
