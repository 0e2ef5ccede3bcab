"""The receivers docs/webhooks.md shows (Python and JavaScript) work, in both delivery
modes: each is run against a real sync and must end up with the repository's files."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import onboard
from tests.e2e import wait_synced, watch
from tests.gitrepo import GitRepo
from tests.tools import require_tool

DOC = Path(__file__).parents[1] / "docs" / "webhooks.md"
KEY = "doc-receiver-key-0123456789"
FILES = {
    "a.txt": "alpha",
    "b/c.md": "# c\n",
    "logo.bin": bytes(range(256)) * 12,  # binary, chunked below
    "z.txt": "zed",
}


def snippet(language: str) -> str:
    section = DOC.read_text().split("## A receiver for each mode", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def expected() -> dict[str, str]:
    def raw(v):
        return v.encode() if isinstance(v, str) else v

    return {p: hashlib.sha256(raw(v)).hexdigest() for p, v in FILES.items()}


def sync_to(make_settings, tmp_path, base_url: str, mode: str) -> None:
    from litestar.testing import TestClient

    from docora.asgi import create_app
    from tests.worker import BackgroundWorker

    settings = make_settings(BINARY_CHUNK_THRESHOLD_BYTES="2000", BINARY_CHUNK_SIZE_BYTES="1000")
    repo = GitRepo(tmp_path / "remote")
    commit = repo.commit("v1", FILES)
    with TestClient(create_app(settings)) as client, BackgroundWorker(settings):
        _, headers = onboard(client, base_url=base_url, client_auth_key=KEY, delivery_mode=mode)
        rid = watch(client, headers, repo.url)
        wait_synced(client, headers, rid, commit)


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_the_python_receiver(make_settings, tmp_path, mode):
    code = snippet("python").replace('"your client_auth_key"', repr(KEY))
    code = code.replace('ThreadingHTTPServer(("0.0.0.0", 8080), Receiver).serve_forever()', "")
    namespace: dict = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    server = ThreadingHTTPServer(("127.0.0.1", 0), namespace["Receiver"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        sync_to(make_settings, tmp_path, f"http://127.0.0.1:{server.server_port}/hooks", mode)
    finally:
        server.shutdown()
        server.server_close()
    held = {p: hashlib.sha256(b).hexdigest() for p, b in namespace["FILES"].items()}
    assert held == expected()


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_the_javascript_receiver(make_settings, tmp_path, mode):
    node = require_tool("node", "apt-get install nodejs; .ci/run installs it")
    port = free_port()
    code = snippet("js").replace('"your client_auth_key"', repr(KEY))
    code = code.replace(".listen(8080);", f'.listen({port}, "127.0.0.1");')
    # What the receiver holds, for the test: printed when it is told to stop.
    code += (
        'process.on("SIGTERM", () => { console.log(JSON.stringify(Object.fromEntries('
        '[...files].map(([p, b]) => [p, crypto.createHash("sha256").update(b).digest("hex")]))));'
        " process.exit(0); });\n"
    )
    script = tmp_path / "receiver.mjs"
    script.write_text(code)
    proc = subprocess.Popen([node, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.post(f"http://127.0.0.1:{port}/probe", content=b"{}", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sync_to(make_settings, tmp_path, f"http://127.0.0.1:{port}/hooks", mode)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert json.loads(out.strip().splitlines()[-1]) == expected()
