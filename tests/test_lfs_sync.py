"""Git LFS content end to end (SPEC 13): a smart-HTTP remote with the test LFS server beside
it (tests/lfs_server.py, checked against git-lfs itself), a real worker, receivers that
verify every signature."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
import pytest

from docora.asgi import create_app
from tests.admin import ADMIN, ADMIN_PASSWORD, ADMIN_USER, https_client, login
from tests.conftest import RECEIVER_KEY as KEY
from tests.e2e import register_app, resync, wait_status, wait_synced, watch
from tests.githttp import GitHttpServer
from tests.lfs_server import LfsRemote as Remote
from tests.lfs_server import LfsStore, ObjectServer, pointer
from tests.receiver import ReceiverServer
from tests.worker import BackgroundWorker

TOKEN = "lfs-token-1"
ATTRIBUTES = "*.bin filter=lfs diff=lfs merge=lfs -text\nimg/*.png filter=lfs -text\n"


@pytest.fixture
def settings(make_settings, request):
    # A test's own settings: @pytest.mark.parametrize("settings", [{...}], indirect=True).
    return make_settings(
        SCAN_INTERVAL_MS="1000",
        RETRY_BASE_DELAY_MS="100",
        MAX_RETRY_ATTEMPTS="1",
        BINARY_CHUNK_THRESHOLD_BYTES="1048576",
        BINARY_CHUNK_SIZE_BYTES="524288",
        ADMIN_USERNAME=ADMIN_USER,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        **getattr(request, "param", {}),
    )


class Watched(msgspec.Struct):
    server: GitHttpServer
    receiver: ReceiverServer
    headers: dict[str, str]
    rid: str
    status: dict


@contextlib.contextmanager
def watched(client, remote: Remote, until: str | None = "synced") -> Iterator[Watched]:
    """The remote served with its LFS objects, one app watching it with the token; the
    watch's status once it is `until` (None: as soon as it is registered)."""
    with (
        GitHttpServer(remote.root, passwords={TOKEN}, lfs=remote.store) as server,
        ReceiverServer(KEY) as receiver,
    ):
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, server.url_for(remote.repo.remote), github_token=TOKEN)
        status = wait_status(client, headers, rid, until) if until else {}
        yield Watched(server, receiver, headers, rid, status)


def _events(receiver, path: str):
    return [e for e in receiver.state.events if (e.body.get("file") or {}).get("path") == path]


def _operators_see_the_lfs_totals(settings, client, app_id: str, total: int) -> None:
    (item,) = client.get(f"/api/admin/watches?app_id={app_id}", headers=ADMIN).json()["items"]
    assert item["lfs"] == {"objects": 2, "bytes": total}
    with https_client(create_app(settings)) as console:
        login(console)
        page = console.get(f"/admin/apps/{app_id}").text
    assert "LFS: 2 · 3.1 MB" in page  # 3,147,859 bytes


