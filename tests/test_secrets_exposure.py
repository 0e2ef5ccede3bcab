"""Tokens and signing keys never show up in argv, logs, mirror config or API output."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from tests.conftest import RECEIVER_KEY
from tests.e2e import register_app, wait_status
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo
from tests.worker import BackgroundWorker

TOKEN = "glpat-very-secret-token-0123456789"
WRONG_TOKEN = "glpat-wrong-secret-token-9876543210"


def _all_cmdlines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines


def test_token_never_in_argv_logs_config_or_responses(settings, client, receiver, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    root = tmp_path / "served"
    repo = GitRepo(root / "acme", name="private")
    repo.commit("v1", {"a.txt": "a"})
    seen: list[str] = []
    stop = threading.Event()

    def watch_processes() -> None:
        while not stop.is_set():
            seen.extend(line for line in _all_cmdlines() if "git" in line)
            time.sleep(0.002)

    spy = threading.Thread(target=watch_processes, daemon=True)
    spy.start()
    try:
        with GitHttpServer(root, passwords={TOKEN}) as server, BackgroundWorker(settings):
            _, headers = register_app(client, receiver)
            url = server.url_for(repo.remote)
            r = client.post(
                "/api/repositories",
                json={"github_url": url, "github_token": TOKEN},
                headers=headers,
            )
            assert r.status_code == 201
            rid = r.json()["repository_id"]
            wait_status(client, headers, rid, "synced")
            # The error paths must not echo a token either.
            wrong = client.post(
                "/api/repositories",
                json={"github_url": url, "github_token": WRONG_TOKEN},
                headers=headers,
            )
            wrong_update = client.patch(
                f"/api/repositories/{rid}/token",
                json={"github_token": WRONG_TOKEN},
                headers=headers,
            )
            assert wrong.status_code == 404 and wrong_update.status_code == 422
            outputs = [
                r.text,
                wrong.text,
                wrong_update.text,
                client.get(f"/api/repositories/{rid}", headers=headers).text,
                client.get("/api/deliveries", headers=headers).text,
            ]
            assert server.seen_passwords  # the token really was used
    finally:
        stop.set()
        spy.join()
    assert any("ls-remote" in line or "fetch" in line for line in seen)  # git was observed
    assert not [line for line in seen if TOKEN in line or WRONG_TOKEN in line]
    logged = caplog.text  # messages and any formatted tracebacks
    for secret in (TOKEN, WRONG_TOKEN, RECEIVER_KEY):
        assert secret not in logged
        for text in outputs:
            assert secret not in text
    for config in Path(settings.repos_base_path).rglob("config"):
        assert TOKEN not in config.read_text()
