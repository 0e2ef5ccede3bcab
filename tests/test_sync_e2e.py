"""End to end: real git remotes, a real worker, real HTTP receivers verifying signatures."""

from __future__ import annotations

import hashlib

import pytest

from docora.deliver.content import chunk_count
from tests.conftest import RECEIVER_KEY as KEY
from tests.e2e import register_app, resync, wait_quiet, wait_status, wait_synced, watch
from tests.gitrepo import GitRepo, git
from tests.receiver import ReceiverServer
from tests.worker import BackgroundWorker

BIG_BINARY = bytes(range(256)) * 40  # 10,240 bytes with NULs: chunked at a 4 KiB threshold


@pytest.fixture
def settings(make_settings):
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
    git("add", "--all", cwd=repo.work)
    git("update-index", "--add", "--cacheinfo", f"160000,{repo.head()},vendor/sub", cwd=repo.work)
    commit = repo.commit_staged("symlink, submodule, mode")
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    status = wait_status(client, headers, rid, "synced")

    expected = {p: (c.encode() if isinstance(c, str) else c) for p, c in files.items()}
    del expected["too-big.txt"]
    assert receiver.state.files == expected
    assert all(e.verified for e in receiver.state.events)
    assert status["commit_sha"] == commit and status["files_delivered"] == len(expected)
    assert status["pending_changes"] == 0
    assert {(s["path"], s["reason"]) for s in status["skipped_files"]} == {
        ("link", "symlink"),
        ("vendor/sub", "submodule"),
        ("too-big.txt", "larger than 50000 bytes"),
    }
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


def test_docoraignore_gitignore_semantics(client, worker, receiver, repo):
    repo.commit(
        "ignore rules",
        {
            ".docoraignore": (
                "# comment\n*.log\n!keep.log\n/build/\n**/tmp/**\nsecret.txt\ndocs/**/*.draft\n"
            ),
            "app.log": "x",
            "keep.log": "kept",
            "build/out.js": "x",
            "src/build/kept.js": "kept: only the root build/ is anchored",
            "a/tmp/b/c.txt": "x",
            "tmp/x.txt": "x",
            "secret.txt": "x",
            "nested/secret.txt": "x (unanchored pattern)",
            "docs/a/b/page.draft": "x",
            "docs/page.md": "kept",
        },
    )
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_status(client, headers, rid, "synced")
    assert sorted(receiver.state.files) == [
        ".docoraignore",
        "docs/page.md",
        "keep.log",
        "src/build/kept.js",
    ]


