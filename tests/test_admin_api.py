"""The operator API (SPEC section 9) against a real database: every route, its auth
refusals and its paging edges."""

from __future__ import annotations

import pytest

from docora.asgi import create_app
from tests.admin import (
    ADMIN,
    console_settings,
    https_client,
    login,
    populate,
)
from tests.conftest import ADMIN_TOKEN, onboard
from tests.e2e import all_pages

ADMIN_ROUTES = [
    ("GET", "/api/admin/overview"),
    ("GET", "/api/admin/apps"),
    ("GET", "/api/admin/apps/app_000000000000000000000000"),
    ("DELETE", "/api/admin/apps/app_000000000000000000000000"),
    ("POST", "/api/admin/apps/app_000000000000000000000000/token"),
    ("GET", "/api/admin/watches"),
    ("POST", "/api/admin/watches/app_000000000000000000000000/repo_000000000000000000000000/retry"),
    (
        "POST",
        "/api/admin/watches/app_000000000000000000000000/repo_000000000000000000000000/resync",
    ),
    ("POST", "/api/admin/operations"),
    ("GET", "/api/admin/operations/op_000000000000000000000000"),
    ("POST", "/api/admin/operations/op_000000000000000000000000/cancel"),
    ("GET", "/api/admin/deliveries"),
    ("GET", "/api/admin/queue"),
    ("GET", "/api/admin/workers"),
    ("GET", "/api/admin/trends/deliveries"),
    ("GET", "/api/admin/trends/repositories/repo_000000000000000000000000"),
]


@pytest.fixture
def admin_client(make_settings):
    with https_client(create_app(console_settings(make_settings))) as client:
        yield client


def test_every_route_is_documented_and_tagged_admin(admin_client):
    schema = admin_client.get("/schema/openapi.json").json()
    documented = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if path.startswith("/api/admin")
        for method, operation in item.items()
        if "admin" in operation.get("tags", [])
    }
    expected = {
        (
            m,
            p.replace("app_000000000000000000000000", "{app_id}")
            .replace("repo_000000000000000000000000", "{repository_id}")
            .replace("op_000000000000000000000000", "{operation_id}"),
        )
        for m, p in ADMIN_ROUTES
    }
    assert documented == expected


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_every_route_refuses_without_operator_credentials(admin_client, method, path):
    _, app_headers = onboard(admin_client)
    for headers in ({}, {"Authorization": "Bearer wrong-admin-token-000"}, app_headers):
        r = admin_client.request(method, path, headers=headers, json={"action": "retry"})
        assert r.status_code == 401, (headers, r.text)
        assert set(r.json()) == {"error"}


