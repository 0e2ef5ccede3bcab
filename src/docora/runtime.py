"""Running the processes: API server, worker, or both, with graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import procrastinate
import uvicorn

from docora.config import Settings
from docora.crypto import SecretBox
from docora.db import open_pool
from docora.deliver.client import WebhookSender
from docora.git.lfs import LfsClient
from docora.git.smart_http import SmartHttpRefs
from docora.jobs.app import build_job_app
from docora.jobs.checks import CHECK_TIMEOUT_MS, RescanChecker
from docora.jobs.connector import PatientConnector
from docora.jobs.presence import reap_gone_workers
from docora.jobs.queue import JobQueue
from docora.jobs.services import Services
from docora.lease import Lease
from docora.metrics import serve_worker_metrics
from docora.net import Resolver, system_resolver
from docora.store import checks

log = logging.getLogger("docora")

RESTART_FIRST_WAIT_S = 0.5
RESTART_LONGEST_WAIT_S = 10.0
RESTART_HEALTHY_S = 60.0
# After SIGTERM, what the process may take beyond SHUTDOWN_GRACE_MS before it gives up
# (compose's stop_grace_period leaves 15 s more than the grace before it kills).
EXIT_DEADLINE_MARGIN_S = 10.0
EXIT_STUCK = 70  # EX_SOFTWARE


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the supervisor owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def run_worker(
    settings: Settings, stop: asyncio.Event, *, resolver: Resolver = system_resolver
) -> None:
    beat_s = settings.worker_heartbeat_ms / 1000
    pool = await open_pool(
        settings.database_url,
        max_size=settings.scan_concurrency + 4,
        name="docora-worker",
        beat_s=beat_s,
    )
    lease = Lease(settings.lease_s)
    services = Services(
        settings=settings,
        pool=pool,
        box=SecretBox(settings.key_bytes),
        sender=WebhookSender(
            timeout_ms=settings.delivery_timeout_ms,
            allow_private=settings.allow_private_webhook_targets,
            resolver=resolver,
            lease=lease,
        ),
        lease=lease,
        resolver=resolver,
        refs=SmartHttpRefs(allow_local=settings.allow_local_repositories, resolver=resolver),
        lfs=lfs_client(settings, resolver),
    )
    # This host's mirrors as they are on disk (a worker may start with a full base path,
    # or with an emptied one), and the bound enforced if it shrank since.
    await services.account_mirrors()
    jobs = build_job_app(settings, services)
    await jobs.open_async(pool)
    reaper = asyncio.create_task(_reap_forever(jobs, pool, settings), name="reaper")
    checker = asyncio.create_task(
        RescanChecker(services, JobQueue(jobs)).run(stop), name="rescan-checker"
    )
    exporter = None
    if settings.worker_metrics_port:
        exporter, _ = serve_worker_metrics(
            settings.worker_metrics_port, settings.host, state=_state_reader(pool)
        )
    try:
        await _keep_working(jobs, settings, stop, services.revoked)
    finally:
        if exporter is not None:
            exporter.shutdown()
            exporter.server_close()
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
        # The checker stops with `stop` and records what it has checked.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(checker, CHECK_TIMEOUT_MS / 1000 + 5)
        await jobs.close_async()
        await services.sender.aclose()
        if services.refs is not None:
            await services.refs.aclose()
        if services.lfs is not None:
            await services.lfs.aclose()
        await pool.close()


def lfs_client(settings: Settings, resolver: Resolver) -> LfsClient | None:
    """The worker's Git LFS client (None: LFS=off). Its hosts pass the checks git's do."""
    if settings.lfs == "off":
        return None
    return LfsClient(
        allow_private=settings.allow_local_repositories,
        resolver=resolver,
        timeout_ms=settings.git_timeout_ms,
    )


def _state_reader(pool):
    """What the worker's /metrics reads from Postgres at scrape time (rescan lag and
    totals), run on the worker's loop from the exporter's thread."""
    loop = asyncio.get_running_loop()

    async def read():
        async with pool.connection() as conn:
            lag, _ = await checks.lag(conn)
            return lag, await checks.totals(conn)

    def scrape():
        return asyncio.run_coroutine_threadsafe(read(), loop).result(timeout=5)

    return scrape


async def _reap_forever(jobs: procrastinate.App, pool, settings: Settings) -> None:
    """Every heartbeat, retry the jobs of workers proven gone (jobs/presence.py). Every
    worker does it; the first to see a dead one wins, the others find nothing."""
    while True:
        await asyncio.sleep(settings.worker_heartbeat_ms / 1000)
        try:
            await reap_gone_workers(
                jobs.job_manager,
                pool,
                gone_after_s=settings.gone_after_s,
                stalled_after_s=settings.stalled_after_s,
            )
        except Exception as exc:  # Postgres away: the worker's own restart loop handles it
            log.debug("reaper skipped a round: %s", _one_line(exc))


async def _keep_working(
    jobs: procrastinate.App, settings: Settings, stop: asyncio.Event, revoked: asyncio.Event
) -> None:
    """Run Procrastinate's worker until asked to stop, starting it again whenever it ends.

    Procrastinate stops its worker when a side task (LISTEN, heartbeat, periodic
    deferrer) loses the database, and a worker started while Postgres is down fails at
    once. Either way this process waits and starts a fresh worker; jobs the old one left
    `doing` go back to the queue through the stalled-job check.
    """
    pause = RESTART_FIRST_WAIT_S
    while not stop.is_set():
        began = time.monotonic()
        error = await _work_until_stopped(jobs, settings, stop, revoked)
        if stop.is_set():
            return
        if time.monotonic() - began > RESTART_HEALTHY_S:
            pause = RESTART_FIRST_WAIT_S
        log.warning("worker stopped (%s); starting it again in %.1f s", error, pause)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pause)
        pause = min(RESTART_LONGEST_WAIT_S, pause * 2)


async def _work_until_stopped(
    jobs: procrastinate.App, settings: Settings, stop: asyncio.Event, revoked: asyncio.Event
) -> str:
    """One Procrastinate worker's life; returns why it ended when nobody asked it to (or
    when it learnt it had been declared gone: its jobs run elsewhere, and a fresh worker
    under a new id takes new ones)."""
    connector = jobs.connector
    assert isinstance(connector, PatientConnector)
    connector.stopping = False
    revoked.clear()
    worker = asyncio.create_task(
        jobs.run_worker_async(
            concurrency=settings.scan_concurrency,
            install_signal_handlers=False,
            shutdown_graceful_timeout=settings.shutdown_grace_ms / 1000,
            name="docora-worker",
            update_heartbeat_interval=settings.worker_heartbeat_ms / 1000,
            stalled_worker_timeout=settings.stalled_after_s,
            # New jobs arrive by LISTEN/NOTIFY; polling only matters for retries that
            # become due later, so poll about as often as the shortest retry delay.
            fetch_job_polling_interval=min(5.0, max(0.2, settings.retry_base_delay_ms / 1000)),
        )
    )
    await _first_of(stop, worker, revoked)
    if not worker.done():
        connector.stopping = True
        worker.cancel()
    try:
        await worker
    except asyncio.CancelledError:
        return "declared gone while cut off" if revoked.is_set() else "stopped"
    except Exception as exc:
        return _one_line(exc)
    return "one of its side tasks failed, logged above"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    cause = f" ({type(exc.__cause__).__name__})" if exc.__cause__ else ""
    return f"{type(exc).__name__}: {text}{cause}" if text else f"{type(exc).__name__}{cause}"


async def run_api(
    settings: Settings, stop: asyncio.Event, on_ready: Callable[[], None] | None
) -> None:
    # Imported here: a worker-only process never loads the web stack (Litestar, Jinja,
    # the console), about 11 MB of its memory.
    from docora.asgi import create_app

    proxies = [str(network) for network in settings.trusted_proxy_networks]
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        server_header=False,
        # Logging is the process's (docora.logs): uvicorn's records go through its handler.
        log_config=None,
        # The one place X-Forwarded-For/-Proto are believed: only from TRUSTED_PROXIES
        # (uvicorn's default would trust loopback, and so any local proxy's clients).
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    notifier = asyncio.create_task(_notify_when_started(server, on_ready)) if on_ready else None
    try:
        await _until(stop, task)
    finally:
        server.should_exit = True
        if notifier is not None:
            # A stop right after startup must not swallow the banner.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(notifier, 0.5)
        await task


async def _notify_when_started(server: uvicorn.Server, on_ready: Callable[[], None]) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    on_ready()


async def _first_of(stop: asyncio.Event, task: asyncio.Task, *also: asyncio.Event) -> None:
    """Return when asked to stop (or any of `also` is set) or when the task ends, whichever
    comes first."""
    waiters = [asyncio.create_task(event.wait()) for event in (stop, *also)]
    await asyncio.wait({*waiters, task}, return_when=asyncio.FIRST_COMPLETED)
    for waiter in waiters:
        waiter.cancel()


async def _until(stop: asyncio.Event, task: asyncio.Task) -> None:
    """Return when asked to stop, or stop everything (re-raising) if the task ends first."""
    await _first_of(stop, task)
    if task.done():
        stop.set()
        task.result()


async def serve(
    settings: Settings,
    *,
    api: bool,
    worker: bool,
    on_ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
    signalled_before: Callable[[], bool] = lambda: False,
    deadline_on_signal: bool = False,
) -> None:
    """Run the API and/or the worker until SIGINT/SIGTERM (or `stop`), then drain.

    A process (not a test running this in-process) passes `deadline_on_signal`: once
    signalled, it ends within SHUTDOWN_GRACE_MS plus a margin whatever happens.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            return
        stop.set()
        if deadline_on_signal:
            arm_exit_deadline(settings.shutdown_grace_ms / 1000 + EXIT_DEADLINE_MARGIN_S)

    # Put back afterwards, not reset to the default: a second SIGTERM while the process
    # finishes its exit must not kill it half-way (the CLI's handler only takes note).
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, on_signal)
    if signalled_before():
        on_signal()
    parts = []
    if api:
        parts.append(run_api(settings, stop, on_ready))
    if worker:
        parts.append(run_worker(settings, stop))
    if not api and on_ready is not None:
        on_ready()
    try:
        await asyncio.gather(*parts)
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    log.info("docora stopped")


def arm_exit_deadline(seconds: float) -> threading.Timer:
    """End the process in `seconds` if the graceful shutdown has not ended it by then.

    Procrastinate waits SHUTDOWN_GRACE_MS for running jobs and then cancels them, but a
    hang past that (a thread that never returns keeps asyncio.run from finishing) would
    keep the process alive until the orchestrator's SIGKILL, saying nothing. This prints
    every thread's stack, so the hang can be found, and exits. Jobs still marked `doing`
    are retried through the stalled-job check, as after a crash.
    """

    def give_up() -> None:
        # Raw writes: a stuck thread may hold the logging lock.
        message = f"docora: shutdown not finished after {seconds:g} s; exiting. Stacks:\n"
        os.write(2, message.encode())
        faulthandler.dump_traceback(all_threads=True)
        os._exit(EXIT_STUCK)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    return timer
