"""The `docora` command, run as a real process."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests import pg
from tests.e2e import wait_until
from tests.worker import workers_registered

COMMANDS = [
    "migrate",
    "api",
    "worker",
    "all",
    "dev",
    "hash-password",
    "apps",
    "apps create",
    "apps list",
]


def docora(*args, env=None, input=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "docora", *args],
        env={**os.environ, **(env or {})},
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_then_signal(
    args: list[str], env: dict[str, str], port: int, sig: int, *, cwd=None, ready=None
) -> tuple[int, str, str]:
    """Start `docora <args>`, wait until /health is 200 (and `ready()`, if given), send
    `sig`; return (returncode, out, err)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "docora", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(port, proc)
        if ready is not None:
            wait_until(ready, 30, "the service never became ready", interval=0.1)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "service did not start"
        time.sleep(0.2)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    result = docora(*command.split(), "--help")
    assert result.returncode == 0 and "usage: docora" in result.stdout


def test_config_errors_are_one_line_and_exit_2(database_url):
    result = docora("api", env={"DATABASE_URL": database_url, "ENCRYPTION_KEY": "bad"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "ENCRYPTION_KEY must be 64 hex chars or base64 of 32 bytes" in result.stderr
    result = docora("worker", env={"DATABASE_URL": database_url, "ENCRYPTION_KEY": ""})
    assert result.returncode == 2 and "ENCRYPTION_KEY is required" in result.stderr
    result = docora("all", env={"DATABASE_URL": database_url, "PORT": "x"})
    assert result.returncode == 2 and "PORT: Expected `int`" in result.stderr
    env = {k: "" for k in ("DATABASE_URL",)}
    assert docora("migrate", env=env).returncode == 2


def test_migrate_twice(server_url):
    url = pg.create_database(server_url)
    try:
        first = docora("migrate", env={"DATABASE_URL": url})
        assert first.returncode == 0, first.stderr
        assert "migrations applied" in first.stdout
        second = docora("migrate", env={"DATABASE_URL": url})
        assert second.returncode == 0 and "up to date" in second.stdout
    finally:
        pg.drop_database(server_url, url)


def test_apps_create_and_list(database_url, encryption_key):
    env = {
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": encryption_key,
        "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
    }
    created = docora(
        "apps",
        "create",
        "--name",
        "cli app",
        "--base-url",
        "http://127.0.0.1:1/h",
        "--email",
        "a@example.com",
        "--client-auth-key-stdin",
        env=env,
        input="a-signing-key-from-stdin\n",
    )
    assert created.returncode == 0, created.stderr
    assert "docora_" in created.stdout and "a-signing-key-from-stdin" not in created.stdout
    listed = docora("apps", "list", env=env)
    assert listed.returncode == 0 and "cli app" in listed.stdout
    bad = docora(
        "apps",
        "create",
        "--name",
        "x",
        "--base-url",
        "http://127.0.0.1:1/h",
        "--email",
        "a@example.com",
        env=env,
    )
    # Bad input to a command is not a configuration error: it says what is wrong with it.
    assert bad.returncode == 2 and "app_name" in bad.stderr
    assert "configuration error" not in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_all_serves_and_stops_gracefully(database_url, encryption_key, sig):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENCRYPTION_KEY": encryption_key,
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }

    # The API can answer before the worker has started; signal a running worker.
    def ready() -> bool:
        return workers_registered(database_url)

    returncode, _out, err = serve_then_signal(["all"], env, port, sig, ready=ready)
    assert returncode == 0, err
    assert "Traceback" not in err and "docora stopped" in err
    assert "Stopped worker" in err


@pytest.mark.parametrize(("flags", "requests"), [([], 11), (["--batch"], 9)])
def test_demo_shows_verified_events_and_exits_0(tmp_path, flags, requests):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "docora", "demo", *flags],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("verified ✓") == requests and "✗" not in out
    assert f"{requests} requests (11 events)" in out
    assert "chunk 4/4" in out and "Receiver's copy matches the repository ✓" in out
    assert "/admin  (user admin, password " in out
    for line in ("delete  docs/guide.md", "create  docs/changelog.md", "update  README.md"):
        assert line in out
    assert not any(tmp_path.iterdir())  # everything lived in a temporary directory


def test_dev_keeps_its_secrets_and_prints_the_admin_token(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "ENCRYPTION_KEY")}
    seen = []
    for _ in range(2):  # the second start reuses the data and the keys
        returncode, out, err = serve_then_signal(
            ["dev", "--port", str(port)], env, port, signal.SIGINT, cwd=tmp_path
        )
        assert returncode == 0, err
        secrets_file = (tmp_path / ".docora" / "secrets.env").read_text()
        values = dict(line.split("=", 1) for line in secrets_file.split())
        assert f"Admin token:  {values['ADMIN_TOKEN']}" in out and "/schema" in out
        console = f"/admin  (user {values['ADMIN_USERNAME']}, password {values['ADMIN_PASSWORD']})"
        assert console in out
        seen.append(values)
    assert seen[0] == seen[1]
    assert set(seen[0]) >= {"ENCRYPTION_KEY", "ADMIN_TOKEN", "ADMIN_USERNAME", "ADMIN_PASSWORD"}
    assert oct((tmp_path / ".docora" / "secrets.env").stat().st_mode & 0o777) == "0o600"
