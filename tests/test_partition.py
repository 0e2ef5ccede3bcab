"""A worker cut off from Postgres by a real network partition (SPEC 12): it sits in a
network namespace, reaching Postgres over a veth link, and the test drops only the
Postgres traffic on that link. Its server-side sessions may linger; its lease stops it
within WORKER_HEARTBEAT_MS x 3, another worker resumes its watch within 10 s, and when the
link heals it sends nothing the other has sent and rejoins under a new id."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest

from docora.migrate import apply_migrations
from tests import pg
from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_until, watch
from tests.gitrepo import fast_import
from tests.hosts import Namespace, namespaces_left
from tests.receiver import ReceiverServer
from tests.tools import require_tool
from tests.worker import WorkerProcess, wait_for_workers

pytestmark = pytest.mark.slow

FILES = 3000
RECEIVER_LATENCY_S = 0.005  # the delivery outlasts the cut
BEAT_S = 2.0  # the default WORKER_HEARTBEAT_MS
PG_PORT = 5432


@pytest.fixture
def link():
    require_tool("ip", "apt-get install iproute2")
    require_tool("iptables", "apt-get install iptables")
    with Namespace(tag=1) as namespace:
        yield namespace
    assert namespace.name not in namespaces_left()


@pytest.fixture
def restartable():
    with pg.private_server("docora-pg-partition-") as server:
        yield server


@pytest.fixture
def database_url(restartable, link) -> str:
    """The usual test settings on the private server, which also listens on the link (a
    restart: before any test connection is made)."""
    url = pg.create_database(restartable.url)
    apply_migrations(url)
    restartable.url_over_link = restartable.listen_on(link.host_ip, urlsplit(url).path.lstrip("/"))
    return url


@pytest.mark.timeout(300)
def test_a_partitioned_worker_stops_sending_and_its_watch_moves_on(
    restartable, settings, client, db, link, tmp_path
):
    url_over_link = restartable.url_over_link
    remote = tmp_path / "acme" / "big.git"
    fast_import(remote, ((f"f{i:05d}.txt", f"file {i}\n".encode()) for i in range(FILES)))

    def respond(event, body):
        time.sleep(RECEIVER_LATENCY_S)

    with ReceiverServer(RECEIVER_KEY, host=link.host_ip) as receiver:
        receiver.state.respond = respond
        _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
        watch(client, headers, f"file://{remote}")
        env = {"WORKER_HEARTBEAT_MS": str(round(BEAT_S * 1000))}
        cut_off = WorkerProcess(
            settings,
            prefix=link.prefix,
            DATABASE_URL=url_over_link,
            REPOS_BASE_PATH=str(tmp_path / "cut-off"),
            **env,
        )

        def sent_by(peer: str, after: float = 0.0) -> list:
            return [
                e for e in list(receiver.state.events) if e.peer == peer and e.received_at > after
            ]

        wait_until(
            lambda: len(sent_by(link.ns_ip)) > 200,
            60,
            lambda: f"the delivery never started; the worker said:\n{cut_off.log()[-3000:]}",
        )
        other = WorkerProcess(settings, REPOS_BASE_PATH=str(tmp_path / "other"), **env)
        wait_for_workers(settings.database_url, 2)
        workers_before = worker_ids(db)
        time.sleep(0.5)
        cut_at = time.monotonic()
        link.cut(PG_PORT)
        try:
            wait_until(lambda: sent_by(link.host_ip, cut_at), 15, "nobody resumed the watch")
            resumed_s = sent_by(link.host_ip, cut_at)[0].received_at - cut_at
            time.sleep(max(0.0, cut_at + 15 - time.monotonic()))
        finally:
            healed_at = time.monotonic()
            link.heal()
        from_cut_off = sent_by(link.ns_ip, cut_at)
        sending_after_cut_s = (from_cut_off[-1].received_at - cut_at) if from_cut_off else 0.0
        wait_until(
            lambda: db.execute("SELECT status FROM watches").fetchone()[0] == "synced",
            120,
            "not synced after the partition",
        )
        # It rejoins: a fresh registration (a new id) beside the other worker.
        wait_until(
            lambda: len(worker_ids(db)) == 2 and len(worker_ids(db) & workers_before) == 1,
            60,
            lambda: f"the cut-off worker did not rejoin: {worker_ids(db)} ({workers_before})",
        )
        time.sleep(2 * BEAT_S)
        accepted = [e for e in receiver.state.accepted() if e.verified]
        paths = [e.body["file"]["path"] for e in accepted]
        lost = FILES - len(receiver.state.files)
        duplicates = len(paths) - len(set(paths))
        after_heal = sent_by(link.ns_ip, healed_at)
        print(
            f"\nsending after the cut {sending_after_cut_s:.2f} s; cut -> first event from the "
            f"other worker {resumed_s:.2f} s; duplicates {duplicates}; lost {lost}; "
            f"sent by the cut-off worker after the heal {len(after_heal)}"
        )
        assert sending_after_cut_s <= 3 * BEAT_S
        assert resumed_s <= 10
        assert lost == 0
        assert after_heal == []
        # Never both at once: it had stopped before the other worker sent anything.
        assert sent_by(link.ns_ip, cut_at + resumed_s) == []
        assert duplicates <= 8 + 32  # what the cut-off worker had sent but not recorded
        cut_off.stop()
        other.stop()


def worker_ids(db) -> set[int]:
    return {row[0] for row in db.execute("SELECT id FROM procrastinate_workers")}