def test_a_console_session_needs_its_csrf_token_to_change_anything(admin_client):
    csrf = login(admin_client)
    assert admin_client.get("/api/admin/overview").status_code == 200
    r = admin_client.post("/api/admin/operations", json={"action": "retry"})
    assert r.status_code == 403 and "X-CSRF-Token" in r.json()["error"]
    r = admin_client.post(
        "/api/admin/operations", json={"action": "retry"}, headers={"X-CSRF-Token": "forged"}
    )
    assert r.status_code == 403
    r = admin_client.post(
        "/api/admin/operations", json={"action": "retry"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 202


def test_overview_counts_everything(admin_client, db):
    populate(admin_client, db)
    db.execute("UPDATE watches SET next_check_at = now() + interval '1 minute'")
    db.execute(
        "UPDATE watches SET next_check_at = now() - interval '90 seconds' WHERE repository_id = "
        "(SELECT min(repository_id) FROM watches)"
    )
    body = admin_client.get("/api/admin/overview", headers=ADMIN).json()
    assert 89 <= body["rescan_lag_seconds"] <= 120  # the oldest due check's wait
    assert body["apps"] == 3 and body["repositories"] == 4
    assert body["watches"] == {
        "pending_snapshot": 1,
        "scanning": 1,
        "synced": 1,
        "retrying": 1,
        "failed": 1,
    }
    assert body["circuit_breakers_open"] == 1
    assert body["queue"] == {"todo": 0, "doing": 0, "failed": 0}
    assert body["workers_alive"] == 0
    assert body["deliveries_last_hour"] == {"succeeded": 0, "failed": 0}
    assert body["generated_at"].endswith("Z")


def _all_pages(client, url: str, limit: int) -> list[dict]:
    return all_pages(client, url, ADMIN, limit)[1]


def test_apps_search_sort_and_page(admin_client, db):
    data = populate(admin_client, db)
    for i in range(4):
        onboard(admin_client, app_name=f"zulu {i}", email=f"z{i}@example.org")
    names = [a["app_name"] for a in _all_pages(admin_client, "/api/admin/apps?sort=app_name", 2)]
    assert names == sorted(names, key=str.lower) and len(names) == 7
    desc = [
        a["app_name"]
        for a in _all_pages(admin_client, "/api/admin/apps?sort=app_name&order=desc", 3)
    ]
    assert desc == names[::-1]
    by_failed = _all_pages(admin_client, "/api/admin/apps?sort=failed&order=desc", 2)
    assert by_failed[0]["app_name"] == "alpha" and by_failed[0]["failed"] == 1
    assert by_failed[0]["repositories"] == 3
    created = _all_pages(admin_client, "/api/admin/apps?sort=created_at", 4)
    assert [a["created_at"] for a in created] == sorted(a["created_at"] for a in created)
    found = admin_client.get("/api/admin/apps?search=ZULU", headers=ADMIN).json()["items"]
    assert len(found) == 4
    assert (
        admin_client.get("/api/admin/apps?search=z2@example", headers=ADMIN).json()["items"][0][
            "app_name"
        ]
        == "zulu 2"
    )
    by_id = admin_client.get(f"/api/admin/apps?search={data['apps']['bravo']}", headers=ADMIN)
    assert [a["app_name"] for a in by_id.json()["items"]] == ["bravo"]
    assert admin_client.get("/api/admin/apps?search=100%25", headers=ADMIN).json()["items"] == []


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "cursor=not-a-cursor", "cursor=WzFd", "sort=nope", "order=up"],
)
def test_paging_edges_are_400(admin_client, query):
    r = admin_client.get(f"/api/admin/apps?{query}", headers=ADMIN)
    assert r.status_code == 400 and set(r.json()) == {"error"}


def test_app_detail(admin_client, db):
    data = populate(admin_client, db)
    body = admin_client.get(f"/api/admin/apps/{data['apps']['alpha']}", headers=ADMIN).json()
    assert body["app_name"] == "alpha" and body["deliveries_logged"] == 0
    assert body["watches"] == {
        "pending_snapshot": 0,
        "scanning": 0,
        "synced": 1,
        "retrying": 1,
        "failed": 1,
    }
    assert "token" not in str(body).lower() and "client_auth_key" not in body
    missing = admin_client.get("/api/admin/apps/app_ffffffffffffffffffffffff", headers=ADMIN)
    assert missing.status_code == 404


def test_watches_failing_first_with_filters_and_pages(admin_client, db):
    data = populate(admin_client, db)
    items = _all_pages(admin_client, "/api/admin/watches", 2)
    assert [w["status"] for w in items] == [
        "failed",
        "pending_snapshot",
        "retrying",
        "scanning",
        "synced",
    ]
    failed = items[0]
    assert failed["app_name"] == "alpha" and failed["last_error"] == "git auth: the host refused"
    assert failed["circuit_breaker"]["status"] == "open" and failed["retry_count"] == 3
    assert failed["files_delivered"] == 0 and failed["pending_changes"] is None
    several = admin_client.get("/api/admin/watches?status=failed,retrying", headers=ADMIN).json()
    assert {w["status"] for w in several["items"]} == {"failed", "retrying"}
    mine = admin_client.get(f"/api/admin/watches?app_id={data['apps']['bravo']}", headers=ADMIN)
    assert {w["app_name"] for w in mine.json()["items"]} == {"bravo"}
    shared = admin_client.get(
        f"/api/admin/watches?repository_id={data['repos']['shared']}", headers=ADMIN
    ).json()["items"]
    assert len(shared) == 2
    assert (
        len(admin_client.get("/api/admin/watches?search=acme/site", headers=ADMIN).json()["items"])
        == 1
    )
    assert admin_client.get("/api/admin/watches?status=bogus", headers=ADMIN).status_code == 400


