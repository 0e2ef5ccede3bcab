"""The real service for benchmarks: embedded Postgres, `docora all`, the fast receiver."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docora.db import embedded_postgres  # noqa: E402
from docora.migrate import apply_migrations  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
KEY = "bench-signing-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextlib.contextmanager
def node_receiver(*args: str) -> Iterator[int]:
    """bench/receiver.js on a free loopback port (`--verify KEY`, `--delay-ms N`...): its
    port, once it answers."""
    port = free_port()
    receiver = subprocess.Popen(
        ["node", str(ROOT / "bench" / "receiver.js"), str(port), *args],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/_stats")
        yield port
    finally:
        receiver.terminate()
        receiver.wait()


def service_environment(
    root: Path, database_url: str, api_port: int, **overrides: str
) -> dict[str, str]:
    """What `docora` runs with in a benchmark: local repositories and receivers allowed,
    rate limits out of the way, mirrors under root."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": secrets.token_hex(32),
        "ADMIN_TOKEN": ADMIN,
        "HOST": "127.0.0.1",
        "PORT": str(api_port),
        "LOG_LEVEL": "warning",
        "REPOS_BASE_PATH": str(root / "mirrors"),
        "ALLOW_LOCAL_REPOSITORIES": "true",
        "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "RATE_LIMIT_PER_MINUTE": "10000000",
        **overrides,
    }


def onboard_app(
    api: httpx.Client, name: str, base_url: str, concurrency: int = 1, mode: str = "single"
) -> dict[str, str]:
    """A new app signing with KEY; its bearer header."""
    r = api.post(
        "/api/apps/onboard",
        headers={"Authorization": f"Bearer {ADMIN}"},
        json={
            "app_name": name,
            "base_url": base_url,
            "email": "bench@example.com",
            "client_auth_key": KEY,
            "delivery_concurrency": concurrency,
            "delivery_mode": mode,
        },
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['token']}"}


class Stack:
    def __init__(self, root: Path, database_url: str, env_overrides: dict[str, str]) -> None:
        self.root = root
        self.database_url = database_url
        self.api_port = free_port()
        self.receiver_port = free_port()
        self.env = service_environment(root, database_url, self.api_port, **env_overrides)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}", timeout=60)
        self.receiver = httpx.Client(base_url=f"http://127.0.0.1:{self.receiver_port}", timeout=60)
        self.procs: list[subprocess.Popen] = []

    def start(self, *, keep_bodies: bool = False) -> None:
        args = [sys.executable, str(ROOT / "bench" / "receiver.py"), str(self.receiver_port)]
        self.procs.append(subprocess.Popen(args + (["--keep-bodies"] if keep_bodies else [])))
        self.service = subprocess.Popen([sys.executable, "-m", "docora", "all"], env=self.env)
        self.procs.append(self.service)
        wait_http(f"http://127.0.0.1:{self.api_port}/health")
        wait_http(f"http://127.0.0.1:{self.receiver_port}/_stats")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.service.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.service.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def onboard(self, name: str, concurrency: int = 1) -> dict[str, str]:
        base_url = f"http://127.0.0.1:{self.receiver_port}/hooks"
        return onboard_app(self.api, name, base_url, concurrency)

    def register(self, headers: dict[str, str], url: str) -> str:
        r = self.api.post("/api/repositories", headers=headers, json={"github_url": url})
        r.raise_for_status()
        return r.json()["repository_id"]

    def resync(self, headers: dict[str, str], rid: str) -> None:
        self.api.post(f"/api/repositories/{rid}/resync", headers=headers).raise_for_status()

    def stats(self) -> dict:
        return self.receiver.get("/_stats").json()

    def reset_receiver(self) -> None:
        self.receiver.get("/_reset")

    def wait_events(self, count: int, timeout: float = 600) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stats = self.stats()
            if stats["count"] >= count:
                return stats["last"]
            time.sleep(0.02)
        raise RuntimeError(f"only {self.stats()['count']} of {count} events arrived")

    def wait_arrival(self, path: str, after: float, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.receiver.get("/_arrival", params={"path": path}).json()["at"]
            if at and at > after:
                return at
            time.sleep(0.005)
        raise RuntimeError(f"{path} never arrived")

    def sql(self, query: str, params=()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


@contextlib.contextmanager
def postgres(root: Path) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    with embedded_postgres(root / "pgdata", keep=False) as url:
        yield url


@contextlib.contextmanager
def stack(
    env_overrides: dict[str, str] | None = None, *, keep_bodies: bool = False
) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="docora-bench-") as tmp, postgres(Path(tmp)) as url:
        with psycopg.connect(url, autocommit=True) as conn:
            name = "bench_" + secrets.token_hex(4)
            conn.execute(f'CREATE DATABASE "{name}"')
        db_url = url.replace("/postgres?", f"/{name}?") if "/postgres?" in url else url
        apply_migrations(db_url)
        s = Stack(Path(tmp), db_url, env_overrides or {})
        s.start(keep_bodies=keep_bodies)
        try:
            yield s
        finally:
            s.stop()
