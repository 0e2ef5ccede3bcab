import asyncio
import threading
import uuid

import psycopg
import pytest

from docora.ids import repository_id
from docora.store import watches
from docora.store.changes import Change, LogEntry, record_acknowledged
from tests.conftest import onboard
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo


@pytest.fixture
def repo(tmp_path):
    r = GitRepo(tmp_path / "remotes" / "acme", name="project", branch="trunk")
    r.commit("initial", {"README.md": "hello\n"})
    return r


def register(client, headers, url, **extra):
    return client.post("/api/repositories", json={"github_url": url, **extra}, headers=headers)


def test_register_detects_default_branch_and_is_stable(client, db, repo):
    _, headers = onboard(client)
    r = register(client, headers, repo.url + "/")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["repository_id"] == repository_id(repo.url, "trunk")
    assert (body["branch"], body["owner"], body["name"]) == ("trunk", "acme", "project")
    assert body["github_url"] == repo.url and body["is_private"] is False
    status = db.execute("SELECT status FROM watches").fetchone()[0]
    assert status == "pending_snapshot"
    # The sync was queued in the same transaction, with its locks.
    job = db.execute("SELECT task_name, lock, status, args FROM procrastinate_jobs").fetchone()
    assert job[0] == "docora.sync_repository"
    assert job[1] == f"repo:{body['repository_id']}" and job[2] == "todo"
    assert job[3] == {"repository_id": body["repository_id"]}


def test_register_explicit_branch(client, repo):
    _, headers = onboard(client)
    repo.branch = "release"
    repo.commit("on release", {"x.txt": "x"})
    r = register(client, headers, repo.url, branch="release")
    assert r.status_code == 201 and r.json()["branch"] == "release"
    assert register(client, headers, repo.url, branch="nope").status_code == 404


def test_register_errors(client, tmp_path, make_settings):
    _, headers = onboard(client)
    r = register(client, headers, "ext::sh -c touch% /tmp/pwned")
    assert r.status_code == 422 and "error" in r.json()
    assert register(client, headers, "https://github.com/a/b?x=1").status_code == 422
    assert register(client, headers, "https://u:p@github.com/a/b").status_code == 422
    r = register(client, headers, f"file://{tmp_path}/missing.git")
    assert r.status_code == 404 and "not found" in r.json()["error"].lower()
    r = register(client, headers, "https://github.com/a/b", github_token="not-a-github-token")
    assert r.status_code == 422 and "not-a-github-token" not in r.text
    assert register(client, headers, "https://github.com/a/b", branch="-x").status_code == 422
    assert client.post("/api/repositories", json={}, headers=headers).status_code == 400
    assert client.post("/api/repositories", json={"github_url": "x"}).status_code == 401


def test_local_repositories_need_the_setting(make_settings, repo):
    from litestar.testing import TestClient

    from docora.asgi import create_app

    with TestClient(create_app(make_settings(ALLOW_LOCAL_REPOSITORIES="false"))) as client:
        _, headers = onboard(client)
        r = register(client, headers, repo.url)
        assert r.status_code == 422 and "not allowed" in r.json()["error"]


def test_empty_repository_can_be_registered(client, tmp_path):
    _, headers = onboard(client)
    empty = GitRepo(tmp_path / "x", name="empty")
    r = register(client, headers, empty.url)
    assert r.status_code == 201 and r.json()["branch"] == "main"


def test_reregistering_resets_the_watch(client, db, repo):
    app_id, headers = onboard(client)
    rid = register(client, headers, repo.url).json()["repository_id"]
    db.execute(
        "UPDATE watches SET status='failed', last_error='boom', retry_count=3, commit_sha='abc'"
    )
    db.execute(
        "INSERT INTO delivered_files (app_id, repository_id, path, sha) VALUES (%s,%s,'a','x')",
        (app_id, rid),
    )
    assert register(client, headers, repo.url).status_code == 201
    row = db.execute(
        "SELECT status, last_error, retry_count, commit_sha, generation FROM watches"
    ).fetchone()
    assert row == ("pending_snapshot", None, 0, None, 1)
    assert db.execute("SELECT count(*) FROM delivered_files").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM repositories").fetchone()[0] == 1


