"""Logs as an operator meets them (SPEC 10), read from real processes' output: in json mode
every line one JSON object with its context and no secret anywhere; one access line per
answered request (findable by the request id a client quotes), probes at debug level only;
expected failures (a receiver answering 500, a remote that went away) without a traceback,
which is kept for bugs."""

from __future__ import annotations

import procrastinate
import pytest

from tests.conftest import ADMIN_TOKEN, RECEIVER_KEY
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo
from tests.processes import docora_processes, json_lines
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SECRET_QUERY_VALUE = "query-value-never-logged"


def _onboard(api, receiver, request_id: str) -> str:
    answer = api.post(
        "/api/apps/onboard",
        headers={**ADMIN, "X-Request-Id": request_id},
        json={
            "app_name": "access log",
            "base_url": receiver.base_url,
            "email": "ops@example.com",
            "client_auth_key": RECEIVER_KEY,
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def _watch_status(api, token: str, rid: str) -> dict:
    return api.get(f"/api/repositories/{rid}", headers={"Authorization": f"Bearer {token}"}).json()


def _defer_a_job_that_hits_a_bug(database_url: str) -> None:
    """A job whose arguments the task does not take: a TypeError inside the worker, which
    is what a bug looks like from the log's point of view."""
    app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(conninfo=database_url))
    with app.open():
        app.configure_task("docora.sync_repository").defer(not_an_argument="bug")


def test_json_access_lines_and_quiet_expected_failures(settings, receiver, tmp_path):
    import httpx

    repo = GitRepo(tmp_path / "srv" / "acme")
    repo.commit("v1", {"a.txt": "a", "b.txt": "b"})
    receiver.fail_first(2)
    with (
        GitHttpServer(tmp_path / "srv", None) as git_server,
        docora_processes(
            settings, tmp_path, ("api", "worker"), LOG_FORMAT="json", MAX_RETRY_ATTEMPTS="3"
        ) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api,
    ):
        token = _onboard(api, receiver, "req-onboard-1")
        auth = {"Authorization": f"Bearer {token}"}
        registered = api.post(
            "/api/repositories",
            json={"github_url": git_server.url_for(repo.remote)},
            headers={**auth, "X-Request-Id": "req-register-1"},
        )
        assert registered.status_code == 201, registered.text
        rid = registered.json()["repository_id"]
        wait_until(lambda: _watch_status(api, token, rid)["status"] == "synced", 60, "no sync")
        denied = api.get("/api/apps/me", headers={"Authorization": "Bearer docora_" + "0" * 64})
        assert denied.status_code == 401 and len(denied.headers["x-request-id"]) == 32
        unknown = api.get("/api/no/such/route", headers={"X-Request-Id": "req-unknown-1"})
        assert unknown.status_code == 404
        read = api.get(
            f"/api/repositories/{rid}?probe={SECRET_QUERY_VALUE}",
            headers={**auth, "X-Request-Id": "req-read-1"},
        )
        assert read.status_code == 200
        api.get("/health")
        # The remote goes away (a kept-alive connection may still reach the stopped
        # server, which then no longer has it): the next sync fails.
        git_server.__exit__(None, None, None)
        repo.remote.rename(repo.remote.with_name("gone.git"))
        api.post(f"/api/repositories/{rid}/resync", headers=auth)
        wait_until(
            lambda: _watch_status(api, token, rid)["last_error"] is not None,
            60,
            "the sync of a remote that went away never failed",
        )
        _defer_a_job_that_hits_a_bug(settings.database_url)
        wait_until(
            lambda: "not_an_argument" in (tmp_path / "worker.log").read_text(),
            30,
            "the buggy job never ran",
        )

    api_lines = json_lines(tmp_path / "api.log")
    worker_lines = json_lines(tmp_path / "worker.log")
    secrets = [settings.encryption_key, ADMIN_TOKEN, RECEIVER_KEY, token]
    for record in api_lines + worker_lines:
        assert {"ts", "level", "logger", "msg"} <= set(record)
        assert not any(s in str(record) for s in secrets), f"a secret in a log line: {record}"
    not_delivered = [r for r in worker_lines if "not delivered" in r["msg"]]
    assert not_delivered and all(
        {"job_id", "app_id", "repository_id", "delivery_id"} <= set(r) for r in not_delivered
    )
    assert any(r.get("repository_id") == rid and "job_id" in r for r in worker_lines)
    access = [r for r in api_lines if r["logger"] == "docora.access"]

    def line_for(request_id: str) -> dict:
        (found,) = [r for r in access if r.get("request_id") == request_id]
        return found

    onboard = line_for("req-onboard-1")
    assert onboard["route"] == "/api/apps/onboard" and onboard["method"] == "POST"
    assert onboard["status"] == 201 and onboard["peer"] == "127.0.0.1"
    assert isinstance(onboard["duration_ms"], float) and "app_id" not in onboard
    register = line_for("req-register-1")
    assert register["status"] == 201 and register["app_id"].startswith("app_")
    reading = line_for("req-read-1")
    assert reading["route"] == "/api/repositories/{repository_id}"
    assert reading["app_id"] == register["app_id"]
    assert line_for("req-unknown-1")["status"] == 404
    assert [r for r in access if r["status"] == 401 and r["route"] == "/api/apps/me"]
    # Every answered request has its line: the request ids the client saw are all there.
    assert not [r for r in access if r["route"] in ("/health", "/metrics")]
    assert SECRET_QUERY_VALUE not in (tmp_path / "api.log").read_text()

    expected = [r for r in worker_lines if "DeliveryFailed" in r["msg"]]
    assert expected, "the receiver's 500 left no line"
    unreachable = [r for r in worker_lines if "GitError" in r["msg"]]
    assert unreachable, "the unreachable remote left no line"
    with_traceback = [r for r in worker_lines if "exc" in r]
    assert all("not_an_argument" in r["exc"] or "TypeError" in r["exc"] for r in with_traceback)
    assert with_traceback, "a bug must keep its traceback"
    assert not [r for r in expected + unreachable if "exc" in r]


def test_text_access_lines_and_no_traceback_for_a_500(settings, receiver, tmp_path):
    import httpx

    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    receiver.fail_first(1)
    with (
        docora_processes(settings, tmp_path, ("all",), LOG_FORMAT="text") as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api,
    ):
        token = _onboard(api, receiver, "req-text-1")
        auth = {"Authorization": f"Bearer {token}"}
        rid = api.post("/api/repositories", json={"github_url": repo.url}, headers=auth).json()[
            "repository_id"
        ]
        wait_until(lambda: _watch_status(api, token, rid)["status"] == "synced", 60, "no sync")
    text = (tmp_path / "all.log").read_text()
    (line,) = [ln for ln in text.splitlines() if "request_id=req-text-1" in ln]
    assert " docora.access: POST /api/apps/onboard 201 " in line
    assert "route=/api/apps/onboard" in line and "peer=127.0.0.1" in line
    assert "DeliveryFailed" in text
    assert "Traceback" not in text
