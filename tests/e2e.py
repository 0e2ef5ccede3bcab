"""Helpers for end-to-end tests: API client + worker + receiver + git remote."""

from __future__ import annotations

from litestar.testing import TestClient

from tests.conftest import onboard
from tests.waiting import wait_until


def register_app(client: TestClient, receiver, **extra) -> tuple[str, dict[str, str]]:
    return onboard(client, base_url=receiver.base_url, client_auth_key=receiver.state.key, **extra)


def watch(client: TestClient, headers: dict[str, str], url: str, **extra) -> str:
    r = client.post("/api/repositories", json={"github_url": url, **extra}, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["repository_id"]


def _wait_for_watch(client, headers, rid, accept, timeout: float, what: str) -> dict:
    seen: dict = {}

    def check() -> bool:
        seen.clear()
        seen.update(client.get(f"/api/repositories/{rid}", headers=headers).json())
        return accept(seen)

    wait_until(check, timeout, lambda: f"watch {what}: {seen}")
    return seen


def wait_status(client, headers, rid, status, timeout=30.0) -> dict:
    def accept(body: dict) -> bool:
        return body.get("status") == status

    return _wait_for_watch(client, headers, rid, accept, timeout, f"never became {status}")


def resync(client, headers, rid) -> None:
    assert client.post(f"/api/repositories/{rid}/resync", headers=headers).status_code == 202


def wait_synced(client, headers, rid, commit: str, timeout=30.0) -> dict:
    def accept(body: dict) -> bool:
        return body.get("status") == "synced" and body.get("commit_sha") == commit

    return _wait_for_watch(client, headers, rid, accept, timeout, f"never synced at {commit}")


def wait_quiet(db, timeout=30.0) -> None:
    """Until no sync, delivery or alert job is waiting or running."""

    def idle() -> bool:
        busy = db.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
            "AND task_name <> 'docora.schedule' AND (scheduled_at IS NULL OR scheduled_at <= now())"
        ).fetchone()[0]
        return busy == 0

    wait_until(idle, timeout, "jobs still busy")


def all_pages(client, url: str, headers: dict[str, str], limit: int) -> tuple[dict, list[dict]]:
    """Follow `next_cursor` through a cursor-paged list; (the last page, every item)."""
    items: list[dict] = []
    cursor = None
    for _ in range(1000):
        sep = "&" if "?" in url else "?"
        page = client.get(
            f"{url}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else ""), headers=headers
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= limit
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return body, items
    raise AssertionError("paging never ended")
