"""Several worker hosts on one machine, for the tests of SPEC 12: each host a `docora
worker` process with a disk of its own (REPOS_BASE_PATH), to kill, restart and wipe; a
network namespace to put one behind a link that a test can cut; and what the receivers
and the remotes hold, per watch, to compare them at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import msgspec

from docora.config import Settings
from docora.git.mirrors import disk_bytes
from docora.receiver import Received, ReceiverState, apply_event
from tests.conftest import RECEIVER_KEY, onboard
from tests.gitrepo import git
from tests.test_cli import free_port
from tests.waiting import wait_until
from tests.worker import WorkerProcess


class WorkerHost:
    """One host: its own base path, and at most one worker process at a time."""

    def __init__(self, settings: Settings, root: Path, name: str, **env: str) -> None:
        self.name = name
        self.base = root / name / "repos"
        self.settings = msgspec.structs.replace(settings, repos_base_path=str(self.base))
        self.env = env
        self.worker: WorkerProcess | None = None
        self.starts = 0

    def start(self) -> WorkerHost:
        assert self.worker is None or not self.worker.alive()
        if self.worker is not None:
            self.worker.close()
        self.worker = WorkerProcess(self.settings, **self.env)
        self.starts += 1
        return self

    def running(self) -> bool:
        return self.worker is not None and self.worker.alive()

    def kill(self) -> None:
        if self.worker is not None:
            self.worker.kill()

    def stop(self) -> str:
        assert self.worker is not None
        return self.worker.stop()

    def wipe(self) -> None:
        """The host's disk is lost (call while its worker is down)."""
        assert not self.running()
        shutil.rmtree(self.base, ignore_errors=True)

    def disk_bytes(self) -> int:
        return disk_bytes(self.base) if self.base.exists() else 0

    def log(self) -> str:
        return self.worker.log() if self.worker is not None else ""

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


class Namespace:
    """A network namespace joined to this one by a veth pair: `host_ip` is this side's end,
    `ns_ip` the namespace's. Only those two addresses exist on the link; nothing is routed
    off the machine. Removed at exit, on failure too."""

    def __init__(self, tag: int) -> None:
        self.name = f"docora{os.getpid() % 10000}t{tag}"
        self.host_link = f"vh{os.getpid() % 10000}t{tag}"
        subnet = 10 + (os.getpid() + tag) % 200
        self.host_ip = f"10.213.{subnet}.1"
        self.ns_ip = f"10.213.{subnet}.2"

    def __enter__(self) -> Namespace:
        peer = self.host_link + "p"
        try:
            _ip("netns", "add", self.name)
            _ip("link", "add", self.host_link, "type", "veth", "peer", "name", peer)
            _ip("link", "set", peer, "netns", self.name)
            _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_link)
            _ip("link", "set", self.host_link, "up")
            self.run("ip", "addr", "add", f"{self.ns_ip}/30", "dev", peer)
            self.run("ip", "link", "set", peer, "up")
            self.run("ip", "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, check=False)

    @property
    def prefix(self) -> tuple[str, ...]:
        """Run a command inside: `[*ns.prefix, command...]`."""
        return ("ip", "netns", "exec", self.name)

    def run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True)

    def cut(self, port: int) -> None:
        """Drop the traffic to and from `port` on this side, both ways, inside the
        namespace: a partition of that one service, everything else still flowing."""
        for chain, direction in (("OUTPUT", "--dport"), ("INPUT", "--sport")):
            self.run("iptables", "-A", chain, "-p", "tcp", direction, str(port), "-j", "DROP")

    def heal(self) -> None:
        for chain in ("OUTPUT", "INPUT"):
            self.run("iptables", "-F", chain)


def namespaces_left() -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith("docora")]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def watch_trees(events: list[Received]) -> dict[tuple[str, str], dict[str, bytes]]:
    """The files each (app id, repository id) holds after applying its accepted events in
    the order they arrived, as a receiver keeping one tree per watch would."""
    states: dict[tuple[str, str], ReceiverState] = {}
    for event in events:
        if event.answered >= 300 or event.duplicate:
            continue
        key = (event.headers["x-docora-app-id"], event.body["repository"]["repository_id"])
        apply_event(states.setdefault(key, ReceiverState(key="")), event.event, event.body)
    return {key: state.files for key, state in states.items()}


def remote_tree(remote: Path, branch: str = "main") -> dict[str, bytes]:
    """Every file of the branch's tip in a bare remote."""
    tree: dict[str, bytes] = {}
    listing = git("ls-tree", "-r", "-z", branch, cwd=remote)
    for entry in filter(None, listing.split("\0")):
        meta, path = entry.split("\t", 1)
        _, kind, sha = meta.split()
        if kind == "blob":
            tree[path] = git_bytes(remote, sha)
    return tree


def git_bytes(remote: Path, sha: str) -> bytes:
    return subprocess.run(
        ["git", "cat-file", "blob", sha], cwd=remote, check=True, capture_output=True
    ).stdout


def onboard_apps(client, receiver, count: int) -> list[tuple[str, dict[str, str]]]:
    """`count` apps posting to one receiver: (app id, headers) each."""
    return [
        onboard(
            client, app_name=f"app {i}", base_url=receiver.base_url, client_auth_key=RECEIVER_KEY
        )
        for i in range(count)
    ]


class ApiProcess:
    """`docora api` as a real process on 127.0.0.1, to stop and start like a deployment
    does (SIGTERM, wait, start, health)."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "ENCRYPTION_KEY": settings.encryption_key or "",
            "ADMIN_TOKEN": settings.admin_token or "",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "ALLOW_LOCAL_REPOSITORIES": "true",
            "ALLOW_PRIVATE_WEBHOOK_TARGETS": "true",
            "RATE_LIMIT_PER_MINUTE": "100000",
            "LOG_LEVEL": "warning",
            **env,
        }
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile("w+", prefix="docora-api-", suffix=".log")  # noqa: SIM115

    def start(self, timeout: float = 60) -> ApiProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "docora", "api"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        wait_until(self.healthy, timeout, lambda: f"the API did not start:\n{self.log()}")
        return self

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, timeout: float = 60) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        assert code == 0, f"the API exited with {code}:\n{self.log()}"

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read()[-4000:]

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()
