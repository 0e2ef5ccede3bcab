"""Scheduler, no-op rescans, the transform hook, and byte-exact bodies."""

from __future__ import annotations

import json
import subprocess

import pytest

from docora.scan import transforms
from tests.e2e import (
    register_app,
    resync,
    wait_quiet,
    wait_status,
    wait_synced,
    wait_until,
    watch,
)
from tests.gitrepo import GitRepo
from tests.tools import require_tool


@pytest.fixture
def settings(make_settings):
    return make_settings(
        SCAN_INTERVAL_MS="1000", RESCAN_INTERVAL_MS="1500", RETRY_BASE_DELAY_MS="100"
    )


def test_scheduler_rescans_and_noop_rescans_do_not_fetch(client, worker, receiver, db, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    first = wait_status(client, headers, rid, "synced")
    fetch_head = next((tmp_path / "mirrors").rglob("FETCH_HEAD"))
    fetched_at = fetch_head.stat().st_mtime_ns
    scanned_at = db.execute("SELECT scanned_at FROM snapshots").fetchone()[0]

    # Rescans happen on their own (RESCAN_INTERVAL_MS=1.5 s): last_scanned_at moves,
    # but nothing is fetched, hashed or stored while the remote tip is unchanged.
    def rescanned() -> bool:
        now = client.get(f"/api/repositories/{rid}", headers=headers).json()
        return now["last_scanned_at"] != first["last_scanned_at"]

    wait_until(rescanned, 15, "no rescan happened", interval=0.1)
    assert fetch_head.stat().st_mtime_ns == fetched_at
    assert db.execute("SELECT scanned_at FROM snapshots").fetchone()[0] == scanned_at
    assert len(receiver.state.events) == 1
    # A new commit is picked up by the scheduler alone, without a resync.
    commit = repo.commit("v2", {"b.txt": "b"})
    wait_synced(client, headers, rid, commit, timeout=20)
    assert [e.event for e in receiver.state.events] == ["create", "create"]


def test_transform_hook_shapes_the_snapshot(client, worker, receiver, tmp_path):
    def drop_generated(entry):
        return None if entry.path.endswith(".gen") else entry

    transforms.TRANSFORMS.append(drop_generated)
    try:
        repo = GitRepo(tmp_path / "r" / "acme")
        repo.commit("v1", {"a.txt": "a", "b.gen": "generated"})
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, repo.url)
        wait_status(client, headers, rid, "synced")
        assert sorted(receiver.state.files) == ["a.txt"]
    finally:
        transforms.TRANSFORMS.remove(drop_generated)


def test_retried_sync_never_duplicates_acknowledged_files(client, worker, receiver, db, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {f"f{i}.txt": str(i) for i in range(8)})
    failed = {"n": 0}

    def respond(event, body):
        if body["file"]["path"] == "f5.txt" and failed["n"] < 1:
            failed["n"] += 1
            return 502
        return None

    receiver.state.respond = respond
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_status(client, headers, rid, "synced")
    for _ in range(3):
        resync(client, headers, rid)
    wait_quiet(db)
    paths = [e.body["file"]["path"] for e in receiver.state.accepted()]
    assert sorted(paths) == [f"f{i}.txt" for i in range(8)]  # each exactly once
    ids = [e.headers["x-docora-delivery"] for e in receiver.state.events]
    retried = [e for e in receiver.state.events if e.body["file"]["path"] == "f5.txt"]
    assert len(retried) == 2 and len({e.headers["x-docora-delivery"] for e in retried}) == 1
    assert len(set(ids)) == len(ids) - 1  # only the retry reused an id


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_bodies_are_byte_identical_to_json_stringify(client, worker, receiver, tmp_path, mode):
    node = require_tool("node", "apt-get install nodejs; .ci/run installs it")
    repo = GitRepo(tmp_path / "r" / "acme")
    tricky = 'quotes " and \\ backslash\n\ttab \x01\x1f\x7f é 世界 😀 \u2028 </script>'
    repo.commit("v1", {"tricky.txt": tricky, "bin.dat": b"\x00\xff" * 10})
    _, headers = register_app(client, receiver, delivery_mode=mode)
    rid = watch(client, headers, repo.url)
    wait_status(client, headers, rid, "synced")
    raws = [e.raw for e in receiver.state.events]
    script = (
        "const lines=require('fs').readFileSync(0,'utf8').split('\\n').filter(Boolean);"
        "for (const l of lines){const b=Buffer.from(l,'base64').toString('utf8');"
        "process.stdout.write(Buffer.from(JSON.stringify(JSON.parse(b))).toString('base64')+'\\n')}"
    )
    import base64

    stdin = "\n".join(base64.b64encode(r).decode() for r in raws) + "\n"
    out = subprocess.run(
        [node, "-e", script], input=stdin, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [base64.b64decode(o) for o in out] == raws
    files = (
        [json.loads(raws[1])["file"]]
        if mode == "single"
        else [e["file"] for e in json.loads(raws[0])["events"]]
    )
    assert [f["content"] for f in files if f["path"] == "tricky.txt"] == [tricky]
    if mode == "batch":
        assert len(raws) == 1 and list(json.loads(raws[0])) == [
            "repository",
            "commit_sha",
            "timestamp",
            "events",
        ]
