"""Every host the LFS client contacts passes the SSRF rules of SPEC 6: the endpoint and
each `href` the batch API returns, redirects included. The LFS server here stands in for a
public host (the resolver says lfs.example.com is 93.184.216.34; the transport's connect
seam takes that address to the loopback server, after the checks ran on the real one);
the refused hrefs name loopback spellings, and a listener on their port counts that no
connection was ever made."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from docora.git.command import GitError, GitErrorKind
from docora.git.lfs import LfsClient, Wanted, endpoint_for
from docora.git.lfs_cache import ObjectCache
from docora.net import system_resolver
from docora.transport import PinnedTransport
from tests.githttp import GitHttpServer
from tests.lfs_server import LfsStore
from tests.test_ssrf_git import LOOPBACK_SPELLINGS, PUBLIC, Listener

HOST = "lfs.example.com"


async def _resolve(host: str, port: int) -> list[str]:
    return [PUBLIC] if host == HOST else await system_resolver(host, port)


class StandIn(PinnedTransport):
    """Connections to PUBLIC go to the loopback server instead (checks already passed)."""

    def __init__(self, port: int) -> None:
        super().__init__(resolver=_resolve, allow_private=False, what="lfs url")
        self.port = port

    async def _connect(self, address, port, tls):
        assert address != PUBLIC or port != 0
        if address == PUBLIC:
            return await super()._connect("127.0.0.1", self.port, tls)
        return await super()._connect(address, port, tls)


def _fetch(server, store: LfsStore, tmp_path, data: bytes):
    oid = store.put(data)
    client = LfsClient(
        allow_private=False,
        allow_http=True,  # TLS is beside the point here; the address checks are not
        transport=StandIn(server.server_port),
    )
    remote = f"http://{HOST}:{server.server_port}/acme/media"

    async def run():
        try:
            return await client.fetch(
                ObjectCache(tmp_path / "mirror.git"),
                [Wanted(oid, len(data), "media/x.bin")],
                remote_url=remote,
                endpoint=endpoint_for(remote, None),
                token="t0ken",
            )
        finally:
            await client.aclose()

    return oid, asyncio.run(run())


@pytest.fixture
def served(tmp_path):
    store = LfsStore(tmp_path / "lfs")
    (tmp_path / "srv").mkdir()
    with GitHttpServer(tmp_path / "srv", None, lfs=store) as server:
        yield server, store


def test_the_stand_in_serves_a_public_name(served, tmp_path):
    server, store = served
    store.href_base = f"http://{HOST}:{server.server_port}"
    data = os.urandom(3000)
    oid, fetched = _fetch(server, store, tmp_path, data)
    assert fetched[oid].downloaded_bytes == len(data)
    assert ObjectCache(tmp_path / "mirror.git").read(oid) == data
    assert hashlib.sha256(data).hexdigest() == oid


@pytest.mark.parametrize("spelling", LOOPBACK_SPELLINGS)
def test_an_href_to_a_refused_address_is_never_contacted(served, tmp_path, spelling):
    server, store = served
    with Listener() as listener:
        store.href_base = f"http://{spelling}:{listener.port}"
        with pytest.raises(GitError) as caught:
            _fetch(server, store, tmp_path, os.urandom(100))
        assert caught.value.kind is GitErrorKind.REFUSED
        assert "t0ken" not in str(caught.value) and "t0ken" not in (caught.value.detail or "")
    assert listener.accepted == 0
    assert store.downloads == []
    assert not list((tmp_path / "mirror.git" / "lfs").rglob("objects/*/*/*"))


def test_a_redirect_to_another_host_is_not_followed(served, tmp_path):
    server, store = served
    with Listener() as listener:
        store.href_base = f"http://{HOST}:{server.server_port}"
        store.redirect = True
        store.redirect_base = f"http://127.0.0.1:{listener.port}"
        with pytest.raises(GitError) as caught:
            _fetch(server, store, tmp_path, os.urandom(100))
        assert caught.value.kind is GitErrorKind.REFUSED
        assert "redirected to another host" in caught.value.message
    assert listener.accepted == 0


def test_an_endpoint_at_a_refused_address_is_never_contacted(tmp_path):
    with Listener() as listener:
        client = LfsClient(allow_private=False, allow_http=True)
        remote = f"http://127.0.0.1:{listener.port}/acme/media"

        async def run():
            try:
                await client.fetch(
                    ObjectCache(tmp_path / "m.git"),
                    [Wanted("a" * 64, 1, "x.bin")],
                    remote_url=remote,
                    endpoint=endpoint_for(remote, None),
                    token=None,
                )
            finally:
                await client.aclose()

        with pytest.raises(GitError) as caught:
            asyncio.run(run())
        assert caught.value.kind is GitErrorKind.REFUSED
    assert listener.accepted == 0


def test_http_is_refused_unless_local_repositories_are_allowed(tmp_path):
    client = LfsClient(allow_private=False)

    async def run():
        try:
            await client.fetch(
                ObjectCache(tmp_path / "m.git"),
                [Wanted("a" * 64, 1, "x.bin")],
                remote_url="http://lfs.example.com/acme/media",
                endpoint="http://lfs.example.com/acme/media.git/info/lfs",
                token=None,
            )
        finally:
            await client.aclose()

    with pytest.raises(GitError, match="https only"):
        asyncio.run(run())


def test_endpoints_as_git_lfs_derives_them():
    assert endpoint_for("https://h.example/o/r", None) == "https://h.example/o/r.git/info/lfs"
    assert endpoint_for("https://h.example/o/r.git", None) == "https://h.example/o/r.git/info/lfs"
    assert endpoint_for("https://h.example/o/r/", None) == "https://h.example/o/r.git/info/lfs"
    assert (
        endpoint_for("https://h.example/o/r", "https://lfs.example/x/") == "https://lfs.example/x"
    )
