"""The OpenAPI document describes every webhook Docora sends, and real bodies validate
against it (SPEC 11: receivers generate code from /schema/openapi.json)."""

from __future__ import annotations

import jsonschema
import pytest

from tests.e2e import register_app, resync, wait_synced, watch
from tests.gitrepo import GitRepo

EVENTS = ("create", "update", "delete", "sync_failed", "batch")


def webhook_schemas(client) -> dict[str, dict]:
    document = client.get("/schema/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    hooks = document["webhooks"]
    assert set(hooks) == set(EVENTS)
    schemas = {}
    for event, item in hooks.items():
        operation = item["post"]
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert {"X-Docora-Signature", "X-Docora-Timestamp", "webhook-signature"} <= headers
        schemas[event] = operation["requestBody"]["content"]["application/json"]["schema"]
        jsonschema.Draft202012Validator.check_schema(schemas[event])
    return schemas


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_delivered_bodies_validate_against_the_published_schemas(
    client, worker, receiver, tmp_path, mode
):
    schemas = webhook_schemas(client)
    repo = GitRepo(tmp_path / "remote")
    _, headers = register_app(client, receiver, delivery_mode=mode)
    commit = repo.commit("v1", {"a.txt": "a", "b.bin": b"\0\1", "c.txt": "c"})
    rid = watch(client, headers, repo.url)
    wait_synced(client, headers, rid, commit)
    repo.delete("c.txt")
    commit = repo.commit("v2", {"a.txt": "a2", "d.txt": "d"})
    resync(client, headers, rid)
    wait_synced(client, headers, rid, commit)
    seen = set()
    for request in receiver.state.accepted():
        jsonschema.validate(request.body, schemas[request.event])
        seen.add(request.event)
        if request.event == "batch":
            seen.update(e["event"] for e in request.body["events"])
    assert {"create", "update", "delete"} <= seen
    assert ("batch" in seen) == (mode == "batch")


def test_a_wrong_body_does_not_validate(client):
    schemas = webhook_schemas(client)
    good = {
        "repository": {"repository_id": "r", "github_url": "u", "owner": "o", "name": "n"},
        "file": {"path": "p", "sha": "s"},
        "commit_sha": "c",
        "timestamp": "t",
    }
    jsonschema.validate(good, schemas["delete"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "file": {"path": "p"}}, schemas["delete"])
    with pytest.raises(jsonschema.ValidationError):
        batch = {k: good[k] for k in ("repository", "commit_sha", "timestamp")}
        jsonschema.validate({**batch, "events": [{"event": "rename"}]}, schemas["batch"])
