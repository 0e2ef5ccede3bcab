"""The documentation says what the service does: headers a receiver gets and fields the
API returns are all documented (checked against a real delivery and real responses)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e import register_app, wait_status, watch
from tests.gitrepo import GitRepo

DOCS = Path(__file__).resolve().parents[1] / "docs"
# Set by the HTTP layer on every request, not by Docora: not a receiver's concern.
TRANSPORT_HEADERS = {"host", "accept", "accept-encoding", "connection", "content-length"}


def test_every_header_and_field_is_documented(client, worker, receiver, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    os.symlink("a.txt", repo.work / "link")  # shows up in skipped_files
    repo.commit("v1", {"a.txt": "a"})
    _, headers = register_app(client, receiver)
    rid = watch(client, headers, repo.url)
    detail = wait_status(client, headers, rid, "synced")

    webhooks = (DOCS / "webhooks.md").read_text().lower()
    sent = set(receiver.state.events[0].headers) - TRANSPORT_HEADERS
    undocumented = sorted(h for h in sent if f"`{h}`" not in webhooks)
    assert not undocumented, f"headers sent but not in docs/webhooks.md: {undocumented}"

    api = (DOCS / "api.md").read_text()
    fields = set(detail) | set(detail["circuit_breaker"]) | set(detail["skipped_files"][0])
    missing = sorted(f for f in fields if f not in api)
    assert not missing, f"fields returned but not in docs/api.md: {missing}"


def test_an_empty_patch_is_documented_as_it_behaves(client):
    from tests.conftest import onboard

    _, headers = onboard(client)
    assert client.patch("/api/apps/me", json={}, headers=headers).status_code == 200
    assert "changes nothing and answers 200" in (DOCS / "api.md").read_text()
