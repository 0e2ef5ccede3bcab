"""A rolling deployment under a steady stream of commits (SPEC 12): two API processes and
three workers, each restarted in turn (SIGTERM, wait, start, health), lose nothing and need
no operator action; the only API errors come from the process being restarted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN, RECEIVER_KEY
from tests.gitrepo import fast_import, git
from tests.hosts import ApiProcess, WorkerHost, remote_tree, watch_trees
from tests.waiting import wait_until
from tests.worker import wait_for_workers

pytestmark = pytest.mark.slow

REPOSITORIES = 5
COMMIT_EVERY_S = 0.5
STREAM_S = 60


class Balancer:
    """What a load balancer in front of the APIs does: each call goes to the next API, and
    to the other one when that fails. Failures are noted with the API and the moment."""

    def __init__(self, apis: list[ApiProcess]) -> None:
        self.apis = apis
        self.turn = 0
        self.errors: list[tuple[int, float, str]] = []
        self.lock = threading.Lock()

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        with self.lock:
            self.turn += 1
            first = self.turn % len(self.apis)
        for attempt in range(len(self.apis) * 3):
            index = (first + attempt) % len(self.apis)
            try:
                r = httpx.request(method, self.apis[index].base_url + path, timeout=10, **kwargs)
                if r.status_code < 500:
                    return r
                error = f"HTTP {r.status_code}"
            except httpx.TransportError as exc:
                error = type(exc).__name__
            with self.lock:
                self.errors.append((index, time.monotonic(), error))
            time.sleep(0.05)
        raise AssertionError(f"no API answered {method} {path}")


@pytest.mark.timeout(420)
def test_a_rolling_restart_under_a_stream_of_commits_loses_nothing(
    settings, receiver, db, tmp_path
):
    apis = [ApiProcess(settings) for _ in range(2)]
    hosts = [WorkerHost(settings, tmp_path, f"host{i}", SHUTDOWN_GRACE_MS="5000") for i in range(3)]
    balancer = Balancer(apis)
    try:
        for api in apis:
            api.start()
        for host in hosts:
            host.start()
        wait_for_workers(settings.database_url, 3)
        admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        apps = []
        for i in range(2):
            r = balancer.call(
                "POST",
                "/api/apps/onboard",
                headers=admin,
                json={
                    "app_name": f"app {i}",
                    "base_url": receiver.base_url,
                    "email": "ops@example.com",
                    "client_auth_key": RECEIVER_KEY,
                },
            )
            assert r.status_code == 201, r.text
            apps.append({"Authorization": f"Bearer {r.json()['token']}"})
        remotes = [tmp_path / "acme" / f"r{i}.git" for i in range(REPOSITORIES)]
        heads = {}
        for remote in remotes:
            heads[remote] = fast_import(remote, [("docs/index.md", b"0\n")])
        rids: dict[Path, str] = {}
        for remote in remotes:
            for headers in apps:
                r = balancer.call(
                    "POST",
                    "/api/repositories",
                    headers=headers,
                    json={"github_url": f"file://{remote}"},
                )
                assert r.status_code == 201, r.text
                rids[remote] = r.json()["repository_id"]

        streaming = threading.Event()
        commits = 0

        def stream() -> None:
            nonlocal commits
            ends = time.monotonic() + STREAM_S
            while time.monotonic() < ends:
                remote = remotes[commits % REPOSITORIES]
                commits += 1
                files = [
                    ("docs/index.md", f"{commits}\n".encode()),
                    (f"docs/c{commits}.md", f"commit {commits}\n".encode()),
                ]
                heads[remote] = fast_import(
                    remote, files, parent=heads[remote], message=f"c{commits}"
                )
                for headers in apps:  # as a push hook would: a sync now
                    r = balancer.call(
                        "POST", f"/api/repositories/{rids[remote]}/resync", headers=headers
                    )
                    assert r.status_code == 202, r.text
                time.sleep(COMMIT_EVERY_S)
            streaming.set()

        streamer = threading.Thread(target=stream, daemon=True)
        streamer.start()
        time.sleep(3)
        windows: dict[int, tuple[float, float]] = {}
        for index, api in enumerate(apis):
            started = time.monotonic()
            api.stop()
            api.start()
            windows[index] = (started, time.monotonic())
            time.sleep(2)
        for host in hosts:
            host.stop()
            host.start()
            wait_for_workers(settings.database_url, 3)
            time.sleep(2)
        streamer.join(STREAM_S + 60)
        assert streaming.is_set(), "the commit stream did not finish"

        for remote in remotes:
            head = git("rev-parse", "main", cwd=remote).strip()
            for headers in apps:

                def synced(headers=headers, remote=remote, head=head) -> bool:
                    body = balancer.call(
                        "GET", f"/api/repositories/{rids[remote]}", headers=headers
                    ).json()
                    return body["status"] == "synced" and body["commit_sha"] == head

                wait_until(synced, 120, f"{remote.name} never synced at its last commit")
        app_ids = [balancer.call("GET", "/api/apps/me", headers=h).json()["app_id"] for h in apps]
        trees = watch_trees(receiver.state.events)
        for remote in remotes:
            for app_id in app_ids:
                assert trees[(app_id, rids[remote])] == remote_tree(remote), remote.name
        outside = [
            (index, at, error)
            for index, at, error in balancer.errors
            if not windows[index][0] <= at <= windows[index][1]
        ]
        print(
            f"\n{commits} commits; API errors {len(balancer.errors)}, all while their process "
            f"restarted: {not outside}"
        )
        assert outside == []
        for api in apis:
            api.stop()
        for host in hosts:
            host.stop()
    finally:
        for api in apis:
            api.close()
        for host in hosts:
            host.close()
