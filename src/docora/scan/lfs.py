"""Git LFS pointers, and the `.gitattributes` rules that make a blob one (SPEC 13).

As git-lfs decides it: a blob stands for an LFS object when it parses as a spec-v1 pointer
(at most 1,024 bytes, `version` first, the other keys sorted, one `key value` per line)
*and* the attributes at the tip give its path `filter=lfs`. A pointer-looking file that no
attribute covers is an ordinary file, delivered as it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import msgspec
import pathspec

POINTER_MAX_BYTES = 1024
VERSION = "https://git-lfs.github.com/spec/v1"
ATTRIBUTES_FILE = ".gitattributes"

_KEY = re.compile(r"[a-z0-9.-]+")
_OID = re.compile(r"sha256:([0-9a-f]{64})")
_SIZE = re.compile(r"0|[1-9][0-9]*")


class Pointer(msgspec.Struct, frozen=True):
    oid: str  # the object's SHA-256, 64 lowercase hex digits
    size: int


def parse_pointer(data: bytes) -> Pointer | None:
    """The pointer `data` is, or None when it is not a valid spec-v1 pointer."""
    if len(data) > POINTER_MAX_BYTES or not data.startswith(b"version ") or b"\r" in data:
        return None
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\n"):
        return None
    fields: list[tuple[str, str]] = []
    for line in text[:-1].split("\n"):
        key, sep, value = line.partition(" ")
        if not sep or not _KEY.fullmatch(key) or not value:
            return None
        fields.append((key, value))
    if fields[0] != ("version", VERSION):
        return None
    keys = [key for key, _ in fields[1:]]
    if keys != sorted(set(keys)):
        return None  # the spec's order: keys after `version` sorted, none twice
    values = dict(fields[1:])
    if any(key.startswith("ext-") for key in values):
        return None  # smudge extensions: content we could not reproduce
    oid = _OID.fullmatch(values.get("oid", ""))
    size = values.get("size", "")
    if oid is None or not _SIZE.fullmatch(size):
        return None
    return Pointer(oid=oid.group(1), size=int(size))


def lfs_matcher(attribute_files: Mapping[str, str]) -> Callable[[str], bool]:
    """A predicate: does `filter=lfs` apply to a repository-relative path?

    `attribute_files` maps each `.gitattributes` file's directory ("" for the root) to its
    text. git's rules: a pattern without a slash matches a name at any depth below its
    file's directory, one with a slash is anchored there; later lines override earlier
    ones and deeper files override shallower ones; negative patterns are not allowed and
    a directory pattern never matches the files inside it. `-filter` unsets and
    `!filter` unspecifies the attribute. Macros (`[attr]`) are not expanded: git's one
    built-in macro, `binary`, does not touch `filter`.
    """
    rules: list[tuple[str, pathspec.GitIgnoreSpec, str | None]] = []
    for base in sorted(attribute_files, key=lambda d: (d.count("/") + bool(d), d)):
        for line in attribute_files[base].splitlines():
            rule = _filter_rule(line)
            if rule is not None:
                pattern, value = rule
                rules.append((base, pathspec.GitIgnoreSpec.from_lines([pattern]), value))
    if not rules:
        return lambda path: False

    def is_lfs(path: str) -> bool:
        value: str | None = None
        for base, spec, setting in rules:
            if base:
                if not path.startswith(base + "/"):
                    continue
                relative = path[len(base) + 1 :]
            else:
                relative = path
            if spec.match_file(relative):
                value = setting
        return value == "lfs"

    return is_lfs


def _filter_rule(line: str) -> tuple[str, str | None] | None:
    """(pattern, what it sets `filter` to) for a line that speaks of `filter`."""
    parts = line.split()
    if not parts or parts[0].startswith(("#", "[attr]", "!")) or parts[0].endswith("/"):
        return None
    pattern, attributes = parts[0], parts[1:]
    found = False
    value: str | None = None
    for attribute in attributes:
        name, _, setting = attribute.partition("=")
        if name == "filter":
            found, value = True, setting or "true"
        elif name in ("-filter", "!filter"):
            found, value = True, None
    return (pattern, value) if found else None


def attribute_dirs(paths: list[str]) -> list[str]:
    """The directories ("" for the root) of the `.gitattributes` files among `paths`."""
    found = []
    for path in paths:
        if path == ATTRIBUTES_FILE:
            found.append("")
        elif path.endswith("/" + ATTRIBUTES_FILE):
            found.append(path[: -len(ATTRIBUTES_FILE) - 1])
    return found
