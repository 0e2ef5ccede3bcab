"""A real Procrastinate worker on the test database, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback

import psycopg

from docora.config import Settings
from docora.runtime import run_worker
from tests.waiting import wait_until


class BackgroundWorker:
    def __init__(self, settings: Settings, resolver=None) -> None:
        self.settings = settings
        self.resolver = resolver
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            if self.resolver is None:
                await run_worker(self.settings, self._stop)
            else:
                await run_worker(self.settings, self._stop, resolver=self.resolver)

        try:
            self._loop.run_until_complete(main())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def __enter__(self) -> BackgroundWorker:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        while self._stop is None and self._thread.is_alive():
            threading.Event().wait(0.01)
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            frame = sys._current_frames().get(self._thread.ident or 0)
            stack = "".join(traceback.format_stack(frame)) if frame else "(no stack)"
            raise AssertionError(f"the worker thread did not stop within 60 s:\n{stack}")
        if self.error:
            raise self.error


class WorkerProcess:
    """`docora worker` as a real process on the test database (to kill, or to run several).

    Its stderr goes to a file, so a failing test can show what the worker said; with
    PYTHONFAULTHANDLER set, SIGABRT makes it print every thread's stack there first.
    """

    def __init__(
        self, settings: Settings, *, prefix: tuple[str, ...] = (), **extra_env: str
    ) -> None:
        """`prefix` runs the worker under another command (`ip netns exec NAME`)."""
        env = {
            **os.environ,
            "DATABASE_URL": settings.database_url,
            "ENCRYPTION_KEY": settings.encryption_key or "",
            "REPOS_BASE_PATH": settings.repos_base_path,
            "ALLOW_LOCAL_REPOSITORIES": "true",
            "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
            "SCAN_INTERVAL_MS": "1000",
            "RETRY_BASE_DELAY_MS": "100",
            "MAX_RETRY_ATTEMPTS": "50",
            # Quick to notice a dead worker, yet a lease (two beats) that a busy test
            # machine's scheduling delays do not run out.
            "WORKER_HEARTBEAT_MS": "500",
            "LOG_LEVEL": "warning",
            "PYTHONFAULTHANDLER": "1",
            **extra_env,
        }
        # Closed by close(), at the latest when the test ends (kill_leftover_workers).
        self._log = tempfile.TemporaryFile("w+", prefix="docora-worker-", suffix=".log")  # noqa: SIM115
        self.process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "docora", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            text=True,
        )
        _running.append(self)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()

    def kill(self) -> None:
        """SIGKILL: a crash, as far as Docora can tell."""
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 60) -> str:
        """SIGTERM, then wait for a clean exit; returns the worker's log."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)  # stacks of every thread to the log
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            self.kill()
            raise AssertionError(
                f"the worker ignored SIGTERM for {timeout:.0f} s; its log:\n{self.log()[-8000:]}"
            ) from None
        log = self.log()
        assert code == 0, f"the worker exited with {code}; its log:\n{log[-8000:]}"
        return log

    def close(self) -> None:
        if self.alive():
            self.kill()
        self._log.close()


_running: list[WorkerProcess] = []


def workers_registered(database_url: str, count: int = 1) -> bool:
    """Whether `count` workers run: from then on SIGTERM means a graceful drain (a process
    signalled while Python is still starting simply dies of it)."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
    return row is not None and row[0] >= count


def wait_for_workers(database_url: str, count: int = 1, timeout: float = 30) -> None:
    wait_until(
        lambda: workers_registered(database_url, count),
        timeout,
        f"{count} worker(s) did not register",
    )


def kill_leftover_workers() -> None:
    """A worker that outlives its test would take the next test's jobs with the wrong key."""
    while _running:
        _running.pop().close()