def test_retry_and_resync_one_watch(admin_client, db):
    data = populate(admin_client, db)
    alpha, broken, docs = data["apps"]["alpha"], data["repos"]["broken"], data["repos"]["docs"]
    r = admin_client.post(f"/api/admin/watches/{alpha}/{broken}/retry", headers=ADMIN)
    assert r.status_code == 202
    row = db.execute(
        "SELECT status, last_error, retry_count FROM watches"
        " WHERE app_id = %s AND repository_id = %s",
        (alpha, broken),
    ).fetchone()
    assert row == ("pending_snapshot", None, 0)
    breaker = db.execute(
        "SELECT cooldown_until FROM repositories WHERE id = %s", (broken,)
    ).fetchone()
    assert breaker == (None,)
    db.execute(
        "INSERT INTO delivered_files (app_id, repository_id, path, sha) VALUES (%s, %s, 'a', 's')",
        (alpha, docs),
    )
    before = db.execute(
        "SELECT generation FROM watches WHERE repository_id = %s", (docs,)
    ).fetchone()[0]
    r = admin_client.post(f"/api/admin/watches/{alpha}/{docs}/resync", headers=ADMIN)
    assert r.status_code == 202
    assert db.execute("SELECT count(*) FROM delivered_files").fetchone()[0] == 0
    assert (
        db.execute("SELECT generation FROM watches WHERE repository_id = %s", (docs,)).fetchone()[0]
        == before + 1
    )
    # Resync twice: still one waiting sync per repository.
    admin_client.post(f"/api/admin/watches/{alpha}/{docs}/resync", headers=ADMIN)
    waiting = db.execute(
        "SELECT lock, count(*) FROM procrastinate_jobs WHERE status = 'todo' GROUP BY lock"
    ).fetchall()
    assert all(count == 1 for _, count in waiting) and len(waiting) == 2
    nobody = f"/api/admin/watches/{data['apps']['charlie']}/{docs}/retry"
    assert admin_client.post(nobody, headers=ADMIN).status_code == 404


def test_rotating_a_token_stops_the_old_one_at_once(admin_client):
    app_id, old = onboard(admin_client)
    assert admin_client.get("/api/apps/me", headers=old).status_code == 200
    r = admin_client.post(f"/api/admin/apps/{app_id}/token", headers=ADMIN)
    assert r.status_code == 200
    new = {"Authorization": f"Bearer {r.json()['token']}"}
    assert admin_client.get("/api/apps/me", headers=old).status_code == 401
    assert admin_client.get("/api/apps/me", headers=new).json()["app_id"] == app_id
    assert (
        r.json()["token"] not in admin_client.get(f"/api/admin/apps/{app_id}", headers=ADMIN).text
    )


def test_deleting_an_app_takes_what_only_it_had(admin_client, db):
    data = populate(admin_client, db)
    alpha = data["apps"]["alpha"]
    db.execute(
        "INSERT INTO delivered_files (app_id, repository_id, path, sha) VALUES (%s, %s, 'a', 's')",
        (alpha, data["repos"]["docs"]),
    )
    db.execute(
        "INSERT INTO deliveries (app_id, repository_id, delivery_id, event, status)"
        " VALUES (%s, %s, gen_random_uuid(), 'create', 'delivered')",
        (alpha, data["repos"]["docs"]),
    )
    assert admin_client.delete(f"/api/admin/apps/{alpha}", headers=ADMIN).status_code == 204
    remaining = {r[0] for r in db.execute("SELECT id FROM repositories")}
    assert remaining == {data["repos"]["site"], data["repos"]["shared"]}  # shared stays
    for table in ("delivered_files", "deliveries"):
        assert db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM watches WHERE app_id = %s", (alpha,)).fetchone()[0] == 0
    mirrors = db.execute(
        "SELECT args->>'name' FROM procrastinate_jobs WHERE task_name = 'docora.forget_mirror'"
    ).fetchall()
    assert sorted(m[0] for m in mirrors) == ["broken", "docs"]
    assert admin_client.delete(f"/api/admin/apps/{alpha}", headers=ADMIN).status_code == 404


