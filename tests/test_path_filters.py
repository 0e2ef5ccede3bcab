"""Path filters (SPEC 11): the SQL function decides exactly as pathspec's gitignore matching
does, pattern lists are validated, and deliveries follow the filter."""

from __future__ import annotations

import random

import pytest

from docora.errors import InvalidInput
from docora.scan.filters import compile_filter
from docora.scan.ignore import ignore_matcher
from docora.store.watches import FilterColumns

SEGMENTS = ["docs", "drafts", "src", "a", "b.md", "x", "build", "README.md", "é", "deep"]
PATTERN_POOL = [
    "docs/**",
    "*.md",
    "!docs/drafts/**",
    "!*.md",
    "build/",
    "/README.md",
    "README.md",
    "docs/",
    "!docs/",
    "a?",
    "[ab].md",
    "**/x/*",
    "**/deep/**",
    "src/**/*.md",
    "!src/a/**",
    "é/**",
    "*",
    "!b.md",
    "docs/*.md",
    "x",
]


def included(path_filter: FilterColumns | None, path: str) -> bool:
    """The decision the database must make, taken by pathspec as `.docoraignore`'s is."""
    if path_filter is None:
        return True
    return ignore_matcher("\n".join(path_filter.paths))(path)


def random_path(rnd: random.Random) -> str:
    return "/".join(rnd.choice(SEGMENTS) for _ in range(rnd.randint(1, 4)))


def sql_included(db, path_filter, path: str) -> bool:
    return db.execute(
        "SELECT docora_path_included(%s, %s, %s)",
        (path, path_filter.path_regexes, path_filter.path_includes),
    ).fetchone()[0]


def test_the_database_decides_as_pathspec_does(db):
    rnd = random.Random(11)
    checked = 0
    for _ in range(300):
        patterns = rnd.sample(PATTERN_POOL, rnd.randint(1, 5))
        path_filter = compile_filter(patterns)
        paths = [random_path(rnd) for _ in range(20)]
        rows = db.execute(
            "SELECT p, docora_path_included(p, %s, %s) FROM unnest(%s::text[]) p",
            (path_filter.path_regexes, path_filter.path_includes, paths),
        ).fetchall()
        for path, decided in rows:
            assert decided == included(path_filter, path), (patterns, path)
            checked += 1
    assert checked == 6000
    assert sql_included(db, compile_filter(["docs/**", "!docs/drafts/**"]), "docs/a.md")
    assert not sql_included(db, compile_filter(["docs/**", "!docs/drafts/**"]), "docs/drafts/x")
    everything = db.execute("SELECT docora_path_included('any/path', NULL, NULL)").fetchone()[0]
    assert everything is True


@pytest.mark.parametrize(
    "patterns",
    [[], [""], ["  "], ["# a comment"], [1], ["a\nb"], ["x" * 2000], ["*.md"] * 51],
)
def test_bad_pattern_lists_are_refused(patterns):
    with pytest.raises(InvalidInput):
        compile_filter(patterns)


def test_no_filter_means_everything():
    assert compile_filter(None) is None
    assert included(None, "any/file")


# --- end to end ------------------------------------------------------------------------

REPO_FILES = {
    ".docoraignore": "*.tmp\n",
    "README.md": "readme",
    "docs/a.md": "a",
    "docs/b.txt": "b",
    "docs/drafts/wip.md": "wip",
    "docs/drafts/keep.md": "keep",
    "docs/x.tmp": "ignored by .docoraignore",
    "src/main.py": "print()",
    "src/lib/util.py": "pass",
}


def delivered(receiver) -> set[str]:
    return set(receiver.state.files)


def manifest_paths(client, headers, rid) -> set[str]:
    body = client.get(f"/api/repositories/{rid}/files", headers=headers).json()
    return {item["path"] for item in body["items"]}


def expected_for(patterns: list[str] | None) -> set[str]:
    path_filter = compile_filter(patterns)
    return {p for p in REPO_FILES if not p.endswith(".tmp") and included(path_filter, p)}


@pytest.fixture
def repo(tmp_path):
    from tests.gitrepo import GitRepo

    return GitRepo(tmp_path / "remote")


