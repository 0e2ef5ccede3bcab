import uuid

from tests.conftest import onboard
from tests.gitrepo import GitRepo


def seed(db, app_id, rid, count, status="delivered"):
    for i in range(count):
        db.execute(
            "INSERT INTO deliveries (app_id, repository_id, delivery_id, event, path, sha, "
            "commit_sha, status, status_code, latency_ms, attempt) "
            "VALUES (%s, %s, %s, 'create', %s, 'sha', 'c', %s, 200, 3, 1)",
            (app_id, rid, uuid.uuid4(), f"file-{i}", status),
        )


def test_pages_filters_and_isolation(client, db, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("init", {"a": "a"})
    app_id, headers = onboard(client)
    other_id, other = onboard(client, app_name="other")
    rid = client.post("/api/repositories", json={"github_url": repo.url}, headers=headers).json()[
        "repository_id"
    ]
    seed(db, app_id, rid, 5)
    seed(db, app_id, rid, 2, status="failed")
    seed(db, other_id, rid, 3)

    page = client.get("/api/deliveries?limit=4", headers=headers).json()
    assert len(page["deliveries"]) == 4 and page["next_cursor"]
    ids = [int(d["id"]) for d in page["deliveries"]]
    assert ids == sorted(ids, reverse=True)
    rest = client.get(f"/api/deliveries?limit=4&cursor={page['next_cursor']}", headers=headers)
    assert len(rest.json()["deliveries"]) == 3 and rest.json()["next_cursor"] is None

    failed = client.get("/api/deliveries?status=failed", headers=headers).json()["deliveries"]
    assert len(failed) == 2 and {d["status"] for d in failed} == {"failed"}
    by_repo = client.get(f"/api/deliveries?repository_id={rid}", headers=headers).json()
    assert len(by_repo["deliveries"]) == 7
    first = by_repo["deliveries"][0]
    assert set(first) >= {"delivery_id", "event", "path", "sha", "status_code", "latency_ms"}
    assert len(client.get("/api/deliveries", headers=other).json()["deliveries"]) == 3

    for bad in ("limit=0", "limit=201", "status=nope", "cursor=abc", "repository_id=x"):
        r = client.get(f"/api/deliveries?{bad}", headers=headers)
        assert r.status_code == 400 and "error" in r.json(), bad
    assert client.get("/api/deliveries").status_code == 401
