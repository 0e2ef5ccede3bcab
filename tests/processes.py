"""Docora commands (`api`, `worker`, `all`) as real processes on the test database, each
writing its log to a file a test reads afterwards, as an operator reads a container's."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from docora.config import Settings
from tests.conftest import ADMIN_TOKEN
from tests.test_cli import free_port, wait_healthy


def service_env(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "ENCRYPTION_KEY": settings.encryption_key or "",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "ALLOW_LOCAL_REPOSITORIES": "true",
        "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "REPOS_BASE_PATH": settings.repos_base_path,
        "RETRY_BASE_DELAY_MS": "100",
        "LOG_LEVEL": "info",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **extra,
    }


@contextlib.contextmanager
def docora_processes(
    settings: Settings, log_dir: Path, commands: tuple[str, ...], **env: str
) -> Iterator[int]:
    """Start `docora <command>` for each command (the first serves HTTP); yield the port.
    On exit every process gets SIGTERM and is waited for, so its last lines are written."""
    port = free_port()
    environment = service_env(settings, port, **env)
    processes = []
    try:
        for command in commands:
            log = (log_dir / f"{command}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "docora", command],
                    env=environment,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        wait_healthy(port, processes[0])
        yield port
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def json_lines(path: Path) -> list[dict]:
    """Every line of a LOG_FORMAT=json log, parsed (a line that is not JSON fails)."""
    records = []
    for line in path.read_text().splitlines():
        assert line.startswith("{"), f"{path.name}: a line that is not JSON: {line!r}"
        records.append(json.loads(line))
    return records
