"""Deterministic synthetic repositories, written with `git fast-import` (no work tree)."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.gitrepo import fast_import

WORDS = b"alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron".split()


def text_file(rnd: random.Random, size: int) -> bytes:
    words = [rnd.choice(WORDS) for _ in range(size // 5 + 1)]
    return b" ".join(words)[:size] + b"\n"


def files(
    count: int,
    *,
    binaries: int = 20,
    binary_size: int = 200_000,
    big_binary: int = 0,
    text_size: tuple[int, int] = (2000, 5000),
    seed: int = 7,
) -> Iterator[tuple[str, bytes]]:
    """`count` text files (2-5 KB unless `text_size` says otherwise), `binaries` binaries,
    and optionally one huge binary."""
    rnd = random.Random(seed)
    for i in range(count):
        yield f"src/m{i % 97:02d}/f{i:06d}.txt", text_file(rnd, rnd.randint(*text_size))
    for i in range(binaries):
        yield f"assets/b{i:03d}.bin", rnd.randbytes(binary_size)
    if big_binary:  # randbytes takes at most 2**31 bits at once
        piece = 16 * 1024 * 1024
        yield (
            "assets/huge.bin",
            b"".join(
                rnd.randbytes(min(piece, big_binary - at)) for at in range(0, big_binary, piece)
            ),
        )


def make_repository(path: Path, count: int, **options) -> str:
    return fast_import(path, files(count, **options))


def fetched_mirror(root: Path, count: int, **options) -> tuple[Path, str]:
    """A repository of `count` files repacked as a host would, fetched (depth 1) into a bare
    mirror as a sync fetches it: (the mirror, its commit)."""
    remote, mirror = root / "remote.git", root / "mirror.git"
    make_repository(remote, count, **options)
    subprocess.run(["git", "-C", str(remote), "repack", "-adq"], check=True)
    subprocess.run(["git", "init", "-q", "--bare", str(mirror)], check=True)
    subprocess.run(
        ["git", "fetch", "-q", "--depth=1", f"file://{remote}", "+main:refs/heads/main"],
        cwd=mirror,
        check=True,
    )
    head = subprocess.run(
        ["git", "rev-parse", "main"], cwd=mirror, capture_output=True, text=True, check=True
    )
    return mirror, head.stdout.strip()


def modify_one(path: Path, parent: str, target: str, content: bytes) -> str:
    return fast_import(path, [(target, content)], parent=parent, message="one change")
