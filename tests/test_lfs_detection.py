"""LFS pointers and `.gitattributes` (scan/lfs.py): the pointer format as git-lfs writes it,
and the attribute rules checked side by side with `git check-attr` on a real work tree."""

from __future__ import annotations

import hashlib

import pytest

from docora.scan.lfs import attribute_dirs, lfs_matcher, parse_pointer
from tests.gitrepo import git

OID = hashlib.sha256(b"the real content").hexdigest()
POINTER = f"version https://git-lfs.github.com/spec/v1\noid sha256:{OID}\nsize 16\n".encode()


def test_a_pointer_as_git_lfs_writes_it():
    pointer = parse_pointer(POINTER)
    assert pointer is not None and pointer.oid == OID and pointer.size == 16


@pytest.mark.parametrize(
    "data",
    [
        POINTER.replace(b"\n", b"\r\n"),  # CRLF
        POINTER[:-1],  # no final newline
        POINTER.replace(b"size 16\n", b""),  # no size
        POINTER.replace(b"oid sha256:" + OID.encode() + b"\n", b""),  # no oid
        POINTER.replace(b"size 16", b"size -1"),
        POINTER.replace(b"size 16", b"size 016"),
        POINTER.replace(OID.encode(), OID.upper().encode()),  # hex is lowercase
        POINTER.replace(b"sha256:", b"sha1:"),
        POINTER.replace(b"spec/v1", b"spec/v2"),
        # keys after `version` must be sorted
        f"version https://git-lfs.github.com/spec/v1\nsize 16\noid sha256:{OID}\n".encode(),
        POINTER + b"x" * 1024,  # over 1,024 bytes
        POINTER.replace(b"size 16\n", b"size 16\next-0-foo sha256:" + OID.encode() + b"\n"),
        b"",
        b"hello\n",
    ],
)
def test_what_is_not_a_pointer(data):
    assert parse_pointer(data) is None


def test_unknown_keys_in_order_are_allowed():
    data = POINTER.replace(b"size 16\n", b"size 16\nx-note kept\n")
    assert parse_pointer(data) is not None


ATTRIBUTES = {
    "": "*.png filter=lfs diff=lfs merge=lfs -text\n"
    "*.psd filter=lfs\n"
    "/top.bin filter=lfs\n"
    "docs/**/*.pdf filter=lfs\n"
    "big/ filter=lfs\n"  # a directory pattern: never the files inside
    "!x.png filter=lfs\n"  # negative patterns are not allowed
    "# *.md filter=lfs\n"
    "*.tif filter=other\n",
    "assets": "*.png -filter\nkeep/*.png filter=lfs\n*.mov filter=lfs\n",
    "assets/keep": "special.png !filter\n",
    "media/video": "* filter=lfs\n",
}
PATHS = [
    "a.png",
    "deep/dir/a.png",
    "a.psd",
    "top.bin",
    "sub/top.bin",
    "docs/a.pdf",
    "docs/x/y/a.pdf",
    "other/docs/a.pdf",
    "big/file.bin",
    "x.png",
    "readme.md",
    "pic.tif",
    "assets/a.png",
    "assets/keep/b.png",
    "assets/keep/special.png",
    "assets/clip.mov",
    "assets/sub/clip.mov",
    "media/video/a.mp4",
    "media/video/deep/b.mp4",
    "media/other.mp4",
]


def test_attributes_agree_with_git_check_attr(tmp_path):
    git("init", "--quiet", str(tmp_path))
    for directory, text in ATTRIBUTES.items():
        target = tmp_path / directory / ".gitattributes"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    out = git("check-attr", "filter", "--", *PATHS, cwd=tmp_path)
    expected = {
        line.split(": filter: ")[0]: line.split(": filter: ")[1] == "lfs"
        for line in out.splitlines()
    }
    files = [f"{d}/.gitattributes" if d else ".gitattributes" for d in ATTRIBUTES]
    assert sorted(attribute_dirs([*files, "a.png"])) == sorted(ATTRIBUTES)
    is_lfs = lfs_matcher(ATTRIBUTES)
    ours = {path: is_lfs(path) for path in PATHS}
    assert ours == expected
    assert sum(expected.values()) >= 8  # the cases cover both answers


def test_no_attributes_no_lfs():
    assert lfs_matcher({})("a.png") is False