def test_operations_validate_and_report(admin_client, db):
    data = populate(admin_client, db)
    for body, status in (
        ({"action": "explode"}, 400),
        ({"action": "retry", "status": "weird"}, 400),
        ({"action": "retry", "extra": 1}, 400),
        ({"action": "retry", "app_id": "app_ffffffffffffffffffffffff"}, 404),
    ):
        r = admin_client.post("/api/admin/operations", json=body, headers=ADMIN)
        assert r.status_code == status, (body, r.text)
    r = admin_client.post("/api/admin/operations", json={"action": "retry"}, headers=ADMIN)
    assert r.status_code == 202 and r.json()["total"] == 2  # failed + retrying by default
    resync = admin_client.post(
        "/api/admin/operations",
        json={"action": "resync", "app_id": data["apps"]["bravo"]},
        headers=ADMIN,
    ).json()
    assert resync["total"] == 2
    op = admin_client.get(f"/api/admin/operations/{resync['operation_id']}", headers=ADMIN).json()
    assert op["status"] == "running" and op["completed"] == 0 and op["action"] == "resync"
    cancelled = admin_client.post(
        f"/api/admin/operations/{resync['operation_id']}/cancel", headers=ADMIN
    )
    assert cancelled.status_code == 202
    missing = admin_client.get("/api/admin/operations/op_ffffffffffffffffffffffff", headers=ADMIN)
    assert missing.status_code == 404


def test_deliveries_across_apps_with_filters(admin_client, db):
    data = populate(admin_client, db)
    rows = [
        (data["apps"]["alpha"], data["repos"]["docs"], "create", "delivered", None, "2 hours"),
        (data["apps"]["alpha"], data["repos"]["docs"], "update", "failed", "HTTP 503", "1 hour"),
        (data["apps"]["bravo"], data["repos"]["site"], "delete", "delivered", None, "1 minute"),
    ]
    for app_id, rid, event, status, error, ago in rows:
        db.execute(
            "INSERT INTO deliveries (app_id, repository_id, delivery_id, event, status, error,"
            " status_code, created_at) VALUES (%s, %s, gen_random_uuid(), %s, %s, %s, 200,"
            " now() - %s::interval)",
            (app_id, rid, event, status, error, ago),
        )
    every = _all_pages(admin_client, "/api/admin/deliveries", 2)
    assert [d["event"] for d in every] == ["delete", "update", "create"]  # newest first
    assert set(every[0]) >= {
        "delivery_id",
        "outcome",
        "status_code",
        "attempt",
        "duration_ms",
        "error",
    }

    def events(query: str) -> list[str]:
        items = admin_client.get(f"/api/admin/deliveries?{query}", headers=ADMIN).json()["items"]
        return [d["event"] for d in items]

    assert events("outcome=failed") == ["update"]
    assert events(f"app_id={data['apps']['bravo']}") == ["delete"]
    assert events("event=create") == ["create"]
    assert events(f"repository_id={data['repos']['docs']}") == ["update", "create"]
    since = admin_client.get(
        "/api/admin/deliveries?since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z", headers=ADMIN
    )
    assert since.json()["items"] == []
    assert (
        admin_client.get("/api/admin/deliveries?since=yesterday", headers=ADMIN).status_code == 400
    )


def test_queue_and_workers(admin_client, db):
    data = populate(admin_client, db)
    admin_client.post("/api/admin/operations", json={"action": "retry"}, headers=ADMIN)
    admin_client.post(
        f"/api/admin/watches/{data['apps']['bravo']}/{data['repos']['site']}/resync", headers=ADMIN
    )
    queue = admin_client.get("/api/admin/queue", headers=ADMIN).json()
    assert queue["counts"]["todo"] == 2 and set(queue["counts"]) == {
        "todo",
        "doing",
        "succeeded",
        "failed",
        "cancelled",
        "aborted",
    }
    tasks = {j["task"] for j in queue["items"]}
    assert tasks == {"docora.run_operation", "docora.sync_repository"}
    only = admin_client.get("/api/admin/queue?task=docora.sync_repository", headers=ADMIN).json()
    assert [j["args"] for j in only["items"]] == [{"repository_id": data["repos"]["site"]}]
    assert admin_client.get("/api/admin/queue?status=odd", headers=ADMIN).status_code == 400
    assert len(_all_pages(admin_client, "/api/admin/queue", 1)) == 2
    assert admin_client.get("/api/admin/workers", headers=ADMIN).json() == {"items": []}


def test_admin_token_unset_and_console_off_refuse_everything(make_settings):
    from litestar.testing import TestClient

    settings = make_settings(ADMIN_TOKEN="")
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/admin/overview").status_code == 401
        r = client.get("/api/admin/overview", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert r.status_code == 401
        assert client.get("/admin/login").status_code == 404
        assert client.get("/admin/").status_code == 404
