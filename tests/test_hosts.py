"""Worker hosts with disks of their own (SPEC 12): any job may land on any host, a host
without the mirror (or with an older one, or a wiped disk) fetches what it needs, and
REPOS_MAX_BYTES bounds one host's mirrors."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import resync, wait_synced, watch
from tests.gitrepo import fast_import, git
from tests.hosts import WorkerHost, onboard_apps, remote_tree, watch_trees
from tests.test_cli import free_port
from tests.test_metrics import samples
from tests.waiting import wait_until
from tests.worker import wait_for_workers

# Each worker's jobs in flight, and what a crash may resend per job (docs/architecture.md:
# the requests in flight plus the acknowledged events not yet recorded).
SCAN_CONCURRENCY = 3
RESEND_PER_JOB = 8 + 32


class Remotes:
    """Bare remotes changed by fast-import: every content unique, deleted paths noted (a
    delete event for any other path would be a file reported deleted that was not)."""

    def __init__(self, root: Path, count: int, files: int = 6) -> None:
        self.paths = [root / "acme" / f"r{i}.git" for i in range(count)]
        self.heads: dict[Path, str] = {}
        self.deleted: dict[Path, set[str]] = {p: set() for p in self.paths}
        self.serial = 0
        for remote in self.paths:
            self.heads[remote] = fast_import(
                remote, ((f"docs/f{i}.md", self._content(remote)) for i in range(files))
            )

    def _content(self, remote: Path) -> bytes:
        self.serial += 1
        return f"{remote.name} #{self.serial}\n".encode() * 20

    def change(self, remote: Path, rng: random.Random) -> None:
        """Update one file, add one, and sometimes delete one."""
        tree = remote_tree(remote)
        present = sorted(tree)
        deletes: tuple[str, ...] = ()
        if len(present) > 3 and rng.random() < 0.5:
            gone = rng.choice(present)
            deletes = (gone,)
            self.deleted[remote].add(gone)
            present.remove(gone)
        changed = [(rng.choice(present), self._content(remote))]
        changed.append((f"docs/new{self.serial}.md", self._content(remote)))
        self.heads[remote] = fast_import(
            remote, changed, parent=self.heads[remote], deletes=deletes, message="change"
        )


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_three_hosts_without_a_shared_disk_killed_at_random_lose_nothing(
    settings, client, receiver, db, tmp_path
):
    env = {"SCAN_CONCURRENCY": str(SCAN_CONCURRENCY), "RESCAN_INTERVAL_MS": "3000"}
    hosts = [WorkerHost(settings, tmp_path, f"host{i}", **env) for i in range(3)]
    rng = random.Random(18)
    try:
        for host in hosts:
            host.start()
        wait_for_workers(settings.database_url, 3)
        remotes = Remotes(tmp_path, 10)
        apps = onboard_apps(client, receiver, 2)
        rid_of: dict[Path, str] = {}
        for remote in remotes.paths:
            for _, headers in apps:
                rid_of[remote] = watch(client, headers, f"file://{remote}")
        kills = 0
        wiped = hosts[1]
        for round_ in range(14):
            for remote in rng.sample(remotes.paths, 3):
                remotes.change(remote, rng)
                for _, headers in apps:
                    resync(client, headers, rid_of[remote])
            host = rng.choice(hosts) if round_ != 6 else wiped
            host.kill()
            kills += 1
            time.sleep(rng.uniform(0.1, 0.8))
            if host is wiped and round_ == 6:
                host.wipe()  # its disk is lost while it is down
            host.start()
            time.sleep(rng.uniform(0.2, 1.2))
        for remote in remotes.paths:
            for _, headers in apps:
                wait_synced(client, headers, rid_of[remote], remotes.heads[remote], timeout=120)

        trees = watch_trees(receiver.state.events)
        for remote in remotes.paths:
            expected = remote_tree(remote)
            for app_id, _ in apps:
                assert trees[(app_id, rid_of[remote])] == expected, f"{app_id} {remote.name}"
        accepted = receiver.state.accepted()
        assert all(e.verified for e in accepted)
        # Never a file reported deleted that the remote still had.
        by_rid = {rid: remote for remote, rid in rid_of.items()}
        for e in receiver.state.accepted("delete"):
            remote = by_rid[e.body["repository"]["repository_id"]]
            assert e.body["file"]["path"] in remotes.deleted[remote], e.body
        keys = [
            (
                e.headers["x-docora-app-id"],
                e.body["repository"]["repository_id"],
                e.event,
                e.body["file"]["path"],
                e.body["file"].get("sha"),
            )
            for e in accepted
        ]
        duplicates = len(keys) - len(set(keys))
        print(f"\n{len(keys)} events accepted, {duplicates} duplicates over {kills} kills")
        assert duplicates <= kills * SCAN_CONCURRENCY * RESEND_PER_JOB
        # The wiped host came back by fetching: it has mirrors again.
        assert wiped.disk_bytes() > 0
    finally:
        for host in hosts:
            host.close()


def random_remote(root: Path, name: str, size: int) -> Path:
    remote = root / "acme" / f"{name}.git"
    fast_import(remote, [("blob.bin", os.urandom(size)), ("README.md", name.encode())])
    return remote


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_mirrors_stay_within_repos_max_bytes_and_come_back_by_fetch(
    settings, client, receiver, db, tmp_path
):
    size = 256 * 1024  # incompressible: a mirror is about this big
    remotes = [random_remote(tmp_path, f"r{i}", size) for i in range(10)]
    one_mirror = size + 64 * 1024  # objects, packs' index, refs and config
    bound = 3 * one_mirror
    concurrency = 2
    port = free_port()
    host = WorkerHost(
        settings,
        tmp_path,
        "host",
        REPOS_MAX_BYTES=str(bound),
        SCAN_CONCURRENCY=str(concurrency),
        WORKER_METRICS_PORT=str(port),
        HOST="127.0.0.1",
    )
    peak = 0
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, host.disk_bytes())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        host.start()
        sampler.start()
        _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)
        rids = [watch(client, headers, f"file://{r}") for r in remotes]
        for rid, remote in zip(rids, remotes, strict=True):
            head = git("rev-parse", "main", cwd=remote).strip()
            wait_synced(client, headers, rid, head, timeout=120)
        sampling.set()
        sampler.join()
        left = host.disk_bytes()
        print(f"\nbound {bound}, peak {peak}, after {left} bytes")
        # Within the bound, plus the mirrors the jobs in flight were using, each with the
        # spool of its sync (git/spool.py: the blobs' content, as big as this random pack)
        # until its deliveries are done.
        assert peak <= bound + concurrency * 2 * one_mirror
        assert left <= bound + one_mirror
        mirrors_left = [p for p in host.base.rglob("*.git") if (p / "HEAD").exists()]
        assert len(mirrors_left) <= 4

        metrics = {}

        def scraped() -> bool:
            metrics.update(samples(httpx.get(f"http://127.0.0.1:{port}/metrics").text))
            return metrics.get(("docora_mirror_evictions_total", ()), 0) >= 6

        wait_until(scraped, 10, lambda: f"evictions never counted: {metrics}")
        assert metrics[("docora_mirror_bytes", ())] <= bound + one_mirror

        # The first repository's mirror is long gone: a change to it is fetched again.
        head = fast_import(
            remotes[0],
            [("README.md", b"changed")],
            parent=git("rev-parse", "main", cwd=remotes[0]).strip(),
        )
        resync(client, headers, rids[0])
        wait_synced(client, headers, rids[0], head, timeout=60)
        updated = [
            e
            for e in receiver.state.accepted("update")
            if e.body["repository"]["repository_id"] == rids[0]
        ]
        assert [e.body["file"]["path"] for e in updated] == ["README.md"]
    finally:
        sampling.set()
        host.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_delivery_on_a_host_with_an_older_mirror_or_none_fetches_the_snapshot(
    settings, client, receiver, db, tmp_path
):
    """Host A makes each snapshot while the receiver refuses it; the delivery's retry can
    then only run on host B, whose mirror is older (then gone): it must fetch the commit,
    not deliver from what it has."""
    remote = tmp_path / "acme" / "docs.git"
    head = fast_import(remote, [("a.md", b"v1"), ("b.md", b"b")])
    a, b = (WorkerHost(settings, tmp_path, name) for name in ("a", "b"))
    _, headers = onboard(client, base_url=receiver.base_url, client_auth_key=RECEIVER_KEY)

    def snapshot_on_a_then_deliver_on_b(files: dict[str, bytes], wipe_b: bool) -> str:
        nonlocal head
        head = fast_import(remote, list(files.items()), parent=head, message="change")
        receiver.state.respond = lambda event, body: 503
        a.start()
        resync(client, headers, rid)
        wait_until(lambda: snapshot_refused(db, rid, head), 60, "host A never made the snapshot")
        a.stop()
        if wipe_b:
            b.wipe()
        receiver.state.respond = lambda event, body: None
        b.start()
        wait_synced(client, headers, rid, head, timeout=60)
        b.stop()
        return head

    try:
        # Host B syncs and delivers the first commit: it keeps that mirror.
        b.start()
        rid = watch(client, headers, f"file://{remote}")
        wait_synced(client, headers, rid, head, timeout=60)
        b.stop()
        snapshot_on_a_then_deliver_on_b({"a.md": b"v2"}, wipe_b=False)
        snapshot_on_a_then_deliver_on_b({"a.md": b"v3", "c.md": b"c"}, wipe_b=True)
        assert watch_trees(receiver.state.events)[(headers_app(client, headers), rid)] == (
            remote_tree(remote)
        )
        assert [e.body["file"]["content"] for e in receiver.state.accepted("update")] == [
            "v2",
            "v3",
        ]
        syncs = db.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'docora.sync_repository' "
            "AND status = 'succeeded'"
        ).fetchone()[0]
        assert syncs == 3  # B never synced again itself: its deliveries fetched
        assert b.disk_bytes() > 0
    finally:
        a.close()
        b.close()


def headers_app(client, headers: dict[str, str]) -> str:
    return client.get("/api/apps/me", headers=headers).json()["app_id"]


def snapshot_refused(db, rid: str, head: str) -> bool:
    """The snapshot is at `head` and its delivery waits to be retried."""
    row = db.execute(
        "SELECT s.commit_sha, w.status FROM snapshots s JOIN watches w USING (repository_id) "
        "WHERE s.repository_id = %s",
        (rid,),
    ).fetchone()
    return row == (head, "retrying")
