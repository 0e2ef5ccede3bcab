"""What a remote advertises, whichever way it was read: `git ls-remote --symref` output, or
the smart-HTTP answers (protocol v2 `ls-refs`, or a v0 advertisement) read in-process
(git/smart_http.py). Pure functions: parsing pkt-lines and choosing the tracked tip."""

from __future__ import annotations

import msgspec

from docora.git.command import GitError, GitErrorKind

FALLBACK_BRANCH = "main"
FLUSH, DELIM, RESPONSE_END = b"0000", b"0001", b"0002"


class RefListing(msgspec.Struct, frozen=True):
    """The refs a remote advertised: `HEAD`'s symref target (None when HEAD is detached,
    unborn or not advertised) and refname -> object id."""

    head_target: str | None
    tips: dict[str, str]


class RemoteHead(msgspec.Struct, frozen=True):
    branch: str
    # None when the branch has no commits yet (an empty repository).
    commit_sha: str | None


class ProtocolError(Exception):
    """The answer is not the git protocol this reader understands (the caller falls back
    to the git CLI, which may understand it)."""


def parse_ls_remote(output: str) -> RefListing:
    """`git ls-remote --symref` output: `ref: <target>\\tHEAD` and `<oid>\\t<refname>` lines."""
    head_target: str | None = None
    tips: dict[str, str] = {}
    for line in output.splitlines():
        left, _, ref = line.partition("\t")
        if left.startswith("ref: ") and ref == "HEAD":
            head_target = left[5:]
        elif ref:
            tips.setdefault(ref, left)
    return RefListing(head_target=head_target, tips=tips)


def choose_head(listing: RefListing, branch: str | None) -> RemoteHead:
    """The tracked branch (given, or the remote's default) and its tip, as `git ls-remote`
    answers it. Raises GitError(NOT_FOUND) when a named branch does not exist in a
    non-empty repository, or the default branch cannot be told."""
    default_branch = None
    if listing.head_target and listing.head_target.startswith("refs/heads/"):
        default_branch = listing.head_target.removeprefix("refs/heads/")
    chosen = branch or default_branch or FALLBACK_BRANCH
    commit = listing.tips.get(f"refs/heads/{chosen}")
    if commit is None and chosen == default_branch:
        commit = listing.tips.get("HEAD")
    empty = not listing.tips and listing.head_target is None
    if commit is None and not empty:
        if branch:
            raise GitError(GitErrorKind.NOT_FOUND, f"branch {branch!r} does not exist")
        raise GitError(
            GitErrorKind.NOT_FOUND,
            "the remote does not advertise its default branch; register with an explicit branch",
        )
    return RemoteHead(branch=chosen, commit_sha=commit)


def pkt_line(payload: bytes) -> bytes:
    return b"%04x" % (len(payload) + 4) + payload


def read_pkt_lines(data: bytes) -> list[bytes | None]:
    """Every pkt-line of `data`; a flush, delim or response-end packet is None."""
    packets: list[bytes | None] = []
    at = 0
    while at < len(data):
        try:
            length = int(data[at : at + 4], 16)
        except ValueError:
            raise ProtocolError("not a pkt-line") from None
        if length in (0, 1, 2):
            packets.append(None)
            at += 4
            continue
        if length < 4 or at + length > len(data):
            raise ProtocolError("truncated pkt-line")
        packets.append(data[at + 4 : at + length])
        at += length
    return packets


def ls_refs_request(branch: str | None, agent: str) -> bytes:
    """A protocol v2 `ls-refs` command asking for HEAD (with its symref) and the branch."""
    arguments = [b"symrefs\n", b"ref-prefix HEAD\n"]
    if branch:
        arguments.append(b"ref-prefix refs/heads/%s\n" % branch.encode())
    return b"".join(
        [
            pkt_line(b"command=ls-refs\n"),
            pkt_line(b"agent=%s\n" % agent.encode()),
            pkt_line(b"object-format=sha1\n"),
            DELIM,
            *(pkt_line(a) for a in arguments),
            FLUSH,
        ]
    )


def _without_service_header(packets: list[bytes | None]) -> list[bytes | None]:
    # Smart HTTP may open with "# service=git-upload-pack" and a flush (git's own
    # http-backend omits them for v2; GitHub sends them for both versions).
    if packets and packets[0] is not None and packets[0].startswith(b"# service="):
        return packets[2:] if len(packets) > 1 and packets[1] is None else packets[1:]
    return packets


class Advertisement(msgspec.Struct, frozen=True):
    """The answer to GET info/refs: protocol v2's capabilities, or a whole v0 listing."""

    version: int
    capabilities: list[str]
    listing: RefListing | None  # v0 only


def parse_advertisement(data: bytes) -> Advertisement:
    packets = _without_service_header(read_pkt_lines(data))
    lines = [p.rstrip(b"\n").decode("utf-8", "replace") for p in packets if p is not None]
    if lines and lines[0] == "version 2":
        return Advertisement(version=2, capabilities=lines[1:], listing=None)
    if lines and lines[0].startswith("version "):
        raise ProtocolError(f"unknown protocol {lines[0]!r}")
    return Advertisement(version=0, capabilities=[], listing=_v0_listing(lines))


def _v0_listing(lines: list[str]) -> RefListing:
    head_target = None
    tips: dict[str, str] = {}
    for index, line in enumerate(lines):
        ref_part, _, capabilities = line.partition("\0")
        oid, _, ref = ref_part.partition(" ")
        if len(oid) != 40 or not ref:
            raise ProtocolError("not a v0 ref advertisement")
        if index == 0:
            for capability in capabilities.split():
                if capability.startswith("symref=HEAD:"):
                    head_target = capability.removeprefix("symref=HEAD:")
            if ref == "capabilities^{}":
                continue  # an empty repository advertises only its capabilities
        tips.setdefault(ref, oid)
    return RefListing(head_target=head_target, tips=tips)


def parse_ls_refs(data: bytes) -> RefListing:
    """A v2 `ls-refs` answer: `<oid> <refname>[ symref-target:<t>][ peeled:<oid>]` lines."""
    head_target = None
    tips: dict[str, str] = {}
    for packet in read_pkt_lines(data):
        if packet is None:
            continue
        if packet.startswith(b"ERR "):
            raise ProtocolError(packet[4:].decode("utf-8", "replace").strip())
        oid, _, rest = packet.rstrip(b"\n").decode("utf-8", "replace").partition(" ")
        ref, *attributes = rest.split(" ")
        if len(oid) != 40 or not ref:
            raise ProtocolError("not an ls-refs answer")
        if ref == "HEAD":
            for attribute in attributes:
                if attribute.startswith("symref-target:"):
                    head_target = attribute.removeprefix("symref-target:")
        tips.setdefault(ref, oid)
    return RefListing(head_target=head_target, tips=tips)
