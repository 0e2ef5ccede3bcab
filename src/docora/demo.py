"""`docora demo`: the whole service on a fresh machine, events flowing, in one command.

Embedded Postgres, a generated sample repository, the reference receiver verifying every
signature, an app onboarded and a watch registered through the real API; then a commit
(modify, add, delete) and its events. Everything lives in a temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sh

from docora.config import load_settings
from docora.local import apply_local_defaults, database_url
from docora.logs import configure_logging
from docora.migrate import apply_migrations
from docora.receiver import Received, WebhookReceiver
from docora.runtime import serve

SIGNING_KEY = "demo-signing-key-" + os.urandom(8).hex()
BINARY_SIZE = 1_572_864  # 1.5 MiB: over the 1 MiB threshold, so it travels in 4 chunks
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Docora Demo",
    "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "Docora Demo",
    "GIT_COMMITTER_EMAIL": "demo@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}

INITIAL_FILES: dict[str, bytes] = {
    "README.md": b"# Sample project\n\nWatched by Docora.\n",
    "docs/guide.md": b"# Guide\n\nStep one, step two.\n",
    "docs/international.md": "# Grüße aus Zürich\n\n日本語, ελληνικά, emoji 🚀\n".encode(),
    "assets/logo.bin": random.Random(42).randbytes(BINARY_SIZE),
    ".docoraignore": b"# never sent\n*.tmp\nbuild/\n",
    "notes/draft.tmp": b"ignored by .docoraignore\n",
    "build/output.js": b"ignored too\n",
}


CHANGED_FILES: dict[str, bytes] = {
    "README.md": b"# Sample project\n\nWatched by Docora. Now updated.\n",
    "docs/changelog.md": b"# Changelog\n\n- second commit\n",
}


class SampleRepository:
    def __init__(self, root: Path) -> None:
        self.remote = root / "sample" / "project.git"
        self.work = root / "sample" / "work"
        self._git = sh.git.bake(_env={**os.environ, **GIT_IDENTITY}, _tty_out=False)
        self._git("init", "--quiet", "--bare", "--initial-branch=main", str(self.remote))
        self._git("init", "--quiet", "--initial-branch=main", str(self.work))

    def commit(self, message: str, write: dict[str, bytes], delete: tuple[str, ...] = ()) -> None:
        for path, content in write.items():
            target = self.work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        for path in delete:
            self._git("-C", str(self.work), "rm", "--quiet", "--", path)
        self._git("-C", str(self.work), "add", "--all")
        self._git("-C", str(self.work), "commit", "--quiet", "-m", message)
        self._git("-C", str(self.work), "push", "--quiet", str(self.remote), "HEAD:refs/heads/main")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _describe(event: Received) -> str:
    mark = "verified ✓" if event.verified else "SIGNATURE MISMATCH ✗"
    if event.event == "batch":
        items = event.body.get("events", [])
        count = f"{len(items)} event{'s' if len(items) != 1 else ''} in one request"
        lines = [f"  batch   {count:<50} {mark}"]
        lines += ["  " + _line(item["event"], item.get("file", {}), "") for item in items]
        return "\n".join(lines)
    return _line(event.event, event.body.get("file", {}), mark)


def _line(event: str, file: dict, mark: str) -> str:
    path = file.get("path", "-")
    size = file.get("size")
    shown = f"{size:,} B" if isinstance(size, int) else ""
    chunk = file.get("chunk")
    part = f"chunk {chunk['index'] + 1}/{chunk['total']}" if chunk else ""
    return f"  {event:<7} {path:<26} {shown:>12}  {part:<11} {mark}".rstrip()


def _units(event: Received) -> int:
    """Events a request carried: a batch's, else one (a chunk counts as one)."""
    return len(event.body.get("events", [])) if event.event == "batch" else 1