def test_concurrent_registrations_share_one_repository_row(settings, db, repo):
    from litestar.testing import TestClient

    from docora.asgi import create_app

    with TestClient(create_app(settings)) as client:
        apps = [onboard(client, app_name=f"app {i}")[1] for i in range(6)]
        results = []

        def go(headers):
            results.append(register(client, headers, repo.url).status_code)

        threads = [threading.Thread(target=go, args=(h,)) for h in apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert results == [201] * 6
    assert db.execute("SELECT count(*) FROM repositories").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM watches").fetchone()[0] == 6
    # One waiting sync for the repository, whatever the number of registrations.
    assert db.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1


def test_list_get_resync_delete(client, db, repo):
    _app_id, headers = onboard(client)
    _, other = onboard(client, app_name="other app")
    rid = register(client, headers, repo.url).json()["repository_id"]
    listing = client.get("/api/repositories", headers=headers).json()["repositories"]
    assert [w["repository_id"] for w in listing] == [rid]
    assert client.get("/api/repositories", headers=other).json() == {"repositories": []}

    detail = client.get(f"/api/repositories/{rid}", headers=headers).json()
    assert detail["status"] == "pending_snapshot" and detail["files_delivered"] == 0
    assert detail["pending_changes"] is None
    assert detail["circuit_breaker"] == {
        "status": "closed",
        "consecutive_failures": 0,
        "cooldown_until": None,
    }
    # Another app cannot see or touch this watch.
    assert client.get(f"/api/repositories/{rid}", headers=other).status_code == 404
    assert client.delete(f"/api/repositories/{rid}", headers=other).status_code == 404
    assert client.get("/api/repositories/not-an-id", headers=headers).status_code == 400

    db.execute("UPDATE watches SET status = 'failed'")
    r = client.post(f"/api/repositories/{rid}/resync", headers=headers)
    assert r.status_code == 202
    assert db.execute("SELECT status FROM watches").fetchone()[0] == "failed"
    jobs = db.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()
    assert jobs[0] == 1  # the registration's sync is still waiting: no second one

    assert client.delete(f"/api/repositories/{rid}", headers=headers).status_code == 204
    assert client.get(f"/api/repositories/{rid}", headers=headers).status_code == 404
    assert client.delete(f"/api/repositories/{rid}", headers=headers).status_code == 404


def test_pending_changes_and_files_delivered(client, db, database_url, repo):
    """The counts are kept with the delivered state: acknowledgements move files_delivered
    and pending_changes; the worker's refresh counts what the app lacks of the snapshot."""
    app_id, headers = onboard(client)
    rid = register(client, headers, repo.url).json()["repository_id"]
    db.execute(
        "INSERT INTO snapshots (repository_id, commit_sha, file_count) VALUES (%s, 'c1', 3)",
        (rid,),
    )
    for path, sha in (("a", "1"), ("b", "2"), ("c", "3")):
        db.execute(
            "INSERT INTO snapshot_files (repository_id, path, sha, size, blob_id, is_binary) "
            "VALUES (%s, %s, %s, 1, 'blob', false)",
            (rid, path, sha),
        )
    generation = db.execute(
        "SELECT generation FROM watches WHERE repository_id = %s", (rid,)
    ).fetchone()[0]

    def change(event: str, path: str, sha: str) -> Change:
        return Change(event, path, sha, 1, "blob", False, None)

    def entry(c: Change) -> LogEntry:
        return LogEntry(
            app_id, rid, uuid.uuid4(), c.event, c.path, c.sha, "c1", "delivered", 200, 1, 1
        )

    async def record(*items: Change) -> bool:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await record_acknowledged(
                conn, [(c, entry(c)) for c in items], generation=generation
            )

    async def refresh() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await watches.refresh_pending(conn, rid, [app_id])

    def detail() -> tuple[int, int | None]:
        body = client.get(f"/api/repositories/{rid}", headers=headers).json()
        return body["files_delivered"], body["pending_changes"]

    assert detail() == (0, None)  # no snapshot when the watch was made
    asyncio.run(record(change("create", "a", "1"), change("create", "b", "old")))
    asyncio.run(record(change("create", "gone", "9")))
    asyncio.run(refresh())
    assert detail() == (3, 3)  # b changed, c is new, gone was deleted
    asyncio.run(record(change("delete", "gone", "9"), change("update", "b", "2")))
    assert detail() == (2, 1)
    asyncio.run(record(change("create", "c", "3")))
    assert detail() == (3, 0)
    asyncio.run(refresh())
    assert detail() == (3, 0)
    # A reset generation records nothing and moves no count.
    db.execute("UPDATE watches SET generation = generation + 1 WHERE repository_id = %s", (rid,))
    assert asyncio.run(record(change("create", "d", "4"))) is False
    assert detail() == (3, 0)


@pytest.fixture
def private_server(tmp_path):
    root = tmp_path / "served"
    repo = GitRepo(root / "acme", name="secret")
    repo.commit("initial", {"a.txt": "private\n"})
    with GitHttpServer(root, passwords={"right-token"}) as server:
        yield server, server.url_for(repo.remote)


def test_private_repository_needs_a_working_token(client, db, private_server):
    _server, url = private_server
    _, headers = onboard(client)
    assert register(client, headers, url).status_code == 404
    r = register(client, headers, url, github_token="wrong-token")
    assert r.status_code == 404 and "wrong-token" not in r.text
    r = register(client, headers, url, github_token="right-token")
    assert r.status_code == 201, r.text
    assert r.json()["is_private"] is True
    stored = db.execute("SELECT token_enc FROM watches").fetchone()[0]
    assert b"right-token" not in bytes(stored)


def test_token_update(client, db, private_server):
    _server, url = private_server
    _, headers = onboard(client)
    rid = register(client, headers, url, github_token="right-token").json()["repository_id"]
    db.execute(
        "UPDATE repositories SET consecutive_failures = 5, cooldown_until = now() + interval '1h'"
    )
    db.execute("UPDATE watches SET status = 'failed', last_error = 'auth'")
    path = f"/api/repositories/{rid}/token"
    r = client.patch(path, json={"github_token": "wrong-token"}, headers=headers)
    assert r.status_code == 422 and "wrong-token" not in r.text
    r = client.patch(path, json={"github_token": "right-token"}, headers=headers)
    assert r.status_code == 200 and r.json() == {"message": "Token updated successfully"}
    assert db.execute("SELECT status, last_error FROM watches").fetchone() == (
        "pending_snapshot",
        None,
    )
    assert db.execute(
        "SELECT consecutive_failures, cooldown_until FROM repositories"
    ).fetchone() == (0, None)
    assert client.patch(path, json={}, headers=headers).status_code == 400
