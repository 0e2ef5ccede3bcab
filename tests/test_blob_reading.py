"""How a sync reads blobs once (issue 21): in delta chain order, through the streaming
parser that hashes them, into the spool its deliveries read; and what a delivery does with
a spool that does not hold what the scan hashed."""

from __future__ import annotations

import asyncio
import hashlib
import random
import subprocess
import uuid
from pathlib import Path

import pytest

from bench.synth import make_repository
from docora.deliver.events import _NAMESPACE, _uuid5
from docora.deliver.run import ChunkPolicy, DeliveryFailed, Target, WatchDelivery
from docora.git.spool import MAX_BLOB, SpoolReader, SpoolWriter, spool_dir
from docora.git.stream import delta_bases
from docora.scan import order
from docora.scan.hashing import BatchFactsParser, facts_of
from docora.scan.snapshot import read_facts
from docora.store.changes import Change
from tests.gitrepo import git

# --- chain order (pure) ------------------------------------------------------------------


def test_chains_put_each_blob_after_its_base_and_keep_every_blob_once():
    bases = {"a": None, "b": "a", "c": "b", "d": "a", "e": "x", "f": "e", "g": None}
    oids = ["g", "f", "e", "d", "c", "b", "a", "a"]
    trees = order.chains(oids, bases)
    flat = [oid for tree in trees for oid in tree]
    assert sorted(flat) == sorted(set(oids))
    position = {oid: i for i, oid in enumerate(flat)}
    for oid, base in bases.items():
        if base in position:
            assert position[base] < position[oid], (base, oid)
    # e's base is not asked for: e roots its own tree, f follows it.
    assert ["e", "f"] in trees and ["g"] in trees
    assert sorted(next(t for t in trees if t[0] == "a")) == ["a", "b", "c", "d"]


def test_streams_deal_whole_trees_evenly():
    trees = [[f"t{t}-{i}" for i in range(n)] for t, n in enumerate((50, 30, 20, 10, 10))]
    two = order.streams(trees, 2)
    assert sorted(len(s) for s in two) == [60, 60]
    for stream in two:  # a tree is never split between readers
        roots = {oid.split("-")[0] for oid in stream}
        assert sum(len(t) for t in trees if t[0].split("-")[0] in roots) == len(stream)
    assert order.streams(trees, 1) == [
        [oid for t in sorted(trees, key=len, reverse=True) for oid in t]
    ]
    assert order.streams([], 2) == []


# --- against a real pack ------------------------------------------------------------------


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> tuple[Path, list[str]]:
    """A repository of similar files, repacked as a host would: most blobs are deltas."""
    remote = tmp_path_factory.mktemp("packed") / "r.git"
    make_repository(remote, 400, binaries=3, binary_size=300_000, text_size=(1000, 3000))
    git("repack", "-adq", cwd=remote)
    listing = git("ls-tree", "-r", "main", cwd=remote).splitlines()
    return remote, [line.split()[2] for line in listing]


def test_delta_bases_and_chain_order_read_the_same_facts_as_path_order(packed):
    remote, oids = packed
    bases = asyncio.run(delta_bases(remote, oids))
    assert set(bases) == set(oids) and sum(1 for b in bases.values() if b) > len(oids) // 2
    chained = [oid for tree in order.chains(oids, bases) for oid in tree]
    by_chain = dict(asyncio.run(read_facts(remote, chained)))
    by_path = dict(asyncio.run(read_facts(remote, oids)))
    assert by_chain == by_path and len(by_path) == len(set(oids))


def test_the_parser_hashes_and_spools_whatever_the_cuts(packed, tmp_path):
    remote, oids = packed
    output = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=remote,
        input="".join(f"{o}\n" for o in oids).encode(),
        capture_output=True,
        check=True,
    ).stdout
    mirror = tmp_path / "m.git"
    mirror.mkdir()
    spool = SpoolWriter(mirror, "c0ffee")
    parser = BatchFactsParser(spool)
    facts, pos, rnd = [], 0, random.Random(3)
    while pos < len(output):  # pieces from 1 byte to 200 KB: blobs cut anywhere
        step = rnd.choice((1, 7, 4096, 65536, 200_000))
        facts += parser.feed(output[pos : pos + step])
        pos += step
    parser.finish()
    spool.finish()
    reader = SpoolReader.open(mirror, "c0ffee")
    assert reader is not None
    contents = {}
    pos = 0
    while pos < len(output):
        newline = output.index(b"\n", pos)
        oid, _, size = output[pos:newline].split()
        contents[oid.decode()] = output[newline + 1 : newline + 1 + int(size)]
        pos = newline + 2 + int(size)
    assert dict(facts) == {oid: facts_of(data) for oid, data in contents.items()}
    for oid, data in contents.items():
        place = reader.place(oid)
        assert (reader.read(place) if place else None) == (data if len(data) <= MAX_BLOB else None)
    assert reader.place("0" * 40) is None and reader.place("not hex") is None
    reader.close()


def test_a_spool_is_published_whole_or_not_at_all(tmp_path):
    mirror = tmp_path / "m.git"
    mirror.mkdir()
    writer = SpoolWriter(mirror, "aaaa")
    writer.add("ab" * 20, b"content")
    assert SpoolReader.open(mirror, "aaaa") is None  # no index until finished
    writer.discard()
    assert list(spool_dir(mirror).iterdir()) == []
    first = SpoolWriter(mirror, "aaaa")
    first.add("ab" * 20, b"old")
    first.finish()
    kept_open = SpoolReader.open(mirror, "aaaa")
    SpoolWriter(mirror, "bbbb").finish()  # a newer scan removes older spools
    assert SpoolReader.open(mirror, "aaaa") is None
    assert kept_open is not None and kept_open.read(kept_open.place("ab" * 20)) == b"old"
    kept_open.close()


def test_a_damaged_spool_fails_the_delivery_and_is_dropped(tmp_path):
    mirror = tmp_path / "m.git"
    mirror.mkdir()
    blob = "cd" * 20
    writer = SpoolWriter(mirror, "c1")
    writer.add(blob, b"not what was hashed")
    writer.finish()
    reader = SpoolReader.open(mirror, "c1")
    assert reader is not None
    delivery = WatchDelivery(
        pool=None,  # type: ignore[arg-type]
        sender=None,  # type: ignore[arg-type]
        target=Target(app_id="app", base_url="http://127.0.0.1:9", key="k"),
        watch=None,  # type: ignore[arg-type]
        repository=None,  # type: ignore[arg-type]
        commit_sha="c1",
        mirror=mirror,
        chunks=ChunkPolicy(threshold_bytes=1 << 20, chunk_chars=1 << 19),
        attempt=1,
        spool=reader,
    )
    good = hashlib.sha256(b"the real content").hexdigest()
    change = Change("create", "a.txt", good, 16, blob, False, None)
    with pytest.raises(DeliveryFailed, match="spooled copy is damaged"):
        delivery._from_spool(change, delivery._spooled([change]))
    assert SpoolReader.open(mirror, "c1") is None  # the retry reads from git
    reader.close()


def test_delivery_ids_are_still_uuid5():
    """Receivers de-duplicate on delivery ids: the faster derivation must give the ids
    every earlier version gave."""
    for name in ("a", "app|repo|0|c|0|create|docs/é.md|" + "f" * 64 + "|0", "x" * 1000):
        assert _uuid5(name) == uuid.uuid5(_NAMESPACE, name)
