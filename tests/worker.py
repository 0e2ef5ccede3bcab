"""A real Procrastinate worker on the test database, in a background thread."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading

from docora.config import Settings
from docora.runtime import run_worker


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
        if self.error:
            raise self.error


def start_worker(
    settings, encryption_key: str, *, stderr=subprocess.DEVNULL, **extra_env: str
) -> subprocess.Popen:
    """`docora worker` as a real process on the test database (to kill, or to run several)."""
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "ENCRYPTION_KEY": encryption_key,
        "REPOS_BASE_PATH": settings.repos_base_path,
        "ALLOW_LOCAL_REPOSITORIES": "true",
        "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
        "SCAN_INTERVAL_MS": "1000",
        "RETRY_BASE_DELAY_MS": "100",
        "MAX_RETRY_ATTEMPTS": "50",
        "WORKER_HEARTBEAT_MS": "300",
        "LOG_LEVEL": "warning",
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "docora", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )
