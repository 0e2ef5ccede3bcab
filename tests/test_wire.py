"""Pure pieces of the wire format and the pipeline: no database, no network."""

import base64
from datetime import UTC, datetime

import pytest

from docora.binary import is_binary
from docora.deliver.batches import BatchPacker
from docora.deliver.content import base64_text, chunk_count, raw_bytes_per_chunk
from docora.deliver.events import WatchKey, batch_event, delivery_id, file_body, whole_file
from docora.deliver.payloads import BatchBody, BatchCreate, RepositoryRef, encode, iso_timestamp
from docora.deliver.signing import (
    docora_signature,
    signed_headers,
    standard_webhooks_secret,
    standard_webhooks_signature,
)
from docora.git.command import GitErrorKind, classify, git_environment, redact
from docora.git.refs import choose_head, parse_ls_remote
from docora.jobs.retry import DoublingRetry
from docora.scan.ignore import ignore_matcher
from docora.store.changes import Change

KEY = "key-0123456789abcdef"


def test_signatures_match_openssl_vectors():
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key-0123456789abcdef
    assert docora_signature(KEY, "1700000000", b'{"a":1}') == (
        "sha256=8a091117e0b1ccf5034d0d8c06ab42b29a4451a72f95b56f22afaf6bfb7af0d3"
    )
    assert standard_webhooks_signature(KEY, "msg_1", "1700000000", b'{"a":1}') == (
        "v1,IcKSPUxDNTBdwEUbYyOwoL7JMZMYJWuArhGyCenrQ+Y="
    )
    assert base64.b64decode(standard_webhooks_secret(KEY).removeprefix("whsec_")) == KEY.encode()


def test_headers_carry_everything():
    headers = signed_headers(
        app_id="app_1", key=KEY, event="create", delivery_id="d-1", timestamp=1700000000, body=b"{}"
    )
    assert headers["X-Docora-Timestamp"] == headers["webhook-timestamp"] == "1700000000"
    assert headers["X-Docora-Delivery"] == headers["webhook-id"] == "d-1"
    assert headers["X-Docora-Event"] == "create" and headers["X-Docora-App-Id"] == "app_1"
    assert headers["Content-Type"] == "application/json"


def test_iso_timestamp_is_javascript_style():
    moment = datetime(2025, 1, 11, 12, 0, 0, 123456, tzinfo=UTC)
    assert iso_timestamp(moment) == "2025-01-11T12:00:00.123Z"


def change(event="create", binary=False, previous=None, path="dir/é.txt"):
    return Change(
        event=event,
        path=path,
        sha="ab" * 32,
        size=3,
        blob_id="b",
        is_binary=binary,
        previous_sha=previous,
    )


REPO = RepositoryRef("repo_x", "https://github.com/a/b", "a", "b")


def single_body(c: Change, data: bytes) -> bytes:
    return file_body(REPO, c, "c1", "T", whole_file(c, data))


def test_body_key_order_and_encodings():
    text = single_body(change(), "é!".encode())
    assert (
        text
        == (
            '{"repository":{"repository_id":"repo_x","github_url":"https://github.com/a/b",'
            '"owner":"a","name":"b"},"file":{"path":"dir/é.txt","sha":"' + "ab" * 32 + '",'
            '"size":3,"content":"é!"},"commit_sha":"c1","timestamp":"T"}'
        ).encode()
    )
    binary = single_body(change(binary=True), b"\x00\x01")
    assert b'"content":"AAE=","content_encoding":"base64"}' in binary
    update = single_body(change("update", previous="cd" * 32), b"x")
    assert b'},"previous_sha":"' + b"cd" * 32 + b'","commit_sha":"c1"' in update


