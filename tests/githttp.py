"""A local git smart-HTTP server (`git http-backend` as CGI) with optional basic auth, and
switches for the answers a hosted server may give instead: protocol v0 only, dumb HTTP
(static files), a redirect, no answer at all."""

from __future__ import annotations

import base64
import os
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from docora.receiver import BackgroundServer
from tests.lfs_server import MEDIA_TYPE, OBJECTS_PREFIX, LfsStore, ObjectHandler, answer_batch


class _Handler(ObjectHandler):
    server: GitHttpServer

    def do_GET(self) -> None:
        if self.server.lfs is not None and self.path.startswith(OBJECTS_PREFIX):
            super().do_GET()
            return
        self._serve()

    def do_PUT(self) -> None:
        if self.server.lfs is not None and self.path.startswith(OBJECTS_PREFIX):
            super().do_PUT()
            return
        self._send("405 Method Not Allowed", [], b"")

    def do_POST(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool:
        expected = self.server.password_for
        if expected is None:
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        self.server.seen_passwords.append(password)
        return password in expected

    def _send(self, status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
        lines.append(f"Content-Length: {len(body)}")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    def _serve(self) -> None:
        body = self._read_body()
        self.server.requests += 1
        self.server.seen.append(
            (self.command, urlsplit(self.path).path, self.headers["User-Agent"])
        )
        if "Authorization" in self.headers:
            self.server.credentialed += 1
        if body[4:12] == b"command=":  # a protocol v2 request's first pkt-line
            self.server.commands.append(body[12 : int(body[:4], 16)].decode().rstrip("\n"))
        if self.server.delay:
            time.sleep(self.server.delay)
        if not self._authorized():
            self._send("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')], b"")
            return
        url = urlsplit(self.path)
        if self.server.lfs is not None and "/info/lfs/" in url.path:
            self._serve_lfs(url.path, body)
            return
        mode = self.server.mode
        if mode == "hang":
            self.server.release.wait(30)
            return
        if mode == "redirect":
            location = f"http://127.0.0.1:{self.server.server_port}/elsewhere{self.path}"
            self._send("301 Moved Permanently", [("Location", location)], b"")
            return
        if mode == "dumb":
            self._serve_file(url.path)
            return
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.server.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "tester",
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        if self.headers.get("Git-Protocol") and mode != "v0":
            env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        out = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
        ).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = value.strip()
            elif key:
                headers.append((key, value.strip()))
        self._send(status, headers, payload)

    def _serve_lfs(self, path: str, body: bytes) -> None:
        assert self.server.lfs is not None
        if path.endswith("/info/lfs/objects/batch") and self.command == "POST":
            status, answer = answer_batch(self.server.lfs, body)
            self._send(f"{status} X", [("Content-Type", MEDIA_TYPE)], answer)
            return
        self._send("404 Not Found", [("Content-Type", MEDIA_TYPE)], b'{"message":"no"}')

    def _serve_file(self, path: str) -> None:
        # Dumb HTTP: the repository's files as they are (after `git update-server-info`).
        target = (self.server.root / path.lstrip("/")).resolve()
        if self.server.root.resolve() not in target.parents or not target.is_file():
            self._send("404 Not Found", [], b"")
            return
        self._send("200 OK", [("Content-Type", "text/plain")], target.read_bytes())


class GitHttpServer(BackgroundServer):
    def __init__(
        self,
        root: Path,
        passwords: set[str] | None,
        host: str = "127.0.0.1",
        mode: str = "smart",
        lfs: LfsStore | None = None,
    ) -> None:
        super().__init__(_Handler, host=host)
        # Git LFS beside git (tests/lfs_server.py): `{repo}/info/lfs/...` and the objects.
        self.lfs = lfs
        if lfs is not None and not lfs.href_base:
            lfs.href_base = f"http://{host}:{self.server_port}"
        self.root = root
        self.password_for = passwords
        self.seen_passwords: list[str] = []
        self.credentialed = 0  # requests that carried an Authorization header
        # smart (protocol v2 when asked), v0, dumb, redirect or hang.
        self.mode = mode
        self.requests = 0
        self.seen: list[tuple[str, str, str]] = []  # (method, path, User-Agent)
        self.commands: list[str] = []  # protocol v2 commands asked for: ls-refs, fetch
        self.delay = 0.0  # seconds before each answer
        self.release = threading.Event()

    def __exit__(self, *exc) -> None:
        self.release.set()
        super().__exit__(*exc)

    def url_for(self, repo_dir: Path) -> str:
        relative = repo_dir.relative_to(self.root)
        return f"http://127.0.0.1:{self.server_port}/{relative}"
