"""This host's mirrors as a bounded cache (git/mirrors.py): least recently used first, never
one in use, one writer at a time; no database needed."""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from docora.git import mirrors

SIZE = 64 * 1024


def make_mirror(base: Path, name: str, last_used: float) -> Path:
    """A directory standing for a mirror: a HEAD and SIZE bytes of objects."""
    mirror = base / "example.com" / "acme" / name / "main.git"
    (mirror / "objects").mkdir(parents=True)
    (mirror / "HEAD").write_text("ref: refs/heads/main\n")
    (mirror / "objects" / "pack").write_bytes(os.urandom(SIZE))
    mirrors.use_file(mirror).write_text(str(mirrors.disk_bytes(mirror)))
    os.utime(mirrors.use_file(mirror), (last_used, last_used))
    return mirror


def test_the_least_recently_used_mirrors_go_first_and_one_in_use_stays(tmp_path):
    oldest, older, newer, newest = (
        make_mirror(tmp_path, name, 1000.0 + i)
        for i, name in enumerate(("oldest", "older", "newer", "newest"))
    )
    one = mirrors.disk_bytes(oldest)

    async def main():
        async with mirrors.using(oldest):  # a job reads it: eviction passes it by
            # Using it makes it the most recent, so age it again to prove the lock alone
            # protects it.
            os.utime(mirrors.use_file(oldest), (900.0, 900.0))
            return mirrors.enforce_bound(tmp_path, 2 * one)[0]

    accounting = asyncio.run(main())
    assert accounting.evicted == [older, newer]
    assert accounting.total_bytes == 2 * one
    assert oldest.exists() and newest.exists()
    assert not older.exists() and not mirrors.use_file(older).exists()
    assert mirrors.disk_bytes(tmp_path) <= 2 * one + 4096 * 4  # two use files left


def test_no_bound_evicts_nothing_and_counts_every_mirror(tmp_path):
    made = [make_mirror(tmp_path, f"r{i}", 1000.0 + i) for i in range(3)]
    accounting, sizes = mirrors.enforce_bound(tmp_path, None)
    assert accounting.evicted == []
    assert set(sizes) == set(made)
    assert accounting.total_bytes == sum(mirrors.disk_bytes(m) for m in made)


def test_a_mirror_made_before_use_files_is_counted(tmp_path):
    mirror = make_mirror(tmp_path, "legacy", 1000.0)
    mirrors.use_file(mirror).unlink()
    accounting, _ = mirrors.enforce_bound(tmp_path, None)
    assert accounting.total_bytes == mirrors.disk_bytes(mirror)
    assert mirrors.use_file(mirror).read_text() == str(mirrors.disk_bytes(mirror))


def test_a_job_waiting_through_an_eviction_locks_the_new_file_not_the_removed_one(tmp_path):
    mirror = make_mirror(tmp_path, "r", 1000.0)

    async def main():
        # An eviction in progress: it holds the use lock exclusive...
        evicting = os.open(mirrors.use_file(mirror), os.O_RDWR)
        fcntl.flock(evicting, fcntl.LOCK_EX)
        entered = asyncio.Event()
        leave = asyncio.Event()

        async def job():
            async with mirrors.using(mirror):
                entered.set()
                await leave.wait()

        task = asyncio.create_task(job())
        await asyncio.sleep(0.05)
        assert not entered.is_set()
        # ...removes the mirror and its lock files, and lets go.
        mirrors.use_file(mirror).unlink()
        os.close(evicting)
        await asyncio.wait_for(entered.wait(), 5)
        # The job holds the file now at the path: a second eviction must see it in use.
        assert not mirrors._try_evict(mirrors.Entry(mirror, SIZE, 0.0))
        leave.set()
        await task
        assert mirrors._try_evict(mirrors.Entry(mirror, SIZE, 0.0))

    asyncio.run(main())


def test_writers_of_one_mirror_take_turns(tmp_path):
    mirror = tmp_path / "h" / "o" / "n" / "main.git"
    inside: list[int] = []
    overlaps: list[int] = []

    async def writer(n: int):
        async with mirrors.writing(mirror):
            if inside:
                overlaps.append(n)
            inside.append(n)
            await asyncio.sleep(0.02)
            inside.remove(n)

    async def main():
        await asyncio.gather(*(writer(n) for n in range(5)))

    asyncio.run(main())
    assert overlaps == []


def test_the_running_account_walks_again_only_past_the_bound(tmp_path):
    made = [make_mirror(tmp_path, f"r{i}", 1000.0 + i) for i in range(3)]
    one = mirrors.disk_bytes(made[0])
    host = mirrors.HostMirrors(tmp_path, max_bytes=3 * one + 1, rewalk_s=3600)
    assert host.walk().total_bytes == 3 * one

    async def fetch_new(name: str) -> mirrors.Accounting:
        mirror = make_mirror(tmp_path, name, 2000.0)
        async with mirrors.using(mirror):
            return host.fetched(mirror)

    # A fourth mirror crosses the bound: the oldest not in use goes.
    accounting = asyncio.run(fetch_new("r3"))
    assert accounting.evicted == [made[0]]
    assert accounting.total_bytes == 3 * one


async def test_removing_a_repositorys_mirror_waits_for_its_user(tmp_path):
    mirror = make_mirror(tmp_path, "gone", 1000.0)
    leave = asyncio.Event()

    async def job():
        async with mirrors.using(mirror):
            await leave.wait()

    task = asyncio.create_task(job())
    await asyncio.sleep(0.02)
    removal = asyncio.create_task(mirrors.remove(tmp_path, mirror))
    await asyncio.sleep(0.1)
    assert not removal.done() and mirror.exists()
    leave.set()
    await task
    assert await removal is True
    assert not mirror.exists() and not mirrors.use_file(mirror).exists()