def test_batch_bodies_equal_the_struct_and_close_at_their_limits():
    events = [change(path=f"f{i}.txt") for i in range(5)]
    encoded = [batch_event(c, whole_file(c, b"x" * 10)) for c in events]
    packer = BatchPacker(REPO, "c1", max_events=2, max_bytes=10_000)
    closed = [b for c, e in zip(events, encoded, strict=True) if (b := packer.add(c, e))]
    closed.append(packer.take())
    assert [[c.path for c in b.changes] for b in closed] == [
        ["f0.txt", "f1.txt"],
        ["f2.txt", "f3.txt"],
        ["f4.txt"],
    ]
    ts = iso_timestamp()
    whole = BatchBody(
        REPO, "c1", ts, [BatchCreate(file=whole_file(c, b"x" * 10)) for c in events[:2]]
    )
    assert closed[0].body(REPO, "c1", ts) == encode(whole)
    assert encoded[0].startswith(b'{"event":"create","file":{"path":"f0.txt"')
    # By bytes: the frame plus two events fit exactly; a third byte more does not.
    exact = len(closed[0].body(REPO, "c1", ts))
    tight = BatchPacker(REPO, "c1", max_events=100, max_bytes=exact)
    assert tight.add(events[0], encoded[0]) is None and tight.add(events[1], encoded[1]) is None
    assert [c.path for c in tight.add(events[2], encoded[2]).changes] == ["f0.txt", "f1.txt"]
    assert not BatchPacker(REPO, "c1", max_events=9, max_bytes=exact - 1).fits_alone(b"x" * exact)


def test_delivery_ids_are_stable_and_distinct():
    watch = WatchKey("app_1", "repo_1", 0)
    assert delivery_id(watch, change()) == delivery_id(watch, change())
    assert delivery_id(watch, change(), 1) != delivery_id(watch, change(), 0)
    assert delivery_id(WatchKey("app_1", "repo_1", 1), change()) != delivery_id(watch, change())
    # The same event again in a later commit, or after a filter change, is a new event.
    later = WatchKey("app_1", "repo_1", 0, commit_sha="c2")
    refiltered = WatchKey("app_1", "repo_1", 0, paths_version=1)
    assert len({delivery_id(w, change()) for w in (watch, later, refiltered)}) == 3


@pytest.mark.parametrize(
    ("data", "binary"),
    [
        (b"plain text\n", False),
        ("héllo wörld ✓".encode(), False),
        (b"", False),
        (b"abc\x00def", True),
        ("caf\xe9".encode("latin-1"), True),
        (b"x" * 9000 + b"\x00", False),  # NUL after the first 8,000 bytes: still text
        (b"\xff\xfe", True),
    ],
)
def test_binary_detection(data, binary):
    assert is_binary(data) is binary


@pytest.mark.parametrize("size", [0, 1, 2, 3, 1000, 393216, 393217, 1_572_864, 2_000_001])
def test_streamed_chunks_equal_slicing_the_whole_base64(size):
    data = bytes(i % 251 for i in range(size))
    chars = 524288
    whole = base64_text(data)
    expected = [whole[i : i + chars] for i in range(0, len(whole), chars)] or [""]
    step = raw_bytes_per_chunk(chars)
    streamed = [base64_text(data[i : i + step]) for i in range(0, max(size, 1), step)]
    assert streamed == expected
    assert chunk_count(size, chars) == len(expected)


def test_ignore_rules():
    ignored = ignore_matcher("*.log\n!keep.log\n/build/\n**/tmp/**\ndocs/**/*.draft\n")
    assert ignored("a.log") and ignored("x/y.log") and not ignored("keep.log")
    assert ignored("build/x.js") and not ignored("src/build/x.js")
    assert ignored("a/tmp/b/c") and ignored("docs/a/b.draft") and not ignored("docs/b.md")
    assert not ignore_matcher(None)("anything")


def test_retry_delays_double():
    retry = DoublingRetry(base_delay_ms=1000, max_attempts=5)
    assert [retry.delay_ms(a) for a in range(1, 5)] == [1000, 2000, 4000, 8000]


