"""The remote changes under Docora's feet: history rewritten, branch deleted, access revoked.

(A repository that disappears altogether is covered with the circuit breaker in
test_sync_isolation.py.)
"""

from __future__ import annotations

import time

import pytest

from docora.git.command import AUTH_MESSAGE
from tests.e2e import register_app, resync, wait_quiet, wait_status, wait_synced, watch
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo, git
from tests.receiver import ReceiverServer

COOLDOWN_MS = 8000  # long enough to restore the branch before a second trial


@pytest.fixture
def settings(make_settings):
    return make_settings(
        SCAN_INTERVAL_MS="1000",
        RESCAN_INTERVAL_MS="1000",
        RETRY_BASE_DELAY_MS="100",
        MAX_RETRY_ATTEMPTS="3",
        CIRCUIT_BREAKER_THRESHOLD="2",
        CIRCUIT_BREAKER_COOLDOWN_MS=str(COOLDOWN_MS),
    )


def file_events(receiver: ReceiverServer) -> list[tuple[str, str]]:
    return [(e.event, e.body["file"]["path"]) for e in receiver.state.events if "file" in e.body]


def test_force_push_is_an_ordinary_change(client, worker, receiver, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a1", "b.txt": "b"})
    old_head = repo.commit("v2", {"c.txt": "c"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_synced(client, headers, rid, old_head)
    before = len(receiver.state.events)
    # A new root commit replaces the whole history (`git push --force`).
    git("checkout", "--quiet", "--orphan", "rewritten", cwd=repo.work)
    git("rm", "-r", "--quiet", "--cached", ".", cwd=repo.work)
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo.work / name).unlink()
    new_head = repo.commit("rewritten", {"a.txt": "a2", "d.txt": "d"})
    resync(client, headers, rid)
    status = wait_synced(client, headers, rid, new_head)
    assert receiver.state.files == {"a.txt": b"a2", "d.txt": b"d"}
    changes = receiver.state.events[before:]
    assert sorted((e.event, e.body["file"]["path"]) for e in changes) == [
        ("create", "d.txt"),
        ("delete", "b.txt"),
        ("delete", "c.txt"),
        ("update", "a.txt"),
    ]
    assert all(e.verified for e in changes)
    assert status["last_error"] is None and status["circuit_breaker"]["status"] == "closed"
    assert receiver.state.accepted("sync_failed") == []


def test_deleted_branch_fails_clearly_deletes_nothing_and_recovers(
    client, worker, receiver, db, tmp_path
):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("default branch", {"readme": "r"})
    repo.branch = "release"  # the watched branch; the remote's default stays `main`
    head = repo.commit("v1", {"a.txt": "a", "b.txt": "b"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url, branch="release")
    wait_synced(client, headers, rid, head)
    delivered = file_events(receiver)
    git("push", "--quiet", "origin", "--delete", "release", cwd=repo.work)
    resync(client, headers, rid)
    receiver.wait_for(lambda s: s.accepted("sync_failed"), timeout=30)
    status = client.get(f"/api/repositories/{rid}", headers=headers).json()
    assert status["status"] in ("retrying", "failed")
    assert status["last_error"] == "git not_found: branch 'release' does not exist"
    assert status["circuit_breaker"]["status"] == "open"
    for _ in range(3):
        resync(client, headers, rid)  # skipped while the breaker is open: no second alert
    wait_quiet(db)
    # A vanished branch is a failure, never "every file was deleted".
    assert file_events(receiver) == delivered
    assert receiver.state.files == {"readme": b"r", "a.txt": b"a", "b.txt": b"b"}
    (alert,) = receiver.state.accepted("sync_failed")
    assert alert.verified and alert.body["error"]["type"] == "git_failure"
    # The branch comes back; after the cooldown the trial sync closes the breaker by itself.
    head = repo.commit("v2", {"c.txt": "c"})
    status = wait_synced(client, headers, rid, head, timeout=COOLDOWN_MS / 1000 + 30)
    assert status["circuit_breaker"]["status"] == "closed" and status["last_error"] is None
    assert receiver.state.files == {"readme": b"r", "a.txt": b"a", "b.txt": b"b", "c.txt": b"c"}
    assert len(receiver.state.accepted("sync_failed")) == 1


def test_revoked_token_fails_once_then_a_new_token_recovers(client, worker, receiver, tmp_path):
    root = tmp_path / "served"
    repo = GitRepo(root / "acme", name="private")
    head = repo.commit("v1", {"a.txt": "a"})
    with GitHttpServer(root, passwords={"old-token"}) as git_server:
        url = git_server.url_for(repo.remote)
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, url, github_token="old-token")
        wait_synced(client, headers, rid, head)
        git_server.password_for = {"new-token"}  # the old token is revoked on the host
        head = repo.commit("v2", {"b.txt": "b"})
        resync(client, headers, rid)
        receiver.wait_for(lambda s: s.accepted("sync_failed"), timeout=30)
        status = wait_status(client, headers, rid, "failed")
        assert status["last_error"] == f"git auth: {AUTH_MESSAGE}"
        assert "old-token" not in status["last_error"]
        assert status["circuit_breaker"]["status"] == "open"
        (alert,) = receiver.state.accepted("sync_failed")
        assert alert.body["error"]["type"] == "git_failure"
        assert receiver.state.files == {"a.txt": b"a"}
        # A token that cannot read the repository is refused and changes nothing.
        r = client.patch(
            f"/api/repositories/{rid}/token",
            json={"github_token": "stale-token-9f3e"},
            headers=headers,
        )
        assert r.status_code == 422 and "stale-token-9f3e" not in r.text
        assert wait_status(client, headers, rid, "failed")["circuit_breaker"]["status"] == "open"
        # The new token: breaker closed, sync queued, the missed change arrives.
        r = client.patch(
            f"/api/repositories/{rid}/token", json={"github_token": "new-token"}, headers=headers
        )
        assert r.status_code == 200, r.text
        status = wait_synced(client, headers, rid, head, timeout=30)
    assert status["circuit_breaker"]["status"] == "closed" and status["last_error"] is None
    assert receiver.state.files == {"a.txt": b"a", "b.txt": b"b"}
    time.sleep(0.5)
    assert len(receiver.state.accepted("sync_failed")) == 1
