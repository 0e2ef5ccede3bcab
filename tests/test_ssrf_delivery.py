"""SSRF at delivery time: the target is checked again on the resolved address, and
redirects are never followed."""

from __future__ import annotations

from litestar.testing import TestClient

from docora.asgi import create_app
from docora.receiver import BackgroundServer, NoDelayHandler
from tests.conftest import RECEIVER_KEY, onboard
from tests.e2e import wait_status, watch
from tests.gitrepo import GitRepo
from tests.worker import BackgroundWorker


def resolving_to(address: str):
    async def resolve(host, port):
        return [address]

    return resolve


def test_a_name_that_now_resolves_to_loopback_is_refused(make_settings, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    settings = make_settings(ALLOW_PRIVATE_WEBHOOK_TARGETS="false", MAX_RETRY_ATTEMPTS="1")
    # At onboarding the name resolved to a public address; by delivery time it points at
    # 127.0.0.1 (DNS rebinding). Nothing may be sent.
    api = create_app(settings, resolver=resolving_to("93.184.216.34"))
    with TestClient(api) as client, BackgroundWorker(settings, resolver=resolving_to("127.0.0.1")):
        _, headers = onboard(
            client, base_url="https://hooks.example.test/x", client_auth_key=RECEIVER_KEY
        )
        rid = watch(client, headers, repo.url)
        status = wait_status(client, headers, rid, "failed")
    assert "webhook target refused" in status["last_error"]
    assert "must resolve to public addresses" in status["last_error"]
    assert "127.0.0.1" not in status["last_error"]  # what a name resolves to is not told
    assert status["files_delivered"] == 0


class _Redirect(NoDelayHandler):
    target = ""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.wfile.write(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {self.target}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )


def test_redirects_are_not_followed(make_settings, receiver, tmp_path):
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    _Redirect.target = receiver.base_url + "/create"
    settings = make_settings(MAX_RETRY_ATTEMPTS="1")
    with (
        BackgroundServer(_Redirect) as redirector,
        TestClient(create_app(settings)) as client,
        BackgroundWorker(settings),
    ):
        port = redirector.server_port
        _, headers = onboard(
            client, base_url=f"http://127.0.0.1:{port}/hooks", client_auth_key=RECEIVER_KEY
        )
        rid = watch(client, headers, repo.url)
        status = wait_status(client, headers, rid, "failed")
    assert status["last_error"].endswith("HTTP 307")
    assert receiver.state.events == []  # the redirect target never heard of it


def test_connections_go_to_the_address_that_was_checked(make_settings, receiver, tmp_path):
    """DNS rebinding: the name is public when the delivery job checks it and loopback when
    the connection opens. The connection resolves and checks again, and refuses."""
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    settings = make_settings(ALLOW_PRIVATE_WEBHOOK_TARGETS="false", MAX_RETRY_ATTEMPTS="1")
    answers = iter(["93.184.216.34"])

    async def rebinding(host, port):
        return [next(answers, "127.0.0.1")]

    api = create_app(settings, resolver=resolving_to("93.184.216.34"))
    with TestClient(api) as client, BackgroundWorker(settings, resolver=rebinding):
        _, headers = onboard(
            client, base_url="https://rebind.example.test/x", client_auth_key=RECEIVER_KEY
        )
        rid = watch(client, headers, repo.url)
        status = wait_status(client, headers, rid, "failed")
        logged = client.get("/api/deliveries", headers=headers).json()["deliveries"]
    # The job's own check saw the public answer; the refusal came from the connection's
    # check. (A later sync's delivery may fail at the job's check instead: both refuse.)
    refused = "webhook target refused: base_url host 'rebind.example.test' is refused"
    assert refused in status["last_error"]
    assert [d["error"] for d in logged][-1].startswith(refused)
    assert receiver.state.events == []


def test_the_connection_uses_docoras_resolution_not_a_second_lookup(
    make_settings, receiver, tmp_path
):
    """The name below exists only in Docora's resolver: events arriving prove the socket was
    opened to the address Docora resolved (and checked), not to a fresh system lookup."""
    repo = GitRepo(tmp_path / "r" / "acme")
    repo.commit("v1", {"a.txt": "a"})
    settings = make_settings()
    port = receiver.server_port
    name_only_docora_knows = resolving_to("127.0.0.1")
    api = create_app(settings, resolver=name_only_docora_knows)
    with TestClient(api) as client, BackgroundWorker(settings, resolver=name_only_docora_knows):
        _, headers = onboard(
            client,
            base_url=f"http://hooks.docora-test.invalid:{port}/hooks",
            client_auth_key=RECEIVER_KEY,
        )
        rid = watch(client, headers, repo.url)
        wait_status(client, headers, rid, "synced")
    assert receiver.state.files == {"a.txt": b"a"}
    assert receiver.state.events[0].headers["host"] == f"hooks.docora-test.invalid:{port}"
