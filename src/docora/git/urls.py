"""Repository URL validation and normalization (pure: no I/O).

Everything that reaches `git` as a URL passes through `parse_repository_url`, so
this is where argument injection (`-…`, `ext::`, `--upload-pack=`), credentials
and local paths are refused.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

import msgspec

from docora.errors import InvalidInput
from docora.net import ip_literal

GITHUB_HOSTS = frozenset({"github.com", "www.github.com"})
# GitHub's token kinds: classic (ghp_), fine-grained (github_pat_), OAuth (gho_), app
# installation (ghs_), app user-to-server (ghu_) and refresh (ghr_); glpat- as the SPEC allows.
GITHUB_TOKEN_PREFIXES = ("ghp_", "github_pat_", "gho_", "ghs_", "ghu_", "ghr_", "glpat-")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.-]*$")
_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
)
_FORBIDDEN_CHARS = re.compile(r"[\s\x00-\x1f\x7f\\'\"`$;|&<>]")
_BRACKETED_HOST = re.compile(r"^https?://\[[0-9A-Fa-f:.]+\]", re.I)
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")
MAX_URL_LENGTH = 2048


class InvalidRepositoryUrl(InvalidInput):
    pass


class InvalidToken(InvalidInput):
    pass


class RepositoryUrl(msgspec.Struct, frozen=True):
    url: str
    host: str
    owner: str
    name: str

    @property
    def is_github(self) -> bool:
        return self.host == "github.com"


def on_domain(host: str, domain: str) -> bool:
    """`host` is `domain` or one of its subdomains (dot-bounded: evilgithub.com is not
    github.com). A port, if any, is ignored."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.lower().rstrip(".")
    return name == domain or name.endswith("." + domain)


def parse_repository_url(text: str, *, allow_local: bool) -> RepositoryUrl:
    text = text.strip()
    if not text:
        raise InvalidRepositoryUrl("github_url must not be empty")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidRepositoryUrl(f"github_url must be at most {MAX_URL_LENGTH} characters")
    # `::` selects a git transport (ext::, fd::); inside an IPv6 host's brackets it is not.
    outside_host = _BRACKETED_HOST.sub("", text, count=1)
    if text.startswith("-") or "::" in outside_host or _FORBIDDEN_CHARS.search(text):
        raise InvalidRepositoryUrl("github_url contains characters or forms that are not allowed")
    if text.startswith("/"):
        if not allow_local:
            raise InvalidRepositoryUrl("local repository paths are not allowed on this server")
        return _local(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if not allow_local:
            raise InvalidRepositoryUrl("file:// URLs are not allowed on this server")
        if parts.netloc not in ("", "localhost"):
            raise InvalidRepositoryUrl("file:// URLs must not name a host")
        return _local(parts.path)
    # Plain http is only for local test servers (git http-backend), alongside file://.
    if scheme != "https" and not (scheme == "http" and allow_local):
        raise InvalidRepositoryUrl("github_url must be an https:// URL")
    return _remote(text, scheme)


def _remote(text: str, scheme: str) -> RepositoryUrl:
    parts = urlsplit(text)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidRepositoryUrl("github_url must not contain credentials")
    if parts.query or parts.fragment or text.rstrip().endswith(("?", "#")):
        raise InvalidRepositoryUrl("github_url must not contain a query string or fragment")
    host = (parts.hostname or "").lower()
    literal_v6 = isinstance(ip_literal(host), ipaddress.IPv6Address)
    if not (literal_v6 or _HOST.match(host)):
        raise InvalidRepositoryUrl("github_url has an invalid host")
    try:
        port = parts.port
    except ValueError:
        raise InvalidRepositoryUrl("github_url has an invalid port") from None
    segments = _segments(parts.path, strip_git=True)
    if host in GITHUB_HOSTS:
        host = "github.com"
        if len(segments) != 2:
            raise InvalidRepositoryUrl(
                "GitHub URLs must look like https://github.com/{owner}/{repo}"
            )
    # An IPv6 literal is accepted as a host like any other; whether Docora may connect to
    # it is the address check's business (git/hosts.py), not the parser's.
    bracketed = f"[{host}]" if literal_v6 else host
    netloc = bracketed if port is None else f"{bracketed}:{port}"
    url = f"{scheme}://{netloc}/" + "/".join(segments)
    return RepositoryUrl(url=url, host=netloc, owner="/".join(segments[:-1]), name=segments[-1])


def _local(path: str) -> RepositoryUrl:
    if not path.startswith("/"):
        raise InvalidRepositoryUrl("local repository paths must be absolute")
    segments = _segments(path, strip_git=False)
    normalized = "/" + "/".join(segments)
    if posixpath.normpath(normalized) != normalized:
        raise InvalidRepositoryUrl("github_url must not contain relative path segments")
    name = segments[-1].removesuffix(".git") or segments[-1]
    owner = segments[-2] if len(segments) > 1 else "local"
    return RepositoryUrl(url="file://" + normalized, host="local", owner=owner, name=name)


def _segments(path: str, *, strip_git: bool) -> list[str]:
    segments = [s for s in path.rstrip("/").split("/")]
    if segments and segments[0] == "":
        segments = segments[1:]
    if strip_git and segments:
        segments[-1] = segments[-1].removesuffix(".git")
    if len(segments) < 2 and strip_git:
        raise InvalidRepositoryUrl("github_url must name an owner and a repository")
    if not segments:
        raise InvalidRepositoryUrl("github_url must name a repository")
    for segment in segments:
        if segment in ("", ".", "..") or not _SEGMENT.match(segment):
            raise InvalidRepositoryUrl(f"github_url has an invalid path segment: {segment!r}")
    return segments


def check_token(token: str, repo: RepositoryUrl) -> str:
    """Validate a repository token's shape; never echo it back in the error."""
    if not token or len(token) > 255:
        raise InvalidToken("github_token must be 1 to 255 characters")
    if not _TOKEN_CHARS.match(token):
        raise InvalidToken("github_token must be printable ASCII without spaces")
    if repo.is_github and not token.startswith(GITHUB_TOKEN_PREFIXES):
        raise InvalidToken(
            "github_token must start with one of "
            + ", ".join(GITHUB_TOKEN_PREFIXES)
            + " for GitHub"
        )
    return token


_BRANCH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(/|$)")


def check_branch(branch: str) -> str:
    """git check-ref-format rules, plus no leading '-' (never an option)."""
    if (
        not branch
        or len(branch) > 255
        or branch.startswith(("-", "/", "."))
        or branch.endswith(("/", "."))
        or branch == "@"
        or _BRANCH_FORBIDDEN.search(branch)
    ):
        raise InvalidRepositoryUrl(f"branch is not a valid git branch name: {branch!r}")
    return branch
