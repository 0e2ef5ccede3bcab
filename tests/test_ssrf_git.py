"""SSRF through repository URLs: git hosts pass the webhook-target address table unless
ALLOW_LOCAL_REPOSITORIES is on, git connects only to the checked addresses, never follows a
redirect, and clients learn the failure class only.

Every target below is a loopback address with a listener that counts connections: the
refusals must happen before git connects, and if the code under test were broken the
connection would still stay on this machine."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest
from litestar.testing import TestClient

from docora.asgi import create_app
from docora.git.command import GitError, GitErrorKind, git_environment, run_git_async
from docora.git.hosts import remote_environment, resolve_entry
from docora.git.mirror import fetch_branch
from docora.git.remote import read_remote_head
from docora.ids import repository_id
from docora.receiver import BackgroundServer, NoDelayHandler
from tests.conftest import onboard
from tests.githttp import GitHttpServer
from tests.gitrepo import GitRepo
from tests.waiting import wait_until
from tests.worker import BackgroundWorker

PUBLIC = "93.184.216.34"


def resolving_to(*addresses: str):
    async def resolve(host, port):
        return list(addresses)

    return resolve


class Listener:
    """Counts TCP connections on one loopback port (IPv4 and, when available, IPv6)."""

    def __init__(self) -> None:
        self.accepted = 0
        self.sockets = [socket.create_server(("127.0.0.1", 0))]
        self.port = self.sockets[0].getsockname()[1]
        with contextlib.suppress(OSError):  # a machine without IPv6 loopback
            self.sockets.append(socket.create_server(("::1", self.port), family=socket.AF_INET6))
        for sock in self.sockets:
            sock.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, args=(s,)) for s in self.sockets]

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def __enter__(self) -> Listener:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def listener():
    with Listener() as running:
        yield running


# 127.0.0.1 in the spellings inet_aton and URL parsers accept, IPv6 forms, and a name.
LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "localhost",
    "[::1]",
    "[::ffff:127.0.0.1]",
]


def loopback_urls(port: int) -> list[str]:
    return [f"https://{host}:{port}/acme/project" for host in LOOPBACK_SPELLINGS]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fc00::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
    ],
)
async def test_check_level_refuses_non_public_addresses(address):
    # Only the check runs here: a refused host never gets as far as a git command.
    with pytest.raises(GitError) as info:
        await remote_environment(
            "https://git.example.com/a/b",
            token=None,
            allow_local=False,
            resolver=resolving_to(PUBLIC, address),
        )
    assert info.value.kind is GitErrorKind.REFUSED
    assert address not in info.value.message  # the class only, not what the name is


async def test_check_level_pins_public_addresses():
    env = await remote_environment(
        "https://git.example.com:8443/a/b",
        token=None,
        allow_local=False,
        resolver=resolving_to(PUBLIC, "2606:2800:220:1::1"),
    )
    config = {
        env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(int(env["GIT_CONFIG_COUNT"]))
    }
    assert config["http.curloptResolve"] == f"git.example.com:8443:{PUBLIC},[2606:2800:220:1::1]"
    assert config["http.followRedirects"] == "false"


async def test_unresolvable_and_internal_names_look_the_same():
    async def nowhere(host, port):
        raise OSError("no such host")

    outcomes = []
    for resolver in (nowhere, resolving_to("10.1.2.3")):
        with pytest.raises(GitError) as info:
            await remote_environment(
                "https://git.internal/a/b", token=None, allow_local=False, resolver=resolver
            )
        outcomes.append(str(info.value))
    assert outcomes[0] == outcomes[1]


async def test_git_layer_refuses_loopback_before_connecting(listener, tmp_path):
    named = f"https://git.internal.test:{listener.port}/acme/project"
    attempts = [(url, None) for url in loopback_urls(listener.port)]
    attempts.append((named, resolving_to("127.0.0.1")))
    for url, resolver in attempts:
        extra = {"resolver": resolver} if resolver else {}
        with pytest.raises(GitError) as info:
            await read_remote_head(
                url, branch=None, token=None, allow_local=False, timeout_ms=5000, **extra
            )
        assert info.value.kind is GitErrorKind.REFUSED, url
    with pytest.raises(GitError) as info:
        await fetch_branch(
            mirror := tmp_path / "mirror.git",
            url=named,
            branch="main",
            token=None,
            allow_local=False,
            timeout_ms=5000,
            resolver=resolving_to("127.0.0.1"),
        )
    assert info.value.kind is GitErrorKind.REFUSED and not mirror.exists()
    assert listener.accepted == 0


def test_registration_refuses_internal_hosts_with_the_class_only(make_settings, listener, tmp_path):
    settings = make_settings(ALLOW_LOCAL_REPOSITORIES="false")

    async def resolver(host, port):
        if host == "git.internal.test":  # a name pointed at loopback
            return ["127.0.0.1"]
        return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]

    urls = [*loopback_urls(listener.port), f"https://git.internal.test:{listener.port}/a/b"]
    with TestClient(create_app(settings, resolver=resolver)) as client:
        _, headers = onboard(client)
        for url in urls:
            r = client.post("/api/repositories", json={"github_url": url}, headers=headers)
            assert r.status_code == 422, (url, r.text)
            error = r.json()["error"]
            assert "refused_address" in error and "127.0.0.1" not in error, error
    assert listener.accepted == 0


def test_later_syncs_check_the_host_again(make_settings, listener, db):
    # Registered while the name was public (written directly: a test never lets git reach
    # a public address); now it resolves to loopback. The sync must refuse, not connect.
    settings = make_settings(ALLOW_LOCAL_REPOSITORIES="false", SCAN_INTERVAL_MS="1000")
    url = f"https://git.rebound.test:{listener.port}/acme/project"
    rid = repository_id(url, "main")
    with TestClient(create_app(settings)) as client:
        app_id, headers = onboard(client)
        db.execute(
            "INSERT INTO repositories (id, url, host, owner, name, branch, is_private) "
            "VALUES (%s, %s, %s, 'acme', 'project', 'main', false)",
            (rid, url, f"git.rebound.test:{listener.port}"),
        )
        db.execute("INSERT INTO watches (app_id, repository_id) VALUES (%s, %s)", (app_id, rid))
        with BackgroundWorker(settings, resolver=resolving_to("127.0.0.1")):

            def refused() -> bool:
                detail = client.get(f"/api/repositories/{rid}", headers=headers).json()
                return "refused_address" in (detail.get("last_error") or "")

            wait_until(refused, 30, "the sync did not refuse the rebound host")
    assert listener.accepted == 0


async def test_git_connects_to_the_checked_address(tmp_path):
    # The git server listens on 127.0.0.2 only; "localhost" is 127.0.0.1 to the system.
    # Reaching the repository through http://localhost proves git used the pinned address.
    repo = GitRepo(tmp_path / "srv" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    with GitHttpServer(tmp_path / "srv", passwords=None, host="127.0.0.2") as server:
        url = f"http://localhost:{server.server_port}/acme/project.git"
        head = await read_remote_head(
            url,
            branch=None,
            token=None,
            allow_local=True,
            timeout_ms=10_000,
            resolver=resolving_to("127.0.0.2"),
        )
        assert head.commit_sha is not None
        # Without the pin git resolves the name itself and finds nobody there.
        with pytest.raises(GitError):
            await run_git_async(
                ["ls-remote", "--", url],
                env=git_environment(url=url, allow_local=True),
                timeout_ms=10_000,
            )


def test_resolve_entries_bracket_ipv6():
    assert resolve_entry("h", 443, ["1.2.3.4", "::1"]) == "h:443:1.2.3.4,[::1]"


class _Redirect(NoDelayHandler):
    target = ""

    def do_GET(self):
        self.wfile.write(
            f"HTTP/1.1 302 Found\r\nLocation: {self.target}{self.path}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )


async def test_git_never_follows_a_redirect(listener):
    _Redirect.target = f"http://localhost:{listener.port}"
    with BackgroundServer(_Redirect) as redirector:
        url = f"http://127.0.0.1:{redirector.server_port}/acme/project"
        with pytest.raises(GitError):
            await read_remote_head(url, branch=None, token=None, allow_local=True, timeout_ms=5000)
    assert listener.accepted == 0