def test_changes_arrive_in_order_with_previous_sha(client, db, worker, receiver, repo):
    repo.commit("v1", {"a.txt": "a1", "b.txt": "b1", "c.txt": "c1", "old/name.txt": "moved"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_status(client, headers, rid, "synced")
    before = len(receiver.state.events)

    repo.write("b.txt", "b2")
    repo.write("a.txt", "a2")
    repo.delete("c.txt")
    repo.rename("old/name.txt", "new/name.txt")
    repo.write("0-new.txt", "new")
    commit = repo.commit("v2")
    resync(client, headers, rid)
    wait_synced(client, headers, rid, commit)
    events = [(e.event, e.body["file"]["path"]) for e in receiver.state.events[before:]]
    assert events == [
        ("delete", "c.txt"),
        ("delete", "old/name.txt"),
        ("create", "0-new.txt"),
        ("create", "new/name.txt"),
        ("update", "a.txt"),
        ("update", "b.txt"),
    ]
    update = receiver.state.events[before + 4].body
    assert list(update) == ["repository", "file", "previous_sha", "commit_sha", "timestamp"]
    assert update["previous_sha"] == sha("a1") and update["file"]["sha"] == sha("a2")
    delete = receiver.state.events[before].body
    assert delete["file"] == {"path": "c.txt", "sha": sha("c1")}
    assert receiver.state.files == {
        "a.txt": b"a2",
        "b.txt": b"b2",
        "new/name.txt": b"moved",
        "0-new.txt": b"new",
    }
    # Nothing changed: a resync sends nothing.
    count = len(receiver.state.events)
    resync(client, headers, rid)
    wait_quiet(db)
    wait_status(client, headers, rid, "synced")
    assert len(receiver.state.events) == count


def test_second_app_gets_everything_as_create(client, worker, receiver, repo):
    repo.commit("v1", {"a.txt": "a", "b.txt": "b"})
    _, first = register_app(client, receiver)
    rid = watch(client, first, repo.url)
    wait_status(client, first, rid, "synced")
    with ReceiverServer(KEY) as second_receiver:
        _, second = register_app(client, second_receiver, app_name="second app")
        assert watch(client, second, repo.url) == rid
        wait_status(client, second, rid, "synced")
        assert [e.event for e in second_receiver.state.events] == ["create", "create"]
        assert second_receiver.state.files == {"a.txt": b"a", "b.txt": b"b"}
    assert len(receiver.state.events) == 2  # the first app got nothing again


def test_receiver_failures_then_recovery_resume_without_resending(client, worker, receiver, repo):
    repo.commit("v1", {f"f{i}.txt": str(i) for i in range(6)})
    failures = {"left": 3}

    def respond(event, body):
        # f0..f2 succeed, then f3 fails three times (500, timeout, 500), then all succeed.
        if body["file"]["path"] == "f3.txt" and failures["left"] > 0:
            failures["left"] -= 1
            if failures["left"] == 1:
                import time

                time.sleep(2.0)  # longer than DELIVERY_TIMEOUT_MS
            return 500
        return None

    receiver.state.respond = respond
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    status = wait_status(client, headers, rid, "failed")
    assert "f3.txt" in status["last_error"] and status["retry_count"] == 3
    accepted = [e.body["file"]["path"] for e in receiver.state.accepted()]
    assert accepted == ["f0.txt", "f1.txt", "f2.txt"]
    # The counters follow the acknowledgements: three held, three to go.
    assert (status["files_delivered"], status["pending_changes"]) == (3, 3)
    # The app recovers; a resync resumes where it stopped.
    resync(client, headers, rid)
    wait_synced(client, headers, rid, repo.head())
    accepted = [e.body["file"]["path"] for e in receiver.state.accepted()]
    assert accepted == [f"f{i}.txt" for i in range(6)]  # nothing acknowledged was resent
    status = client.get(f"/api/repositories/{rid}", headers=headers).json()
    assert (status["files_delivered"], status["pending_changes"]) == (6, 0)
    failed = client.get("/api/deliveries?status=failed", headers=headers).json()["deliveries"]
    assert len(failed) == 3 and {d["path"] for d in failed} == {"f3.txt"}
    assert {d["attempt"] for d in failed} == {1, 2, 3}


def test_retrying_status_is_visible_between_attempts(make_settings, receiver, repo):
    from litestar.testing import TestClient

    from docora.asgi import create_app

    settings = make_settings(RETRY_BASE_DELAY_MS="1500", MAX_RETRY_ATTEMPTS="3")
    repo.commit("v1", {"a.txt": "a"})
    calls = {"n": 0}

    def respond(event, body):
        calls["n"] += 1
        return 503 if calls["n"] == 1 else None

    receiver.state.respond = respond
    with TestClient(create_app(settings)) as client, BackgroundWorker(settings):
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, repo.url)
        status = wait_status(client, headers, rid, "retrying")
        assert status["last_error"].endswith("HTTP 503") and status["retry_count"] == 1
        status = wait_status(client, headers, rid, "synced")
        assert status["last_error"] is None and status["retry_count"] == 0


def test_refused_connections_then_recovery(make_settings, repo, tmp_path):
    import socket

    from litestar.testing import TestClient

    from docora.asgi import create_app

    settings = make_settings(RETRY_BASE_DELAY_MS="100", MAX_RETRY_ATTEMPTS="2")
    repo.commit("v1", {"a.txt": "a", "b.txt": "b"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with TestClient(create_app(settings)) as client, BackgroundWorker(settings):
        _, headers = register_app_at(client, f"http://127.0.0.1:{port}/hooks")
        rid = watch(client, headers, repo.url)
        status = wait_status(client, headers, rid, "failed")
        assert "connection failed" in status["last_error"]
        with ReceiverServer(KEY, port=port) as server:
            resync(client, headers, rid)
            wait_status(client, headers, rid, "synced")
            assert server.state.files == {"a.txt": b"a", "b.txt": b"b"}


def register_app_at(client, base_url):
    from tests.conftest import onboard

    return onboard(client, base_url=base_url, client_auth_key=KEY)


def test_delivery_concurrency_keeps_groups_and_chunks_in_order(client, worker, receiver, repo):
    repo.commit("v1", {f"old/{i:03d}.txt": f"{i}" for i in range(40)} | {"keep.txt": "1"})
    _, headers = register_app(client, receiver, delivery_concurrency=8)
    rid = watch(client, headers, repo.url)
    wait_status(client, headers, rid, "synced")
    before = len(receiver.state.events)
    for i in range(40):
        repo.delete(f"old/{i:03d}.txt")
    files = {f"new/{i:03d}.txt": f"n{i}" for i in range(40)} | {"keep.txt": "2"}
    files["big.bin"] = BIG_BINARY * 3
    commit = repo.commit("v2", files)
    resync(client, headers, rid)
    wait_synced(client, headers, rid, commit)
    events = [e.event for e in receiver.state.events[before:]]
    pieces = chunk_count(len(BIG_BINARY) * 3, 2048)
    assert pieces == 20
    assert events == ["delete"] * 40 + ["create"] * (40 + pieces) + ["update"]
    chunks = [
        e.body["file"]["chunk"]["index"]
        for e in receiver.state.events
        if "chunk" in e.body["file"] and e.body["file"]["size"] == len(BIG_BINARY) * 3
    ]
    assert chunks == list(range(pieces))
    assert receiver.state.files["big.bin"] == BIG_BINARY * 3
    assert all(e.verified for e in receiver.state.events)


def test_a_file_deleted_then_added_back_unchanged_is_a_new_event(client, worker, receiver, repo):
    """The reference receiver drops delivery ids it has applied: the re-created file must
    come under a new id (the commit is part of it), or the receiver would keep it deleted."""
    first = repo.commit("v1", {"a.txt": "same", "b.txt": "b"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_synced(client, headers, rid, first)
    repo.delete("a.txt")
    second = repo.commit("v2", {"b.txt": "b2"})
    resync(client, headers, rid)
    wait_synced(client, headers, rid, second)
    assert "a.txt" not in receiver.state.files
    third = repo.commit("v3", {"a.txt": "same"})
    resync(client, headers, rid)
    wait_synced(client, headers, rid, third)
    assert receiver.state.files == {"a.txt": b"same", "b.txt": b"b2"}
    creates = [e for e in receiver.state.accepted("create") if e.body["file"]["path"] == "a.txt"]
    assert len(creates) == 2 and not creates[1].duplicate
