"""The order in which blobs are read so that git rebuilds each one cheaply.

A pack stores most blobs of a repository of similar files as deltas: to read one, git
applies its delta to its base, which may be a delta itself, up to fifty deep. Read in path
order, the bases needed are all over the pack and git keeps rebuilding chains, unless its
delta-base cache holds most of them (96 MB by default; a 53 MB pack of 50,000 files read
that way took 2.08 s and 160 MB of git's memory, and 17 s with a 16 MB cache). Read in
chain order, each blob right after its base, the base is the one just built: a small cache
suffices and the reading is faster still (1.60 s in 55 MB; bench/blob_order.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence


def chains(oids: Sequence[str], bases: Mapping[str, str | None]) -> list[list[str]]:
    """`oids` grouped into delta trees, each listed base first (depth first), in the order
    of their roots' first appearance in `oids`. A blob whose base is not asked for (or
    not a delta) is a root: git rebuilds such a base once, through its cache."""
    wanted = set(oids)
    children: dict[str, list[str]] = defaultdict(list)
    roots: list[str] = []
    for oid in dict.fromkeys(oids):
        base = bases.get(oid)
        if base is not None and base in wanted and base != oid:
            children[base].append(oid)
        else:
            roots.append(oid)
    trees: list[list[str]] = []
    seen: set[str] = set()
    for root in roots:
        tree, stack = [], [root]
        while stack:
            oid = stack.pop()
            if oid in seen:  # a cycle cannot be in a pack; be safe anyway
                continue
            seen.add(oid)
            tree.append(oid)
            stack.extend(reversed(children.get(oid, ())))
        trees.append(tree)
    # Objects only reachable through a cycle (never from a pack git wrote) are kept too.
    rest = [oid for oid in dict.fromkeys(oids) if oid not in seen]
    if rest:
        trees.append(rest)
    return trees


def streams(trees: list[list[str]], count: int) -> list[list[str]]:
    """Deal whole trees to `count` readers, largest first to the least loaded, so each
    reader's chains stay intact and the readers finish together."""
    loads = [[] for _ in range(max(1, count))]
    for tree in sorted(trees, key=len, reverse=True):
        min(loads, key=len).extend(tree)
    return [load for load in loads if load]
