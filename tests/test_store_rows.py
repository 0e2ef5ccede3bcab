"""Each table family has one row type, and it matches the table it reads."""

from __future__ import annotations

import msgspec
import pytest

from docora.store.apps import AppRow
from docora.store.repositories import Repository
from docora.store.watches import Watch

JOINED = {"snapshot_commit", "snapshot_lfs", "lfs_objects", "lfs_bytes"}  # from the snapshots table


@pytest.mark.parametrize(
    ("struct", "table"), [(Repository, "repositories"), (Watch, "watches"), (AppRow, "apps")]
)
def test_row_types_match_their_tables(db, struct, table):
    columns = {
        row[0]
        for row in db.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,)
        )
    }
    fields = {f.name for f in msgspec.structs.fields(struct)} - JOINED
    assert fields <= columns, fields - columns