def test_two_apps_with_different_filters_share_one_fetch_and_hash(client, worker, db, repo):
    from tests.e2e import register_app, wait_synced, watch
    from tests.receiver import ReceiverServer

    commit = repo.commit("v1", REPO_FILES)
    docs = ["docs/**", "!docs/drafts/**", "docs/drafts/keep.md"]
    code = ["src/**", "*.md", "!docs/**"]
    with (
        ReceiverServer("filter-key-0123456789ab") as first,
        ReceiverServer("filter-key-0123456789ab") as second,
    ):
        _, h1 = register_app(client, first)
        _, h2 = register_app(client, second, app_name="second")
        r1 = watch(client, h1, repo.url, paths=docs)
        assert watch(client, h2, repo.url, paths=code) == r1
        wait_synced(client, h1, r1, commit)
        wait_synced(client, h2, r1, commit)
        assert (
            delivered(first)
            == expected_for(docs)
            == {"docs/a.md", "docs/b.txt", "docs/drafts/keep.md"}
        )
        assert (
            delivered(second)
            == expected_for(code)
            == {"README.md", "src/main.py", "src/lib/util.py"}
        )
        assert manifest_paths(client, h1, r1) == delivered(first)
        assert manifest_paths(client, h2, r1) == delivered(second)
        detail = client.get(f"/api/repositories/{r1}", headers=h1).json()
        assert detail["paths"] == docs and detail["pending_changes"] == 0
        assert detail["files_delivered"] == 3
    fetches, hashed = db.execute("SELECT fetch_count, blobs_hashed FROM snapshots").fetchone()
    assert fetches == 1 and hashed == len(REPO_FILES) - 1  # x.tmp: .docoraignore


def test_changing_the_filter_sends_exactly_what_it_implies(client, worker, receiver, repo):
    from tests.e2e import register_app, wait_synced, watch

    commit = repo.commit("v1", REPO_FILES)
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url, paths=["docs/**"])
    wait_synced(client, headers, rid, commit)
    receiver.state.events.clear()
    answer = client.patch(
        f"/api/repositories/{rid}", json={"paths": ["docs/*.md", "src/**"]}, headers=headers
    )
    assert answer.status_code == 200 and answer.json()["paths"] == ["docs/*.md", "src/**"]
    receiver.wait_for(lambda s: delivered(receiver) == expected_for(["docs/*.md", "src/**"]))
    wait_synced(client, headers, rid, commit)
    sent = sorted((e.event, e.body["file"]["path"]) for e in receiver.state.accepted())
    assert sent == [
        ("create", "src/lib/util.py"),
        ("create", "src/main.py"),
        ("delete", "docs/b.txt"),
        ("delete", "docs/drafts/keep.md"),
        ("delete", "docs/drafts/wip.md"),
    ]
    # Back to everything: the rest arrives, nothing is sent twice.
    receiver.state.events.clear()
    assert (
        client.patch(f"/api/repositories/{rid}", json={"paths": None}, headers=headers).status_code
        == 200
    )
    receiver.wait_for(lambda s: delivered(receiver) == expected_for(None))
    wait_synced(client, headers, rid, commit)
    again = sorted(e.body["file"]["path"] for e in receiver.state.accepted())
    assert again == sorted(expected_for(None) - expected_for(["docs/*.md", "src/**"]))
    assert manifest_paths(client, headers, rid) == expected_for(None)
    # An empty body, or the same filter, changes nothing and queues nothing.
    assert (
        client.patch(f"/api/repositories/{rid}", json={}, headers=headers).json()["paths"] is None
    )


def test_a_filter_change_during_a_delivery_ends_consistent(client, worker, receiver, repo):
    import time

    from tests.e2e import register_app, wait_synced, watch

    many = {f"docs/f{i:03d}.md": str(i) for i in range(60)}
    many.update({f"src/s{i:03d}.py": str(i) for i in range(20)})
    commit = repo.commit("v1", many)
    slow = {"on": True}

    def respond(event, body):
        if slow["on"]:
            time.sleep(0.03)
        return None

    receiver.state.respond = respond
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url, paths=["docs/**"])
    receiver.wait_for(lambda s: len(s.files) >= 10)
    patched = client.patch(f"/api/repositories/{rid}", json={"paths": ["src/**"]}, headers=headers)
    assert patched.status_code == 200
    slow["on"] = False
    wanted = {p for p in many if p.startswith("src/")}
    receiver.wait_for(lambda s: set(s.files) == wanted, timeout=60)
    wait_synced(client, headers, rid, commit)
    assert manifest_paths(client, headers, rid) == wanted
    status = client.get(f"/api/repositories/{rid}", headers=headers).json()
    assert (status["files_delivered"], status["pending_changes"]) == (20, 0)


def test_filter_input_errors(client, worker, receiver, repo):
    from tests.e2e import register_app, watch

    repo.commit("v1", {"a.md": "a"})
    _, headers = register_app(client, receiver)
    for paths, status in (
        ([], 400),
        ([""], 400),
        (["# comment"], 422),
        (["a"] * 51, 400),
        ([5], 400),
    ):
        answer = client.post(
            "/api/repositories", json={"github_url": repo.url, "paths": paths}, headers=headers
        )
        assert answer.status_code == status and "error" in answer.json(), (paths, answer.text)
    rid = watch(client, headers, repo.url)
    url = f"/api/repositories/{rid}"
    assert client.patch(url, json={"paths": []}, headers=headers).status_code == 400
    assert client.patch(url, json={"other": 1}, headers=headers).status_code == 400
    assert client.patch(url, json={"paths": ["!x"]}, headers=headers).status_code == 200
