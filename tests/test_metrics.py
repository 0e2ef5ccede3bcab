"""GET /metrics (SPEC section 10): the names, numbers equal to Postgres', route templates as
labels, the token; and the worker's own /metrics on WORKER_METRICS_PORT, as a process."""

from __future__ import annotations

import httpx
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from docora.asgi import create_app
from tests.admin import ADMIN, add_repository, add_watch
from tests.conftest import onboard
from tests.e2e import register_app, wait_status, wait_until, watch
from tests.gitrepo import GitRepo
from tests.test_cli import free_port
from tests.worker import WorkerProcess

API_NAMES = {
    "docora_apps",
    "docora_repositories",
    "docora_watches",
    "docora_circuit_breakers_open",
    "docora_queue_jobs",
    "docora_queue_oldest_todo_seconds",
    "docora_workers_alive",
    "docora_deliveries",
    "docora_http_requests",
    "docora_http_request_duration_seconds",
    "docora_rescan_lag_seconds",
    "docora_rescans",
}
WORKER_NAMES = {
    "docora_syncs",
    "docora_sync_duration_seconds",
    "docora_git_fetch_duration_seconds",
    "docora_events_sent",
    "docora_webhook_duration_seconds",
    "docora_blobs_hashed",
    "docora_bytes_hashed",
    "docora_mirror_bytes",
    "docora_mirror_evictions",
    "docora_lfs_objects_downloaded",
    "docora_lfs_bytes_downloaded",
    # Read from Postgres at scrape time, as the API's are.
    "docora_rescan_lag_seconds",
    "docora_rescans",
}


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def test_metrics_are_the_database_and_the_routes(client, db):
    app_id, headers = onboard(client)
    add_watch(db, app_id, add_repository(db, "one"), "failed", "boom")
    add_watch(db, app_id, add_repository(db, "two", cooldown=True), "synced")
    client.get("/api/repositories/repo_0123456789abcdef01234567", headers=headers)
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert families(r.text) >= API_NAMES
    values = samples(r.text)
    assert values[("docora_apps", ())] == 1 and values[("docora_repositories", ())] == 2
    assert values[("docora_watches", (("status", "failed"),))] == 1
    assert values[("docora_watches", (("status", "synced"),))] == 1
    assert values[("docora_circuit_breakers_open", ())] == 1
    overview = client.get("/api/admin/overview", headers=ADMIN).json()
    assert values[("docora_workers_alive", ())] == overview["workers_alive"]
    # Route templates, never raw paths with ids in them.
    routes = {dict(k[1]).get("route") for k in values if k[0] == "docora_http_requests_total"}
    assert "/api/repositories/{repository_id}" in routes
    assert not any("repo_0123" in (route or "") for route in routes)
    key = (
        "docora_http_requests_total",
        (("method", "GET"), ("route", "/api/repositories/{repository_id}"), ("status", "404")),
    )
    assert values[key] == 1


def test_metrics_token(make_settings):
    token = "metrics-token-0123456789"
    with TestClient(create_app(make_settings(METRICS_TOKEN=token))) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and "docora_apps" in ok.text


def test_deliveries_total_and_the_workers_own_metrics(settings, client, receiver, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a", "b.txt": "b", "c.bin": b"\x00\x01"})
    port = free_port()
    # Rescans every second: the unchanged checks show on both /metrics.
    worker = WorkerProcess(
        settings,
        WORKER_METRICS_PORT=str(port),
        HOST="127.0.0.1",
        SCAN_INTERVAL_MS="1000",
        RESCAN_INTERVAL_MS="1000",
    )
    try:
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, repo.url)
        wait_status(client, headers, rid, "synced")
        api = samples(client.get("/metrics").text)
        assert (
            api[("docora_deliveries_total", (("event", "create"), ("outcome", "delivered")))] == 3
        )
        text = ""

        def scraped() -> bool:
            nonlocal text
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            return ("docora_syncs_total", (("outcome", "synced"),)) in samples(text)

        unchanged = ("docora_rescans_total", (("outcome", "unchanged"),))

        def rescanned() -> bool:
            return scraped() and samples(text).get(unchanged, 0) >= 2

        wait_until(rescanned, 20, "the worker's metrics never showed the sync and rescans")
        api = samples(client.get("/metrics").text)
        assert api[unchanged] >= samples(text)[unchanged] >= 2
        assert 0 <= api[("docora_rescan_lag_seconds", ())] < 5
        assert families(text) >= WORKER_NAMES
        own = samples(text)
        assert (
            own[("docora_events_sent_total", (("event", "create"), ("outcome", "delivered")))] == 3
        )
        assert own[("docora_blobs_hashed_total", ())] == 3
        assert own[("docora_bytes_hashed_total", ())] == 4
        assert own[("docora_git_fetch_duration_seconds_count", ())] == 1
        assert own[("docora_webhook_duration_seconds_count", ())] == 3
    finally:
        worker.stop()


def test_request_ids_are_echoed_only_when_sane(client):
    from docora.web.observability import request_id_of

    def given(value: bytes) -> str:
        return request_id_of({"headers": [(b"x-request-id", value)]})

    assert given(b"abc-123_XYZ.:/") == "abc-123_XYZ.:/"
    for bad in (b"", b"x" * 129, b"has space", b"tab\there", "é".encode(), b"line\nbreak"):
        assert len(given(bad)) == 32 and given(bad) != bad.decode(errors="replace")
    r = client.get("/version", headers={"X-Request-Id": "trace-me-42"})
    assert r.headers["x-request-id"] == "trace-me-42"
    assert len(client.get("/version").headers["x-request-id"]) == 32