def test_ls_remote_parsing():
    out = "ref: refs/heads/trunk\tHEAD\nabc\tHEAD\n"
    assert choose_head(parse_ls_remote(out), None).branch == "trunk"
    assert choose_head(parse_ls_remote(out), None).commit_sha == "abc"
    assert choose_head(parse_ls_remote("def\trefs/heads/dev\n"), "dev").commit_sha == "def"
    assert choose_head(parse_ls_remote(""), None).commit_sha is None


def test_git_errors_are_classified_and_redacted():
    assert classify("fatal: Authentication failed for 'https://x'") == GitErrorKind.AUTH
    assert classify("remote: Repository not found.") == GitErrorKind.NOT_FOUND
    assert classify("Could not resolve host: github.com") == GitErrorKind.NETWORK
    assert classify("something odd") == GitErrorKind.GIT
    message = redact(
        "fatal: https://user:ghp_secret@github.com/a/b failed ghp_secret", ["ghp_secret"]
    )
    assert "ghp_secret" not in message and "user" not in message


def test_git_environment_keeps_tokens_out_of_argv_and_scopes_them():
    env = git_environment(url="https://github.com/a/b", token="ghp_abc", allow_local=False)
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_ALLOW_PROTOCOL"] == "https"
    keys = [env[f"GIT_CONFIG_KEY_{i}"] for i in range(int(env["GIT_CONFIG_COUNT"]))]
    assert "http.https://github.com/.extraHeader" in keys
    header = env[f"GIT_CONFIG_VALUE_{keys.index('http.https://github.com/.extraHeader')}"]
    assert base64.b64decode(header.split()[-1]) == b"x-access-token:ghp_abc"
    assert "ghp_abc" not in " ".join(keys)


def _basic_credentials(url: str, token: str) -> bytes:
    env = git_environment(url=url, token=token, allow_local=False)
    count = int(env["GIT_CONFIG_COUNT"])
    headers = [
        env[f"GIT_CONFIG_VALUE_{i}"]
        for i in range(count)
        if env[f"GIT_CONFIG_KEY_{i}"].endswith(".extraHeader")
    ]
    (header,) = headers
    return base64.b64decode(header.split()[-1])


@pytest.mark.parametrize(
    ("url", "token", "credentials"),
    [
        # A host that merely ends with "github.com" is not GitHub: user:password stays basic.
        ("https://evilgithub.com/a/b", "user:pass", b"user:pass"),
        ("https://api.github.com/a/b", "ghp_x", b"x-access-token:ghp_x"),
        ("https://gitlab.com/a/b", "glpat-x", b"oauth2:glpat-x"),
        # "gitlab" inside another name is not GitLab.
        ("https://notgitlab.example/a/b", "tok", b"x-access-token:tok"),
        ("https://bitbucket.org/a/b", "tok", b"x-token-auth:tok"),
        ("https://evilbitbucket.org/a/b", "tok", b"x-access-token:tok"),
    ],
)
def test_token_user_names_follow_exact_hosts(url, token, credentials):
    assert _basic_credentials(url, token) == credentials


async def test_git_timeout_kills_the_command_quickly():
    import asyncio
    import socket
    import time

    from docora.git.command import GitError, run_git_async

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts, never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/a/b"
    started = time.monotonic()
    with pytest.raises(GitError) as info:
        await run_git_async(
            ["ls-remote", "--", url], env=git_environment(url=url, allow_local=True), timeout_ms=500
        )
    assert info.value.kind == GitErrorKind.TIMEOUT
    assert time.monotonic() - started < 3
    silent.close()
    await asyncio.sleep(0)


async def test_git_commands_are_fast():
    import time

    from docora.git.command import run_git_async

    started = time.monotonic()
    for _ in range(5):
        await run_git_async(["--version"], env=git_environment(), timeout_ms=5000)
    assert (time.monotonic() - started) / 5 < 0.05  # no polling delay per command
