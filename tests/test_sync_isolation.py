"""Failures stay contained: per app, per watch, per repository."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from docora.deliver.run import UNRECORDED_MAX
from tests.conftest import RECEIVER_KEY as KEY
from tests.e2e import register_app, resync, wait_quiet, wait_status, wait_synced, watch
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo
from tests.receiver import ReceiverServer


@pytest.fixture
def settings(make_settings):
    return make_settings(
        SCAN_INTERVAL_MS="1000",
        RETRY_BASE_DELAY_MS="100",
        MAX_RETRY_ATTEMPTS="3",
        DELIVERY_TIMEOUT_MS="1500",
        CIRCUIT_BREAKER_THRESHOLD="2",
        CIRCUIT_BREAKER_COOLDOWN_MS="600000",
    )


def test_one_failing_app_does_not_delay_another(client, worker, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {f"f{i}.txt": str(i) for i in range(5)})
    with ReceiverServer(KEY) as good, ReceiverServer(KEY) as bad:
        bad.state.respond = lambda event, body: 500
        _, bad_headers = register_app(client, bad, app_name="bad app")
        _, good_headers = register_app(client, good, app_name="good app")
        rid = watch(client, bad_headers, repo.url)
        watch(client, good_headers, repo.url)
        started = time.monotonic()
        wait_status(client, good_headers, rid, "synced", timeout=15)
        assert time.monotonic() - started < 10
        assert len(good.state.files) == 5
        status = wait_status(client, bad_headers, rid, "failed")
        assert "HTTP 500" in status["last_error"] and status["files_delivered"] == 0


def test_unwatch_mid_sync_stops_events(client, worker, db, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {f"f{i:02d}.txt": str(i) for i in range(30)})
    gate = threading.Event()
    with ReceiverServer(KEY) as receiver:

        def respond(event, body):
            if body["file"]["path"] == "f03.txt":
                gate.set()
                time.sleep(0.5)
            return None

        receiver.state.respond = respond
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, repo.url)
        assert gate.wait(15)
        assert client.delete(f"/api/repositories/{rid}", headers=headers).status_code == 204
        wait_quiet(db)
        time.sleep(0.5)
        count = len(receiver.state.events)
        # f00-f03, plus at most what was in flight or acknowledged but not yet recorded
        # when the unwatch landed (the next recording batch finds the watch gone: at most
        # delivery_concurrency + UNRECORDED_MAX), then nothing more: 30 files exist.
        assert count <= 4 + 1 + (1 + UNRECORDED_MAX)
        assert count < 30
        time.sleep(1.0)
        assert len(receiver.state.events) == count
        assert db.execute("SELECT count(*) FROM delivered_files").fetchone()[0] == 0


def test_circuit_breaker_opens_once_with_one_sync_failed(client, worker, db, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    with ReceiverServer(KEY) as first, ReceiverServer(KEY) as second:
        _, h1 = register_app(client, first)
        _, h2 = register_app(client, second, app_name="second")
        rid = watch(client, h1, repo.url)
        watch(client, h2, repo.url)
        wait_status(client, h1, rid, "synced")
        wait_status(client, h2, rid, "synced")
        # The remote disappears: every git call now fails.
        repo.remote.rename(repo.remote.with_name("moved.git"))
        resync(client, h1, rid)
        first.wait_for(lambda s: any(e.event == "sync_failed" for e in s.events), timeout=20)
        second.wait_for(lambda s: any(e.event == "sync_failed" for e in s.events), timeout=20)
        wait_quiet(db)
        for _ in range(3):
            resync(client, h1, rid)  # skipped while the breaker is open
        wait_quiet(db)
        time.sleep(0.5)
        for receiver in (first, second):
            alerts = [e for e in receiver.state.events if e.event == "sync_failed"]
            assert len(alerts) == 1 and alerts[0].verified
            body = alerts[0].body
            assert list(body) == [
                "event",
                "repository",
                "error",
                "circuit_breaker",
                "retry_count",
                "timestamp",
            ]
            assert body["error"]["type"] == "git_failure"
            assert body["circuit_breaker"]["status"] == "open"
            assert body["circuit_breaker"]["consecutive_failures"] == 2
            assert body["circuit_breaker"]["threshold"] == 2
            assert body["circuit_breaker"]["cooldown_until"].endswith("Z")
        status = client.get(f"/api/repositories/{rid}", headers=h1).json()
        assert status["circuit_breaker"]["status"] == "open" and status["status"] == "failed"
        # The repository is back and the cooldown has passed (half-open): one successful
        # sync closes the breaker.
        repo.remote.with_name("moved.git").rename(repo.remote)
        db.execute("UPDATE repositories SET cooldown_until = now() - interval '1 second'")
        commit = repo.commit("v2", {"b.txt": "b"})
        resync(client, h1, rid)
        wait_synced(client, h1, rid, commit)
        status = client.get(f"/api/repositories/{rid}", headers=h1).json()
        assert status["circuit_breaker"] == {
            "status": "closed",
            "consecutive_failures": 0,
            "cooldown_until": None,
        }


def test_private_repository_and_tenant_isolation(settings, client, worker, db, tmp_path):
    root = tmp_path / "served"
    repo = GitRepo(root / "acme", name="private")
    repo.commit("v1", {"secret.txt": "tenant A only\n"})
    with (
        GitHttpServer(root, passwords={"token-a", "token-b"}) as git_server,
        ReceiverServer(KEY) as receiver_a,
        ReceiverServer(KEY) as receiver_b,
    ):
        url = git_server.url_for(repo.remote)
        _, ha = register_app(client, receiver_a, app_name="tenant a")
        _, hb = register_app(client, receiver_b, app_name="tenant b")
        # B cannot register without a working token.
        r = client.post("/api/repositories", json={"github_url": url}, headers=hb)
        assert r.status_code == 404
        r = client.post(
            "/api/repositories", json={"github_url": url, "github_token": "nope"}, headers=hb
        )
        assert r.status_code == 404
        rid = watch(client, ha, url, github_token="token-a")
        assert watch(client, hb, url, github_token="token-b") == rid
        wait_status(client, ha, rid, "synced")
        wait_status(client, hb, rid, "synced")
        assert receiver_b.state.files == {"secret.txt": b"tenant A only\n"}
        # B's access is revoked: B receives nothing more, A keeps syncing.
        git_server.password_for = {"token-a"}
        commit = repo.commit("v2", {"secret.txt": "v2\n"})
        before_b = len(receiver_b.state.events)
        resync(client, ha, rid)
        wait_synced(client, ha, rid, commit)
        status_b = wait_status(client, hb, rid, "failed")
        assert (
            "access denied" in status_b["last_error"]
            and "token" not in status_b["last_error"].split("(")[0]
        )
        assert receiver_a.state.files == {"secret.txt": b"v2\n"}
        assert len(receiver_b.state.events) == before_b
        # Even a delivery job for B queued now (say, left over from before the revocation)
        # sends nothing: B's token was never shown to read the new commit.
        app_b = db.execute("SELECT id FROM apps WHERE name = 'tenant b'").fetchone()[0]
        asyncio.run(_queue_delivery(settings, app_b, rid))
        wait_quiet(db)
        assert len(receiver_b.state.events) == before_b
        # The token never reached git's argv or the mirror's config.
        for config in (tmp_path / "mirrors").rglob("config"):
            text = config.read_text()
            assert "token-a" not in text and "token-b" not in text and "Authorization" not in text


async def _queue_delivery(settings, app_id: str, repository_id: str) -> None:
    from docora.db import open_pool
    from docora.jobs.app import build_job_app
    from docora.jobs.queue import JobQueue

    pool = await open_pool(settings.database_url)
    jobs = build_job_app(settings)
    await jobs.open_async(pool)
    try:
        async with pool.connection() as conn:
            await JobQueue(jobs).deliver_now(conn, app_id, repository_id)
    finally:
        await jobs.close_async()
        await pool.close()
