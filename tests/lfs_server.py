"""A test-only Git LFS server: the batch API (`POST {repo}/info/lfs/objects/batch`) and
basic transfers, served beside git smart HTTP by tests/githttp.py, with switches for what a
real server may do instead: an object missing, an object whose bytes are wrong, actions
already expired, a download that redirects, hrefs on another loopback port.

Checked against the real client once (tests/test_lfs_server.py: `git lfs push` and
`git clone` through it round-trip), so Docora is tested against a server known to speak
the protocol."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from docora.receiver import BackgroundServer, NoDelayHandler
from tests.gitrepo import GitRepo

MEDIA_TYPE = "application/vnd.git-lfs+json"
OBJECTS_PREFIX = "/lfs-objects/"


def pointer(data: bytes) -> bytes:
    return pointer_for(hashlib.sha256(data).hexdigest(), len(data))


def pointer_for(oid: str, size: int) -> bytes:
    """A spec-v1 pointer, as `git lfs` commits one."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@dataclass
class LfsStore:
    """Objects by oid, on disk; what was asked for, and the switches."""

    root: Path
    missing: set[str] = field(default_factory=set)  # answered with an error 404
    corrupt: set[str] = field(default_factory=set)  # served with one byte changed
    expired: bool = False  # actions that expired a minute ago
    redirect: bool = False  # downloads answered with a 307 to the object's real href
    header: dict[str, str] = field(default_factory=dict)  # required on downloads
    batches: list[dict] = field(default_factory=list)
    downloads: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    href_base: str = ""  # where objects are served (this server, or another port)
    redirect_base: str = ""  # where a redirect points (default: href_base)

    def path(self, oid: str) -> Path:
        return self.root / oid[:2] / oid

    def put(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        target = self.path(oid)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return oid

    def put_file(self, source: Path) -> tuple[str, int]:
        """Move a file in as an object without reading it whole (hundreds of MB)."""
        digest, size = hashlib.sha256(), 0
        with source.open("rb") as f:
            while piece := f.read(1024 * 1024):
                digest.update(piece)
                size += len(piece)
        oid = digest.hexdigest()
        self.path(oid).parent.mkdir(parents=True, exist_ok=True)
        source.rename(self.path(oid))
        return oid, size

    def batch(self, request: dict) -> dict:
        with self.lock:
            self.batches.append(request)
        operation = request.get("operation")
        answers = []
        for item in request.get("objects", []):
            oid, size = item["oid"], item["size"]
            answer: dict = {"oid": oid, "size": size, "authenticated": True}
            present = self.path(oid).exists()
            if operation == "download":
                if oid in self.missing or not present:
                    answer["error"] = {"code": 404, "message": "Object does not exist"}
                else:
                    answer["actions"] = {"download": self._action(oid)}
            elif not present:
                answer["actions"] = {"upload": self._action(oid)}
            answers.append(answer)
        return {"transfer": "basic", "objects": answers, "hash_algo": "sha256"}

    def _action(self, oid: str) -> dict:
        action: dict = {"href": f"{self.href_base}{OBJECTS_PREFIX}{oid}"}
        if self.header:
            action["header"] = dict(self.header)
        action["expires_in"] = -60 if self.expired else 3600
        return action


class ObjectHandler(NoDelayHandler):
    """Basic transfers: GET and PUT of `/lfs-objects/{oid}`."""

    server: BackgroundServer

    def do_GET(self) -> None:
        store: LfsStore = self.server.lfs  # type: ignore[attr-defined]
        oid = self.path.removeprefix(OBJECTS_PREFIX).split("?")[0]
        if store.redirect and "redirected" not in self.path:
            base = store.redirect_base or store.href_base
            self.send(307, b"", {"Location": f"{base}{self.path}?redirected=1"})
            return
        missing = any(self.headers.get(k) != v for k, v in store.header.items())
        if missing or not store.path(oid).exists():
            self.send(404 if not missing else 401, b"", {})
            return
        with store.lock:
            store.downloads.append(oid)
        path = store.path(oid)
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {path.stat().st_size}\r\n"
        self.wfile.write(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n")
        with path.open("rb") as f:  # streamed: objects may be hundreds of MB
            first = True
            while piece := f.read(1024 * 1024):
                if first and oid in store.corrupt:
                    piece = bytes([piece[0] ^ 1]) + piece[1:]
                first = False
                self.wfile.write(piece)

    def do_PUT(self) -> None:
        store: LfsStore = self.server.lfs  # type: ignore[attr-defined]
        oid = self.path.removeprefix(OBJECTS_PREFIX)
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if hashlib.sha256(data).hexdigest() != oid:
            self.send(422, b'{"message":"oid mismatch"}', {"Content-Type": MEDIA_TYPE})
            return
        store.put(data)
        self.send(200, b"", {})

    def send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def answer_batch(store: LfsStore, body: bytes) -> tuple[int, bytes]:
    try:
        request = json.loads(body)
    except ValueError:
        return 422, b'{"message":"not JSON"}'
    return 200, json.dumps(store.batch(request)).encode()


class ObjectServer(BackgroundServer):
    """Objects on a loopback port of their own (hrefs pointing away from the batch API)."""

    def __init__(self, store: LfsStore) -> None:
        super().__init__(ObjectHandler)
        self.lfs = store


class LfsRemote:
    """A repository served over smart HTTP with its LFS objects beside it."""

    def __init__(self, tmp_path: Path, store: LfsStore | None = None) -> None:
        self.root = tmp_path / "served"
        self.repo = GitRepo(self.root / "acme", name="media")
        self.store = store or LfsStore(tmp_path / "lfs")

    def commit(self, files: dict[str, bytes | str], message: str = "change") -> str:
        """Commit files; bytes given under an LFS path (*.bin, *.png) are stored as
        objects, the pointer committed in their place."""
        committed: dict[str, bytes | str] = {}
        for path, content in files.items():
            if isinstance(content, bytes) and path.endswith((".bin", ".png")):
                self.store.put(content)
                committed[path] = pointer(content)
            else:
                committed[path] = content
        return self.repo.commit(message, committed)
