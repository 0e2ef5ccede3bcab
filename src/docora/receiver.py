"""A reference webhook receiver, as a client app would write one (demo and tests).

It re-serialises the parsed JSON compactly (as the original's docs tell receivers to),
HMACs it with the app's key and compares; it also checks the Standard Webhooks header.
Chunked binaries are reassembled by chunk id. Responses can be scripted per request,
and `on_event` sees every request once handled.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    event: str
    body: dict
    raw: bytes
    headers: dict[str, str]
    verified: bool
    answered: int


@dataclass
class ReceiverState:
    key: str
    # Decide the status for each request (None: answer 200). May sleep to time out.
    respond: Callable[[str, dict], int | None] = lambda event, body: None
    on_event: Callable[[Received], None] | None = None
    events: list[Received] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    shas: dict[str, str] = field(default_factory=dict)
    pending_chunks: dict[str, dict[int, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, event: str | None = None) -> list[Received]:
        return [e for e in self.events if e.answered < 300 and (event is None or e.event == event)]


def compact(obj) -> bytes:
    """Python's equivalent of JSON.stringify(JSON.parse(body))."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def verify(key: str, headers: dict[str, str], raw: bytes) -> bool:
    """Both signatures must match: Docora's over the re-serialised body, and Standard
    Webhooks' over the raw body. Headers are lower-cased."""
    try:
        body = json.loads(raw)
        ts = headers["x-docora-timestamp"]
        given = headers["x-docora-signature"]
        webhook_id, webhook_ts = headers["webhook-id"], headers["webhook-timestamp"]
        given_standard = headers["webhook-signature"]
    except (KeyError, ValueError):
        return False
    mac = hmac.new(key.encode(), f"{ts}.".encode() + compact(body), hashlib.sha256)
    docora_ok = hmac.compare_digest("sha256=" + mac.hexdigest(), given)
    message = f"{webhook_id}.{webhook_ts}.".encode() + raw
    digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
    standard_ok = hmac.compare_digest("v1," + base64.b64encode(digest).decode(), given_standard)
    return docora_ok and standard_ok and compact(body) == raw


class NoDelayHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 on Python's http.server without its traps: TCP_NODELAY (else
    Nagle adds ~40 ms to a response written in two pieces), no access log on stderr, and a
    client that vanishes mid-connection is not an error. Also used by the test servers."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args) -> None:
        pass

    def handle(self) -> None:
        # The sender may go away at any point (a killed worker): nothing to answer then.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()


class _Handler(NoDelayHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        event = self.path.rsplit("/", 1)[-1]
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        try:
            body = json.loads(raw)
        except ValueError:  # a truncated body: the sender died mid-request
            self._answer(400, b'{"error":"body is not JSON"}')
            return
        status = state.respond(event, body) or 200
        with state.lock:
            verified = verify(state.key, headers, raw)
            received = Received(event, body, raw, headers, verified, status)
            state.events.append(received)
            if status < 300 and verified:
                _apply(state, event, body)
        if state.on_event is not None:
            state.on_event(received)
        self._answer(status, b'{"ok":true}')

    def _answer(self, status: int, payload: bytes) -> None:
        # One write per response: with TCP_NODELAY, no Nagle delay between head and body.
        self.wfile.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )


def _apply(state: ReceiverState, event: str, body: dict) -> None:
    if event == "delete":
        state.files.pop(body["file"]["path"], None)
        state.shas.pop(body["file"]["path"], None)
        return
    if event not in ("create", "update"):
        return
    file = body["file"]
    content = file["content"]
    if "chunk" in file:
        chunk = file["chunk"]
        parts = state.pending_chunks.setdefault(chunk["id"], {})
        parts[chunk["index"]] = content
        if len(parts) < chunk["total"]:
            return
        content = "".join(parts[i] for i in range(chunk["total"]))
        del state.pending_chunks[chunk["id"]]
    data = (
        base64.b64decode(content) if file.get("content_encoding") == "base64" else content.encode()
    )
    state.files[file["path"]] = data
    state.shas[file["path"]] = file["sha"]


class BackgroundServer(ThreadingHTTPServer):
    """A loopback HTTP server serving from a thread for the length of a `with` block."""

    daemon_threads = True

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], port: int = 0, host: str = "127.0.0.1"
    ) -> None:
        super().__init__((host, port), handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class WebhookReceiver(BackgroundServer):
    def __init__(self, key: str, port: int = 0) -> None:
        super().__init__(_Handler, port)
        self.state = ReceiverState(key=key)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/hooks"

    def wait_for(self, predicate: Callable[[ReceiverState], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.state.lock:
                if predicate(self.state):
                    return
            time.sleep(0.05)
        raise AssertionError(
            f"receiver condition not met in {timeout}s; got {len(self.state.events)} events"
        )
