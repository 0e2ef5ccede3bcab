"""Postgres goes away in the middle of a sync and comes back: nobody has to restart anything.

The test owns a private embedded server so that it can stop it (`immediate`: a crash as
Postgres sees it) without disturbing the other tests.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from litestar.testing import TestClient

from docora.asgi import create_app
from docora.migrate import apply_migrations
from tests import pg
from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_until, watch
from tests.gitrepo import fast_import
from tests.worker import WorkerProcess

FILES = 2000
OUTAGES = 2
RESENT_PER_CRASH_MAX = 200


@pytest.fixture
def restartable():
    with pg.private_server("docora-pg-restart-") as server:
        yield server


@pytest.fixture
def database_url(restartable) -> str:
    """The usual test settings (conftest), on the private server."""
    url = pg.create_database(restartable.url)
    apply_migrations(url)
    return url


def health(client: TestClient) -> int:
    return client.get("/health").status_code


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("worker_count", [1, 3])
def test_postgres_restart_during_a_sync(restartable, settings, receiver, tmp_path, worker_count):
    """With several workers too (each with its own disk, as hosts have): a failover looks
    the same to each of them."""
    remote = tmp_path / "acme" / "r.git"
    content = {f"d{i % 10}/f{i:05d}.txt": f"file {i}\n".encode() for i in range(FILES)}
    fast_import(remote, content.items())
    # Slow enough that the sync is still running when Postgres goes down.
    receiver.state.respond = lambda event, body: time.sleep(0.004)
    restartable.stop()  # the worker may also start before the database does
    workers = [
        WorkerProcess(settings, REPOS_BASE_PATH=str(tmp_path / f"host{i}"))
        for i in range(worker_count)
    ]
    time.sleep(2)
    assert all(w.alive() for w in workers), "a worker gave up while Postgres was not there yet"
    restartable.start()
    try:
        with TestClient(create_app(settings)) as client:
            _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
            rid = watch(client, headers, f"file://{remote}")
            for outage in range(OUTAGES):
                seen = len(receiver.state.files)
                wait_until(
                    lambda seen=seen: len(receiver.state.files) > seen + 100,
                    60,
                    f"no progress before outage {outage + 1}",
                )
                restartable.stop()
                assert health(client) == 503
                time.sleep(5)  # long enough for every pooled connection to notice
                assert health(client) == 503
                assert all(w.alive() for w in workers), "a worker died with the database"
                restartable.start()
                wait_until(lambda: health(client) == 200, 30, "the API did not reconnect")
            assert len(receiver.state.files) < FILES, "the sync finished before the outages"

            def synced() -> bool:
                body = client.get(f"/api/repositories/{rid}", headers=headers).json()
                return body["status"] == "synced" and len(receiver.state.files) == FILES

            wait_until(synced, 240, "the worker did not finish the sync after Postgres came back")
            body = client.get(f"/api/repositories/{rid}", headers=headers).json()
    except BaseException:
        for worker in workers:
            print(worker.log()[-5000:])
        raise
    for worker in workers:
        worker.stop()
    expected = {path: hashlib.sha256(data).hexdigest() for path, data in content.items()}
    assert receiver.state.shas == expected
    assert body["files_delivered"] == FILES and body["pending_changes"] == 0
    resent = len(receiver.state.accepted()) - FILES
    print(f"{OUTAGES} Postgres crashes during the sync: {resent} events resent, 0 lost")
    # Per crash: what was in flight, acknowledged-but-unrecorded, and acks committed
    # asynchronously in the last ~0.6 s before the crash (synchronous_commit=off).
    assert 0 <= resent <= OUTAGES * RESENT_PER_CRASH_MAX
