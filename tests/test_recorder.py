"""The acknowledgement recorder commits a full half-window at once, lingers for a partial
one, and flushes everything when the delivery ends."""

from __future__ import annotations

import asyncio
import time
import uuid

from docora.db import open_pool
from docora.deliver import recorder
from docora.deliver.recorder import AckRecorder
from docora.store.changes import Change, LogEntry
from tests.pg import insert_watch

APP = "app_" + "c" * 24
REPO = "repo_" + "d" * 24


def acknowledged(i: int) -> tuple[Change, LogEntry]:
    change = Change("create", f"f{i}", f"sha{i}", 1, "blob", False, None)
    entry = LogEntry(
        APP, REPO, uuid.uuid4(), "create", change.path, change.sha, "c", "delivered", 200, 1, 1
    )
    return change, entry


async def test_batches_follow_the_window(db, database_url, monkeypatch):
    insert_watch(db, APP, REPO)
    monkeypatch.setattr(recorder, "LINGER_S", 2.0)
    batches: list[int] = []
    real = recorder.record_acknowledged

    async def counted(conn, batch, *, generation):
        batches.append(len(batch))
        return await real(conn, batch, generation=generation)

    monkeypatch.setattr(recorder, "record_acknowledged", counted)

    async def recorded_within(rec: AckRecorder, count: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while rec.recorded < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return rec.recorded >= count

    pool = await open_pool(database_url, max_size=2)
    try:
        async with AckRecorder(pool, generation=0, max_pending=8) as rec:
            for i in range(4):  # half the window: committed at once, no linger
                await rec.add(*acknowledged(i))
            assert await recorded_within(rec, 4, 1.5)
            await rec.add(*acknowledged(4))  # alone: waits for company, up to LINGER_S
            assert not await recorded_within(rec, 5, 0.5)
            assert await recorded_within(rec, 5, 3.0)
            await rec.add(*acknowledged(5))
            await rec.add(*acknowledged(6))
            closing = time.monotonic()
        assert time.monotonic() - closing < 1.5  # the end flushes without lingering
    finally:
        await pool.close()
    assert batches == [4, 1, 2]
    counts = db.execute(
        "SELECT files_delivered, (SELECT count(*) FROM deliveries WHERE app_id = %s)"
        " FROM watches WHERE app_id = %s",
        (APP, APP),
    ).fetchone()
    assert counts == (7, 7)
