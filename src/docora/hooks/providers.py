"""Each provider's signature and push payload (pure: bytes and headers in, facts out).

Signatures are checked in constant time over the raw body, before the body is parsed.
What a push names is only a wake-up call: the sync that follows checks access and content
exactly as a scheduled one does, so a forged or replayed hook costs at most an ls-remote.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping

import msgspec

from docora.errors import MalformedInput


class Push(msgspec.Struct, frozen=True):
    """What a hook said: a ping, a push of branches of one repository, or nothing for us."""

    kind: str  # "push" | "ping" | "ignored"
    url: str = ""
    branches: tuple[str, ...] = ()


def _hex_hmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def verify_github(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    return _same(headers.get("x-hub-signature-256"), "sha256=" + _hex_hmac(secret, body))


def verify_gitlab(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    return _same(headers.get("x-gitlab-token"), secret)


def verify_gitea(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    given = headers.get("x-gitea-signature") or headers.get("x-forgejo-signature")
    return _same(given, _hex_hmac(secret, body))


def verify_bitbucket(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    return _same(headers.get("x-hub-signature"), "sha256=" + _hex_hmac(secret, body))


def branch_of(ref: object) -> str | None:
    """`refs/heads/x` -> `x`; a tag or anything else moves no branch."""
    if isinstance(ref, str) and ref.startswith("refs/heads/") and len(ref) > 11:
        return ref.removeprefix("refs/heads/")
    return None


def _json(body: bytes) -> dict:
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise MalformedInput("the hook's body is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedInput("the hook's body is not a JSON object")
    return payload


def _field(payload: dict, *path: str) -> object:
    value: object = payload
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _push(url: object, branches: list[str | None]) -> Push:
    if not isinstance(url, str) or not url:
        raise MalformedInput("the push names no repository URL")
    named = tuple(b for b in branches if b)
    return Push("push", url, named) if named else Push("ignored")


def parse_github(headers: Mapping[str, str], body: bytes) -> Push:
    event = headers.get("x-github-event", "")
    if event == "ping":
        return Push("ping")
    if event != "push":
        return Push("ignored")
    payload = _json(body)
    url = _field(payload, "repository", "clone_url") or _field(payload, "repository", "html_url")
    return _push(url, [branch_of(payload.get("ref"))])


def parse_gitlab(headers: Mapping[str, str], body: bytes) -> Push:
    if headers.get("x-gitlab-event", "") != "Push Hook":
        return Push("ignored")
    payload = _json(body)
    url = _field(payload, "project", "git_http_url") or _field(payload, "project", "web_url")
    return _push(url, [branch_of(payload.get("ref"))])


def parse_gitea(headers: Mapping[str, str], body: bytes) -> Push:
    event = headers.get("x-gitea-event") or headers.get("x-forgejo-event") or ""
    if event != "push":
        return Push("ignored")
    payload = _json(body)
    return _push(_field(payload, "repository", "clone_url"), [branch_of(payload.get("ref"))])


def parse_bitbucket(headers: Mapping[str, str], body: bytes) -> Push:
    if headers.get("x-event-key", "") != "repo:push":
        return Push("ignored")
    payload = _json(body)
    full_name = _field(payload, "repository", "full_name")
    if not isinstance(full_name, str) or not full_name:
        raise MalformedInput("the push names no repository")
    changes = _field(payload, "push", "changes")
    branches: list[str | None] = []
    for change in changes if isinstance(changes, list) else []:
        # A deleted branch has no `new`: its sync reports the failure, as on GitHub.
        moved = (change.get("new") or change.get("old")) if isinstance(change, dict) else None
        if isinstance(moved, dict) and moved.get("type") == "branch":
            branches.append(moved.get("name") if isinstance(moved.get("name"), str) else None)
    return _push(f"https://bitbucket.org/{full_name}", branches)


Verifier = Callable[[str, Mapping[str, str], bytes], bool]
Parser = Callable[[Mapping[str, str], bytes], Push]
PROVIDERS: dict[str, tuple[Verifier, Parser]] = {
    "github": (verify_github, parse_github),
    "gitlab": (verify_gitlab, parse_gitlab),
    "gitea": (verify_gitea, parse_gitea),
    "bitbucket": (verify_bitbucket, parse_bitbucket),
}