class Demo:
    def __init__(self, root: Path, keep_running: bool, batch: bool = False) -> None:
        self.root = root
        self.keep_running = keep_running
        self.delivery_mode = "batch" if batch else "single"
        self.sample = SampleRepository(root)
        self.receiver = WebhookReceiver(SIGNING_KEY)
        self.receiver.state.on_event = lambda event: print(_describe(event), flush=True)

    async def drive(
        self,
        base: str,
        admin_token: str,
        stop: asyncio.Event,
        ready: asyncio.Event,
        console: tuple[str, str | None, str | None],
    ) -> bool:
        await ready.wait()
        url, user, password = console
        print(f"Console: {url}/admin  (user {user}, password {password})")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            auth = await self._onboard(api, admin_token)
            rid = await self._register(api, auth)
            print("Initial sync:")
            started = time.perf_counter()
            expected = 5 + 3  # 4 files + .docoraignore, the binary in 4 chunks: 4 + 4
            ok = await self._wait_for_events(expected)
            initial_s = time.perf_counter() - started
            print("\nCommitting: modify README.md, add docs/changelog.md, delete docs/guide.md")
            self.sample.commit("second commit", CHANGED_FILES, delete=("docs/guide.md",))
            (await api.post(f"/api/repositories/{rid}/resync", headers=auth)).raise_for_status()
            ok = ok and await self._wait_for_events(expected + 3)
            status = (await api.get(f"/api/repositories/{rid}", headers=auth)).json()
            logged = (await api.get("/api/deliveries?limit=200", headers=auth)).json()
        ok = self._summarize(ok, initial_s, status, len(logged["deliveries"]))
        if self.keep_running:
            print(
                f"\nStill running (--keep-running): API {base}, Ctrl+C to stop.\n"
                f"Console: {url}/admin  (user {user}, password {password})"
            )
        else:
            stop.set()
        return ok

    async def _onboard(self, api: httpx.AsyncClient, admin_token: str) -> dict[str, str]:
        app = await api.post(
            "/api/apps/onboard",
            headers={"Authorization": f"Bearer {admin_token}"},
            json={
                "app_name": "Demo receiver",
                "base_url": self.receiver.base_url,
                "email": "demo@example.com",
                "client_auth_key": SIGNING_KEY,
                "delivery_mode": self.delivery_mode,
            },
        )
        app.raise_for_status()
        print(f"Onboarded app {app.json()['app_id']} (delivery mode {self.delivery_mode})")
        return {"Authorization": f"Bearer {app.json()['token']}"}

    async def _register(self, api: httpx.AsyncClient, auth: dict[str, str]) -> str:
        repo = await api.post(
            "/api/repositories", headers=auth, json={"github_url": str(self.sample.remote)}
        )
        repo.raise_for_status()
        print(f"Watching {self.sample.remote} as {repo.json()['repository_id']}\n")
        return repo.json()["repository_id"]

    def _summarize(self, ok: bool, initial_s: float, status: dict, logged: int) -> bool:
        events = self.receiver.state.events
        verified = sum(e.verified for e in events)
        carried = sum(_units(e) for e in events)
        print(
            f"\n{len(events)} requests ({carried} events), {verified} verified; "
            f"initial sync in {initial_s:.2f} s; "
            f"watch {status['status']} at {str(status['commit_sha'])[:12]}; "
            f"{logged} rows in the delivery log."
        )
        ok = ok and verified == len(events) and self._files_match()
        print("Receiver's copy matches the repository ✓" if ok else "Receiver's copy differs ✗")
        return ok

    def _files_match(self) -> bool:
        expected = {
            path: content
            for path, content in INITIAL_FILES.items()
            if not path.endswith(".tmp") and not path.startswith("build/")
        }
        expected.update(CHANGED_FILES)
        del expected["docs/guide.md"]
        return self.receiver.state.files == expected

    async def _wait_for_events(self, count: int, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(_units(e) for e in self.receiver.state.accepted()) >= count:
                await asyncio.sleep(0.2)  # let the watch settle before moving on
                return True
            await asyncio.sleep(0.05)
        print(f"timed out waiting for {count} events", file=sys.stderr)
        return False


def run_demo(*, keep_running: bool, port: int | None, batch: bool = False) -> int:
    with tempfile.TemporaryDirectory(prefix="docora-demo-") as tmp:
        root = Path(tmp)
        env = dict(os.environ)
        env.update(
            {
                "HOST": "127.0.0.1",
                "PORT": str(port or _free_port()),
                "LOG_LEVEL": env.get("LOG_LEVEL", "warning"),
                "REPOS_BASE_PATH": str(root / "repos"),
                "RETRY_BASE_DELAY_MS": "500",
            }
        )
        apply_local_defaults(env, root / "state")
        print("Starting Docora with an embedded Postgres (first start takes a few seconds)…")
        with database_url(env, root / "state"):
            settings = load_settings(env, require=("ENCRYPTION_KEY",))
            apply_migrations(settings.database_url)
            configure_logging(settings.log_level, settings.log_format)
            demo = Demo(root, keep_running, batch)
            demo.sample.commit("first commit", INITIAL_FILES)
            with demo.receiver:
                return asyncio.run(_main(demo, settings))


async def _main(demo: Demo, settings) -> int:
    stop, ready = asyncio.Event(), asyncio.Event()
    base = f"http://{settings.host}:{settings.port}"
    service = asyncio.create_task(
        serve(settings, api=True, worker=True, on_ready=ready.set, stop=stop)
    )
    console = (base, settings.admin_username, settings.admin_password)
    driver = asyncio.create_task(demo.drive(base, settings.admin_token, stop, ready, console))
    done, _ = await asyncio.wait({service, driver}, return_when=asyncio.FIRST_COMPLETED)
    if service in done and not driver.done():
        driver.cancel()
        service.result()
        return 1
    ok = await driver
    await service
    return 0 if ok else 1
