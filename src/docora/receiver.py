"""The reference webhook receiver, written as a client app should write one (the demo
uses it; docs/webhooks.md explains each step).

For every request it: verifies both signatures (Docora's over the re-serialised body, as
the original's docs told receivers to, and Standard Webhooks' over the raw body) and
answers 401 when either fails; refuses a timestamp more than five minutes from its clock
(400: a replay, or a clock to fix); answers a delivery id it has already applied with 200
without applying it again (Docora delivers at least once); reassembles chunked binaries by
chunk id; applies the events of a batch body (`POST …/batch`) in their order. `on_event`
sees every request once answered.
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
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How far a request's timestamp may be from the receiver's clock.
TIMESTAMP_TOLERANCE_S = 300
# Delivery ids remembered for de-duplication (oldest forgotten first).
REMEMBERED_DELIVERIES = 100_000


@dataclass
class Received:
    event: str
    body: dict
    raw: bytes
    headers: dict[str, str]
    verified: bool
    answered: int
    duplicate: bool = False
    peer: str = ""  # the sender's address
    received_at: float = 0.0  # time.monotonic() when the request was read


@dataclass
class ReceiverState:
    key: str
    on_event: Callable[[Received], None] | None = None
    events: list[Received] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    shas: dict[str, str] = field(default_factory=dict)
    pending_chunks: dict[str, dict[int, str]] = field(default_factory=dict)
    applied: OrderedDict[str, None] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accepted(self, event: str | None = None) -> list[Received]:
        return [e for e in self.events if e.answered < 300 and (event is None or e.event == event)]

    def remember(self, delivery_id: str) -> None:
        self.applied[delivery_id] = None
        while len(self.applied) > REMEMBERED_DELIVERIES:
            self.applied.popitem(last=False)


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


def is_fresh(headers: dict[str, str], now: float, tolerance_s: float) -> bool:
    try:
        return abs(now - int(headers["x-docora-timestamp"])) <= tolerance_s
    except (KeyError, ValueError):
        return False


class _Handler(NoDelayHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        arrived = time.monotonic()
        event = self.path.rsplit("/", 1)[-1]
        headers = {k.lower(): v for k, v in self.headers.items()}
        state = self.server.state
        try:
            body = json.loads(raw)
        except ValueError:  # a truncated body: the sender died mid-request
            self._answer(400, b'{"error":"body is not JSON"}')
            return
        verified = verify(state.key, headers, raw)
        if not verified:
            status, answer = 401, b'{"error":"bad signature"}'
        elif not is_fresh(headers, time.time(), self.server.tolerance_s):
            status, answer = 400, b'{"error":"timestamp too far from now"}'
        else:
            status, answer = self.server.status_for(event, body) or 200, b'{"ok":true}'
        delivery_id = headers.get("x-docora-delivery", "")
        with state.lock:
            duplicate = delivery_id in state.applied
            received = Received(
                event,
                body,
                raw,
                headers,
                verified,
                status,
                duplicate,
                peer=self.client_address[0],
                received_at=arrived,
            )
            state.events.append(received)
            if status < 300 and not duplicate:
                apply_event(state, event, body)
                state.remember(delivery_id)
        if state.on_event is not None:
            state.on_event(received)
        self._answer(status, answer)

    def _answer(self, status: int, payload: bytes) -> None:
        # One write per response: with TCP_NODELAY, no Nagle delay between head and body.
        self.wfile.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )


def apply_event(state: ReceiverState, event: str, body: dict) -> None:
    if event == "batch":
        # Batch mode (SPEC 11): the same events, in order, under one signature.
        for item in body["events"]:
            single = {"repository": body["repository"], "file": item["file"]}
            apply_event(state, item["event"], single)
        return
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
    tolerance_s: float = TIMESTAMP_TOLERANCE_S

    def __init__(self, key: str, port: int = 0, host: str = "127.0.0.1") -> None:
        super().__init__(_Handler, port, host)
        self.state = ReceiverState(key=key)

    @property
    def base_url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_port}/hooks"

    def status_for(self, event: str, body: dict) -> int | None:
        """The answer to a verified, fresh request (None: 200). A real app would store the
        change here and answer 5xx when it cannot."""
        return None
