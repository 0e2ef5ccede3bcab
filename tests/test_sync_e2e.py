"""End to end: real git remotes, a real worker, real HTTP receivers verifying signatures."""

from __future__ import annotations

import hashlib

import pytest

from tests.e2e import KEY, register_app, wait_status, watch
from tests.gitrepo import GitRepo, git
from tests.receiver import ReceiverServer
from tests.worker import BackgroundWorker

BIG_BINARY = bytes(range(256)) * 40  # 10,240 bytes with NULs: chunked at a 4 KiB threshold


@pytest.fixture
def fast_settings(make_settings):
    return make_settings(
        SCAN_INTERVAL_MS="1000",
        RETRY_BASE_DELAY_MS="100",
        MAX_RETRY_ATTEMPTS="3",
        DELIVERY_TIMEOUT_MS="1500",
        BINARY_CHUNK_THRESHOLD_BYTES="4096",
        BINARY_CHUNK_SIZE_BYTES="2048",
        MAX_FILE_SIZE_BYTES="50000",
    )


@pytest.fixture
def client(fast_settings):
    from litestar.testing import TestClient

    from docora.api.app import create_app

    with TestClient(create_app(fast_settings)) as test_client:
        yield test_client


@pytest.fixture
def worker(fast_settings):
    with BackgroundWorker(fast_settings) as background:
        yield background


@pytest.fixture
def receiver():
    with ReceiverServer(KEY) as server:
        yield server


@pytest.fixture
def repo(tmp_path):
    return GitRepo(tmp_path / "remotes" / "acme", name="docs")


def sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def test_initial_sync_of_every_file_kind(client, worker, receiver, repo):
    files = {
        "README.md": "# Hello\n",
        "docs/café/naïve.md": "Grüße, 世界 — ✓\n",
        "empty.txt": "",
        "bin/small.bin": b"\x00\x01\x02binary",
        "bin/latin1.txt": "caf\xe9".encode("latin-1"),
        "bin/big.bin": BIG_BINARY,
        "scripts/run.sh": "#!/bin/sh\necho hi\n",
        "too-big.txt": "x" * 60000,
    }
    repo.commit("initial", files)
    (repo.work / "scripts/run.sh").chmod(0o755)
    (repo.work / "link").symlink_to("README.md")
    git("update-index", "--add", "--cacheinfo", f"160000,{repo.head()},vendor/sub", cwd=repo.work)
    commit = repo.commit("symlink, submodule, mode")
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    status = wait_status(client, headers, rid, "synced")

    expected = {p: (c.encode() if isinstance(c, str) else c) for p, c in files.items()}
    del expected["too-big.txt"]
    assert receiver.state.files == expected
    assert all(e.verified for e in receiver.state.events)
    assert status["commit_sha"] == commit and status["files_delivered"] == len(expected)
    assert status["pending_changes"] == 0
    creates = [
        e.body["file"]["path"] for e in receiver.state.events if "chunk" not in e.body["file"]
    ]
    assert creates == sorted(creates, key=lambda p: p.encode())
    by_path = {e.body["file"]["path"]: e.body for e in receiver.state.events}
    assert "content_encoding" not in by_path["docs/café/naïve.md"]["file"]
    assert by_path["bin/latin1.txt"]["file"]["content_encoding"] == "base64"
    assert by_path["README.md"]["file"]["sha"] == sha("# Hello\n")
    assert by_path["README.md"]["commit_sha"] == commit
    assert by_path["README.md"]["repository"] == {
        "repository_id": rid,
        "github_url": repo.url,
        "owner": "acme",
        "name": "docs",
    }
    chunks = [e.body["file"]["chunk"] for e in receiver.state.events if "chunk" in e.body["file"]]
    assert [c["index"] for c in chunks] == list(range(len(chunks))) and len(chunks) == 7
    assert {c["total"] for c in chunks} == {7} and len({c["id"] for c in chunks}) == 1