def test_lfs_content_is_delivered_once_per_host_and_chunked(settings, client, worker, db, tmp_path):
    remote = Remote(tmp_path)
    logo = b"\x89PNG\r\n\x1a\n" + os.urandom(2000)
    big = os.urandom(3 * 1024 * 1024 + 123)
    fake = pointer(b"never stored anywhere")  # a pointer no attribute covers
    remote.commit(
        {
            ".gitattributes": ATTRIBUTES,
            "img/logo.png": logo,
            "assets/big.bin": big,
            "docs/fake.txt": fake,
            "README.md": "hello\n",
        }
    )
    with (
        GitHttpServer(remote.root, passwords={TOKEN}, lfs=remote.store) as server,
        ReceiverServer(KEY) as first,
        ReceiverServer(KEY) as second,
    ):
        url = server.url_for(remote.repo.remote)
        first_id, h1 = register_app(client, first, app_name="first")
        _, h2 = register_app(client, second, app_name="second")
        rid = watch(client, h1, url, github_token=TOKEN)
        watch(client, h2, url, github_token=TOKEN)
        status = wait_status(client, h1, rid, "synced")
        wait_status(client, h2, rid, "synced")
        for receiver in (first, second):
            assert receiver.state.files["img/logo.png"] == logo
            assert receiver.state.files["assets/big.bin"] == big
            assert receiver.state.files["docs/fake.txt"] == fake
            assert receiver.state.shas["assets/big.bin"] == hashlib.sha256(big).hexdigest()
            assert all(e.verified for e in receiver.state.events)
            chunks = [e.body["file"]["chunk"] for e in _events(receiver, "assets/big.bin")]
            assert len(chunks) == 9 and [c["index"] for c in chunks] == list(range(9))
            (png,) = _events(receiver, "img/logo.png")
            assert png.body["file"]["content_encoding"] == "base64"
            assert png.body["file"]["size"] == len(logo)
        # One download of each object for both apps; the batch API saw the token.
        assert sorted(remote.store.downloads) == sorted(
            hashlib.sha256(d).hexdigest() for d in (logo, big)
        )
        assert TOKEN in server.seen_passwords
        (request,) = remote.store.batches
        assert request["operation"] == "download" and request["transfers"] == ["basic"]
        assert status["lfs"] == {"objects": 2, "bytes": len(logo) + len(big)}
        assert status["skipped_files"] == []
        _operators_see_the_lfs_totals(settings, client, first_id, len(logo) + len(big))

        # An update of an LFS file; a plain file moving into LFS (its content changed);
        # an LFS file moving out of it. Each is an ordinary update with previous_sha.
        new_big = os.urandom(1500)
        remote.commit({"assets/big.bin": new_big, "README.bin": b"now in lfs\n"})
        remote.repo.delete("README.md")
        text_logo = "no longer an image in LFS\n"
        commit = remote.commit(
            {".gitattributes": "*.bin filter=lfs -text\n", "img/logo.png": text_logo}
        )
        resync(client, h1, rid)
        wait_synced(client, h1, rid, commit)
        assert first.state.files["assets/big.bin"] == new_big
        assert first.state.files["README.bin"] == b"now in lfs\n"
        assert first.state.files["img/logo.png"] == text_logo.encode()
        (update,) = [e for e in _events(first, "assets/big.bin") if e.event == "update"]
        assert update.body["previous_sha"] == hashlib.sha256(big).hexdigest()
        assert update.body["file"]["sha"] == hashlib.sha256(new_big).hexdigest()
        (moved,) = [e for e in _events(first, "img/logo.png") if e.event == "update"]
        assert moved.body["previous_sha"] == hashlib.sha256(logo).hexdigest()
        status = client.get(f"/api/repositories/{rid}", headers=h1).json()
        assert status["lfs"] == {"objects": 2, "bytes": len(new_big) + len(b"now in lfs\n")}


@pytest.mark.parametrize("fault", ["missing", "corrupt", "expired"])
def test_a_bad_object_fails_the_sync_and_nothing_is_delivered(client, worker, tmp_path, fault):
    remote = Remote(tmp_path)
    good, bad = os.urandom(5000), os.urandom(7000)
    remote.commit({".gitattributes": ATTRIBUTES, "a/good.bin": good, "b/bad.bin": bad})
    bad_oid = hashlib.sha256(bad).hexdigest()
    if fault == "missing":
        remote.store.missing.add(bad_oid)
    elif fault == "corrupt":
        remote.store.corrupt.add(bad_oid)
    else:
        remote.store.expired = True
    with watched(client, remote, until="failed") as w:
        error = w.status["last_error"]
        assert error.startswith("git lfs: ")
        if fault == "expired":
            assert "expired" in error
        else:
            assert "b/bad.bin" in error
            assert ("unavailable" if fault == "missing" else "failed its check") in error
        assert w.receiver.state.events == []
        assert TOKEN not in error


@pytest.mark.parametrize("settings", [{"LFS_MISSING": "skip"}], indirect=True)
def test_lfs_missing_skip_lists_the_file(client, worker, tmp_path):
    remote = Remote(tmp_path)
    kept, gone = os.urandom(4000), os.urandom(4000)
    remote.commit({".gitattributes": ATTRIBUTES, "kept.bin": kept, "gone.bin": gone})
    remote.store.missing.add(hashlib.sha256(gone).hexdigest())
    with watched(client, remote) as w:
        assert w.receiver.state.files == {".gitattributes": ATTRIBUTES.encode(), "kept.bin": kept}
        assert w.status["skipped_files"] == [
            {"path": "gone.bin", "reason": "lfs object unavailable"}
        ]
        assert w.status["lfs"] == {"objects": 1, "bytes": len(kept)}


@pytest.mark.parametrize("settings", [{"LFS": "off"}], indirect=True)
def test_lfs_off_delivers_the_pointers(client, worker, tmp_path):
    remote = Remote(tmp_path)
    data = os.urandom(4000)
    remote.commit({".gitattributes": ATTRIBUTES, "x.bin": data})
    with watched(client, remote) as w:
        assert w.receiver.state.files["x.bin"] == pointer(data)
        assert remote.store.batches == [] and remote.store.downloads == []
        assert w.status["lfs"] == {"objects": 0, "bytes": 0}


