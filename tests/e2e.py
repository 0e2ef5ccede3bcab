"""Helpers for end-to-end tests: API client + worker + receiver + git remote."""

from __future__ import annotations

import time

from litestar.testing import TestClient

from tests.conftest import onboard


def register_app(client: TestClient, receiver, **extra) -> tuple[str, dict[str, str]]:
    return onboard(client, base_url=receiver.base_url, client_auth_key=receiver.state.key, **extra)


def watch(client: TestClient, headers: dict[str, str], url: str, **extra) -> str:
    r = client.post("/api/repositories", json={"github_url": url, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["repository_id"]


def wait_status(client, headers, rid, status, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/repositories/{rid}", headers=headers).json()
        if body.get("status") == status:
            return body
        time.sleep(0.05)
    raise AssertionError(f"watch never became {status}: {body}")


def resync(client, headers, rid) -> None:
    assert client.post(f"/api/repositories/{rid}/resync", headers=headers).status_code == 202


def wait_synced(client, headers, rid, commit: str, timeout=30.0) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/repositories/{rid}", headers=headers).json()
        if body.get("status") == "synced" and body.get("commit_sha") == commit:
            return body
        time.sleep(0.05)
    raise AssertionError(f"watch never synced at {commit}: {body}")


def wait_quiet(db, timeout=30.0) -> None:
    """Until no sync, delivery or alert job is waiting or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = db.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
            "AND task_name <> 'docora.schedule' AND (scheduled_at IS NULL OR scheduled_at <= now())"
        ).fetchone()[0]
        if busy == 0:
            return
        time.sleep(0.05)
    raise AssertionError("jobs still busy")
