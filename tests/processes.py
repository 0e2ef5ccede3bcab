"""Docora commands (`api`, `worker`, `all`) as real processes on the test database, each
writing its log to a file a test reads afterwards, as an operator reads a container's; and
the memory of a process with everything it starts (PeakRss, also bench/throughput.py's)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
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


def tree_rss(pid: int) -> list[tuple[str, int]]:
    """(command, RSS bytes) of `pid` and every process under it right now: the worker
    and the git processes it starts (fetch, index-pack, ls-tree, cat-file)."""
    page = os.sysconf("SC_PAGE_SIZE")
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        try:
            resident = int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            argv = Path(f"/proc/{current}/cmdline").read_bytes().split(b"\0")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue  # it exited meanwhile
        words = [a.decode(errors="replace") for a in argv if a and not a.startswith(b"-")]
        name = "worker" if current == pid else " ".join(w.rsplit("/", 1)[-1] for w in words[:2])
        found.append((name, resident))
    return found


class PeakRss:
    """Samples the worker's process tree every 10 ms: the peak of the worker alone and of
    the tree's sum (git's memory counts)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.worker = self.tree = 0
        self.at_peak: list[tuple[str, int]] = []
        self.child: tuple[str, int] = ("", 0)  # the largest process it started, at its peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            processes = tree_rss(self.pid)
            total = sum(rss for _, rss in processes)
            self.worker = max(self.worker, next((r for n, r in processes if n == "worker"), 0))
            for name, rss in processes:
                if name != "worker" and rss > self.child[1]:
                    self.child = (name, rss)
            if total > self.tree:
                self.tree, self.at_peak = total, processes

    def composition(self) -> str:
        return ", ".join(f"{name} {rss / 2**20:.0f}" for name, rss in self.at_peak)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