def test_hrefs_on_another_port_redirects_and_action_headers(client, worker, tmp_path):
    store = LfsStore(tmp_path / "lfs", redirect=True, header={"X-Lfs-Ticket": "t-123"})
    remote = Remote(tmp_path, store)
    data = os.urandom(20000)
    remote.commit({".gitattributes": ATTRIBUTES, "obj.bin": data})
    with (
        ObjectServer(store) as objects,
        GitHttpServer(remote.root, passwords={TOKEN}, lfs=store) as server,
        ReceiverServer(KEY) as receiver,
    ):
        store.href_base = f"http://127.0.0.1:{objects.server_port}"
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, server.url_for(remote.repo.remote), github_token=TOKEN)
        wait_status(client, headers, rid, "synced")
        assert receiver.state.files["obj.bin"] == data
        assert store.downloads == [hashlib.sha256(data).hexdigest()]


def test_a_committed_lfsconfig_endpoint_on_another_origin_gets_no_token(client, worker, tmp_path):
    remote = Remote(tmp_path)
    data = os.urandom(9000)
    with (
        GitHttpServer(remote.root, passwords=None, lfs=remote.store) as elsewhere,
        GitHttpServer(remote.root, passwords={TOKEN}, lfs=remote.store) as server,
        ReceiverServer(KEY) as receiver,
    ):
        endpoint = f"{elsewhere.url_for(remote.repo.remote)}/info/lfs"
        lfsconfig = f'[lfs]\n\turl = "{endpoint}"\n'
        remote.commit({".gitattributes": ATTRIBUTES, ".lfsconfig": lfsconfig, "x.bin": data})
        _, headers = register_app(client, receiver)
        rid = watch(client, headers, server.url_for(remote.repo.remote), github_token=TOKEN)
        wait_status(client, headers, rid, "synced")
        assert receiver.state.files["x.bin"] == data
        assert len(remote.store.batches) == 1
        # The batch API was asked on the other origin, and without the token.
        assert [path for _, path, _ in elsewhere.seen] == [
            urlsplit(endpoint).path + "/objects/batch"
        ]
        assert elsewhere.credentialed == 0
        assert TOKEN in server.seen_passwords


@pytest.mark.parametrize("settings", [{"RESCAN_INTERVAL_MS": "1000"}], indirect=True)
def test_switching_lfs_off_rescans_and_sends_the_pointers(settings, client, tmp_path):
    remote = Remote(tmp_path)
    data = os.urandom(6000)
    remote.commit({".gitattributes": ATTRIBUTES, "x.bin": data})
    with watched(client, remote, until=None) as w:
        with BackgroundWorker(settings):
            wait_status(client, w.headers, w.rid, "synced")
        assert w.receiver.state.files["x.bin"] == data
        # Same commit, LFS now off: the next rescan re-reads the tree and sends the pointer.
        with BackgroundWorker(msgspec.structs.replace(settings, lfs="off")):
            w.receiver.wait_for(lambda state: state.files["x.bin"] == pointer(data))
            status = wait_status(client, w.headers, w.rid, "synced")
        (update,) = [e for e in _events(w.receiver, "x.bin") if e.event == "update"]
        assert update.body["previous_sha"] == hashlib.sha256(data).hexdigest()
        assert status["lfs"] == {"objects": 0, "bytes": 0}


def test_a_delivery_downloads_an_object_its_host_lacks(settings, client, worker, tmp_path):
    # As on a host whose scan did not run here, or whose mirror was evicted since.
    remote = Remote(tmp_path)
    data = os.urandom(7000)
    remote.commit({".gitattributes": ATTRIBUTES, "y.bin": data})
    with watched(client, remote) as w:
        (cache,) = Path(settings.repos_base_path).glob("**/lfs/objects")
        shutil.rmtree(cache)
        r = client.post(f"/api/repositories/{w.rid}/resend", headers=w.headers)
        assert r.status_code == 202
        w.receiver.wait_for(lambda state: len(_events(w.receiver, "y.bin")) == 2)
        again = _events(w.receiver, "y.bin")[1]
        assert base64.b64decode(again.body["file"]["content"]) == data
        assert remote.store.downloads == [hashlib.sha256(data).hexdigest()] * 2
