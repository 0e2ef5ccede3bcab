"""The reference receiver does what docs/webhooks.md asks of receivers: it refuses bad
signatures and stale timestamps, and applies each delivery id once."""

from __future__ import annotations

import time

import httpx
import pytest

from docora.deliver.signing import signed_headers
from docora.receiver import WebhookReceiver, compact

KEY = "reference-receiver-key-0123"


def body(path: str, content: str) -> bytes:
    return compact(
        {
            "repository": {"repository_id": "repo_x", "github_url": "u", "owner": "o", "name": "n"},
            "file": {"path": path, "sha": "s", "size": len(content), "content": content},
            "commit_sha": "c",
            "timestamp": "2025-01-11T12:00:00.000Z",
        }
    )


def post(receiver, event: str, raw: bytes, delivery: str, *, ts=None, key=KEY) -> int:
    headers = signed_headers(
        app_id="app_x",
        key=key,
        event=event,
        delivery_id=delivery,
        timestamp=int(time.time()) if ts is None else ts,
        body=raw,
    )
    url = f"{receiver.base_url}/{event}"
    return httpx.post(url, content=raw, headers=headers, timeout=5).status_code


@pytest.fixture
def receiver():
    with WebhookReceiver(KEY) as running:
        yield running


def test_a_replayed_delivery_id_is_answered_but_not_applied_again(receiver):
    assert post(receiver, "create", body("a.txt", "one"), "d-1") == 200
    assert post(receiver, "update", body("a.txt", "two"), "d-2") == 200
    assert post(receiver, "create", body("a.txt", "one"), "d-1") == 200  # a resend
    assert receiver.state.files == {"a.txt": b"two"}
    assert [e.duplicate for e in receiver.state.events] == [False, False, True]


def test_stale_and_future_timestamps_are_refused(receiver):
    now = int(time.time())
    assert post(receiver, "create", body("old.txt", "x"), "d-3", ts=now - 600) == 400
    assert post(receiver, "create", body("new.txt", "x"), "d-4", ts=now + 600) == 400
    assert post(receiver, "create", body("ok.txt", "x"), "d-5", ts=now - 60) == 200
    assert set(receiver.state.files) == {"ok.txt"}


def test_bad_signatures_are_refused(receiver):
    assert post(receiver, "create", body("a.txt", "x"), "d-6", key="another-key-0123456") == 401
    assert receiver.state.files == {} and not receiver.state.events[0].verified
