"""LOG_FORMAT=json from real processes: every line one JSON object with its context, and
no secret anywhere, through a full sync, a failed delivery and an auth failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, RECEIVER_KEY
from tests.gitrepo import GitRepo
from tests.test_cli import free_port, wait_healthy
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_json_logs_carry_context_and_no_secret(settings, receiver, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a", "b.txt": "b"})
    failures = {"left": 2}

    def respond(event, body):
        if failures["left"]:
            failures["left"] -= 1
            return 500
        return None

    receiver.state.respond = respond
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "ENCRYPTION_KEY": settings.encryption_key,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ALLOW_LOCAL_REPOSITORIES": "true",
        "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "REPOS_BASE_PATH": settings.repos_base_path,
        "RETRY_BASE_DELAY_MS": "100",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    logs = {name: tmp_path / f"{name}.log" for name in ("api", "worker")}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "docora", name],
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
        )
        for name, log in logs.items()
    ]
    token = None
    try:
        wait_healthy(port, processes[0])
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            onboarded = api.post(
                "/api/apps/onboard",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Request-Id": "req-onboard-1"},
                json={
                    "app_name": "json logs",
                    "base_url": receiver.base_url,
                    "email": "ops@example.com",
                    "client_auth_key": RECEIVER_KEY,
                },
            )
            assert onboarded.headers["x-request-id"] == "req-onboard-1"
            token = onboarded.json()["token"]
            auth = {"Authorization": f"Bearer {token}"}
            rid = api.post("/api/repositories", json={"github_url": repo.url}, headers=auth).json()[
                "repository_id"
            ]
            denied = api.get("/api/apps/me", headers={"Authorization": "Bearer docora_" + "0" * 64})
            assert denied.status_code == 401 and len(denied.headers["x-request-id"]) == 32
            wait_until(
                lambda: (
                    api.get(f"/api/repositories/{rid}", headers=auth).json()["status"] == "synced"
                ),
                60,
                "never synced",
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(60)
    time.sleep(0.1)
    secrets = [settings.encryption_key, ADMIN_TOKEN, RECEIVER_KEY, token]
    records = []
    for name, log in logs.items():
        for line in log.read_text().splitlines():
            assert line.startswith("{"), f"{name} wrote a line that is not JSON: {line!r}"
            record = json.loads(line)
            assert {"ts", "level", "logger", "msg"} <= set(record)
            assert not any(s and s in line for s in secrets), f"a secret in {name}'s log: {line}"
            records.append(record)
    loggers = {r["logger"] for r in records}
    assert {"uvicorn.error", "procrastinate.worker", "docora.jobs.sync"} & loggers
    failed = [r for r in records if "not delivered" in r["msg"]]
    assert failed and all(
        {"job_id", "app_id", "repository_id", "delivery_id"} <= set(r) for r in failed
    )
    assert any(r.get("repository_id") == rid and "job_id" in r for r in records)
