"""Client recovery (SPEC §11): the manifest says exactly what the receiver holds, page by
page, and a resend sends everything again from nothing."""

from __future__ import annotations

import hashlib
import random

import pytest

from docora.deliver.run import UNRECORDED_MAX
from tests.e2e import all_pages, register_app, resync, wait_status, wait_synced, watch
from tests.gitrepo import GitRepo


@pytest.fixture
def repo(tmp_path):
    return GitRepo(tmp_path / "remote")


def manifest(client, headers, rid, limit: int = 1000) -> tuple[str | None, list[dict]]:
    last, items = all_pages(client, f"/api/repositories/{rid}/files", headers, limit)
    return last["commit_sha"], items


def held(receiver) -> dict[str, tuple[str, int]]:
    return {
        path: (hashlib.sha256(data).hexdigest(), len(data))
        for path, data in receiver.state.files.items()
    }


def test_the_manifest_pages_in_byte_order_and_equals_the_receiver(client, worker, receiver, repo):
    files = {"b.txt": "b", "a.txt": "aa", "Z.md": "zzz", "é.txt": "e", "dir/x.bin": b"\0\1"}
    commit = repo.commit("v1", files)
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_synced(client, headers, rid, commit)
    sha, items = manifest(client, headers, rid, limit=2)
    assert sha == commit
    paths = [i["path"] for i in items]
    assert paths == sorted(paths, key=lambda p: p.encode())  # byte order: "Z" < "a" < "é"
    assert {i["path"]: (i["sha"], i["size"]) for i in items} == held(receiver)


def test_manifest_input_errors(client, worker, receiver, repo):
    repo.commit("v1", {"a.txt": "a"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    base = f"/api/repositories/{rid}/files"
    for params in ({"limit": 0}, {"limit": 10_001}, {"cursor": "not-a-cursor"}):
        r = client.get(base, params=params, headers=headers)
        assert r.status_code == 400 and "error" in r.json(), (params, r.text)
    _, other = register_app(client, receiver, app_name="other app")
    assert client.get(base, headers=other).status_code == 404
    assert client.post(f"/api/repositories/{rid}/resend", headers=other).status_code == 404
    assert client.get(base).status_code == 401


def test_the_manifest_follows_random_change_sequences(client, worker, receiver, repo):
    rnd = random.Random(13)
    current = {f"f{i:02d}.txt": f"v0 {i}" for i in range(20)}
    commit = repo.commit("v0", current)
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_synced(client, headers, rid, commit)
    for round_ in range(1, 6):
        for path in rnd.sample(sorted(current), 4):
            repo.delete(path)
            del current[path]
        for path in rnd.sample(sorted(current), 4):
            current[path] = f"v{round_} {path}"
        for i in range(3):
            current[f"new{round_}_{i}.txt"] = f"new {round_} {i}"
        commit = repo.commit(f"round {round_}", dict(current))
        resync(client, headers, rid)
        wait_synced(client, headers, rid, commit)
        _, items = manifest(client, headers, rid, limit=7)
        expected = {
            p: (hashlib.sha256(c.encode()).hexdigest(), len(c.encode())) for p, c in current.items()
        }
        assert {i["path"]: (i["sha"], i["size"]) for i in items} == expected
        assert held(receiver) == expected


def test_resend_sends_everything_again_as_create(client, worker, receiver, repo):
    commit = repo.commit("v1", {"a.txt": "a", "b.txt": "b", "c.txt": "c"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    wait_synced(client, headers, rid, commit)
    first_ids = {e.headers["x-docora-delivery"] for e in receiver.state.accepted()}
    receiver.state.events.clear()
    r = client.post(f"/api/repositories/{rid}/resend", headers=headers)
    assert r.status_code == 202 and "message" in r.json()
    wait_synced(client, headers, rid, commit)
    again = receiver.state.accepted()
    assert sorted((e.event, e.body["file"]["path"]) for e in again) == [
        ("create", "a.txt"),
        ("create", "b.txt"),
        ("create", "c.txt"),
    ]
    # New delivery ids: a receiver that de-duplicates on them takes the resend.
    assert first_ids.isdisjoint(e.headers["x-docora-delivery"] for e in again)
    _, items = manifest(client, headers, rid)
    assert len(items) == 3


def test_resend_during_a_delivery_starts_over_from_nothing(client, worker, receiver, repo):
    import time

    commit = repo.commit("v1", {f"f{i:02d}.txt": str(i) for i in range(30)})

    slow = {"on": True}

    def respond(event, body):
        if slow["on"]:
            time.sleep(0.05)  # slow enough to resend mid-delivery
        return None

    receiver.state.respond = respond
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    receiver.wait_for(lambda s: len(s.accepted()) >= 5)
    assert client.post(f"/api/repositories/{rid}/resend", headers=headers).status_code == 202
    resent_from = len(receiver.state.events)
    slow["on"] = False
    wait_synced(client, headers, rid, commit, timeout=60)
    status = wait_status(client, headers, rid, "synced")
    assert (status["files_delivered"], status["pending_changes"]) == (30, 0)
    # After the resend every file came again, in order, from the first one.
    after = [e.body["file"]["path"] for e in receiver.state.events[resent_from:]]
    restart = after.index("f00.txt")
    assert restart <= 1 + UNRECORDED_MAX  # the old delivery stopped at its next recording
    tail = after[restart:]
    assert tail == [f"f{i:02d}.txt" for i in range(30)]
    _, items = manifest(client, headers, rid)
    assert [i["path"] for i in items] == [f"f{i:02d}.txt" for i in range(30)]
