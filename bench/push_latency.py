"""Push hook -> the app's first webhook, for a one-file change, with an idle worker.

    python bench/push_latency.py [--pushes 20]

Runs `docora api` and `docora worker` as separate processes on an embedded Postgres (or
DATABASE_URL), polling off (SCAN_INTERVAL_MS one hour), the reference receiver (it parses
each body and verifies both signatures) and a local bare repository. Each round commits one
changed file, posts a signed GitHub push hook, and times until the receiver holds the new
content. Prints p50, p90 and the worst of the rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import ADMIN, KEY, free_port, wait_http  # noqa: E402
from docora.db import embedded_postgres  # noqa: E402
from docora.migrate import apply_migrations  # noqa: E402
from docora.receiver import WebhookReceiver  # noqa: E402
from tests.gitrepo import GitRepo  # noqa: E402

SECRET = "bench-push-secret-0123456789"


def signed_push(url: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"ref": "refs/heads/main", "repository": {"clone_url": url}}).encode()
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"X-GitHub-Event": "push", "X-Hub-Signature-256": f"sha256={digest}"}


def run(database_url: str, root: Path, pushes: int) -> list[float]:
    apply_migrations(database_url)
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": os.urandom(32).hex(),
        "ADMIN_TOKEN": ADMIN,
        "PUSH_WEBHOOK_SECRET": SECRET,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        "REPOS_BASE_PATH": str(root / "mirrors"),
        "ALLOW_LOCAL_REPOSITORIES": "true",
        "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "SCAN_INTERVAL_MS": "3600000",
        "RATE_LIMIT_PER_MINUTE": "1000000",
    }
    repo = GitRepo(root / "remote", name="docs")
    repo.commit("start", {"page.md": "version 0\n"})
    arrived = threading.Event()
    receiver = WebhookReceiver(KEY)
    expected = {"content": b""}
    receiver.state.on_event = lambda event: (
        arrived.set()
        if event.verified and receiver.state.files.get("page.md") == expected["content"]
        else None
    )
    procs = [
        subprocess.Popen([sys.executable, "-m", "docora", name], env=env)
        for name in ("api", "worker")
    ]
    latencies = []
    try:
        with receiver, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            wait_http(f"http://127.0.0.1:{port}/health")
            app = api.post(
                "/api/apps/onboard",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json={
                    "app_name": "push bench",
                    "base_url": receiver.base_url,
                    "email": "bench@example.com",
                    "client_auth_key": KEY,
                },
            ).json()
            auth = {"Authorization": f"Bearer {app['token']}"}
            expected["content"] = b"version 0\n"
            rid = api.post("/api/repositories", json={"github_url": repo.url}, headers=auth).json()
            if not arrived.wait(60):
                raise RuntimeError(f"the initial sync never arrived: {rid}")
            for i in range(1, pushes + 1):
                time.sleep(0.5)  # the worker is idle again
                arrived.clear()
                expected["content"] = f"version {i}\n".encode()
                repo.commit(f"change {i}", {"page.md": expected["content"]})
                body, headers = signed_push(repo.url)
                started = time.perf_counter()
                answer = api.post("/api/hooks/github", content=body, headers=headers)
                assert answer.json() == {"queued": 1}, answer.text
                if not arrived.wait(30):
                    raise RuntimeError(f"push {i} never arrived")
                latencies.append(time.perf_counter() - started)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="docora-push-bench-") as tmp:
        root = Path(tmp)
        if os.environ.get("DATABASE_URL"):
            latencies = run(os.environ["DATABASE_URL"], root, args.pushes)
        else:
            with embedded_postgres(root / "pg", keep=False) as url:
                latencies = run(url, root, args.pushes)
    ms = sorted(x * 1000 for x in latencies)
    p90 = ms[max(0, round(0.9 * len(ms)) - 1)]
    print(
        f"push -> first webhook, {len(ms)} pushes: p50 {statistics.median(ms):.0f} ms, "
        f"p90 {p90:.0f} ms, max {ms[-1]:.0f} ms, min {ms[0]:.0f} ms"
    )


if __name__ == "__main__":
    main()
